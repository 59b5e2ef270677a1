"""Every Grafana panel and variable query runs on a seeded, migrated database.

The queries run as Grafana does: macros and variables expanded for a concrete time range
(tests/grafana_sql.py), on a connection as the read-only `grafana_reader` role that migration
0009 creates, so a panel that needs a table the role may not read fails here. Prometheus
panels (Pipeline health) are only checked as JSON (tests/unit/test_grafana_json.py).
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from tests import grafana_sql
from tests.grafana_reader import grafana_reader_url

NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()
CYCLE_START = datetime.combine(TODAY - timedelta(days=12), datetime.min.time(), UTC)
FROM, TO = NOW - timedelta(days=30), NOW

ALICE, BOB, CAROL, DAVE = (f"{n}@example.com" for n in ("alice", "bob", "carol", "dave"))
USERS = [ALICE, BOB, CAROL, DAVE]
GROUPS = {"g-eng": ("Engineering", [ALICE, BOB]), "g-ops": ("Operations", [CAROL])}
MODELS = {"claude-4-sonnet": 40_000, "gpt-5": 25_000, "claude-4-opus": 150_000}  # micros/req
BUDGET_USD = Decimal("2500.00")
LIMIT_MICROS = 500_000_000
SNAPSHOT_SPEND_MICROS = 12_340_000

# Values a user can pick: single user, `$group` as All, one group, several groups.
USER_FORMS = [ALICE, CAROL]
# `$group` values are the group keys of effective_groups (`provider:account:group_id`).
ENG, OPS = "'cursor::g-eng'", "'cursor::g-ops'"
GROUP_FORMS = ["'__all'", ENG, f"{ENG},{OPS}"]


def expand(sql: str, variables: dict[str, str]) -> str:
    """Grafana's PostgreSQL macros for FROM..TO, then `$var` / `${var}`."""
    return grafana_sql.expand(sql, variables, start=FROM, end=TO)


def dashboards() -> list[dict[str, Any]]:
    return grafana_sql.dashboards()


def panels(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Panels with SQL targets (Prometheus panels are left to the JSON checks)."""
    return [p for p in grafana_sql.panels(items) if grafana_sql.sql_targets(p)]


@pytest.fixture
async def reader(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool connected as `grafana_reader`, the role Grafana's datasource uses."""
    pool = await asyncpg.create_pool(await grafana_reader_url(database_url), min_size=1, max_size=2)
    yield pool
    await pool.close()


def variable_forms(dashboard: dict[str, Any]) -> list[dict[str, str]]:
    """The first combination is the default one: every panel shows seeded data for it."""
    names = {v["name"] for v in dashboard["templating"]["list"]}
    forms: list[dict[str, str]] = [{}]
    if "user" in names:
        forms = [{**f, "user": u} for f in forms for u in USER_FORMS]
    if "group" in names:
        forms = [{**f, "group": g} for f in forms for g in GROUP_FORMS]
    return forms


RollupRow = tuple[date, str, str, str, int, int, datetime, datetime, int, int]


def rollup_rows() -> list[RollupRow]:
    """10 days of rollup: (day, user, provider, model, events, cost, first, last, usage-based
    events, usage-based cost).

    Carol is past her plan (usage-based) on the last 3 days; Dave also uses Anthropic.
    """
    rows: list[RollupRow] = []
    for back in range(10):
        day = TODAY - timedelta(days=back)
        first = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=9)
        for n, email in enumerate(USERS):
            for m, (model, per_request) in enumerate(MODELS.items()):
                if (n + m + back) % 3 == 0 and email != ALICE:
                    continue
                events = 5 + n + back
                usage_based = events if email == CAROL and back < 3 else 0
                rows.append(
                    (
                        day,
                        email,
                        "cursor",
                        model,
                        events,
                        events * per_request,
                        first,
                        first + timedelta(hours=3),
                        usage_based,
                        usage_based * per_request,
                    )
                )
        if back % 2 == 0:
            last = first + timedelta(hours=1)
            rows.append((day, DAVE, "anthropic", "claude-4-opus", 2, 300_000, first, last, 0, 0))
    return rows


