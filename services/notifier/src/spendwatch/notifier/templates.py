"""Every message the notifier sends, rendered from data: Slack Block Kit and email (HTML + text).

Pure: no I/O, no clock. Everything that comes from outside (names, emails, models, messages,
notes) is escaped for where it goes: Slack mrkdwn control characters (`&`, `<`, `>`, so a
message cannot ping `<!channel>` or hide a link) and HTML through jinja2's autoescape.

The interactive elements follow the contract the API maps: an `actions` block with
`block_id` `incident:<incident_id>`, buttons `incident.acknowledge` and `incident.resolve` whose
value is the incident id, and a `static_select` `incident.snooze` whose options are
`<incident_id>|<minutes>`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from jinja2 import DictLoader, Environment, StrictUndefined

from spendwatch.common.events import Incident, IncidentEvent
from spendwatch.notifier.digests import CycleDigest, PlanDigest

Block = dict[str, Any]

TEAM = "team"
ACK_ACTION = "incident.acknowledge"
RESOLVE_ACTION = "incident.resolve"
SNOOZE_ACTION = "incident.snooze"
SNOOZE_OPTIONS: tuple[tuple[int, str], ...] = ((60, "1 hour"), (240, "4 hours"), (1440, "24 hours"))
USER_DASHBOARD = "/d/spendwatch-user/user-drilldown?var-user="
TEAM_DASHBOARD = "/d/spendwatch-team/team-overview"
FOOTER = "spendwatch"

_MAX_BLOCKS = 50  # Slack's limit per message
_MAX_SECTION = 3000
_MAX_FIELD = 2000
_MAX_HEADER = 150
_MAX_SUBJECT = 200
_GROUPED_TAIL = 3  # blocks after the listed incidents: overflow list, link, context
_SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_EMOJI = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}
_COLOUR = {"critical": "#dc2626", "warning": "#d97706", "info": "#2563eb", "resolved": "#16a34a"}
_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """A Slack message: the notification `text` and the Block Kit `blocks`."""

    text: str
    blocks: list[Block]


@dataclass(frozen=True, slots=True)
class Email:
    """An email: one-line subject, HTML part and plain-text part."""

    subject: str
    html: str
    text: str


# --- values ------------------------------------------------------------------------------------


def esc(text: str) -> str:
    """`text` safe inside Slack mrkdwn (the three characters Slack asks to escape)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def money(value: Decimal) -> str:
    """`$1,234.50` (cents, half up; `-$5.00` below zero)."""
    cents = value.quantize(_CENT, ROUND_HALF_UP)
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents):,.2f}"


def _count(value: Decimal, one: str, many: str) -> str:
    n = int(value.quantize(Decimal(1), ROUND_HALF_UP))
    return f"{n:,} {one if n == 1 else many}"


def format_value(value: Decimal | None, unit: str) -> str:
    """A value in its unit: usd `$1,234.50`, usd_per_request `$4.20/req`, counts with thousands
    separators, hours, sigma, ratio; `—` when there is none."""
    if value is None:
        return "—"
    match unit:
        case "usd":
            return money(value)
        case "usd_per_request":
            return f"{money(value)}/req"
        case "requests":
            return _count(value, "request", "requests")
        case "tokens":
            return _count(value, "token", "tokens")
        case "events":
            return _count(value, "event", "events")
        case "hours":
            hours = value.quantize(Decimal("0.1"), ROUND_HALF_UP).normalize()
            return f"{hours:f} hour" if hours == 1 else f"{hours:f} hours"
        case "sigma":
            return f"{value.quantize(Decimal('0.1'), ROUND_HALF_UP)}\N{GREEK SMALL LETTER SIGMA}"
        case "ratio":
            return f"{value.quantize(Decimal('0.1'), ROUND_HALF_UP)}x"
        case _:
            return f"{value.normalize():f}"


def percent(value: Decimal) -> str:
    """`+12%` / `-3%`."""
    return f"{'+' if value > 0 else ''}{value}%"


