"""Usage events: one billable request, provider snapshots, and the sink's commit notice."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field

from spendwatch.common.events.base import Count, Email, Event, Micros, UtcDatetime

Provider = Literal["cursor", "anthropic", "openai", "proxy", "csv"]
Token = Annotated[str, Field(min_length=1, max_length=200)]


class UsageRecordedV1(Event):
    """One billable request, normalised (on `usage.events.v1.<provider>`)."""

    type: Literal["usage.recorded.v1"] = "usage.recorded.v1"
    event_id: Token
    provider: Provider
    account: str = ""
    occurred_at: UtcDatetime
    user_email: Email
    user_id: str | None = None
    model: Token
    kind: Token
    max_mode: bool = False
    input_tokens: Count = 0
    output_tokens: Count = 0
    cache_read_tokens: Count = 0
    cache_write_tokens: Count = 0
    cost_micros: Micros
    request_units: Decimal = Field(default=Decimal(0), ge=0, max_digits=20, decimal_places=6)
    is_headless: bool = False
    ingested_at: UtcDatetime


class DailyUsageRow(Event):
    """One member's activity on one day (Cursor `/teams/daily-usage-data`)."""

    user_email: Email
    user_id: str | None = None
    day: date
    is_active: bool = True
    lines_added: Count = 0
    lines_deleted: Count = 0
    accepted_lines_added: Count = 0
    accepted_lines_deleted: Count = 0
    applies: Count = 0
    accepts: Count = 0
    rejects: Count = 0
    tabs_shown: Count = 0
    tabs_accepted: Count = 0
    composer_requests: Count = 0
    chat_requests: Count = 0
    agent_requests: Count = 0
    cmdk_usages: Count = 0
    subscription_included_reqs: Count = 0
    usage_based_reqs: Count = 0
    api_key_reqs: Count = 0
    bugbot_usages: Count = 0
    most_used_model: str | None = None
    client_version: str | None = None


class SnapshotEvent(Event):
    """What every snapshot carries: which capture of which provider account it is."""

    snapshot_id: Token
    provider: Provider
    account: str = ""
    captured_at: UtcDatetime


class DailyUsageSnapshotV1(SnapshotEvent):
    """A page of per-member daily activity (on `usage.snapshots.v1.daily.<provider>`)."""

    type: Literal["usage.daily_snapshot.v1"] = "usage.daily_snapshot.v1"
    rows: list[DailyUsageRow]


class Person(Event):
    """A team member as the provider names them."""

    user_email: Email
    user_id: str | None = None
    name: str | None = None
    role: str | None = None


class MemberSpend(Person):
    """One member's spend in the current billing cycle."""

    spend_micros: Micros
    overall_spend_micros: Micros
    fast_premium_requests: Count = 0
    hard_limit_override_micros: Micros | None = None
    monthly_limit_micros: Micros | None = None


class SpendSnapshotV1(SnapshotEvent):
    """A page of billing-cycle spend per member (on `usage.snapshots.v1.spend.<provider>`)."""

    type: Literal["usage.spend_snapshot.v1"] = "usage.spend_snapshot.v1"
    cycle_start: UtcDatetime
    rows: list[MemberSpend]


class Member(Person):
    """A team member as the provider lists them."""

    is_removed: bool = False


class Group(Event):
    """A billing group and the e-mails of its current members."""

    group_id: Token
    name: str
    member_emails: list[Email] = Field(default_factory=list)
    cycle_start: UtcDatetime | None = None
    cycle_end: UtcDatetime | None = None


class RosterSnapshotV1(SnapshotEvent):
    """Members and billing groups (on `usage.snapshots.v1.roster.<provider>`).

    `complete_groups` says the list of groups is whole, so groups not in it are gone.
    """

    type: Literal["usage.roster_snapshot.v1"] = "usage.roster_snapshot.v1"
    members: list[Member] = Field(default_factory=list)
    groups: list[Group] = Field(default_factory=list)
    complete_groups: bool = False


class UserDay(Event):
    """A (user, day) key whose usage changed."""

    user_email: Email
    day: date


class UsageCommittedV1(Event):
    """Rows are durable; the (user, day) keys a batch changed (`usage.committed.v1.<provider>`)."""

    type: Literal["usage.committed.v1"] = "usage.committed.v1"
    commit_id: Token
    provider: Provider
    keys: list[UserDay]
    earliest_occurred_at: UtcDatetime
    new_events: Count
    cost_micros: Micros
    committed_at: UtcDatetime