def in_cycle(row: RollupRow) -> bool:
    return row[0] >= CYCLE_START.date()


async def seed_pipeline(conn: asyncpg.Connection) -> None:
    """The Budgets settings, the sink's commit log, collector state, the delivery log."""
    await conn.execute(
        "INSERT INTO settings (key, value) VALUES ('detection', $1)",
        {"static_caps": {"team_cycle_budget_usd": str(BUDGET_USD)}},  # the pool encodes JSON
    )
    commits = [  # (new events, created minutes ago, published)
        (100, 90, True),
        (50, 30, True),
        (7, 10, False),
    ]
    for i, (new_events, minutes, published) in enumerate(commits):
        created = NOW - timedelta(minutes=minutes)
        await conn.execute(
            "INSERT INTO usage_commits (commit_id, provider, payload, created_at, published_at)"
            " VALUES ($1, 'cursor', $2, $3, $4)",
            f"c{i}",
            {"new_events": new_events, "cost_micros": 1},
            created,
            created + timedelta(seconds=1) if published else None,
        )
    await conn.execute(
        "INSERT INTO collector_state (provider, feed, checkpoint, health, last_success_at,"
        " last_error) VALUES ('cursor', 'usage', $1, 'ok', $1, NULL),"
        " ('cursor', 'spend', $2, 'auth_failed', $2, '401 from the Admin API')",
        NOW - timedelta(minutes=5),
        NOW - timedelta(hours=2),
    )
    deliveries = [  # (channel, status, error)
        ("slack", "sent", None),
        ("slack", "sent", None),
        ("email", "sent", None),
        ("email", "failed", "550 mailbox unavailable"),
        ("slack", "pending", None),
    ]
    for i, (channel, status, error) in enumerate(deliveries):
        await conn.execute(
            "INSERT INTO notifications (idempotency_key, channel, target, status, attempts,"
            " error, created_at) VALUES ($1, $2, 'ops', $3, 1, $4, $5)",
            f"k{i}",
            channel,
            status,
            error,
            NOW - timedelta(hours=i + 1),
        )