def title(incident: Incident) -> str:
    """The detector as words: `spend_spike` -> `Spend spike`."""
    return incident.detector.replace("_", " ").capitalize()


def who(subject: str) -> str:
    """The subject as people read it: an email, or `Team`."""
    return "Team" if subject == TEAM else subject


def severity_label(incident: Incident) -> str:
    """`Critical`, `Warning`, `Info`."""
    return incident.severity.capitalize()


def dashboard_link(base: str | None, subject: str) -> str | None:
    """The Grafana dashboard for the subject: the user drilldown, or the team overview for the
    team (or a group); None when no dashboard URL is configured."""
    if not base:
        return None
    root = base.rstrip("/")
    if "@" in subject:
        return f"{root}{USER_DASHBOARD}{quote(subject, safe='')}"
    return f"{root}{TEAM_DASHBOARD}"


def actor_text(actor: str | None) -> str:
    """Who did it, in plain text: `slack:U123` -> `U123` (Slack), `api:ops` -> `ops (API)`."""
    if not actor:
        return "someone"
    kind, _, name = actor.partition(":")
    if kind == "slack" and name:
        return f"{name} (Slack)"
    if kind == "api" and name:
        return f"{name} (API)"
    if actor in {"system", "notifier"}:
        return "spendwatch"
    return actor


def actor_mrkdwn(actor: str | None) -> str:
    """Who did it, in Slack mrkdwn: a Slack user id becomes a mention."""
    if actor:
        kind, _, name = actor.partition(":")
        if kind == "slack" and _SLACK_USER_ID.match(name):
            return f"<@{name}>"
    return esc(actor_text(actor))


def local_time(at: datetime, tz: ZoneInfo) -> str:
    """`2026-11-21 14:05 CET`."""
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def slack_time(at: datetime, tz: ZoneInfo) -> str:
    """A time each reader sees in their own timezone, with the team's as the fallback."""
    epoch = int(at.timestamp())
    return f"<!date^{epoch}^{{date_short_pretty}} at {{time}}|{local_time(at, tz)}>"


def window_label(incident: Incident, tz: ZoneInfo) -> str | None:
    """The window in team time: whole days as dates, anything else as times."""
    start, end = incident.window_start, incident.window_end
    if start is None or end is None:
        return None
    first, last = start.astimezone(tz), end.astimezone(tz)
    if first.time() == time(0) and last.time() == time(0):
        last_day = (last - timedelta(days=1)).date()
        if last_day <= first.date():
            return first.date().isoformat()
        return f"{first.date().isoformat()} → {last_day.isoformat()}"
    if first.date() == last.date():
        return f"{first:%Y-%m-%d %H:%M} → {last:%H:%M %Z}"
    return f"{first:%Y-%m-%d %H:%M} → {last:%Y-%m-%d %H:%M %Z}"


def _state(incident: Incident, *, by: str | None, until: str | None) -> str:
    """The state sentence; `by` and `until` are already rendered for the target format."""
    if incident.state == "resolved":
        if incident.resolution == "auto" or incident.resolved_by in {None, "system"}:
            return "Resolved automatically (the condition cleared)"
        return f"Resolved by {by}"
    if incident.state == "acknowledged":
        text = f"Acknowledged by {by}"
        return f"{text}, snoozed until {until}" if until else text
    return f"Snoozed until {until}" if until else "Open, not yet acknowledged"


def state_mrkdwn(incident: Incident, tz: ZoneInfo) -> str:
    """The incident's state for Slack."""
    actor = incident.resolved_by if incident.state == "resolved" else incident.acknowledged_by
    until = slack_time(incident.snoozed_until, tz) if incident.snoozed_until else None
    emoji = {"resolved": ":white_check_mark: ", "acknowledged": ":eyes: "}.get(incident.state, "")
    if not emoji and until:
        emoji = ":zzz: "
    return emoji + _state(incident, by=actor_mrkdwn(actor), until=until)


def state_text(incident: Incident, tz: ZoneInfo) -> str:
    """The incident's state in plain text."""
    actor = incident.resolved_by if incident.state == "resolved" else incident.acknowledged_by
    until = local_time(incident.snoozed_until, tz) if incident.snoozed_until else None
    return _state(incident, by=actor_text(actor), until=until)


