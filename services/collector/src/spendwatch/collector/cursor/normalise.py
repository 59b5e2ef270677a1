"""Pure functions from raw Cursor Admin API answers to our v1 models.

Item normalisers (`usage_event`, `member`, `member_spend`, `daily_usage_row`, `group`) and the
listing normalisers (`members`, `groups`) raise only `InvalidPayloadError`, whose message names
the offending field in Cursor's spelling. Page normalisers (`usage_events_page`, `spend_page`,
`daily_usage_page`) never raise: a bad item, or a whole bad body, becomes an `invalid` entry
(the raw JSON bytes and the reason) so it can be dead-lettered, and the good items still pass.

Money is exact: Cursor's fractional cents become integer micro-dollars through `Decimal`, from
the number's shortest decimal text, rounded half-even once, at the end.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from types import TracebackType
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from spendwatch.collector.cursor.models import (
    CursorDailyUsage,
    CursorDailyUsageEnvelope,
    CursorGroup,
    CursorGroupsEnvelope,
    CursorMember,
    CursorMemberSpend,
    CursorPagination,
    CursorSpendEnvelope,
    CursorTokenUsage,
    CursorUsageEvent,
    CursorUsageEventsEnvelope,
    ms_to_datetime,
)
from spendwatch.common.errors import InvalidPayloadError
from spendwatch.common.events import DailyUsageRow, Group, Member, MemberSpend, UsageRecordedV1

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

PROVIDER = "cursor"
MICROS_PER_CENT = Decimal(10_000)
MICROS_PER_DOLLAR = Decimal(1_000_000)
_MAX_REASON = 500
_UNITS_QUANTUM = Decimal("0.000001")  # UsageRecordedV1.request_units keeps 6 decimal places

Invalid = tuple[bytes, str]
"""An item (or body) that could not be used: its JSON bytes, and why."""


# --- helpers ------------------------------------------------------------------------------------


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def _reason(text: str) -> str:
    return " ".join(text.split())[:_MAX_REASON]


class _Guard:
    """Turn any failure to read `what` into InvalidPayloadError, naming the field."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None or isinstance(exc, InvalidPayloadError):
            return
        if isinstance(exc, ValidationError):
            raise InvalidPayloadError(_reason(f"{self.what}: {_describe(exc)}")) from exc
        if isinstance(exc, ValueError | TypeError | ArithmeticError | LookupError | RecursionError):
            # A safety net: the models validate first, so reaching here is a bug worth naming.
            raise InvalidPayloadError(
                _reason(f"{self.what}: unhandled {type(exc).__name__}: {exc}")
            ) from exc


def _validate(model: type[M], raw: object, what: str) -> M:
    if not isinstance(raw, Mapping):
        raise InvalidPayloadError(f"{what}: expected a JSON object, got {_json_type(raw)}")
    with _Guard(what):
        return model.model_validate(raw)


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    return "number" if isinstance(value, int | float) else type(value).__name__


def _to_micros(amount: Decimal, per_unit: Decimal) -> int:
    """`amount` (cents or dollars) in integer micro-dollars, rounded half-even, exactly."""
    with localcontext() as ctx:
        ctx.prec = 60  # ample for 30-digit inputs: no rounding before the final one
        return int((amount * per_unit).to_integral_value(rounding=ROUND_HALF_EVEN))


def _plain(value: Decimal) -> str:
    """A Decimal as canonical plain text: 5, 5.0 and 5E0 all give '5'; 1.40 gives '1.4'."""
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _units(value: Decimal) -> Decimal:
    """Request units to 6 decimal places without trailing zeros ('1.4', not '1.400000')."""
    with localcontext() as ctx:
        ctx.prec = 60
        return Decimal(_plain(value.quantize(_UNITS_QUANTUM, rounding=ROUND_HALF_EVEN)))


def dump_item(item: object) -> bytes:
    """An item of a parsed body as compact JSON bytes, for a dead letter."""
    try:
        return json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode()
    except (TypeError, ValueError, RecursionError):  # not from json.loads; keep something
        return repr(item).encode(errors="replace")


