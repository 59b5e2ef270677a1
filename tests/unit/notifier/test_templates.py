"""Block Kit and email rendering (pure), with snapshots of whole messages.

Snapshots live in `snapshots/`; after an intended change, rewrite them with
`UPDATE_SNAPSHOTS=1 pytest tests/unit/notifier/test_templates.py` and review the diff.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from spendwatch.common.cycles import Cycle
from spendwatch.common.events import Incident
from spendwatch.notifier import templates
from spendwatch.notifier.digests import Member, UserUsage, cycle_digest, plan_digest
from tests.unit.notifier.builders import DAY, event, incident

SNAPSHOTS = Path(__file__).parent / "snapshots"
UTC_ZONE = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
IID = "0b6f1c1e-5b1a-4c55-9a51-8a3f0f9d2b7e"
DETECTED = datetime(2026, 11, 21, 14, 5, tzinfo=UTC)


def matches_snapshot(name: str, data: Any) -> None:
    path = SNAPSHOTS / name
    text = data if isinstance(data, str) else json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no snapshot {name}: run with UPDATE_SNAPSHOTS=1 and review it"
    assert text == path.read_text(encoding="utf-8"), f"{name} changed"


def alice(**fields: Any) -> Incident:
    return incident(incident_id=IID, detected_at=DETECTED, severity="critical", **fields)


# --- values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        ("1234.5", "usd", "$1,234.50"),
        ("0.005", "usd", "$0.01"),
        ("-5", "usd", "-$5.00"),
        ("1234567.891", "usd", "$1,234,567.89"),
        ("4.2", "usd_per_request", "$4.20/req"),
        ("12345", "requests", "12,345 requests"),
        ("1", "requests", "1 request"),
        ("1234567", "tokens", "1,234,567 tokens"),
        ("2500", "events", "2,500 events"),
        ("1.5", "hours", "1.5 hours"),
        ("1", "hours", "1 hour"),
        ("12", "hours", "12 hours"),
        ("3.24", "sigma", "3.2σ"),  # noqa: RUF001 - the sigma sign is meant
        ("4.25", "ratio", "4.3x"),
    ],
)
def test_values_are_formatted_by_unit(value: str, unit: str, shown: str) -> None:
    assert templates.format_value(Decimal(value), unit) == shown


def test_no_value_is_a_dash() -> None:
    assert templates.format_value(None, "usd") == "—"


def test_mrkdwn_control_characters_are_escaped() -> None:
    assert templates.esc("<!channel> & <http://evil|click>") == (
        "&lt;!channel&gt; &amp; &lt;http://evil|click&gt;"
    )


@pytest.mark.parametrize(
    ("base", "subject", "link"),
    [
        (
            "http://grafana:3000/",
            "bob+ai@x.com",
            "http://grafana:3000/d/spendwatch-user/user-drilldown?var-user=bob%2Bai%40x.com",
        ),
        ("http://grafana:3000", "team", "http://grafana:3000/d/spendwatch-team/team-overview"),
        ("http://g", "backend", "http://g/d/spendwatch-team/team-overview"),
        (None, "bob@x.com", None),
        ("", "bob@x.com", None),
    ],
)
def test_dashboard_links(base: str | None, subject: str, link: str | None) -> None:
    assert templates.dashboard_link(base, subject) == link


def test_actors() -> None:
    assert templates.actor_mrkdwn("slack:U024BE7LH") == "<@U024BE7LH>"
    assert templates.actor_mrkdwn("slack:<!here>") == "&lt;!here&gt; (Slack)"
    assert templates.actor_text("api:ops-bot") == "ops-bot (API)"
    assert templates.actor_text("system") == "spendwatch"
    assert templates.actor_text(None) == "someone"


def test_windows_in_team_time() -> None:
    day = alice(window_start=DAY - timedelta(hours=1), window_end=DAY + timedelta(hours=23))
    assert templates.window_label(day, BERLIN) == "2026-11-21"
    cycle = alice(
        window_start=datetime(2026, 11, 5, tzinfo=UTC), window_end=datetime(2026, 12, 5, tzinfo=UTC)
    )
    assert templates.window_label(cycle, UTC_ZONE) == "2026-11-05 → 2026-12-04"
    burst = alice(window_start=DAY.replace(hour=14), window_end=DAY.replace(hour=14, minute=30))
    assert templates.window_label(burst, UTC_ZONE) == "2026-11-21 14:00 → 14:30 UTC"
    assert templates.window_label(alice(window_start=None, window_end=None), UTC_ZONE) is None


# --- Slack: root messages ----------------------------------------------------------------------


def test_the_root_message_of_an_open_incident() -> None:
    message = templates.incident_message(alice(), dashboard_url="http://grafana:3000", tz=BERLIN)
    assert message.text == (
        "Critical: Alice: daily spend spiked to $214 (4.2x her 7-day avg of $51)"
    )
    matches_snapshot("root_open.json", message.blocks)
    [actions] = [b for b in message.blocks if b["type"] == "actions"]
    assert actions["block_id"] == f"incident:{IID}"
    assert [e["action_id"] for e in actions["elements"]] == [
        "incident.acknowledge",
        "incident.resolve",
        "incident.snooze",
    ]
    assert [e.get("value") for e in actions["elements"][:2]] == [IID, IID]
    snooze = actions["elements"][2]
    assert snooze["type"] == "static_select"
    assert [o["value"] for o in snooze["options"]] == [f"{IID}|60", f"{IID}|240", f"{IID}|1440"]


def test_an_acknowledged_and_snoozed_incident_keeps_resolve_and_snooze() -> None:
    until = DETECTED + timedelta(hours=4)
    snapshot = alice(state="acknowledged", acknowledged_by="slack:U024BE7LH", snoozed_until=until)
    message = templates.incident_message(snapshot, dashboard_url=None, tz=UTC_ZONE)
    [actions] = [b for b in message.blocks if b["type"] == "actions"]
    assert [e["action_id"] for e in actions["elements"]] == ["incident.resolve", "incident.snooze"]
    state = message.blocks[2]["fields"][-1]["text"]
    assert state.startswith("*State*\n:eyes: Acknowledged by <@U024BE7LH>, snoozed until <!date^")
    assert not any("dashboard" in json.dumps(b) for b in message.blocks)  # no DASHBOARD_URL


def test_a_resolved_team_incident_has_no_buttons() -> None:
    snapshot = incident(
        "team",
        incident_id=IID,
        detected_at=DETECTED,
        detector="team_budget",
        message="The team spent $12,000 this cycle, over the budget of $10,000",
        model=None,
        value=Decimal("12000"),
        threshold=Decimal("10000"),
        baseline=None,
        window_start=datetime(2026, 11, 5, tzinfo=UTC),
        window_end=datetime(2026, 12, 5, tzinfo=UTC),
        state="resolved",
        resolved_by="system",
        resolution="auto",
    )
    message = templates.incident_message(snapshot, dashboard_url="http://g", tz=UTC_ZONE)
    matches_snapshot("root_resolved_team.json", message.blocks)
    assert not [b for b in message.blocks if b["type"] == "actions"]
    assert message.text.startswith("Resolved: ")


def test_what_comes_from_outside_cannot_ping_or_hide_links() -> None:
    evil = alice(message="<!channel> <http://evil.example|your bill> & more", model="<@U1>")
    message = templates.incident_message(evil, dashboard_url=None, tz=UTC_ZONE)
    rendered = json.dumps(message.blocks) + message.text
    assert "<!channel>" not in rendered
    assert "<http://evil.example" not in rendered
    assert "<@U1>" not in rendered
    assert "&lt;!channel&gt; &lt;http://evil.example|your bill&gt; &amp; more" in rendered


def test_the_grouped_message_lists_each_with_its_buttons_within_slacks_limits() -> None:
    three = [
        incident(f"dev{i}@x.com", incident_id=f"{IID[:-2]}{i:02d}", detected_at=DETECTED)
        for i in range(3)
    ]
    message = templates.grouped_message(
        three, dashboard_url="http://g", tz=UTC_ZONE, threshold=3, window_seconds=30
    )
    matches_snapshot("grouped.json", message.blocks)
    many = [incident(f"dev{i}@x.com", message="x" * 900) for i in range(60)]
    big = templates.grouped_message(
        many, dashboard_url="http://g", tz=UTC_ZONE, threshold=3, window_seconds=30
    )
    assert len(big.blocks) <= 50
    ids = [b["block_id"] for b in big.blocks if b["type"] == "actions"]
    assert len(ids) == len(set(ids)) > 20
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in big.blocks)
    assert "more" in big.blocks[-3]["text"]["text"]  # the rest are counted, not dropped
    assert big.text == "60 more incidents opened together (0 critical)"


def test_thread_replies_say_who_did_what() -> None:
    base = alice()
    ack = event("acknowledged", base, actor="slack:U024BE7LH", note="on it <!here>")
    assert templates.thread_reply(ack, UTC_ZONE) == (
        ":eyes: <@U024BE7LH> acknowledged *Spend spike* · alice@example.com.\n>on it &lt;!here&gt;"
    )
    auto = event("resolved", base, resolution="auto", resolved_by="system")
    assert templates.thread_reply(auto, UTC_ZONE) == (
        ":white_check_mark: *Spend spike* · alice@example.com resolved automatically: "
        "the condition cleared."
    )
    manual = event("resolved", base, actor="api:ops", resolved_by="api:ops", resolution="manual")
    assert templates.thread_reply(manual, UTC_ZONE) == (
        ":white_check_mark: ops (API) resolved *Spend spike* · alice@example.com."
    )
    snoozed = event("snoozed", base, actor="slack:U1ABC", snoozed_until=DETECTED)
    reply = templates.thread_reply(snoozed, UTC_ZONE)
    assert reply is not None
    assert reply.startswith(
        ":zzz: <@U1ABC> snoozed *Spend spike* · alice@example.com until <!date^"
    )
    reopened = event("reopened", base)
    assert templates.thread_reply(reopened, UTC_ZONE) == (
        ":repeat: *Spend spike* · alice@example.com fired again and was reopened: "
        "Alice: daily spend spiked to $214 (4.2x her 7-day avg of $51)"
    )
    for quiet in ("opened", "updated", "alerted"):
        assert templates.thread_reply(event(quiet, base), UTC_ZONE) is None


# --- digests -----------------------------------------------------------------------------------

CYCLE = Cycle(date(2026, 11, 5), date(2026, 12, 5))
USAGE = [
    UserUsage("alice@x.com", Decimal("120"), 300, Decimal("80"), 30, "Alice"),
    UserUsage("bob@x.com", Decimal("40"), 100, Decimal("10"), 5, "Bob <b>"),
    UserUsage("carol@x.com", Decimal("15"), 50, Decimal("0"), 0, None),
]


def test_the_plan_digest_message() -> None:
    digest = plan_digest(date(2026, 11, 20), CYCLE, USAGE)
    assert digest is not None
    message = templates.plan_digest_message(digest, dashboard_url="http://g")
    assert message.text == "2/3 active users have exceeded their included plan this cycle"
    matches_snapshot("plan_digest.json", message.blocks)
    assert "Bob &lt;b&gt;" in json.dumps(message.blocks)


def test_the_cycle_summary_message() -> None:
    members = [Member("alice@x.com", "Alice"), Member("bob@x.com"), Member("dan@x.com", "Dan")]
    digest = cycle_digest(date(2026, 12, 2), CYCLE, USAGE, members, Decimal("150"))
    assert digest is not None
    message = templates.cycle_digest_message(digest, dashboard_url=None)
    assert message.text == "Cycle summary: $175.00 spent, 1 unused seats"
    matches_snapshot("cycle_digest.json", message.blocks)


# --- email -------------------------------------------------------------------------------------

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'


def test_every_value_in_the_alert_email_is_escaped() -> None:
    evil = alice(
        subject=f"{IMG}@x.com",
        message=f"{SCRIPT} spent\r\nBcc: victim@x.com",
        model=IMG,
    )
    rendered = templates.incident_email(
        evil, transition="escalated", dashboard_url=f"http://g/{IMG}", tz=UTC_ZONE
    )
    assert "<script" not in rendered.html
    assert "<img" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in rendered.html
    assert "\n" not in rendered.subject
    assert "\r" not in rendered.subject
    assert rendered.subject.startswith("[CRITICAL] Escalated: <script>alert(1)</script> spent Bcc:")
    assert SCRIPT in rendered.text
    assert "This incident escalated to critical." in rendered.text


def test_the_alert_email() -> None:
    rendered = templates.incident_email(
        alice(), transition="opened", dashboard_url="http://grafana:3000", tz=BERLIN
    )
    assert rendered.subject == (
        "[CRITICAL] Alice: daily spend spiked to $214 (4.2x her 7-day avg of $51)"
    )
    matches_snapshot("alert_email.html", rendered.html)
    matches_snapshot("alert_email.txt", rendered.text)


def test_digest_emails_have_both_parts() -> None:
    plan = plan_digest(date(2026, 11, 20), CYCLE, USAGE)
    assert plan is not None
    mail = templates.plan_digest_email(plan, dashboard_url="http://g")
    assert "Bob &lt;b&gt; (bob@x.com): $10.00 on demand" in mail.html
    assert "2. Bob <b> (bob@x.com): $10.00 on demand (5 requests)" in mail.text
    summary = cycle_digest(date(2026, 12, 4), CYCLE, USAGE, [], None)
    assert summary is not None
    mail = templates.cycle_digest_email(summary, dashboard_url=None)
    assert "1 day left" in mail.text
    assert "Previous cycle at the same point: no data for the previous cycle" in mail.text
    assert "Active users: 3 (no roster to compare with)" in mail.text