# --- Slack: incidents --------------------------------------------------------------------------


def actions_block(incident: Incident) -> Block | None:
    """Acknowledge / Resolve / Snooze for an incident that is not resolved (Acknowledge only
    while nobody has)."""
    if incident.state == "resolved":
        return None
    iid = incident.incident_id
    elements: list[Block] = []
    if incident.state != "acknowledged":
        elements.append(
            {
                "type": "button",
                "action_id": ACK_ACTION,
                "text": {"type": "plain_text", "text": "Acknowledge"},
                "style": "primary",
                "value": iid,
            }
        )
    elements.append(
        {
            "type": "button",
            "action_id": RESOLVE_ACTION,
            "text": {"type": "plain_text", "text": "Resolve"},
            "value": iid,
        }
    )
    elements.append(
        {
            "type": "static_select",
            "action_id": SNOOZE_ACTION,
            "placeholder": {"type": "plain_text", "text": "Snooze"},
            "options": [
                {"text": {"type": "plain_text", "text": label}, "value": f"{iid}|{minutes}"}
                for minutes, label in SNOOZE_OPTIONS
            ],
        }
    )
    return {"type": "actions", "block_id": f"incident:{iid}", "elements": elements}


def _header(text: str) -> Block:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": _truncate(text, _MAX_HEADER), "emoji": True},
    }


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _truncate(text, _MAX_SECTION)}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _field(label: str, value: str) -> Block:
    return {"type": "mrkdwn", "text": _truncate(f"*{label}*\n{value}", _MAX_FIELD)}


def _emoji(incident: Incident) -> str:
    if incident.state == "resolved":
        return ":white_check_mark:"
    return _EMOJI[incident.severity]


def incident_fields(incident: Incident, tz: ZoneInfo) -> list[tuple[str, str]]:
    """(label, plain value) pairs shown with every incident, in order."""
    fields = [
        ("Who", who(incident.subject)),
        ("Model", incident.model or "—"),
        ("Value", format_value(incident.value, incident.unit)),
        ("Threshold", format_value(incident.threshold, incident.unit)),
    ]
    if incident.baseline is not None:
        fields.append(("Baseline", format_value(incident.baseline, incident.unit)))
    if window := window_label(incident, tz):
        fields.append(("Window", window))
    return fields


def incident_message(
    incident: Incident, *, dashboard_url: str | None, tz: ZoneInfo
) -> SlackMessage:
    """The root message of one incident, as it is now (edited in place on every change)."""
    heading = f"{_emoji(incident)} {severity_label(incident)} · {title(incident)}"
    if incident.state == "resolved":
        heading = f":white_check_mark: Resolved · {title(incident)} ({incident.severity})"
    fields = [_field(label, esc(value)) for label, value in incident_fields(incident, tz)]
    fields.append(_field("State", state_mrkdwn(incident, tz)))
    blocks: list[Block] = [
        _header(heading),
        _section(f"*{esc(incident.message)}*"),
        {"type": "section", "fields": fields},
    ]
    if link := dashboard_link(dashboard_url, incident.subject):
        label = "Open the team dashboard" if "@" not in incident.subject else "Open their dashboard"
        blocks.append(_section(f"<{link}|{label}>"))
    blocks.append(
        _context(
            f"Incident `{incident.incident_id}` · {esc(incident.detector)} · detected "
            f"{slack_time(incident.detected_at, tz)} · {FOOTER}"
        )
    )
    if actions := actions_block(incident):
        blocks.append(actions)
    text = f"{severity_label(incident)}: {esc(incident.message)}"
    if incident.state == "resolved":
        text = f"Resolved: {esc(incident.message)}"
    return SlackMessage(text=text, blocks=blocks)


def _value_line(incident: Incident) -> str:
    line = (
        f"{format_value(incident.value, incident.unit)} vs threshold "
        f"{format_value(incident.threshold, incident.unit)}"
    )
    if incident.baseline is not None:
        line += f" (usual {format_value(incident.baseline, incident.unit)})"
    return line


