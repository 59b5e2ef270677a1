"""Pydantic models of the raw Cursor Admin API answers, tolerant of documented version drift.

Field names are Cursor's (camelCase on the wire, snake_case here). What they tolerate, all of it
seen across versions of Cursor's own docs (reference/provider-apis.md §1):

- members as a bare array or wrapped in `{teamMembers: [...]}`, with or without `id`/`isRemoved`;
- spend rows without `userId`, `overallSpendCents` or `monthlyLimitDollars`;
- usage events without `chargedCents`, `cursorTokenFee`, `isChargeable`, `isHeadless` or
  `tokenUsage`, and `timestamp` as an epoch-ms string (documented) or number;
- daily rows without `userId`, `day` or `isActive`; absent `pagination` blocks;
- `null` where a list, a flag or a counter is expected (read as empty, false, zero);
- unknown fields (ignored, so Cursor can add fields without breaking us).

What they reject as malformed: a missing or unusable e-mail, timestamp, model or kind; a
number that is not a finite number (booleans included); negative counters; money beyond
$10 billion; timestamps outside 2000..9999 (seconds sent as milliseconds land in 1970).

Every validator raises only `ValueError`, which pydantic turns into a `ValidationError`; the
normalisers turn that into `InvalidPayloadError`.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_MS = Decimal(946_684_800_000)  # 2000-01-01T00:00:00Z
_MAX_MS = Decimal(253_402_300_799_999)  # 9999-12-31T23:59:59.999Z
_MAX_CENTS = Decimal(10) ** 12  # $10 billion in cents: far above any real event or bill
_MAX_DOLLARS = Decimal(10) ** 10
_MAX_UNITS = Decimal(10) ** 9
_MAX_COUNT = 2**62
# A decimal number as text: bounded digits and exponent so Decimal() stays cheap and exact.
_NUMBER_TEXT = re.compile(r"[+-]?(?:\d{1,30}(?:\.\d{0,30})?|\.\d{1,30})(?:[eE][+-]?\d{1,3})?")


def exact_decimal(value: object) -> Decimal:
    """A JSON number as the Decimal of its shortest decimal text (21.36232 -> '21.36232').

    Floats go through `repr`, the shortest text that round-trips, so no binary noise enters.
    Numeric strings are accepted too (a plausible drift); booleans, NaN and infinities are not.
    """
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("expected a finite number")
        return Decimal(repr(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("expected a finite number")
        return value
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value.strip()):
        return Decimal(value.strip())
    raise ValueError(f"expected a number, got {type(value).__name__}")


def _bounded(limit: Decimal, *, signed: bool) -> Any:
    def check(value: object) -> Decimal:
        number = exact_decimal(value)
        if not signed and number < 0:
            raise ValueError("must not be negative")
        if abs(number) > limit:
            raise ValueError(f"out of range (|value| > {limit:E})")
        return number

    return BeforeValidator(check)


def _count(value: object) -> int:
    if value is None:
        return 0
    number = exact_decimal(value)
    if number != number.to_integral_value():
        raise ValueError("expected a whole number")
    if number < 0:
        raise ValueError("must not be negative")
    if number > _MAX_COUNT:
        raise ValueError("too large")
    return int(number)


def _epoch_ms(value: object) -> Decimal:
    number = exact_decimal(value)
    if not _MIN_MS <= number <= _MAX_MS:
        raise ValueError("not epoch milliseconds between the years 2000 and 9999")
    return number


def _flag(default: bool) -> Any:
    def check(value: object) -> object:
        return default if value is None else value

    return BeforeValidator(check)


def _list(value: object) -> object:
    return [] if value is None else value


def _iso_datetime(value: object) -> datetime:
    """ISO-8601 text (naive means UTC) or epoch milliseconds, as an aware UTC datetime."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError("not an ISO-8601 date-time") from None
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise ValueError("date-time out of range") from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return ms_to_datetime(_epoch_ms(value))
    raise ValueError(f"expected an ISO-8601 string, got {type(value).__name__}")


def _iso_date(value: object) -> date:
    if not isinstance(value, str):
        raise ValueError(f"expected a 'YYYY-MM-DD' string, got {type(value).__name__}")
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError("not a 'YYYY-MM-DD' date") from None


