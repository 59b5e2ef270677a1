"""Every Grafana panel and variable query runs on a seeded, migrated database.

Grafana's macros and template variables are expanded here the way Grafana's PostgreSQL
datasource does for a concrete time range (the time-group macros as timestamps instead of
epoch numbers, which Grafana converts itself).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

GRAFANA = Path(__file__).resolve().parents[2] / "grafana"
NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()
CYCLE_START = datetime.combine(TODAY - timedelta(days=12), datetime.min.time(), UTC)
FROM, TO = NOW - timedelta(days=30), NOW

ALICE, BOB, CAROL, DAVE = (f"{n}@example.com" for n in ("alice", "bob", "carol", "dave"))
GROUPS = {"g-eng": ("Engineering", [ALICE, BOB]), "g-ops": ("Operations", [CAROL])}
MODELS = {"claude-4-sonnet": 40_000, "gpt-5": 25_000, "claude-4-opus": 150_000}  # micros/req

# Values a user can pick: single user, `$group` as All, one group, several groups.
USER_FORMS = [ALICE, CAROL]
GROUP_FORMS = ["'__all'", "'g-eng'", "'g-eng','g-ops'"]

INTERVALS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(interval: str) -> int:
    match = re.fullmatch(r"\s*(\d+)([smhd])\s*", interval)
    assert match, interval
    return int(match[1]) * INTERVALS[match[2]]


def expand(sql: str, variables: dict[str, str]) -> str:
    """Grafana's PostgreSQL macros for FROM..TO, then `$var` / `${var}`."""
    start, end = rfc3339(FROM), rfc3339(TO)

    def group(match: re.Match[str], *, alias: bool) -> str:
        column, interval = (part.strip() for part in match[1].rsplit(",", 1))
        step = _seconds(interval)
        expr = f"to_timestamp(floor(extract(epoch from {column})/{step})*{step})"
        return f'{expr} AS "time"' if alias else expr

    sql = re.sub(
        r"\$__timeFilter\(([^()]*)\)",
        lambda m: f"{m[1].strip()} BETWEEN '{start}' AND '{end}'",
        sql,
    )
    sql = re.sub(
        r"\$__unixEpochFilter\(([^()]*)\)",
        lambda m: (
            f"{m[1].strip()} >= {int(FROM.timestamp())} AND {m[1].strip()} <= {int(TO.timestamp())}"
        ),
        sql,
    )
    sql = re.sub(r"\$__timeGroupAlias\(([^()]*)\)", lambda m: group(m, alias=True), sql)
    sql = re.sub(r"\$__timeGroup\(([^()]*)\)", lambda m: group(m, alias=False), sql)
    sql = sql.replace("$__timeFrom()", f"'{start}'").replace("$__timeTo()", f"'{end}'")
    assert "$__" not in sql, f"unexpanded macro in {sql}"
    for name, value in variables.items():
        pattern = r"\$\{" + name + r"(?::\w+)?\}|\$" + name + r"\b"
        sql = re.sub(pattern, value.replace("\\", "\\\\"), sql)
    leftover = re.findall(r"\$\{?\w+", sql)
    assert not leftover, f"unexpanded variables {leftover}"
    return sql


def dashboards() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))]