async def seed(conn: asyncpg.Connection) -> None:
    users = USERS
    await seed_pipeline(conn)
    for email in users:
        await conn.execute(
            "INSERT INTO members (provider, user_email, name, role, first_seen_at, captured_at)"
            " VALUES ('cursor', $1, $2, 'member', $3, $3)",
            email,
            email.split("@")[0].title(),
            NOW - timedelta(days=60),
        )
        await conn.execute(
            "INSERT INTO spend_snapshots (provider, cycle_start, user_email, spend_micros,"
            " overall_spend_micros, monthly_limit_micros, first_captured_at, captured_at)"
            " VALUES ('cursor', $1, $2, $3, $3, $4, $5, $5)",
            CYCLE_START,
            email,
            SNAPSHOT_SPEND_MICROS,
            LIMIT_MICROS,
            NOW - timedelta(hours=1),
        )
    for group_id, (name, emails) in GROUPS.items():
        await conn.execute(
            "INSERT INTO groups (provider, group_id, name, cycle_start, cycle_end, captured_at)"
            " VALUES ('cursor', $1, $2, $3, $4, $5)",
            group_id,
            name,
            CYCLE_START,
            CYCLE_START + timedelta(days=30),
            NOW,
        )
        for email in emails:
            await conn.execute(
                "INSERT INTO group_members (provider, group_id, user_email, captured_at)"
                " VALUES ('cursor', $1, $2, $3)",
                group_id,
                email,
                NOW,
            )
    rollup = rollup_rows()
    await conn.executemany(
        "INSERT INTO usage_daily_user_model (day, user_email, provider, model, events,"
        " cost_micros, first_event_at, last_event_at, usage_based_events, usage_based_micros)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        rollup,
    )
    await conn.executemany(
        "INSERT INTO usage_events (provider, event_id, occurred_at, user_email, model, kind,"
        " cost_micros, ingested_at, committed_at)"
        " VALUES ('cursor', $1, $2, $3, $4, $5, $6, $7, $7::timestamptz + interval '5 seconds')",
        [
            # Collected (i + 1) minutes after the request: one event per hour bucket.
            (
                f"e{i}",
                NOW - timedelta(hours=i * 7),
                email,
                model,
                kind,
                MODELS[model],
                NOW - timedelta(hours=i * 7) + timedelta(minutes=i + 1),
            )
            for i, (email, model, kind) in enumerate(
                [
                    (ALICE, "claude-4-opus", "included"),
                    (BOB, "gpt-5", "included"),
                    (CAROL, "claude-4-sonnet", "usage_based"),
                    (ALICE, "claude-4-sonnet", "included"),
                ]
            )
        ],
    )
    for i, (detector, severity, subject) in enumerate(
        [
            ("spend_spike", "warning", ALICE),
            ("cycle_limit", "critical", CAROL),
            ("spend_spike", "info", BOB),
            ("model_shift", "warning", ALICE),
        ]
    ):
        detected = NOW - timedelta(days=i, hours=2)
        await conn.execute(
            "INSERT INTO anomalies (anomaly_id, fingerprint, detector, severity, subject, metric,"
            " value, threshold, baseline, window_start, window_end, model, message,"
            " evidence_first_at, detected_at)"
            " VALUES ($1, $2, $3, $4, $5, 'spend', 120, 50, 20, $6, $7, NULL, $8, $9, $7)",
            uuid.uuid4(),
            f"{detector}:{subject}",
            detector,
            severity,
            subject,
            detected - timedelta(hours=1),
            detected,
            f"{subject} {detector}",
            detected - timedelta(minutes=5),
        )
    base = NOW - timedelta(days=3)
    incidents = [
        # open, alerted, not yet acknowledged
        (ALICE, "spend_spike", "alerted", None, None, None, None),
        # acknowledged, then resolved by hand
        (
            BOB,
            "spend_spike",
            "resolved",
            base + timedelta(minutes=2),
            base + timedelta(minutes=20),
            base + timedelta(hours=2),
            "manual",
        ),
        (
            CAROL,
            "cycle_limit",
            "acknowledged",
            base + timedelta(minutes=1),
            base + timedelta(minutes=9),
            None,
            None,
        ),
        (
            DAVE,
            "model_shift",
            "resolved",
            base + timedelta(minutes=1),
            None,
            base + timedelta(hours=5),
            "auto",
        ),
    ]
    for subject, detector, state, alerted, acked, resolved, resolution in incidents:
        await conn.execute(
            "INSERT INTO incidents (incident_id, fingerprint, detector, subject, state, severity,"
            " message, value, threshold, evidence_first_at, detected_at, alerted_at,"
            " acknowledged_at, acknowledged_by, resolved_at, resolution, cost_micros)"
            " VALUES ($1, $2, $3, $4, $5, 'warning', 'm', 120, 50, $6, $7, $8, $9, $10, $11,"
            " $12, 4200000)",
            uuid.uuid4(),
            f"{detector}:{subject}",
            detector,
            subject,
            state,
            base - timedelta(minutes=10),
            base,
            alerted,
            acked,
            "lead@example.com" if acked else None,
            resolved,
            resolution,
        )


