"""Bodies of /api/users/{email}: one user's drilldown."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import Field

from spendwatch.api.models import ApiModel, Days, PlainDecimal, QueryModel
from spendwatch.api.models.anomalies import AnomalyOut
from spendwatch.api.models.incidents import IncidentOut
from spendwatch.api.models.stats import GroupRef


class UserQuery(QueryModel):
    """`GET /api/users/{email}`."""

    days: Days = 30
    recent: Annotated[
        int, Field(ge=1, le=100, description="How many anomalies and incidents to list.")
    ] = 20


class UserTotals(ApiModel):
    """The user's sums over the window."""

    spend_micros: int
    requests: int
    tokens: int
    active_days: int
    cost_per_request_micros: int | None
    spend_per_active_day_micros: int | None


class TeamComparison(ApiModel):
    """The user against the window's active users."""

    active_users: int
    median_spend_micros: int | None
    median_requests: PlainDecimal | None
    spend_vs_median_percent: PlainDecimal | None = Field(
        description="The user's spend as a percentage of the team median."
    )
    spend_rank: int | None = Field(description="1 = the biggest spender; null if inactive.")


class UserDayOut(ApiModel):
    """One day of the user's series (every day of the window, $0 included)."""

    day: date
    spend_micros: int
    requests: int
    tokens: int


class UserModelOut(ApiModel):
    """One model the user used in the window."""

    model: str
    providers: list[str]
    spend_micros: int
    requests: int
    tokens: int
    days_used: int
    cost_per_request_micros: int | None


class UserCycleOut(ApiModel):
    """The user's current billing cycle (`end` exclusive)."""

    start: date
    end: date
    spend_micros: int = Field(description="Our rollup's spend on the cycle's days so far.")
    on_demand_micros: int
    on_demand_requests: int
    first_on_demand_day: date | None
    provider_spend_micros: int | None
    provider_on_demand_micros: int | None
    limit_micros: int | None
    limit_used_percent: PlainDecimal | None


class UserOut(ApiModel):
    """A user's drilldown."""

    user_email: str
    name: str | None
    role: str | None
    is_member: bool
    is_removed: bool
    timezone: str
    first_day: date
    last_day: date
    totals: UserTotals
    team: TeamComparison
    daily: list[UserDayOut]
    models: list[UserModelOut]
    cycle: UserCycleOut
    groups: list[GroupRef]
    anomalies: list[AnomalyOut]
    incidents: list[IncidentOut]
