"""`/api/users/{email}`: one user's drilldown over the last `days` days and the current cycle."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

from aiohttp import web

from spendwatch.api.errors import ProblemError
from spendwatch.api.figures import last_days, median, median_micros, per_unit_micros, percent
from spendwatch.api.keys import DB, SETTINGS
from spendwatch.api.models import PRINTABLE, json_response, row_dict
from spendwatch.api.models.anomalies import AnomalyOut
from spendwatch.api.models.incidents import IncidentOut
from spendwatch.api.models.stats import GroupRef
from spendwatch.api.models.users import (
    TeamComparison,
    UserCycleOut,
    UserDayOut,
    UserModelOut,
    UserOut,
    UserQuery,
    UserTotals,
)
from spendwatch.api.openapi import operation
from spendwatch.api.repository import anomalies as anomaly_repository
from spendwatch.api.repository import incidents as incident_repository
from spendwatch.api.repository import stats as stats_repository
from spendwatch.api.repository import users as repository
from spendwatch.api.routes.stats import current_cycle
from spendwatch.api.validation import parse_query

routes = web.RouteTableDef()

EMAIL = {"email": {"type": "string", "description": "Case-insensitive."}}
MAX_EMAIL_LENGTH = 320


@dataclass
class _Sums:
    """What the user's rollup rows add up to for one day or one model."""

    micros: int = 0
    requests: int = 0
    tokens: int = 0
    days: int = 0
    providers: set[str] = field(default_factory=set)


def _team(email: str, spends: list[tuple[str, int, int]], own: int) -> TeamComparison:
    micros = [s for _, s, _ in spends]
    middle = median_micros(micros)
    rank = None
    if any(user == email for user, _, _ in spends):
        rank = 1 + sum(1 for s in micros if s > own)
    return TeamComparison(
        active_users=len(spends),
        median_spend_micros=middle,
        median_requests=median([r for _, _, r in spends]),
        spend_vs_median_percent=percent(own, middle) if middle else None,
        spend_rank=rank,
    )


@routes.get("/api/users/{email}")
@operation(
    "One user's drilldown: daily spend, models, team median, cycle and limit, anomalies, "
    "incidents, groups",
    query=UserQuery,
    response=UserOut,
    errors=(404,),
    tag="usage",
    path_params=EMAIL,
)
async def user_detail(request: web.Request) -> web.Response:
    """The user's last `days` days and current cycle; 404 if spendwatch has never seen them."""
    query = parse_query(request, UserQuery)
    email = request.match_info["email"].strip().lower()
    # Nothing stored is longer or holds control characters (PostgreSQL text cannot hold NUL).
    if len(email) > MAX_EMAIL_LENGTH or not re.fullmatch(PRINTABLE, email):
        raise ProblemError(404, "User not found", detail="No such user.")
    pool = request.app[DB]
    member = await repository.member(pool, email=email)
    if member is None and not await repository.has_usage(pool, email=email):
        raise ProblemError(404, "User not found", detail=f"No usage and no member {email}.")
    timezone = request.app[SETTINGS].team_timezone
    cycle, so_far = await current_cycle(pool, timezone)
    window = last_days(so_far.last, query.days)
    rows = await repository.daily_models(pool, email=email, first=window.first, last=window.last)

    per_day: dict[date, _Sums] = defaultdict(_Sums)
    per_model: dict[str, _Sums] = defaultdict(_Sums)
    for r in rows:
        for sums in (per_day[r["day"]], per_model[r["model"]]):
            sums.micros += r["micros"]
            sums.requests += r["requests"]
            sums.tokens += r["tokens"]
            sums.days += 1
            sums.providers.update(r["providers"])
    spend = sum(d.micros for d in per_day.values())
    requests = sum(d.requests for d in per_day.values())

    spends = await stats_repository.user_spends(pool, first=window.first, last=window.last)
    own_cycle = await repository.cycle(pool, email=email, start=cycle.start, today=so_far.last)
    used = (
        own_cycle["provider_spend_micros"]
        if own_cycle["provider_spend_micros"] is not None
        else own_cycle["micros"]
    )
    groups = await stats_repository.groups_of(pool, emails=[email])
    anomalies = await anomaly_repository.latest_for_subject(pool, subject=email, limit=query.recent)
    incidents = await incident_repository.list_incidents(
        pool, state=None, detector=None, subject=email, after=None, limit=query.recent
    )
    body = UserOut(
        user_email=email,
        name=member["name"] if member else None,
        role=member["role"] if member else None,
        is_member=member is not None,
        is_removed=bool(member["is_removed"]) if member else False,
        timezone=timezone,
        first_day=window.first,
        last_day=window.last,
        totals=UserTotals(
            spend_micros=spend,
            requests=requests,
            tokens=sum(d.tokens for d in per_day.values()),
            active_days=len(per_day),
            cost_per_request_micros=per_unit_micros(spend, requests),
            spend_per_active_day_micros=per_unit_micros(spend, len(per_day)),
        ),
        team=_team(email, [(r["user_email"], r["micros"], r["requests"]) for r in spends], spend),
        daily=[
            UserDayOut(
                day=day,
                spend_micros=per_day[day].micros if day in per_day else 0,
                requests=per_day[day].requests if day in per_day else 0,
                tokens=per_day[day].tokens if day in per_day else 0,
            )
            for day in window.dates()
        ],
        models=sorted(
            (
                UserModelOut(
                    model=name,
                    providers=sorted(m.providers),
                    spend_micros=m.micros,
                    requests=m.requests,
                    tokens=m.tokens,
                    days_used=m.days,
                    cost_per_request_micros=per_unit_micros(m.micros, m.requests),
                )
                for name, m in per_model.items()
            ),
            key=lambda m: (-m.spend_micros, m.model),
        ),
        cycle=UserCycleOut(
            start=cycle.start,
            end=cycle.end,
            spend_micros=own_cycle["micros"],
            on_demand_micros=own_cycle["on_demand_micros"],
            on_demand_requests=own_cycle["on_demand_requests"],
            first_on_demand_day=own_cycle["first_on_demand_day"],
            provider_spend_micros=own_cycle["provider_spend_micros"],
            provider_on_demand_micros=own_cycle["provider_on_demand_micros"],
            limit_micros=own_cycle["limit_micros"],
            limit_used_percent=percent(used, own_cycle["limit_micros"] or 0),
        ),
        groups=[GroupRef(group_id=g["group_id"], name=g["name"]) for g in groups.get(email, [])],
        anomalies=[AnomalyOut.model_validate(row_dict(r)) for r in anomalies],
        incidents=[IncidentOut.model_validate(row_dict(r)) for r in incidents],
    )
    return json_response(body)


__all__ = ["routes"]