async def test_every_panel_and_variable_query_runs(
    pool: asyncpg.Pool, reader: asyncpg.Pool
) -> None:
    async with pool.acquire() as conn:
        await seed(conn)
    uids = {d["uid"] for d in dashboards()}
    assert {"spendwatch-budgets", "spendwatch-pipeline"} <= uids
    ran = 0
    for dashboard in dashboards():
        forms = variable_forms(dashboard)
        for variable in dashboard["templating"]["list"]:
            rows = await reader.fetch(expand(variable["query"], forms[0]))
            assert rows, f"{dashboard['uid']}: variable {variable['name']} has no values"
            ran += 1
        for panel in panels(dashboard["panels"]):
            for raw in grafana_sql.sql_targets(panel):
                for i, values in enumerate(forms):
                    sql = expand(raw, values)
                    try:
                        rows = await reader.fetch(sql)
                    except asyncpg.PostgresError as exc:
                        raise AssertionError(
                            f"{dashboard['uid']}: {panel['title']}: {exc}\n{sql}"
                        ) from exc
                    ran += 1
                    if i == 0:
                        assert rows, f"{dashboard['uid']}: {panel['title']} shows nothing"
                        assert (
                            all(v is not None for v in rows[0].values()) or panel["type"] == "table"
                        ), f"{dashboard['uid']}: {panel['title']}: {rows[0]}"
    assert ran > 80


async def panel_rows(
    pool: asyncpg.Pool, uid: str, title: str, **values: str
) -> list[asyncpg.Record]:
    (dashboard,) = [d for d in dashboards() if d["uid"] == uid]
    (panel,) = [p for p in panels(dashboard["panels"]) if p["title"] == title]
    rows: list[asyncpg.Record] = await pool.fetch(expand(panel["targets"][0]["rawSql"], values))
    return rows


def usd(micros: int) -> Decimal:
    return Decimal(micros) / 1_000_000


def pct(part: float | Decimal, whole: float | Decimal) -> Decimal:
    """round(100 * part / whole, 1) as PostgreSQL's numeric round (half away from zero)."""
    value = Decimal(100) * Decimal(part) / Decimal(whole)
    return value.quantize(Decimal("0.1"), rounding="ROUND_HALF_UP")