def panels(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        if item.get("targets"):
            out.append(item)
        out.extend(panels(item.get("panels", [])))
    return out


def variable_forms(dashboard: dict[str, Any]) -> list[dict[str, str]]:
    """The first combination is the default one: every panel shows seeded data for it."""
    names = {v["name"] for v in dashboard["templating"]["list"]}
    forms: list[dict[str, str]] = [{}]
    if "user" in names:
        forms = [{**f, "user": u} for f in forms for u in USER_FORMS]
    if "group" in names:
        forms = [{**f, "group": g} for f in forms for g in GROUP_FORMS]
    return forms


async def seed(conn: asyncpg.Connection) -> None:
    users = [ALICE, BOB, CAROL, DAVE]
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
            " VALUES ('cursor', $1, $2, $3, $3, 500000000, $4, $4)",
            CYCLE_START,
            email,
            12_340_000,
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
    rollup = []
    for back in range(10):
        day = TODAY - timedelta(days=back)
        first = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=9)
        for n, email in enumerate(users):
            for m, (model, per_request) in enumerate(MODELS.items()):
                if (n + m + back) % 3 == 0 and email != ALICE:
                    continue
                events = 5 + n + back
                usage_based = events if email == CAROL and back < 3 else 0
                rollup.append(
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
    await conn.executemany(
        "INSERT INTO usage_daily_user_model (day, user_email, provider, model, events,"
        " cost_micros, first_event_at, last_event_at, usage_based_events, usage_based_micros)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        rollup,
    )
    await conn.executemany(
        "INSERT INTO usage_events (provider, event_id, occurred_at, user_email, model, kind,"
        " cost_micros, ingested_at) VALUES ('cursor', $1, $2, $3, $4, $5, $6, $2)",
        [
            (f"e{i}", NOW - timedelta(hours=i * 7), email, model, kind, MODELS[model])
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


async def test_every_panel_and_variable_query_runs(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await seed(conn)
    ran = 0
    for dashboard in dashboards():
        forms = variable_forms(dashboard)
        for variable in dashboard["templating"]["list"]:
            rows = await pool.fetch(expand(variable["query"], forms[0]))
            assert rows, f"{dashboard['uid']}: variable {variable['name']} has no values"
            ran += 1
        for panel in panels(dashboard["panels"]):
            for target in panel["targets"]:
                for i, values in enumerate(forms):
                    sql = expand(target["rawSql"], values)
                    try:
                        rows = await pool.fetch(sql)
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
    assert ran > 40


async def panel_rows(
    pool: asyncpg.Pool, uid: str, title: str, **values: str
) -> list[asyncpg.Record]:
    (dashboard,) = [d for d in dashboards() if d["uid"] == uid]
    (panel,) = [p for p in panels(dashboard["panels"]) if p["title"] == title]
    rows: list[asyncpg.Record] = await pool.fetch(expand(panel["targets"][0]["rawSql"], values))
    return rows


async def test_panels_show_the_seeded_figures(pool: asyncpg.Pool) -> None:
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
    (row,) = await panel_rows(pool, team, "Spend in range", group="'__all'")
    assert row["spend"] * 1_000_000 == total
    (row,) = await panel_rows(pool, team, "Spend in range", group="'g-eng'")
    assert row["spend"] * 1_000_000 == eng
    (row,) = await panel_rows(pool, team, "Spend in range", group="'g-eng','g-ops'")
    assert eng < row["spend"] * 1_000_000 < total

    (row,) = await panel_rows(pool, team, "Billing cycle")
    assert row["cycle days"] == 30
    assert row["day of cycle"] == 13
    (row,) = await panel_rows(pool, team, "Cycle spend and projection", group="'__all'")
    assert row["cycle so far"] * 1_000_000 == cycle
    assert row["projected at cycle end"] > row["cycle so far"]

    top = await panel_rows(pool, team, "Spend per user (top 20)", group="'__all'")
    assert {r["user"] for r in top} == {ALICE, BOB, CAROL, DAVE}
    assert [r["spend"] for r in top] == sorted((r["spend"] for r in top), reverse=True)

    exhausted = await panel_rows(
        pool, "spendwatch-models", "Plan exhaustion (this cycle)", group="'__all'"
    )
    assert [r["user"] for r in exhausted] == [CAROL]
    assert exhausted[0]["day of cycle"] == 11

    mtt = await panel_rows(pool, "spendwatch-incidents", "MTTD / MTTI / MTTR per detector")
    by_detector = {r["detector"]: r for r in mtt}
    assert by_detector["all"]["incidents"] == 4
    assert by_detector["spend_spike"]["MTTR p50"] == 7200
    assert by_detector["all"]["MTTD p50"] == 600
    (row,) = await panel_rows(pool, "spendwatch-incidents", "Incidents open now")
    assert row["open"] == 2
    opened = await panel_rows(pool, "spendwatch-incidents", "Open incidents")
    assert {r["subject"] for r in opened} == {ALICE, CAROL}

    anomalies = await panel_rows(pool, "spendwatch-user", "Anomalies", user=ALICE)
    assert len(anomalies) == 2
    user_incidents = await panel_rows(pool, "spendwatch-user", "Incidents", user=BOB)
    assert [r["state"] for r in user_incidents] == ["resolved"]