def parse_json(body: bytes) -> Any:
    """A response body as JSON, or InvalidPayloadError saying why not."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError too
        raise InvalidPayloadError(_reason(f"body is not JSON: {exc}")) from exc


# --- usage events ---------------------------------------------------------------------------------

# Cursor's billing categories (not an official enum) mapped to our vocabulary; anything else
# keeps the provider's own text in lower snake case, so no distinct category is merged away.
_KINDS = {
    "usage_based": "usage_based",
    "included": "included",
    "errored_not_charged": "errored",
    "errored": "errored",
    "free": "free",
}
_NOT_SNAKE = re.compile(r"[^a-z0-9]+")


def normalise_kind(text: str) -> str:
    """Cursor's `kind` in our vocabulary: `usage_based`, `included`, `errored`, `free`, or its own.

    `Usage-based` -> `usage_based`; `Included in Business`/`Included in Pro` -> `included`;
    `Errored, Not Charged` -> `errored`; `Free` -> `free`; the dashboard's enum spelling
    (`USAGE_EVENT_KIND_USAGE_BASED`) too. Others become lower snake case: `Aborted, Not Charged`
    -> `aborted_not_charged`. Blank text becomes `unknown`.
    """
    snake = _NOT_SNAKE.sub("_", text.strip().lower()).strip("_")
    snake = snake.removeprefix("usage_event_kind_")
    if snake.startswith("included_in_"):
        return "included"
    return _KINDS.get(snake, snake or "unknown")


def charged_micros(event: CursorUsageEvent) -> int:
    """What the event cost, in micro-dollars: Cursor's `chargedCents`, else a reconstruction.

    `chargedCents` is the charged amount (model cost after discount plus the Cursor Token Fee)
    and reconciles with `/teams/spend`. Older answers lack it; then the model cost
    `tokenUsage.totalCents`, less `discountPercentOff`, plus `cursorTokenFee` (the order the
    official example implies: 40.167 x 0.9 + 1.18 = 37.33). Events with neither cost 0.
    """
    if event.charged_cents is not None:
        return _to_micros(event.charged_cents, MICROS_PER_CENT)
    usage = event.token_usage
    cents = Decimal(0)
    if usage is not None and usage.total_cents is not None:
        cents = usage.total_cents
        if usage.discount_percent_off:
            with localcontext() as ctx:
                ctx.prec = 60
                cents = cents * (100 - usage.discount_percent_off) / 100
    if event.cursor_token_fee is not None:
        cents += event.cursor_token_fee
    return _to_micros(cents, MICROS_PER_CENT)


def usage_event_id(event: CursorUsageEvent, *, account: str) -> str:
    """A stable id for an event that has none: `cursor:` + a hash of what identifies it.

    The hash covers the account, the timestamp (canonical epoch ms), the lower-cased e-mail, the
    model, the four token counts, the request units and max mode: the same request read again,
    on any page, in any run, gets the same id, so the bus and the database drop the repeat.
    It deliberately leaves out the cost and the kind: if Cursor later corrects what it charged
    (or re-labels the category), the corrected event keeps its id instead of being counted twice.
    Two requests alike in every one of these fields in the same millisecond would share an id;
    that is accepted. Changing the `account` name changes every id.
    """
    tokens = event.token_usage or CursorTokenUsage()
    units = _units(event.requests_costs) if event.requests_costs is not None else Decimal(0)
    fields = [
        account,
        _plain(event.timestamp),
        event.user_email,
        event.model,
        tokens.input_tokens,
        tokens.output_tokens,
        tokens.cache_write_tokens,
        tokens.cache_read_tokens,
        _plain(units),
        event.max_mode,
    ]
    digest = hashlib.sha256(json.dumps(fields, separators=(",", ":")).encode()).hexdigest()
    return f"{PROVIDER}:{digest[:32]}"


def usage_event(raw: Mapping[str, Any], *, account: str, ingested_at: datetime) -> UsageRecordedV1:
    """One `usageEvents[]` item as a `UsageRecordedV1`; InvalidPayloadError if it is unusable."""
    event = _validate(CursorUsageEvent, raw, "usage event")
    tokens = event.token_usage or CursorTokenUsage()
    with _Guard("usage event"):
        return UsageRecordedV1(
            event_id=usage_event_id(event, account=account),
            provider=PROVIDER,
            account=account,
            occurred_at=event.occurred_at,
            user_email=event.user_email,
            user_id=event.user_id,
            model=event.model or "unknown",
            kind=normalise_kind(event.kind),
            max_mode=event.max_mode,
            input_tokens=tokens.input_tokens,
            output_tokens=tokens.output_tokens,
            cache_read_tokens=tokens.cache_read_tokens,
            cache_write_tokens=tokens.cache_write_tokens,
            cost_micros=charged_micros(event),
            request_units=(
                _units(event.requests_costs) if event.requests_costs is not None else Decimal(0)
            ),
            is_headless=event.is_headless,
            ingested_at=ingested_at,
        )


# --- members, spend, daily usage, groups ------------------------------------------------------


def member(raw: Mapping[str, Any]) -> Member:
    """One `/teams/members` row as a `Member`."""
    row = _validate(CursorMember, raw, "member")
    with _Guard("member"):
        return Member(
            user_email=row.email,
            user_id=row.id,
            name=row.name,
            role=row.role,
            is_removed=row.is_removed,
        )


def member_spend(raw: Mapping[str, Any]) -> MemberSpend:
    """One `teamMemberSpend[]` row as a `MemberSpend`, cents and dollars in micro-dollars.

    `overallSpendCents` (on-demand + included) is missing from older answers: then
    `spendCents + includedSpendCents` if the latter is there, else `spendCents`, a lower bound.
    `hardLimitOverrideDollars: 0` means no override (None); `monthlyLimitDollars: 0` is a real
    $0 limit; `null` stays None.
    """
    row = _validate(CursorMemberSpend, raw, "spend row")
    overall = row.overall_spend_cents
    if overall is None:
        overall = row.spend_cents + (row.included_spend_cents or 0)
    override = row.hard_limit_override_dollars
    monthly = row.monthly_limit_dollars
    with _Guard("spend row"):
        return MemberSpend(
            user_email=row.email,
            user_id=row.user_id,
            name=row.name,
            role=row.role,
            spend_micros=_to_micros(row.spend_cents, MICROS_PER_CENT),
            overall_spend_micros=_to_micros(overall, MICROS_PER_CENT),
            fast_premium_requests=row.fast_premium_requests,
            hard_limit_override_micros=(
                _to_micros(override, MICROS_PER_DOLLAR) if override else None
            ),
            monthly_limit_micros=(
                _to_micros(monthly, MICROS_PER_DOLLAR) if monthly is not None else None
            ),
        )


def daily_usage_row(raw: Mapping[str, Any]) -> DailyUsageRow:
    """One `/teams/daily-usage-data` row as a `DailyUsageRow`.

    The day is `day` ("YYYY-MM-DD") when present, else the UTC date of `date` (epoch ms).
    """
    row = _validate(CursorDailyUsage, raw, "daily usage row")
    day: date
    if row.day is not None:
        day = row.day
    elif row.date_ms is not None:
        day = ms_to_datetime(row.date_ms).date()
    else:
        raise InvalidPayloadError("daily usage row: day: neither `day` nor `date` is present")
    with _Guard("daily usage row"):
        return DailyUsageRow(
            user_email=row.email,
            user_id=row.user_id,
            day=day,
            is_active=row.is_active,
            lines_added=row.total_lines_added,
            lines_deleted=row.total_lines_deleted,
            accepted_lines_added=row.accepted_lines_added,
            accepted_lines_deleted=row.accepted_lines_deleted,
            applies=row.total_applies,
            accepts=row.total_accepts,
            rejects=row.total_rejects,
            tabs_shown=row.total_tabs_shown,
            tabs_accepted=row.total_tabs_accepted,
            composer_requests=row.composer_requests,
            chat_requests=row.chat_requests,
            agent_requests=row.agent_requests,
            cmdk_usages=row.cmdk_usages,
            subscription_included_reqs=row.subscription_included_reqs,
            usage_based_reqs=row.usage_based_reqs,
            api_key_reqs=row.api_key_reqs,
            bugbot_usages=row.bugbot_usages,
            most_used_model=row.most_used_model or None,
            client_version=row.client_version or None,
        )


def group(
    raw: Mapping[str, Any],
    *,
    cycle_start: datetime | None = None,
    cycle_end: datetime | None = None,
) -> Group:
    """One billing group as a `Group` with its current members' e-mails."""
    row = _validate(CursorGroup, raw, "group")
    with _Guard("group"):
        return Group(
            group_id=row.id,
            name=row.name,
            member_emails=sorted({m.email for m in row.current_members}),
            cycle_start=cycle_start,
            cycle_end=cycle_end,
        )