async def test_panels_show_the_seeded_figures(pool: asyncpg.Pool, reader: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await seed(conn)
        total = await conn.fetchval("SELECT sum(cost_micros) FROM usage_daily_user_model")
        eng = await conn.fetchval(
            "SELECT sum(cost_micros) FROM usage_daily_user_model WHERE user_email = ANY($1)",
            [ALICE, BOB],
        )
        cycle = await conn.fetchval(
            "SELECT sum(cost_micros) FROM usage_daily_user_model WHERE day >= $1",
            CYCLE_START.date(),
        )
    team = "spendwatch-team"
    (row,) = await panel_rows(reader, team, "Spend in range", group="'__all'")
    assert row["spend"] * 1_000_000 == total
    (row,) = await panel_rows(reader, team, "Spend in range", group=ENG)
    assert row["spend"] * 1_000_000 == eng
    (row,) = await panel_rows(reader, team, "Spend in range", group=f"{ENG},{OPS}")
    assert eng < row["spend"] * 1_000_000 < total

    (row,) = await panel_rows(reader, team, "Billing cycle")
    assert row["cycle days"] == 30
    assert row["day of cycle"] == 13
    (row,) = await panel_rows(reader, team, "Cycle spend and projection", group="'__all'")
    assert row["cycle so far"] * 1_000_000 == cycle
    assert row["projected at cycle end"] > row["cycle so far"]

    top = await panel_rows(reader, team, "Spend per user (top 20)", group="'__all'")
    assert {r["user"] for r in top} == {ALICE, BOB, CAROL, DAVE}
    assert [r["spend"] for r in top] == sorted((r["spend"] for r in top), reverse=True)

    exhausted = await panel_rows(
        reader, "spendwatch-models", "Plan exhaustion (this cycle)", group="'__all'"
    )
    assert [r["user"] for r in exhausted] == [CAROL]
    assert exhausted[0]["day of cycle"] == 11

    mtt = await panel_rows(reader, "spendwatch-incidents", "MTTD / MTTI / MTTR per detector")
    by_detector = {r["detector"]: r for r in mtt}
    assert by_detector["all"]["incidents"] == 4
    assert by_detector["spend_spike"]["MTTR p50"] == 7200
    assert by_detector["all"]["MTTD p50"] == 600
    (row,) = await panel_rows(reader, "spendwatch-incidents", "Incidents open now")
    assert row["open"] == 2
    opened = await panel_rows(reader, "spendwatch-incidents", "Open incidents")
    assert {r["subject"] for r in opened} == {ALICE, CAROL}

    anomalies = await panel_rows(reader, "spendwatch-user", "Anomalies", user=ALICE)
    assert len(anomalies) == 2
    user_incidents = await panel_rows(reader, "spendwatch-user", "Incidents", user=BOB)
    assert [r["state"] for r in user_incidents] == ["resolved"]


def cycle_micros(*, users: list[str] | None = None, on_demand: bool = False) -> int:
    """Spend (or its usage-based part) since the cycle start, from the seeded rows."""
    return sum(
        r[9] if on_demand else r[5]
        for r in rollup_rows()
        if in_cycle(r) and (users is None or r[1] in users)
    )


async def test_budgets_and_providers_show_the_seeded_figures(
    pool: asyncpg.Pool, reader: asyncpg.Pool
) -> None:
    async with pool.acquire() as conn:
        await seed(conn)
    board = "spendwatch-budgets"
    team_cycle = cycle_micros()

    (row,) = await panel_rows(reader, board, "Team budget this cycle")
    assert row["budget"] == BUDGET_USD
    assert row["spent"] == usd(team_cycle)
    assert row["projected at cycle end"] > row["spent"]
    (gauge,) = await panel_rows(reader, board, "Budget used")
    assert gauge["used now"] == pct(usd(team_cycle), BUDGET_USD)

    (row,) = await panel_rows(reader, board, "Past the included plan (this cycle)", group="'__all'")
    carol_on_demand = cycle_micros(users=[CAROL], on_demand=True)
    assert carol_on_demand > 0
    assert (row["on-demand spend"], row["users past plan"], row["active users"]) == (
        usd(carol_on_demand),
        1,
        4,
    )
    (row,) = await panel_rows(reader, board, "Past the included plan (this cycle)", group=ENG)
    assert (row["on-demand spend"], row["users past plan"], row["active users"]) == (0, 0, 2)

    days = await panel_rows(reader, board, "Cycle spend vs budget", group="'__all'")
    assert len(days) == 30  # the groups' cycle is 30 days long
    spent = [r["cycle spend"] for r in days if r["cycle spend"] is not None]
    assert len(spent) == 13  # day 13 of the cycle
    assert spent[-1] == usd(team_cycle)
    assert spent == sorted(spent)
    assert {r["team budget"] for r in days} == {BUDGET_USD}
    assert days[-1]["linear pace"] > spent[-1]
    days = await panel_rows(reader, board, "Cycle spend vs budget", group=OPS)
    assert [r["cycle spend"] for r in days if r["cycle spend"] is not None][-1] == usd(
        cycle_micros(users=[CAROL])
    )

    by_provider: dict[str, int] = defaultdict(int)
    for r in rollup_rows():
        by_provider[r[2]] += r[5]
    split = await panel_rows(reader, board, "Provider split", group="'__all'")
    assert {r["provider"]: r["spend"] for r in split} == {p: usd(m) for p, m in by_provider.items()}
    providers = await panel_rows(reader, board, "Providers", group="'__all'")
    assert [r["provider"] for r in providers] == ["cursor", "anthropic"]
    anthropic = providers[1]
    assert (anthropic["requests"], anthropic["users"], anthropic["$/request"]) == (
        10,
        1,
        Decimal("0.1500"),
    )
    assert anthropic["share %"] == pct(by_provider["anthropic"], sum(by_provider.values()))
    split = await panel_rows(reader, board, "Provider split", group=ENG)
    assert [r["provider"] for r in split] == ["cursor"]

    groups = await panel_rows(
        reader, board, "Groups this cycle: spend, projection, share of the budget", group="'__all'"
    )
    eng, ops = cycle_micros(users=[ALICE, BOB]), cycle_micros(users=[CAROL])
    assert [(r["group"], r["members"], r["cycle spend"]) for r in groups] == sorted(
        [("Engineering", 2, usd(eng)), ("Operations", 1, usd(ops))], key=lambda g: -g[2]
    )
    by_name = {r["group"]: r for r in groups}
    assert by_name["Engineering"]["share of team spend %"] == pct(eng, team_cycle)
    assert by_name["Operations"]["% of team budget"] == pct(usd(ops), BUDGET_USD)
    assert by_name["Operations"]["on-demand spend"] == usd(
        cycle_micros(users=[CAROL], on_demand=True)
    )
    only_ops = await panel_rows(
        reader, board, "Groups this cycle: spend, projection, share of the budget", group=OPS
    )
    assert [r["group"] for r in only_ops] == ["Operations"]

    per_user: dict[str, int] = defaultdict(int)
    for r in rollup_rows():
        per_user[r[1]] += r[5]
    ranked = sorted(per_user.values(), reverse=True)
    (row,) = await panel_rows(reader, board, "Spend concentration", group="'__all'")
    assert row["top user"] == pct(ranked[0], sum(ranked))
    assert row["top 5 users"] == Decimal("100.0")
    assert row["top 20 % of users"] == row["top user"]  # ceil(4 x 20 %) = 1 user
    top = await panel_rows(reader, board, "Top spenders: cumulative share", group="'__all'")
    assert [r["spend"] for r in top] == [usd(m) for m in ranked]
    assert top[-1]["cumulative %"] == Decimal("100.0")

    limits = await panel_rows(
        reader, board, "Closest to their spend limit (this cycle)", group="'__all'"
    )
    assert [r["user"] for r in limits] == sorted(USERS)
    assert {r["% of limit"] for r in limits} == {pct(SNAPSHOT_SPEND_MICROS, LIMIT_MICROS)}
    assert {r["limit"] for r in limits} == {usd(LIMIT_MICROS)}
    limits = await panel_rows(reader, board, "Closest to their spend limit (this cycle)", group=OPS)
    assert [r["user"] for r in limits] == [CAROL]


async def test_budget_panels_without_a_budget_are_empty_not_broken(
    pool: asyncpg.Pool, reader: asyncpg.Pool
) -> None:
    async with pool.acquire() as conn:
        await seed(conn)
        await conn.execute("DELETE FROM settings")
    (row,) = await panel_rows(reader, "spendwatch-budgets", "Team budget this cycle")
    assert row["budget"] is None
    assert row["spent"] == usd(cycle_micros())
    (gauge,) = await panel_rows(reader, "spendwatch-budgets", "Budget used")
    assert (gauge["used now"], gauge["projected at cycle end"]) == (None, None)


async def test_pipeline_health_shows_the_seeded_figures(
    pool: asyncpg.Pool, reader: asyncpg.Pool
) -> None:
    async with pool.acquire() as conn:
        await seed(conn)
    board = "spendwatch-pipeline"
    (row,) = await panel_rows(reader, board, "Events stored (range)")
    assert (row["events"], row["batches"]) == (157, 3)
    rate = await panel_rows(reader, board, "Ingest rate")
    assert sorted(r["events stored"] for r in rate) == [7, 50, 100]
    (row,) = await panel_rows(reader, board, "Commit notices waiting")
    assert row["unpublished"] == 1
    assert 600 <= row["oldest (s)"] < 3600 + (datetime.now(UTC) - NOW).total_seconds()
    # Seeded relative to NOW, which was taken when this module was imported.
    late = (datetime.now(UTC) - NOW).total_seconds()
    (row,) = await panel_rows(reader, board, "Freshness")
    assert 0 <= row["since the newest event"] < 600 + late
    assert 600 <= row["since the last batch"] < 3600 + late

    lag = await panel_rows(reader, board, "Ingest lag (usage → collected → stored)")
    assert sorted(r["collected p50"] for r in lag) == [60, 120, 180, 240]
    assert sorted(r["stored p95"] for r in lag) == [65, 125, 185, 245]

    state = await panel_rows(reader, board, "Collector state")
    assert [(r["feed"], r["health"], r["last error"]) for r in state] == [
        ("spend", "auth_failed", "401 from the Admin API"),
        ("usage", "ok", None),
    ]
    assert 120 <= state[0]["minutes since success"] <= 120 + late / 60 + 1

    (row,) = await panel_rows(reader, board, "Alert deliveries (range)")
    assert (row["sent"], row["failed"], row["pending"]) == (3, 1, 1)
    series = await panel_rows(reader, board, "Alert deliveries")
    totals: dict[str, int] = defaultdict(int)
    for r in series:
        totals[r["metric"]] += r["deliveries"]
    assert totals == {"slack sent": 2, "email sent": 1, "email failed": 1, "slack pending": 1}
    (failed,) = await panel_rows(reader, board, "Failed deliveries")
    assert (failed["channel"], failed["error"]) == ("email", "550 mailbox unavailable")

    (row,) = await panel_rows(reader, board, "Detection → first alert")
    # Alerted 2, 1 and 1 minutes after detection (the seeded incidents).
    assert row["alerted incidents"] == 3
    assert row["p50"] == 60
    assert math.isclose(row["p95"], 60 + 0.9 * 60)


async def test_group_filters_follow_local_group_edits(
    pool: asyncpg.Pool, reader: asyncpg.Pool
) -> None:
    """Bob moved to Operations and Dave put in a group made here (as PATCH /api/groups does)."""
    async with pool.acquire() as conn:
        await seed(conn)
        await conn.execute(
            "INSERT INTO local_groups (group_key, name, created_by)"
            " VALUES ('local:1', 'Data', 'api:t')"
        )
        await conn.execute(
            "INSERT INTO group_overrides (user_email, group_key, source, updated_by) VALUES"
            " ($1, 'cursor::g-ops', 'api', 'api:t'), ($2, 'local:1', 'import', 'api:t')",
            BOB,
            DAVE,
        )
    (dashboard,) = [d for d in dashboards() if d["uid"] == "spendwatch-team"]
    (variable,) = dashboard["templating"]["list"]
    options = await reader.fetch(expand(variable["query"], {}))
    assert [(o["__text"], o["__value"]) for o in options] == [
        ("Data", "local:1"),
        ("Engineering", "cursor::g-eng"),
        ("Operations", "cursor::g-ops"),
    ]

    def spend(users: list[str]) -> Decimal:
        return usd(sum(r[5] for r in rollup_rows() if r[1] in users))

    team = "spendwatch-team"
    (row,) = await panel_rows(reader, team, "Spend in range", group=ENG)
    assert row["spend"] == spend([ALICE])
    (row,) = await panel_rows(reader, team, "Spend in range", group=OPS)
    assert row["spend"] == spend([BOB, CAROL])
    (row,) = await panel_rows(reader, team, "Spend in range", group="'local:1'")
    assert row["spend"] == spend([DAVE])
    groups = await panel_rows(
        reader,
        "spendwatch-budgets",
        "Groups this cycle: spend, projection, share of the budget",
        group="'__all'",
    )
    assert {r["group"]: r["members"] for r in groups} == {
        "Data": 1,
        "Engineering": 1,
        "Operations": 2,
    }