def _grouped_item(incident: Incident, tz: ZoneInfo) -> str:
    model = f" · `{esc(incident.model)}`" if incident.model else ""
    return (
        f"{_emoji(incident)} *{esc(title(incident))}* · {esc(who(incident.subject))}{model}\n"
        f"{esc(incident.message)}\n{esc(_value_line(incident))} · _{state_mrkdwn(incident, tz)}_"
    )


def grouped_message(
    incidents: Sequence[Incident],
    *,
    dashboard_url: str | None,
    tz: ZoneInfo,
    threshold: int,
    window_seconds: float,
) -> SlackMessage:
    """One message listing incidents that opened together, each with its own buttons while the
    message has room (Slack allows 50 blocks); the rest are listed as lines."""
    counts = {s: sum(1 for i in incidents if i.severity == s) for s in ("critical", "warning")}
    worst = "critical" if counts["critical"] else "warning"
    n = len(incidents)
    noun = "incident" if n == 1 else "incidents"
    blocks: list[Block] = [
        _header(f"{_EMOJI[worst]} {n} more {noun} opened together"),
        _section(
            f"*{counts['critical']}* critical · *{counts['warning']}* warning. More than "
            f"{threshold} incidents opened within {window_seconds:g} s, so these are listed in "
            "one message; updates follow in its thread."
        ),
    ]
    rest: list[Incident] = []
    for incident in incidents:
        actions = actions_block(incident)
        needed = 1 + (1 if actions else 0)
        if rest or len(blocks) + needed + _GROUPED_TAIL > _MAX_BLOCKS:
            rest.append(incident)
            continue
        blocks.append(_section(_grouped_item(incident, tz)))
        if actions:
            blocks.append(actions)
    if rest:
        lines: list[str] = []
        for index, incident in enumerate(rest):
            line = f"{_emoji(incident)} *{esc(who(incident.subject))}*: {esc(incident.message)}"
            more = f"…and {len(rest) - index} more"
            if sum(len(x) + 1 for x in lines) + len(line) + len(more) + 2 > _MAX_SECTION:
                lines.append(more)
                break
            lines.append(line)
        blocks.append(_section("\n".join(lines)))
    if link := dashboard_link(dashboard_url, TEAM):
        blocks.append(_section(f"<{link}|Open the team dashboard>"))
    blocks.append(_context(f"{n} {noun} · {FOOTER}"))
    text = f"{n} more {noun} opened together ({counts['critical']} critical)"
    return SlackMessage(text=text, blocks=blocks)


def thread_reply(event: IncidentEvent, tz: ZoneInfo) -> str | None:
    """The thread reply saying who did what, or None for transitions that need none."""
    incident = event.incident
    label = f"*{esc(title(incident))}* · {esc(who(incident.subject))}"
    by = actor_mrkdwn(event.actor)
    match event.transition:
        case "acknowledged":
            text = f":eyes: {by} acknowledged {label}."
        case "snoozed":
            until = slack_time(incident.snoozed_until, tz) if incident.snoozed_until else "later"
            text = f":zzz: {by} snoozed {label} until {until}."
        case "resolved":
            if event.actor in {"system", "notifier"} or incident.resolution == "auto":
                text = f":white_check_mark: {label} resolved automatically: the condition cleared."
            else:
                text = f":white_check_mark: {by} resolved {label}."
        case "escalated":
            text = (
                f"{_EMOJI[incident.severity]} {label} escalated to *{incident.severity}*: "
                f"{esc(incident.message)}"
            )
        case "reopened":
            text = f":repeat: {label} fired again and was reopened: {esc(incident.message)}"
        case _:
            return None
    if event.note:
        text += f"\n>{esc(' '.join(event.note.split()))}"
    return _truncate(text, _MAX_SECTION)


# --- Slack: digests ----------------------------------------------------------------------------


