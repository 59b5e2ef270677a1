"""`spendwatch report`: what the Team overview shows, as terminal tables (no Grafana needed).

Everything comes from the rollup and the incident views, so it is as exact as the dashboards:
money is summed as integer micro-dollars and divided once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import asyncpg
from rich.console import Group
from rich.table import Table

from spendwatch.common.db import create_pool
from spendwatch.common.errors import SpendwatchError
from spendwatch.common.settings import BaseServiceSettings

MICROS = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Report:
    """The numbers behind the tables."""

    now: datetime
    first_day: date
    last_day: date
    total: Decimal
    active_users: int
    spenders: list[asyncpg.Record]
    models: list[asyncpg.Record]
    incidents: list[asyncpg.Record]
    mtt: list[asyncpg.Record]


async def build_report(db: asyncpg.Pool, *, days: int, timezone: str, now: datetime) -> Report:
    """The last `days` team-timezone days up to today, and the incidents detected in them."""
    last = now.astimezone(ZoneInfo(timezone)).date()
    first = last - timedelta(days=days - 1)
    spenders = await db.fetch(
        """
        SELECT user_email, sum(cost_micros)::bigint AS micros, sum(events)::bigint AS requests,
               (array_agg(model ORDER BY cost_micros DESC, model))[1] AS top_model
        FROM usage_daily_user_model WHERE day BETWEEN $1 AND $2
        GROUP BY user_email ORDER BY micros DESC, user_email
        """,
        first,
        last,
    )
    models = await db.fetch(
        """
        SELECT model, sum(cost_micros)::bigint AS micros, sum(events)::bigint AS requests,
               count(DISTINCT user_email) AS users
        FROM usage_daily_user_model WHERE day BETWEEN $1 AND $2
        GROUP BY model ORDER BY micros DESC, model
        """,
        first,
        last,
    )
    incidents = await db.fetch(
        """
        SELECT i.severity, i.detector, i.subject, i.state, i.message, i.detected_at,
               m.mttd_seconds
        FROM incidents i JOIN incident_metrics m USING (incident_id)
        WHERE i.state <> 'resolved'
        ORDER BY CASE i.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
                 i.detected_at DESC
        LIMIT 20
        """
    )
    mtt = await db.fetch(
        "SELECT * FROM incident_mtt_summary($1, $2) ORDER BY detector NULLS FIRST",
        now - timedelta(days=days),
        now,
    )
    total = sum((Decimal(r["micros"]) for r in spenders), Decimal(0)) / MICROS
    return Report(
        now,
        first,
        last,
        total,
        len(spenders),
        list(spenders),
        list(models),
        list(incidents),
        list(mtt),
    )


async def team_report(settings: BaseServiceSettings, *, days: int) -> Report:
    """The report from DATABASE_URL, with days in TEAM_TIMEZONE."""
    try:
        pool = await create_pool(settings.database_url.get_secret_value(), max_size=2)
        try:
            return await build_report(
                pool, days=days, timezone=settings.team_timezone, now=datetime.now(UTC)
            )
        finally:
            await pool.close()
    except (OSError, asyncpg.PostgresError) as exc:
        raise SpendwatchError(f"cannot read the database: {exc}") from exc


def render(report: Report, *, top: int = 15) -> Group:
    """The report as rich tables."""
    title = (
        f"{report.first_day} → {report.last_day}: {usd(report.total)} by "
        f"{report.active_users} active users"
    )
    spenders = Table(title=f"Top spenders — {title}")
    for column in ("user", "spend", "requests", "$/request", "mostly"):
        spenders.add_column(
            column, justify="right" if column in {"spend", "requests", "$/request"} else "left"
        )
    for r in report.spenders[:top]:
        spend = Decimal(r["micros"]) / MICROS
        spenders.add_row(
            r["user_email"],
            usd(spend),
            f"{r['requests']:,}",
            per_request(spend, r["requests"]),
            r["top_model"] or "-",
        )
    models = Table(title="Spend by model")
    for column in ("model", "spend", "share", "requests", "$/request", "users"):
        models.add_column(column, justify="left" if column == "model" else "right")
    for r in report.models:
        spend = Decimal(r["micros"]) / MICROS
        share = f"{spend / report.total:.0%}" if report.total else "-"
        models.add_row(
            r["model"],
            usd(spend),
            share,
            f"{r['requests']:,}",
            per_request(spend, r["requests"]),
            f"{r['users']:,}",
        )
    incidents = Table(title="Open incidents")
    for column in ("severity", "detector", "who", "state", "open for", "MTTD", "what"):
        incidents.add_column(column, overflow="fold")
    for r in report.incidents:
        incidents.add_row(
            r["severity"],
            r["detector"],
            r["subject"],
            r["state"],
            duration((report.now - r["detected_at"]).total_seconds()),
            duration(r["mttd_seconds"]),
            r["message"],
        )
    mtt = Table(title="MTTD / MTTI / MTTR (p50 · p90), incidents detected in the window")
    for column in ("detector", "incidents", "MTTD", "MTTI", "MTTR", "cost above usual"):
        mtt.add_column(column, justify="left" if column == "detector" else "right")
    for r in report.mtt:
        mtt.add_row(
            r["detector"] or "all",
            f"{r['incidents']:,}",
            pair(r["mttd_p50"], r["mttd_p90"]),
            pair(r["mtti_p50"], r["mtti_p90"]),
            pair(r["mttr_p50"], r["mttr_p90"]),
            usd(Decimal(r["cost_micros"]) / MICROS) if r["cost_micros"] is not None else "-",
        )
    return Group(spenders, models, incidents, mtt)


def usd(amount: Decimal) -> str:
    """`$1,234.56`."""
    return f"${amount.quantize(Decimal('0.01')):,}"


def per_request(spend: Decimal, requests: int) -> str:
    """Dollars per request, or `-` without requests."""
    return f"${spend / requests:,.3f}" if requests else "-"


def duration(seconds: float | None) -> str:
    """`45 s`, `12 min`, `3.5 h`, `2.0 d`; `-` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def pair(p50: float | None, p90: float | None) -> str:
    """`p50 · p90`."""
    return f"{duration(p50)} · {duration(p90)}"
