"""The team usage endpoints: `/api/stats` (Team Overview), `/api/analytics` (Insights),
`/api/team-spend` (the current cycle per user) and `/api/model-costs`.

All read the daily rollup; `days=N` is the last N days of TEAM_TIMEZONE, today included, and
"the cycle" is the billing cycle containing today (see `spendwatch.common.cycles`).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
from aiohttp import web

from spendwatch.api.figures import (
    TRAILING_DAYS,
    Window,
    average,
    change_percent,
    concentration,
    last_days,
    median,
    per_unit_micros,
    percent,
    project_cycle_end,
    team_today,
)
from spendwatch.api.keys import DB, SETTINGS
from spendwatch.api.models import json_response
from spendwatch.api.models.stats import (
    AnalyticsOut,
    ConcentrationOut,
    CycleOut,
    DauOut,
    DayOut,
    DaysQuery,
    ExhaustedUserOut,
    GroupRef,
    ModelCostOut,
    ModelCostsOut,
    ModelMixOut,
    ModelSpendOut,
    PeriodChange,
    PeriodTotals,
    PlanExhaustionOut,
    ProviderOut,
    ShareOut,
    SpenderOut,
    StatsOut,
    StatsQuery,
    TeamSpendOut,
    TeamSpendQuery,
    TeamSpendRow,
)
from spendwatch.api.openapi import operation
from spendwatch.api.repository import stats as repository
from spendwatch.api.validation import parse_query
from spendwatch.common.cycles import Cycle, anchor_date, cycle_containing
from spendwatch.common.events.base import utc_now

routes = web.RouteTableDef()

PROJECTION_METHOD = (
    "spend of the cycle's complete days + the average of the last 7 complete days "
    "x the days left, today included"
)


def _window(request: web.Request, days: int) -> tuple[str, Window]:
    timezone = request.app[SETTINGS].team_timezone
    return timezone, last_days(team_today(utc_now(), timezone), days)


async def current_cycle(pool: asyncpg.Pool, timezone: str) -> tuple[Cycle, Window]:
    """The billing cycle containing today, and its days so far (start to today)."""
    today = team_today(utc_now(), timezone)
    cycle = cycle_containing(today, anchor_date(await repository.cycle_anchor(pool)))
    return cycle, Window(cycle.start, today)


TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def _tokens(row: asyncpg.Record) -> int:
    return int(sum(row[k] for k in TOKEN_FIELDS))


def _totals(users: list[asyncpg.Record], window: Window) -> PeriodTotals:
    """The window's totals from its active users' sums."""
    sums = {k: sum(r[k] for r in users) for k in ("micros", "requests", *TOKEN_FIELDS)}
    return PeriodTotals(
        first_day=window.first,
        last_day=window.last,
        spend_micros=sums["micros"],
        requests=sums["requests"],
        tokens=sum(sums[k] for k in TOKEN_FIELDS),
        input_tokens=sums["input_tokens"],
        output_tokens=sums["output_tokens"],
        cache_read_tokens=sums["cache_read_tokens"],
        cache_write_tokens=sums["cache_write_tokens"],
        active_users=len(users),
        avg_spend_per_active_user_micros=per_unit_micros(sums["micros"], len(users)),
        spend_per_day_micros=per_unit_micros(sums["micros"], window.days) or 0,
    )


async def _cycle(pool: asyncpg.Pool, timezone: str) -> CycleOut:
    cycle, so_far = await current_cycle(pool, timezone)
    today = so_far.last
    sums, budget, provider_spend = await asyncio.gather(
        repository.cycle_sums(
            pool,
            start=cycle.start,
            today=today,
            trailing_first=today - timedelta(days=TRAILING_DAYS),
        ),
        repository.team_budget_micros(pool),
        repository.provider_cycle_spend(pool, cycle_start=cycle.start),
    )
    days_left = (cycle.end - today).days
    spend = sums["before_today"] + sums["today"]
    return CycleOut(
        start=cycle.start,
        end=cycle.end,
        day_number=cycle.day_number(today),
        length_days=cycle.length_days,
        days_left=days_left,
        spend_micros=spend,
        provider_spend_micros=provider_spend,
        on_demand_micros=sums["on_demand"],
        projected_micros=project_cycle_end(
            spent_before_today=sums["before_today"],
            spent_today=sums["today"],
            trailing_micros=sums["trailing"],
            days_left=days_left,
        ),
        projection_method=PROJECTION_METHOD,
        budget_micros=budget,
        budget_used_percent=percent(spend, budget) if budget else None,
    )


@routes.get("/api/stats")
@operation(
    "Team overview: spend, users, requests, cycle and projection, top spenders, models, daily",
    query=StatsQuery,
    response=StatsOut,
    tag="usage",
)
async def stats(request: web.Request) -> web.Response:
    """The Team Overview over the last `days` days, compared with the `days` before."""
    query = parse_query(request, StatsQuery)
    timezone, window = _window(request, query.days)
    previous = window.previous()
    pool = request.app[DB]
    span = {"first": window.first, "last": window.last}
    # Independent reads, each on its own pooled connection.
    users, days, models, members, open_incidents, cycle = await asyncio.gather(
        repository.user_periods(pool, previous_first=previous.first, **span),
        repository.daily(pool, **span),
        repository.model_spend(pool, **span),
        repository.member_count(pool),
        repository.open_incident_count(pool),
        _cycle(pool, timezone),
    )
    current_users = [r for r in users if r["current"]]
    current = _totals(current_users, window)
    before = _totals([r for r in users if not r["current"]], previous)
    spenders = current_users[: query.top]
    details = await repository.spender_details(
        pool, emails=[r["user_email"] for r in spenders], **span
    )
    by_day = {r["day"]: r for r in days}
    body = StatsOut(
        timezone=timezone,
        days=query.days,
        members=members,
        active_share_percent=percent(current.active_users, members),
        current=current,
        previous=before,
        change=PeriodChange(
            spend_percent=change_percent(current.spend_micros, before.spend_micros),
            requests_percent=change_percent(current.requests, before.requests),
            tokens_percent=change_percent(current.tokens, before.tokens),
            active_users_percent=change_percent(current.active_users, before.active_users),
        ),
        cycle=cycle,
        top_spenders=[
            SpenderOut(
                user_email=r["user_email"],
                name=details[r["user_email"]]["name"],
                spend_micros=r["micros"],
                requests=r["requests"],
                share_percent=percent(r["micros"], current.spend_micros),
                top_model=details[r["user_email"]]["top_model"],
            )
            for r in spenders
        ],
        models=[
            ModelSpendOut(
                model=r["model"],
                spend_micros=r["micros"],
                requests=r["requests"],
                spend_share_percent=percent(r["micros"], current.spend_micros),
            )
            for r in models
        ],
        daily=[
            DayOut(
                day=day,
                spend_micros=by_day[day]["micros"] if day in by_day else 0,
                requests=by_day[day]["requests"] if day in by_day else 0,
                tokens=_tokens(by_day[day]) if day in by_day else 0,
                active_users=by_day[day]["users"] if day in by_day else 0,
            )
            for day in window.dates()
        ],
        open_incidents=open_incidents,
    )
    return json_response(body)


async def _plan_exhaustion(pool: asyncpg.Pool, timezone: str) -> PlanExhaustionOut:
    cycle, so_far = await current_cycle(pool, timezone)
    active, exhausted = await repository.plan_exhaustion(pool, start=so_far.first, last=so_far.last)
    users = [
        ExhaustedUserOut(
            user_email=r["user_email"],
            first_on_demand_day=r["first_on_demand_day"],
            day_of_cycle=cycle.day_number(r["first_on_demand_day"]),
            on_demand_micros=r["on_demand_micros"],
            on_demand_requests=r["on_demand_requests"],
        )
        for r in exhausted
    ]
    return PlanExhaustionOut(
        cycle_start=cycle.start,
        cycle_end=cycle.end,
        active_users=active,
        exhausted_users=len(users),
        exhausted_percent=percent(len(users), active),
        median_day_of_cycle=median([u.day_of_cycle for u in users]),
        users=users,
    )


@routes.get("/api/analytics")
@operation(
    "Insights: model mix, DAU, max-mode/headless/on-demand shares, plan exhaustion, "
    "spend concentration, providers",
    query=DaysQuery,
    response=AnalyticsOut,
    tag="usage",
)
async def analytics(request: web.Request) -> web.Response:
    """Insights over the last `days` days; plan exhaustion is of the current cycle."""
    query = parse_query(request, DaysQuery)
    timezone, window = _window(request, query.days)
    pool = request.app[DB]
    span = {"first": window.first, "last": window.last}
    shares, (models, providers), days, exhaustion = await asyncio.gather(
        repository.usage_shares(pool, **span),
        repository.models_and_providers(pool, **span),
        repository.daily(pool, **span),
        _plan_exhaustion(pool, timezone),
    )
    requests, spend = shares["requests"], shares["micros"]
    by_day = {r["day"]: r["users"] for r in days}
    dau = [DauOut(day=day, active_users=by_day.get(day, 0)) for day in window.dates()]
    spread = concentration(shares["spends"])
    body = AnalyticsOut(
        timezone=timezone,
        first_day=window.first,
        last_day=window.last,
        spend_micros=spend,
        requests=requests,
        models=[
            ModelMixOut(
                model=r["model"],
                spend_micros=r["micros"],
                spend_share_percent=percent(r["micros"], spend),
                requests=r["requests"],
                request_share_percent=percent(r["requests"], requests),
                cost_per_request_micros=per_unit_micros(r["micros"], r["requests"]),
                users=r["users"],
            )
            for r in models
        ],
        dau=dau,
        avg_dau=average(sum(by_day.values()), window.days),
        max_mode=ShareOut(
            requests=shares["max_mode"],
            requests_percent=percent(shares["max_mode"], requests),
            users=shares["max_mode_users"],
        ),
        headless=ShareOut(
            requests=shares["headless"],
            requests_percent=percent(shares["headless"], requests),
            users=shares["headless_users"],
        ),
        on_demand=ShareOut(
            requests=shares["on_demand"],
            requests_percent=percent(shares["on_demand"], requests),
            spend_micros=shares["on_demand_micros"],
            spend_percent=percent(shares["on_demand_micros"], spend),
            users=shares["on_demand_users"],
        ),
        plan_exhaustion=exhaustion,
        concentration=ConcentrationOut(
            users=spread.users,
            top_users=spread.top_users,
            top_share_percent=spread.top_share_percent,
            top_user_share_percent=spread.top_user_share_percent,
            gini=spread.gini,
        ),
        providers=[
            ProviderOut(
                provider=r["provider"],
                spend_micros=r["micros"],
                spend_share_percent=percent(r["micros"], spend),
                requests=r["requests"],
                users=r["users"],
            )
            for r in providers
        ],
    )
    return json_response(body)


@routes.get("/api/model-costs")
@operation(
    "Per model: spend, requests, tokens, cost per request and per million tokens, users",
    query=DaysQuery,
    response=ModelCostsOut,
    tag="usage",
)
async def model_costs(request: web.Request) -> web.Response:
    """What each model cost over the last `days` days, most expensive first."""
    query = parse_query(request, DaysQuery)
    timezone, window = _window(request, query.days)
    rows, _ = await repository.models_and_providers(
        request.app[DB], first=window.first, last=window.last
    )
    models = []
    for r in rows:
        tokens = _tokens(r)
        models.append(
            ModelCostOut(
                model=r["model"],
                providers=list(r["providers"]),
                spend_micros=r["micros"],
                requests=r["requests"],
                tokens=tokens,
                input_tokens=r["input_tokens"],
                output_tokens=r["output_tokens"],
                cache_read_tokens=r["cache_read_tokens"],
                cache_write_tokens=r["cache_write_tokens"],
                cost_per_request_micros=per_unit_micros(r["micros"], r["requests"]),
                cost_per_million_tokens_micros=per_unit_micros(
                    r["micros"], tokens, scale=1_000_000
                ),
                users=r["users"],
            )
        )
    return json_response(
        ModelCostsOut(
            timezone=timezone, first_day=window.first, last_day=window.last, models=models
        )
    )


@routes.get("/api/team-spend")
@operation(
    "The current billing cycle per user: the provider's spend and limits beside our rollup",
    query=TeamSpendQuery,
    response=TeamSpendOut,
    tag="usage",
)
async def team_spend(request: web.Request) -> web.Response:
    """Each user's current cycle, filtered by billing group, sorted, offset-paginated."""
    query = parse_query(request, TeamSpendQuery)
    pool = request.app[DB]
    cycle, so_far = await current_cycle(pool, request.app[SETTINGS].team_timezone)
    total, rows = await repository.team_spend(
        pool,
        start=cycle.start,
        today=so_far.last,
        group=query.group,
        sort=query.sort,
        descending=query.order == "desc",
        limit=query.limit,
        offset=query.offset,
    )
    groups = await repository.groups_of(pool, emails=[r["user_email"] for r in rows])
    items = [
        TeamSpendRow(
            user_email=r["user_email"],
            name=r["name"],
            provider_spend_micros=r["provider_spend_micros"],
            provider_on_demand_micros=r["provider_on_demand_micros"],
            spend_micros=r["spend_micros"],
            on_demand_micros=r["on_demand_micros"],
            requests=r["requests"],
            limit_micros=r["limit_micros"],
            limit_used_percent=percent(
                r["provider_spend_micros"]
                if r["provider_spend_micros"] is not None
                else r["spend_micros"],
                r["limit_micros"] or 0,
            ),
            groups=[
                GroupRef(group_id=g["group_id"], name=g["name"])
                for g in groups.get(r["user_email"], [])
            ],
        )
        for r in rows
    ]
    return json_response(
        TeamSpendOut(
            cycle_start=cycle.start,
            cycle_end=cycle.end,
            total=total,
            limit=query.limit,
            offset=query.offset,
            items=items,
        )
    )


__all__ = ["current_cycle", "routes"]