def _user_id(value: object) -> str | None:
    """Cursor ids are numbers on some endpoints and `user_…` strings on others; keep text."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and 0 < len(value.strip()) <= 200:
        return value.strip()
    raise ValueError("expected a numeric or text id")


def ms_to_datetime(ms: Decimal) -> datetime:
    """Epoch milliseconds (already range-checked) as an aware UTC datetime, to the microsecond."""
    micros = int((ms * 1000).to_integral_value(rounding=ROUND_HALF_EVEN))
    return _EPOCH + timedelta(microseconds=micros)


Cents = Annotated[Decimal, _bounded(_MAX_CENTS, signed=True)]
"""Money in (fractional) cents, exactly as sent."""
Dollars = Annotated[Decimal, _bounded(_MAX_DOLLARS, signed=True)]
"""Money in dollars, exactly as sent."""
Percent = Annotated[Decimal, _bounded(Decimal(100), signed=False)]
RequestUnits = Annotated[Decimal, _bounded(_MAX_UNITS, signed=False)]
Count = Annotated[int, BeforeValidator(_count)]
"""A non-negative whole number; `null` reads as 0."""
EpochMs = Annotated[Decimal, BeforeValidator(_epoch_ms)]
IsoDatetime = Annotated[datetime, BeforeValidator(_iso_datetime)]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]
UserId = Annotated[str | None, BeforeValidator(_user_id)]
EmailText = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$"
    ),
]
"""An e-mail address, trimmed and lower-cased: exactly one `@`, no spaces."""
Label = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Name = Annotated[str, StringConstraints(max_length=1000)]
FlagFalse = Annotated[bool, _flag(default=False)]
FlagTrue = Annotated[bool, _flag(default=True)]
Items = Annotated[list[Any], BeforeValidator(_list)]
"""A list whose items are validated one by one later, so one bad item spoils only itself."""


class CursorModel(BaseModel):
    """Base of the raw models: camelCase aliases, unknown fields ignored, immutable."""

    model_config = ConfigDict(
        frozen=True, extra="ignore", alias_generator=to_camel, populate_by_name=False
    )


class CursorPagination(CursorModel):
    """Either pagination block: `{numPages, currentPage}` (events) or `{page, totalPages}`."""

    num_pages: Count | None = None
    current_page: Count | None = None
    page: Count | None = None
    page_size: Count | None = None
    total_pages: Count | None = None
    total_users: Count | None = None
    has_next_page: bool | None = None

    @property
    def pages(self) -> int | None:
        """How many pages there are, by whichever name this version uses."""
        return self.total_pages if self.total_pages is not None else self.num_pages


# --- GET /teams/members ---------------------------------------------------------------------


class CursorMember(CursorModel):
    """One row of `/teams/members` (any documented version)."""

    email: EmailText
    name: Name | None = None
    role: Label | None = None
    id: UserId = None
    is_removed: FlagFalse = False


# --- POST /teams/spend ------------------------------------------------------------------------


class CursorMemberSpend(CursorModel):
    """One row of `/teams/spend` `teamMemberSpend[]`."""

    email: EmailText
    user_id: UserId = None
    name: Name | None = None
    role: Label | None = None
    spend_cents: Cents
    overall_spend_cents: Cents | None = None
    included_spend_cents: Cents | None = None  # seen in one client's types, not in the docs
    fast_premium_requests: Count = 0
    hard_limit_override_dollars: Dollars | None = None
    monthly_limit_dollars: Dollars | None = None


class CursorSpendEnvelope(CursorModel):
    """The `/teams/spend` answer, items left raw."""

    team_member_spend: Items
    subscription_cycle_start: EpochMs | None = None
    total_members: Count | None = None
    total_pages: Count | None = None


# --- POST /teams/daily-usage-data ---------------------------------------------------------------


class CursorDailyUsage(CursorModel):
    """One row of `/teams/daily-usage-data` `data[]`."""

    email: EmailText
    user_id: UserId = None
    day: IsoDate | None = None
    date_ms: EpochMs | None = Field(default=None, alias="date")
    is_active: FlagTrue = True
    total_lines_added: Count = 0
    total_lines_deleted: Count = 0
    accepted_lines_added: Count = 0
    accepted_lines_deleted: Count = 0
    total_applies: Count = 0
    total_accepts: Count = 0
    total_rejects: Count = 0
    total_tabs_shown: Count = 0
    total_tabs_accepted: Count = 0
    composer_requests: Count = 0
    chat_requests: Count = 0
    agent_requests: Count = 0
    cmdk_usages: Count = 0
    subscription_included_reqs: Count = 0
    usage_based_reqs: Count = 0
    api_key_reqs: Count = 0
    bugbot_usages: Count = 0
    most_used_model: Label | None = None
    client_version: Label | None = None


class CursorDailyUsageEnvelope(CursorModel):
    """The `/teams/daily-usage-data` answer, items left raw."""

    data: Items
    pagination: CursorPagination | None = None


# --- POST /teams/filtered-usage-events ----------------------------------------------------------


class CursorTokenUsage(CursorModel):
    """`tokenUsage` of a usage event: present on token-based calls."""

    input_tokens: Count = 0
    output_tokens: Count = 0
    cache_write_tokens: Count = 0
    cache_read_tokens: Count = 0
    total_cents: Cents | None = None
    discount_percent_off: Percent | None = None


class CursorUsageEvent(CursorModel):
    """One row of `/teams/filtered-usage-events` `usageEvents[]`."""

    timestamp: EpochMs
    user_email: EmailText
    model: Label
    kind: Label
    user_id: UserId = None
    max_mode: FlagFalse = False
    requests_costs: RequestUnits | None = None
    is_token_based_call: bool | None = None
    is_chargeable: bool | None = None
    is_headless: FlagFalse = False
    is_free_bugbot: bool | None = None
    token_usage: CursorTokenUsage | None = None
    charged_cents: Cents | None = None
    cursor_token_fee: Cents | None = None

    @property
    def occurred_at(self) -> datetime:
        """`timestamp` as an aware UTC datetime."""
        return ms_to_datetime(self.timestamp)


class CursorUsageEventsEnvelope(CursorModel):
    """The `/teams/filtered-usage-events` answer, items left raw."""

    usage_events: Items
    total_usage_events_count: Count | None = None
    pagination: CursorPagination | None = None


# --- GET /teams/groups --------------------------------------------------------------------------


class CursorGroupMember(CursorModel):
    """A current member of a billing group."""

    email: EmailText
    user_id: UserId = None


class CursorGroup(CursorModel):
    """One billing group (or the reserved `group_unassigned`)."""

    id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    name: Name
    current_members: Annotated[list[CursorGroupMember], BeforeValidator(_list)] = Field(
        default_factory=list
    )


class CursorBillingCycle(CursorModel):
    """`billingCycle` of `/teams/groups`: ISO-8601 bounds of the cycle."""

    cycle_start: IsoDatetime | None = None
    cycle_end: IsoDatetime | None = None


class CursorGroupsEnvelope(CursorModel):
    """The `/teams/groups` answer, groups left raw."""

    groups: Items
    unassigned_group: Any = None
    billing_cycle: CursorBillingCycle | None = None