def _cycle_label(start: date, last: date) -> str:
    return f"{start.isoformat()} → {last.isoformat()}"


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def plan_digest_message(digest: PlanDigest, *, dashboard_url: str | None) -> SlackMessage:
    """The daily plan-exhaustion message."""
    headline = (
        f"{digest.exceeded}/{digest.active} active users have exceeded their included plan "
        "this cycle"
    )
    lines = [
        f"{i}. {esc(u.label)}: {money(u.on_demand)} on demand "
        f"({u.on_demand_requests:,} requests past the plan)"
        for i, u in enumerate(digest.top, start=1)
    ]
    blocks: list[Block] = [
        _header(":zap: Plan exhaustion"),
        _section(f"*{headline}*. On-demand spend so far: *{money(digest.on_demand_total)}*."),
    ]
    if lines:
        blocks.append(_section("*Most on-demand spend*\n" + "\n".join(lines)))
    if link := dashboard_link(dashboard_url, TEAM):
        blocks.append(_section(f"<{link}|Open the team dashboard>"))
    blocks.append(
        _context(
            f"Cycle {_cycle_label(digest.cycle.start, digest.cycle.last_day)} · "
            f"{digest.day.isoformat()} · {FOOTER}"
        )
    )
    return SlackMessage(text=headline, blocks=blocks)


def cycle_summary_lines(digest: CycleDigest) -> list[tuple[str, str]]:
    """(label, plain value) of the cycle summary, in order."""
    spend = money(digest.spend)
    if digest.previous_spend is None:
        previous = "no data for the previous cycle"
    else:
        previous = money(digest.previous_spend)
        if (change := digest.change) is not None:
            previous += f" ({percent(change)})"
    lines = [("Spend this cycle", spend), ("Previous cycle at the same point", previous)]
    if digest.members:
        lines.append(
            (
                "Adoption",
                f"{digest.active_members}/{digest.members} seats active ({digest.adoption}%)",
            )
        )
        unused = f"{digest.unused_seats}"
        if digest.unused:
            names = ", ".join(m.label for m in digest.unused[:10])
            more = f" and {digest.unused_seats - 10} more" if digest.unused_seats > 10 else ""
            unused += f": {names}{more}"
        lines.append(("Unused seats", unused))
    else:
        lines.append(("Active users", f"{digest.active_users} (no roster to compare with)"))
    lines.append(("Exceeded the included plan", f"{digest.exceeded} users"))
    return lines


def cycle_digest_message(digest: CycleDigest, *, dashboard_url: str | None) -> SlackMessage:
    """The end-of-cycle summary message."""
    days = digest.days_left
    blocks: list[Block] = [
        _header(f":bar_chart: Cycle summary · ends {digest.cycle.last_day.isoformat()}"),
        {
            "type": "section",
            "fields": [_field(label, esc(value)) for label, value in cycle_summary_lines(digest)],
        },
    ]
    if digest.top_spenders:
        top = "\n".join(
            f"{i}. {esc(u.label)}: {money(u.spend)}"
            for i, u in enumerate(digest.top_spenders, start=1)
        )
        blocks.append(_section(f"*Top spenders*\n{top}"))
    if link := dashboard_link(dashboard_url, TEAM):
        blocks.append(_section(f"<{link}|Open the team dashboard>"))
    blocks.append(
        _context(
            f"Cycle {_cycle_label(digest.cycle.start, digest.cycle.last_day)} · "
            f"{_days(days)} left · {FOOTER}"
        )
    )
    text = f"Cycle summary: {money(digest.spend)} spent, {digest.unused_seats} unused seats"
    return SlackMessage(text=text, blocks=blocks)


# --- email -------------------------------------------------------------------------------------

