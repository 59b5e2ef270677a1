"""Bodies of the team usage endpoints: /api/stats, /api/analytics, /api/team-spend,
/api/model-costs.

Money is integer micro-dollars (`*_micros`); percentages are decimals with two places, as
strings; days are team-timezone dates.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import Field

from spendwatch.api.models import ApiModel, Days, PlainDecimal, QueryModel, printable

Limit = Annotated[int, Field(ge=1, le=100, description="How many rows to return.")]


class StatsQuery(QueryModel):
    """`GET /api/stats`."""

    days: Days = 30
    top: Limit = 10


class DaysQuery(QueryModel):
    """`GET /api/analytics`, `GET /api/model-costs`."""

    days: Days = 30


TeamSpendSort = Literal["provider_spend", "spend", "on_demand", "limit_used", "email", "name"]


class TeamSpendQuery(QueryModel):
    """`GET /api/team-spend`: the current cycle per user, sorted, offset-paginated."""

    group: (
        Annotated[str, printable(400), Field(description="A `group_id` of /api/groups.")] | None
    ) = None
    sort: TeamSpendSort = "provider_spend"
    order: Literal["asc", "desc"] = "desc"
    limit: Annotated[int, Field(ge=1, le=500)] = 100
    offset: Annotated[int, Field(ge=0, le=1_000_000)] = 0


class PeriodTotals(ApiModel):
    """Sums over a window of days."""

    first_day: date
    last_day: date
    spend_micros: int
    requests: int
    tokens: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    active_users: int
    avg_spend_per_active_user_micros: int | None
    spend_per_day_micros: int


class PeriodChange(ApiModel):
    """Change against the previous window of equal length, in percent (null: nothing before)."""

    spend_percent: PlainDecimal | None
    requests_percent: PlainDecimal | None
    tokens_percent: PlainDecimal | None
    active_users_percent: PlainDecimal | None


class CycleOut(ApiModel):
    """The current billing cycle (days in the team timezone, `end` exclusive)."""

    start: date
    end: date
    day_number: int
    length_days: int
    days_left: int = Field(description="Days still to come, today included.")
    spend_micros: int = Field(description="Our rollup's spend on the cycle's days so far.")
    provider_spend_micros: int | None = Field(
        description="What the provider reports for the cycle (latest spend snapshot)."
    )
    on_demand_micros: int = Field(description="Spend past the included plan (usage_based).")
    projected_micros: int
    projection_method: str
    budget_micros: int | None = None
    budget_used_percent: PlainDecimal | None = None


class SpenderOut(ApiModel):
    """One user's spend in the window."""

    user_email: str
    name: str | None
    spend_micros: int
    requests: int
    share_percent: PlainDecimal | None
    top_model: str | None


class ModelSpendOut(ApiModel):
    """One model's spend in the window."""

    model: str
    spend_micros: int
    requests: int
    spend_share_percent: PlainDecimal | None


class DayOut(ApiModel):
    """One day of the team's series (every day of the window, $0 included)."""

    day: date
    spend_micros: int
    requests: int
    tokens: int
    active_users: int


class StatsOut(ApiModel):
    """The Team Overview."""

    timezone: str
    days: int
    members: int = Field(description="Members not removed, across providers.")
    active_share_percent: PlainDecimal | None = Field(
        description="Active users of the window as a share of `members`."
    )
    current: PeriodTotals
    previous: PeriodTotals
    change: PeriodChange
    cycle: CycleOut
    top_spenders: list[SpenderOut]
    models: list[ModelSpendOut]
    daily: list[DayOut]
    open_incidents: int = Field(description="Incidents not resolved, whenever detected.")


class ModelMixOut(ApiModel):
    """One model's share of spend and requests, and what a request costs on it."""

    model: str
    spend_micros: int
    spend_share_percent: PlainDecimal | None
    requests: int
    request_share_percent: PlainDecimal | None
    cost_per_request_micros: int | None
    users: int


class DauOut(ApiModel):
    """Active users (any request) on one day."""

    day: date
    active_users: int


class ShareOut(ApiModel):
    """A slice of the window's requests and spend."""

    requests: int
    requests_percent: PlainDecimal | None
    spend_micros: int | None = None
    spend_percent: PlainDecimal | None = None
    users: int | None = None


class ExhaustedUserOut(ApiModel):
    """A user who went past the included plan this cycle."""

    user_email: str
    first_on_demand_day: date
    day_of_cycle: int
    on_demand_micros: int
    on_demand_requests: int


class PlanExhaustionOut(ApiModel):
    """Who went past the included plan in the current cycle."""

    cycle_start: date
    cycle_end: date
    active_users: int
    exhausted_users: int
    exhausted_percent: PlainDecimal | None
    median_day_of_cycle: PlainDecimal | None
    users: list[ExhaustedUserOut]


class ConcentrationOut(ApiModel):
    """How concentrated the window's spend is across users."""

    users: int
    top_users: int = Field(description="The top 10 % of users (at least one).")
    top_share_percent: PlainDecimal | None
    top_user_share_percent: PlainDecimal | None
    gini: PlainDecimal | None = Field(description="0: even; (n-1)/n: one user spends all.")


class ProviderOut(ApiModel):
    """One provider's share of the window."""

    provider: str
    spend_micros: int
    spend_share_percent: PlainDecimal | None
    requests: int
    users: int


class AnalyticsOut(ApiModel):
    """Insights over the window."""

    timezone: str
    first_day: date
    last_day: date
    spend_micros: int
    requests: int
    models: list[ModelMixOut]
    dau: list[DauOut]
    avg_dau: PlainDecimal
    max_mode: ShareOut
    headless: ShareOut
    on_demand: ShareOut
    plan_exhaustion: PlanExhaustionOut
    concentration: ConcentrationOut
    providers: list[ProviderOut]


class ModelCostOut(ApiModel):
    """What one model cost over the window."""

    model: str
    providers: list[str]
    spend_micros: int
    requests: int
    tokens: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_per_request_micros: int | None
    cost_per_million_tokens_micros: int | None
    users: int


class ModelCostsOut(ApiModel):
    """Per model, most expensive first."""

    timezone: str
    first_day: date
    last_day: date
    models: list[ModelCostOut]


class GroupRef(ApiModel):
    """A billing group a user belongs to (local edits applied); `group_id` as in /api/groups."""

    group_id: str
    name: str


class TeamSpendRow(ApiModel):
    """One user's current cycle: the provider's numbers beside our rollup."""

    user_email: str
    name: str | None
    provider_spend_micros: int | None = Field(
        description="The provider's overall (included + on-demand) spend this cycle."
    )
    provider_on_demand_micros: int | None
    spend_micros: int = Field(description="Our rollup's spend on the cycle's days.")
    on_demand_micros: int
    requests: int
    limit_micros: int | None = Field(description="Hard limit override, else monthly limit.")
    limit_used_percent: PlainDecimal | None
    groups: list[GroupRef]


class TeamSpendOut(ApiModel):
    """The current cycle per user; `total` rows match the filter."""

    cycle_start: date
    cycle_end: date
    total: int
    limit: int
    offset: int
    items: list[TeamSpendRow]