@dataclass(frozen=True, slots=True)
class Listing(Generic[T]):
    """An unpaged list answer: the items that normalised, and the ones that did not."""

    items: list[T]
    invalid: list[Invalid] = field(default_factory=list)


def members(body: Any) -> Listing[Member]:
    """A parsed `/teams/members` answer: a bare array (oldest docs) or `{teamMembers: [...]}`.

    InvalidPayloadError if it is neither; bad rows go to `invalid`.
    """
    if isinstance(body, list):
        items: list[Any] = body
    elif isinstance(body, Mapping) and isinstance(body.get("teamMembers"), list):
        items = body["teamMembers"]
    else:
        raise InvalidPayloadError(
            f"members: expected an array or {{teamMembers: [...]}}, got {_json_type(body)}"
        )
    good, bad = _split(items, member)
    return Listing(items=good, invalid=bad)


@dataclass(frozen=True, slots=True)
class GroupsListing:
    """A `/teams/groups` answer: the groups that normalised, the cycle, and the bad ones."""

    groups: list[Group]
    cycle_start: datetime | None = None
    cycle_end: datetime | None = None
    invalid: list[Invalid] = field(default_factory=list)


def groups(body: Any) -> GroupsListing:
    """A parsed `/teams/groups` answer: its groups plus the reserved `Unassigned` one.

    Cycle bounds (`billingCycle`, ISO-8601) are copied onto every group. InvalidPayloadError if
    the envelope is wrong; bad groups go to `invalid`.
    """
    envelope = _validate(CursorGroupsEnvelope, body, "groups")
    cycle = envelope.billing_cycle
    start = cycle.cycle_start if cycle else None
    end = cycle.cycle_end if cycle else None
    items = list(envelope.groups)
    if envelope.unassigned_group is not None:
        items.append(envelope.unassigned_group)
    good, bad = _split(items, lambda item: group(item, cycle_start=start, cycle_end=end))
    return GroupsListing(groups=good, cycle_start=start, cycle_end=end, invalid=bad)


