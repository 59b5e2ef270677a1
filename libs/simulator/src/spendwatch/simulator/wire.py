"""Cursor's wire format: the simulated team rendered as the Admin API's JSON bodies.

Field names, units and formats follow reference/provider-apis.md §1: money in cents (fractional
in usage events, whole in spend and group totals), event timestamps as epoch-ms strings, other
dates as epoch-ms numbers, `YYYY-MM-DD` strings or ISO-8601 strings, as each endpoint does.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from spendwatch.simulator.models import MODELS
from spendwatch.simulator.team import (
    DAY_MS,
    HEADLESS,
    KIND_NAMES,
    MICROS_PER_CENT,
    OLD_SHAPE,
    TOKEN_BASED,
    USAGE_BASED,
    DayStats,
    EventRow,
    Member,
    MemberSpend,
    Money,
    SimulatedTeam,
    day_date,
    iso_ms,
)

Json = dict[str, Any]

_EXTENSIONS = (".ts", ".tsx", ".py", ".go", ".rs", ".java", ".md", ".sql")


def cents(micros: Money) -> int | float:
    """Micro-dollars as Cursor's fractional cents, exactly (an int when whole).

    At most 6 decimals and 14 significant digits, so the float's shortest repr, which JSON
    writes, is the exact decimal.
    """
    if isinstance(micros, int):
        whole, rest = divmod(micros, MICROS_PER_CENT)
        return whole if rest == 0 else micros / MICROS_PER_CENT
    value = micros / MICROS_PER_CENT
    return int(value) if value == value.to_integral_value() else float(value)


def whole_cents(micros: Money) -> int:
    """Micro-dollars as whole cents, rounded half-even (spend and group totals)."""
    return int((Decimal(micros) / MICROS_PER_CENT).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def usage_event(team: SimulatedTeam, row: EventRow) -> Json:
    """One `usageEvents[]` entry of `/teams/filtered-usage-events`."""
    spec = MODELS[row.model]
    flags = row.flags
    tenths = row.request_tenths
    event: Json = {
        "timestamp": str(row.ts),
        "userEmail": team.members[row.member].email,
        "model": spec.name,
        "kind": KIND_NAMES[row.kind],
        "maxMode": spec.max_mode,
        "requestsCosts": tenths // 10 if tenths % 10 == 0 else tenths / 10,
        "isTokenBasedCall": bool(flags & TOKEN_BASED),
        "isChargeable": row.kind == USAGE_BASED,
        "isHeadless": bool(flags & HEADLESS),
    }
    if flags & TOKEN_BASED:
        usage: Json = {
            "inputTokens": row.input_tokens,
            "outputTokens": row.output_tokens,
            "cacheWriteTokens": row.cache_write_tokens,
            "cacheReadTokens": row.cache_read_tokens,
            "totalCents": cents(row.total),
        }
        if row.discount:
            usage["discountPercentOff"] = row.discount
        event["tokenUsage"] = usage
    if not flags & OLD_SHAPE:
        event["chargedCents"] = cents(row.charged)
        fee = row.fee
        if fee is not None:
            event["cursorTokenFee"] = cents(fee)
    event["isFreeBugbot"] = False
    return event


def paging(total: int, page: int, page_size: int) -> tuple[int, bool, bool]:
    """(number of pages, has next, has previous) for a 1-indexed page."""
    pages = math.ceil(total / page_size)
    return pages, page < pages, page > 1


def usage_events_page(
    team: SimulatedTeam,
    *,
    start_ms: int,
    end_ms: int,
    member: Member | None,
    page: int,
    page_size: int,
) -> Json:
    """The body of `POST /teams/filtered-usage-events`."""
    total, rows = team.events_page(
        start_ms,
        end_ms,
        member=None if member is None else member.index,
        offset=(page - 1) * page_size,
        limit=page_size,
    )
    pages, has_next, has_previous = paging(total, page, page_size)
    return {
        "totalUsageEventsCount": total,
        "pagination": {
            "numPages": pages,
            "currentPage": page,
            "pageSize": page_size,
            "hasNextPage": has_next,
            "hasPreviousPage": has_previous,
        },
        "usageEvents": [usage_event(team, row) for row in rows],
        "period": {"startDate": start_ms, "endDate": end_ms},
    }


def team_members(team: SimulatedTeam) -> Json:
    """The body of `GET /teams/members` (removed members included, flagged)."""
    return {
        "teamMembers": [
            {
                "id": m.id,
                "name": m.name,
                "email": m.email,
                "role": m.role,
                "isRemoved": m.is_removed,
            }
            for m in team.members
        ]
    }


def spend_row(spend: MemberSpend) -> Json:
    """One `teamMemberSpend[]` entry of `/teams/spend`."""
    m = spend.member
    return {
        "userId": m.id,
        "name": m.name,
        "email": m.email,
        "role": m.role,
        "spendCents": whole_cents(spend.usage_micros),
        "overallSpendCents": whole_cents(spend.overall_micros),
        "fastPremiumRequests": spend.usage_events,
        "hardLimitOverrideDollars": m.hard_limit_override_dollars,
        "monthlyLimitDollars": m.monthly_limit_dollars,
    }


def team_spend(
    team: SimulatedTeam,
    *,
    search: str | None,
    sort_by: str,
    descending: bool,
    page: int,
    page_size: int,
) -> Json:
    """The body of `POST /teams/spend`: current members, current billing cycle."""
    rows = [s for s in team.cycle_spend(team.last_day) if not s.member.is_removed]
    if search:
        needle = search.lower()
        rows = [
            s for s in rows if needle in s.member.name.lower() or needle in s.member.email.lower()
        ]
    if sort_by == "amount":
        rows.sort(key=lambda s: (s.usage_micros, s.overall_micros, s.member.id), reverse=descending)
    elif sort_by == "user":
        rows.sort(key=lambda s: (s.member.name.lower(), s.member.id), reverse=descending)
    else:  # "date": when they joined
        rows.sort(key=lambda s: (s.member.joined_ms, s.member.id), reverse=descending)
    chosen = rows[(page - 1) * page_size : page * page_size]
    return {
        "teamMemberSpend": [spend_row(s) for s in chosen],
        "subscriptionCycleStart": team.cycle_start_ms,
        "totalMembers": len(rows),
        "totalPages": math.ceil(len(rows) / page_size),
    }


def daily_row(
    team: SimulatedTeam, member: Member, day: int, stats: DayStats | None, *, with_active: bool
) -> Json:
    """One `data[]` row of `/teams/daily-usage-data`, derived from the day's events."""
    events = stats.events if stats else 0
    headless = stats.headless if stats else 0
    interactive = events - headless
    added = (stats.output_tokens if stats else 0) // 25
    deleted = added * 2 // 5
    applies = interactive * 3 // 5
    accepts = applies * 5 // 6
    tabs = interactive * 8
    top = stats.top_model if stats else None
    row: Json = {
        "userId": member.id,
        "day": day_date(day).isoformat(),
        "date": day * DAY_MS,
    }
    if with_active:
        row["isActive"] = events > 0
    row |= {
        "totalLinesAdded": added,
        "totalLinesDeleted": deleted,
        "acceptedLinesAdded": added * 7 // 10,
        "acceptedLinesDeleted": deleted * 7 // 10,
        "totalApplies": applies,
        "totalAccepts": accepts,
        "totalRejects": applies - accepts,
        "totalTabsShown": tabs,
        "totalTabsAccepted": tabs * 3 // 10,
        "composerRequests": interactive // 4,
        "chatRequests": interactive - interactive // 2 - interactive // 4,
        "agentRequests": interactive // 2 + headless,
        "cmdkUsages": interactive // 6,
        "subscriptionIncludedReqs": stats.included if stats else 0,
        "apiKeyReqs": 0,
        "usageBasedReqs": stats.usage_based if stats else 0,
        "bugbotUsages": 0,
        "mostUsedModel": MODELS[top].name if top is not None else None,
        "applyMostUsedExtension": _EXTENSIONS[member.id % len(_EXTENSIONS)] if events else None,
        "tabMostUsedExtension": _EXTENSIONS[member.id // 7 % len(_EXTENSIONS)] if events else None,
        "clientVersion": member.client_version if events else None,
        "email": member.email,
    }
    return row


def daily_usage(
    team: SimulatedTeam, *, start_ms: int, end_ms: int, page: int | None, page_size: int | None
) -> Json:
    """The body of `POST /teams/daily-usage-data`.

    Without paging: one row per active (member, day). With `page` and `pageSize`: every member
    with a membership during the range, a row for each day, `isActive: false` on idle days.
    Only the simulated days exist; earlier days have no rows.
    """
    days = team.days_in(start_ms, end_ms)
    if page is None or page_size is None:
        rows = [
            daily_row(team, m, day, stats, with_active=False)
            for day in days
            for m in team.members
            if (stats := team.day_stats(m.index, day)) is not None and stats.events
        ]
        return {"data": rows, "period": {"startDate": start_ms, "endDate": end_ms}}
    members = [
        m
        for m in team.members
        if m.joined_ms <= end_ms and (m.removed_day is None or m.removed_day * DAY_MS > start_ms)
    ]
    pages, has_next, has_previous = paging(len(members), page, page_size)
    return {
        "data": [
            daily_row(team, m, day, team.day_stats(m.index, day), with_active=True)
            for m in members[(page - 1) * page_size : page * page_size]
            for day in days
        ],
        "period": {"startDate": start_ms, "endDate": end_ms},
        "pagination": {
            "page": page,
            "pageSize": page_size,
            "totalUsers": len(members),
            "totalPages": pages,
            "hasNextPage": has_next,
            "hasPreviousPage": has_previous,
        },
    }


def billing_groups(team: SimulatedTeam, day: int) -> Json:
    """The body of `GET /teams/groups` for the billing cycle containing `day`."""
    cycle = team.cycle_of(day)
    spends = {s.member.index: s.overall_micros for s in team.cycle_spend(day)}
    buckets: list[list[Member]] = [[] for _ in team.groups]
    unassigned: list[Member] = []
    for m in team.members:
        (buckets[m.group] if m.group is not None else unassigned).append(m)
    groups = [
        _group(
            team,
            group_id=g.id,
            name=g.name,
            created_ms=g.created_ms,
            members=members,
            spends=spends,
            cycle=cycle,
        )
        for g, members in zip(team.groups, buckets, strict=True)
    ]
    created = team.groups[0].created_ms
    return {
        "groups": groups,
        "unassignedGroup": _group(
            team,
            group_id="group_unassigned",
            name="Unassigned",
            created_ms=created,
            members=unassigned,
            spends=spends,
            cycle=cycle,
        ),
        "billingCycle": {
            "cycleStart": iso_ms(cycle[0] * DAY_MS),
            "cycleEnd": iso_ms(cycle[1] * DAY_MS),
        },
    }


def _group(
    team: SimulatedTeam,
    *,
    group_id: str,
    name: str,
    created_ms: int,
    members: list[Member],
    spends: dict[int, Money],
    cycle: tuple[int, int],
) -> Json:
    first, after = cycle
    # Members who left during the cycle are former members; those who left before it are gone.
    current = [m for m in members if m.removed_day is None or m.removed_day >= after]
    former = [m for m in members if m.removed_day is not None and first < m.removed_day < after]
    daily: list[Json] = []
    for day in range(first, min(after, team.last_day + 1)):
        total: Money = 0
        for m in current + former:
            stats = team.day_stats(m.index, day)
            if stats is not None:
                total += stats.charged
        daily.append({"date": day_date(day).isoformat(), "spendCents": whole_cents(total)})
    spend = sum((spends[m.index] for m in current + former), start=0)
    return {
        "id": group_id,
        "name": name,
        "type": "BILLING",
        "directoryGroupId": None,
        "memberCount": len(current),
        "createdAt": iso_ms(created_ms),
        "updatedAt": iso_ms(created_ms),
        "spendCents": whole_cents(spend),
        "currentMembers": [_group_member(m, spends, left=None) for m in current],
        "formerMembers": [
            _group_member(m, spends, left=(m.removed_day or 0) * DAY_MS) for m in former
        ],
        "dailySpend": daily,
    }


def _group_member(m: Member, spends: dict[int, Money], *, left: int | None) -> Json:
    return {
        "userId": m.user_id,
        "name": m.name,
        "email": m.email,
        "joinedAt": iso_ms(m.joined_ms),
        "leftAt": None if left is None else iso_ms(left),
        "spendCents": whole_cents(spends[m.index]),
    }


def error(status: int, message: str | None = None) -> Json:
    """Cursor's documented error body for `status`."""
    error_name, default = _ERRORS[status]
    return {"error": error_name, "message": message or default}


_ERRORS: dict[int, tuple[str, str]] = {
    400: ("Bad Request", "Some users are not in the team"),
    401: ("Unauthorized", "Invalid API key"),
    403: ("Forbidden", "Enterprise access required"),
    404: ("Not Found", "Resource not found"),
    429: ("Too Many Requests", "Rate limit exceeded. Please try again later."),
    500: ("Internal Server Error", "An unexpected error occurred"),
}
ERROR_STATUSES = frozenset(_ERRORS)