_LAYOUT = """\
<!doctype html>
<html><head><meta charset="utf-8"><title>{{ heading }}</title></head>
<body style="margin:0;padding:0;background:#f4f4f5;font-family:-apple-system,Segoe UI,Helvetica,\
Arial,sans-serif;color:#18181b">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0"><tr><td align="center">
<table role="presentation" width="600" cellpadding="0" cellspacing="0" \
style="background:#ffffff;margin:16px 0">
<tr><td style="background:{{ colour }};color:#ffffff;padding:12px 16px;font-weight:bold">\
{{ heading }}</td></tr>
<tr><td style="padding:16px">
{% block body %}{% endblock %}
{% if link %}<p><a href="{{ link }}" style="color:#2563eb">{{ link_label }}</a></p>{% endif %}
<p style="color:#71717a;font-size:12px">{{ footer }}</p>
</td></tr></table></td></tr></table>
</body></html>
"""

_FIELDS = """\
<table role="presentation" cellpadding="4" cellspacing="0">
{% for label, value in fields %}<tr><th align="left" style="color:#52525b;font-weight:600">\
{{ label }}</th><td>{{ value }}</td></tr>
{% endfor %}</table>
"""

_HTML = {
    "layout.html": _LAYOUT,
    "fields.html": _FIELDS,
    "incident.html": """\
{% extends "layout.html" %}{% block body %}
{% if intro %}<p>{{ intro }}</p>{% endif %}
<p style="font-size:16px"><strong>{{ message }}</strong></p>
{% include "fields.html" %}
{% endblock %}""",
    "grouped.html": """\
{% extends "layout.html" %}{% block body %}
<p>{{ intro }}</p>
<table role="presentation" cellpadding="6" cellspacing="0" style="border-collapse:collapse">
<tr><th align="left">Severity</th><th align="left">Who</th><th align="left">What</th>\
<th align="left">Value</th></tr>
{% for row in rows %}<tr style="border-top:1px solid #e4e4e7"><td>{{ row.severity }}</td>\
<td>{{ row.who }}</td><td>{{ row.message }}</td><td>{{ row.value }}</td></tr>
{% endfor %}</table>
{% endblock %}""",
    "digest.html": """\
{% extends "layout.html" %}{% block body %}
<p style="font-size:16px"><strong>{{ headline }}</strong></p>
{% include "fields.html" %}
{% if items %}<p><strong>{{ items_title }}</strong></p>
<ol>{% for item in items %}<li>{{ item }}</li>{% endfor %}</ol>{% endif %}
{% endblock %}""",
}

_TEXT = {
    "incident.txt": """\
{{ heading }}
{% if intro %}
{{ intro }}
{% endif %}
{{ message }}

{% for label, value in fields %}{{ label }}: {{ value }}
{% endfor %}{% if link %}
{{ link_label }}: {{ link }}
{% endif %}
-- {{ footer }}
""",
    "grouped.txt": """\
{{ heading }}

{{ intro }}

{% for row in rows %}- [{{ row.severity }}] {{ row.who }}: {{ row.message }} ({{ row.value }})
{% endfor %}{% if link %}
{{ link_label }}: {{ link }}
{% endif %}
-- {{ footer }}
""",
    "digest.txt": """\
{{ heading }}

{{ headline }}

{% for label, value in fields %}{{ label }}: {{ value }}
{% endfor %}{% if items %}
{{ items_title }}:
{% for item in items %}{{ loop.index }}. {{ item }}
{% endfor %}{% endif %}{% if link %}
{{ link_label }}: {{ link }}
{% endif %}
-- {{ footer }}
""",
}