# --- pages ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    """One API page: where it sits, whether more follow, and what could not be used.

    `envelope_ok` is False when the body itself was unusable (not JSON, not the documented
    envelope); then `invalid` holds the whole body. `final` says no page follows in its window.
    """

    number: int
    window_start: datetime | None = None
    window_end: datetime | None = None
    total_pages: int | None = None
    has_next: bool | None = None
    received: int = 0
    envelope_ok: bool = True
    final: bool = False
    invalid: list[Invalid] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageEventsPage(Page):
    """A page of `/teams/filtered-usage-events`, normalised."""

    events: list[UsageRecordedV1] = field(default_factory=list)
    total_events: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SpendPage(Page):
    """A page of `/teams/spend`, normalised; `cycle_start` is None if Cursor left it out."""

    rows: list[MemberSpend] = field(default_factory=list)
    cycle_start: datetime | None = None
    total_members: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DailyUsagePage(Page):
    """A page of `/teams/daily-usage-data`, normalised."""

    rows: list[DailyUsageRow] = field(default_factory=list)


def _envelope(model: type[M], body: bytes, what: str) -> M | Invalid:
    """The validated envelope, or the whole body as one invalid entry with the reason."""
    try:
        return _validate(model, parse_json(body), what)
    except InvalidPayloadError as exc:
        return (body, str(exc))


def _split(items: list[Any], convert: Callable[[Any], T]) -> tuple[list[T], list[Invalid]]:
    good: list[T] = []
    bad: list[Invalid] = []
    for item in items:
        try:
            good.append(convert(item))
        except InvalidPayloadError as exc:
            bad.append((dump_item(item), str(exc)))
    return good, bad


def usage_events_page(
    body: bytes,
    *,
    number: int,
    account: str,
    ingested_at: datetime,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
) -> UsageEventsPage:
    """A `/teams/filtered-usage-events` body as a page; never raises."""
    parsed = _envelope(CursorUsageEventsEnvelope, body, "usage events page")
    if isinstance(parsed, tuple):
        return UsageEventsPage(
            number=number,
            window_start=window_start,
            window_end=window_end,
            envelope_ok=False,
            invalid=[parsed],
        )
    events, invalid = _split(
        parsed.usage_events,
        lambda item: usage_event(item, account=account, ingested_at=ingested_at),
    )
    paging = parsed.pagination or CursorPagination()
    return UsageEventsPage(
        number=number,
        window_start=window_start,
        window_end=window_end,
        total_pages=paging.pages,
        has_next=paging.has_next_page,
        received=len(parsed.usage_events),
        events=events,
        invalid=invalid,
        total_events=parsed.total_usage_events_count,
    )


def spend_page(body: bytes, *, number: int) -> SpendPage:
    """A `/teams/spend` body as a page; never raises."""
    parsed = _envelope(CursorSpendEnvelope, body, "spend page")
    if isinstance(parsed, tuple):
        return SpendPage(number=number, envelope_ok=False, invalid=[parsed])
    rows, invalid = _split(parsed.team_member_spend, member_spend)
    cycle = parsed.subscription_cycle_start
    return SpendPage(
        number=number,
        total_pages=parsed.total_pages,
        received=len(parsed.team_member_spend),
        rows=rows,
        invalid=invalid,
        cycle_start=ms_to_datetime(cycle) if cycle is not None else None,
        total_members=parsed.total_members,
    )


def daily_usage_page(
    body: bytes,
    *,
    number: int,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
) -> DailyUsagePage:
    """A `/teams/daily-usage-data` body as a page; never raises."""
    parsed = _envelope(CursorDailyUsageEnvelope, body, "daily usage page")
    if isinstance(parsed, tuple):
        return DailyUsagePage(
            number=number,
            window_start=window_start,
            window_end=window_end,
            envelope_ok=False,
            invalid=[parsed],
        )
    rows, invalid = _split(parsed.data, daily_usage_row)
    paging = parsed.pagination or CursorPagination()
    return DailyUsagePage(
        number=number,
        window_start=window_start,
        window_end=window_end,
        total_pages=paging.pages,
        has_next=paging.has_next_page,
        received=len(parsed.data),
        rows=rows,
        invalid=invalid,
    )


__all__ = [
    "DailyUsagePage",
    "GroupsListing",
    "Invalid",
    "Listing",
    "Page",
    "SpendPage",
    "UsageEventsPage",
    "charged_micros",
    "daily_usage_page",
    "daily_usage_row",
    "dump_item",
    "group",
    "groups",
    "member",
    "member_spend",
    "members",
    "normalise_kind",
    "parse_json",
    "spend_page",
    "usage_event",
    "usage_event_id",
    "usage_events_page",
]