_html = Environment(
    loader=DictLoader(_HTML), autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True
)
_text = Environment(
    loader=DictLoader(_TEXT),
    autoescape=False,  # noqa: S701 - the plain-text part is not HTML
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


def _render(name: str, **context: Any) -> tuple[str, str]:
    html = _html.get_template(f"{name}.html").render(**context)
    text = _text.get_template(f"{name}.txt").render(**context)
    return html, text


def subject_line(text: str) -> str:
    """One header-safe line: no CR/LF, bounded."""
    return _truncate(" ".join(text.split()), _MAX_SUBJECT)


def incident_email(
    incident: Incident,
    *,
    transition: str,
    dashboard_url: str | None,
    tz: ZoneInfo,
) -> Email:
    """The alert email of an incident that opened, escalated or reopened."""
    intro = {
        "escalated": f"This incident escalated to {incident.severity}.",
        "reopened": "This incident fired again and was reopened.",
    }.get(transition, "")
    prefix = {"escalated": "Escalated: ", "reopened": "Reopened: "}.get(transition, "")
    heading = f"{severity_label(incident)} · {title(incident)}"
    fields = [
        *incident_fields(incident, tz),
        ("State", state_text(incident, tz)),
        ("Detected", local_time(incident.detected_at, tz)),
    ]
    link = dashboard_link(dashboard_url, incident.subject)
    html, text = _render(
        "incident",
        heading=heading,
        colour=_COLOUR[incident.severity],
        intro=intro,
        message=incident.message,
        fields=fields,
        link=link,
        link_label="Open the dashboard",
        footer=f"Incident {incident.incident_id} · {FOOTER}",
    )
    subject = subject_line(f"[{incident.severity.upper()}] {prefix}{incident.message}")
    return Email(subject=subject, html=html, text=text)


def grouped_email(
    incidents: Sequence[Incident], *, dashboard_url: str | None, threshold: int
) -> Email:
    """One email listing incidents that opened together."""
    n = len(incidents)
    critical = sum(1 for i in incidents if i.severity == "critical")
    noun = "incident" if n == 1 else "incidents"
    rows = [
        {
            "severity": i.severity.upper(),
            "who": who(i.subject),
            "message": i.message,
            "value": _value_line(i),
        }
        for i in incidents
    ]
    html, text = _render(
        "grouped",
        heading=f"{n} more {noun} opened together",
        colour=_COLOUR["critical" if critical else "warning"],
        intro=(
            f"More than {threshold} incidents opened at once; these {n} are listed together "
            f"({critical} critical)."
        ),
        rows=rows,
        link=dashboard_link(dashboard_url, TEAM),
        link_label="Open the team dashboard",
        footer=FOOTER,
    )
    subject = subject_line(f"[{'CRITICAL' if critical else 'WARNING'}] {n} more {noun} opened")
    return Email(subject=subject, html=html, text=text)


def plan_digest_email(digest: PlanDigest, *, dashboard_url: str | None) -> Email:
    """The daily plan-exhaustion email."""
    headline = (
        f"{digest.exceeded}/{digest.active} active users have exceeded their included plan "
        "this cycle"
    )
    html, text = _render(
        "digest",
        heading="Plan exhaustion",
        colour=_COLOUR["info"],
        headline=headline,
        fields=[
            ("On-demand spend so far", money(digest.on_demand_total)),
            ("Cycle", _cycle_label(digest.cycle.start, digest.cycle.last_day)),
        ],
        items_title="Most on-demand spend",
        items=[
            f"{u.label}: {money(u.on_demand)} on demand ({u.on_demand_requests:,} requests)"
            for u in digest.top
        ],
        link=dashboard_link(dashboard_url, TEAM),
        link_label="Open the team dashboard",
        footer=f"{digest.day.isoformat()} · {FOOTER}",
    )
    return Email(subject=subject_line(f"[spendwatch] {headline}"), html=html, text=text)


def cycle_digest_email(digest: CycleDigest, *, dashboard_url: str | None) -> Email:
    """The end-of-cycle summary email."""
    last = digest.cycle.last_day.isoformat()
    html, text = _render(
        "digest",
        heading=f"Cycle summary · ends {last}",
        colour=_COLOUR["info"],
        headline=f"{money(digest.spend)} spent this cycle, {_days(digest.days_left)} left",
        fields=cycle_summary_lines(digest),
        items_title="Top spenders",
        items=[f"{u.label}: {money(u.spend)}" for u in digest.top_spenders],
        link=dashboard_link(dashboard_url, TEAM),
        link_label="Open the team dashboard",
        footer=f"Cycle {_cycle_label(digest.cycle.start, digest.cycle.last_day)} · {FOOTER}",
    )
    subject = subject_line(
        f"[spendwatch] Cycle summary: {money(digest.spend)} spent, cycle ends {last}"
    )
    return Email(subject=subject, html=html, text=text)
