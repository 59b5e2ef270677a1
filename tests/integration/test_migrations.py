"""Migrations against a real PostgreSQL: complete, idempotent, safe to run concurrently."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import asyncpg
import pglast
import pytest

from spendwatch.common.db.migrate import default_migrations_dir, discover, migrate
from spendwatch.common.errors import MigrationError

pytestmark = pytest.mark.integration

REQUIRED_RELATIONS = {
    "usage_events",
    "usage_daily_user_model",
    "usage_hourly",
    "usage_commits",
    "daily_usage",
    "spend_snapshots",
    "members",
    "groups",
    "group_members",
    "anomalies",
    "incidents",
    "incident_transitions",
    "notifications",
    "settings",
    "settings_audit",
    "collector_state",
    "api_tokens",
}


async def _relations(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            " UNION SELECT matviewname FROM pg_matviews WHERE schemaname = 'public'"
        )
    finally:
        await conn.close()
    return {row[0] for row in rows}


async def _expected_flavour(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        has = await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
    finally:
        await conn.close()
    return "timescale" if has else "postgres"


async def test_first_run_applies_everything_and_second_run_is_a_no_op(
    empty_database_url: str,
) -> None:
    migrations = discover(default_migrations_dir())
    first = await migrate(empty_database_url)
    assert len(first.applied) == len(migrations)
    assert first.flavour == await _expected_flavour(empty_database_url)
    assert await _relations(empty_database_url) >= REQUIRED_RELATIONS

    second = await migrate(empty_database_url)
    assert second.applied == []
    assert second.already_applied == len(migrations)


async def test_two_concurrent_runners_both_succeed(empty_database_url: str) -> None:
    reports = await asyncio.gather(migrate(empty_database_url), migrate(empty_database_url))
    applied = sorted(len(r.applied) for r in reports)
    assert applied == [0, len(discover(default_migrations_dir()))]
    conn = await asyncpg.connect(empty_database_url)
    try:
        count = await conn.fetchval("SELECT count(*) FROM schema_migrations")
    finally:
        await conn.close()
    assert count == len(discover(default_migrations_dir()))


async def test_an_edited_applied_migration_is_refused(
    empty_database_url: str, tmp_path: Path
) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(default_migrations_dir(), directory)
    await migrate(empty_database_url, directory=directory)
    first = sorted(directory.glob("0001_*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="edited after it was applied"):
        await migrate(empty_database_url, directory=directory)


async def test_a_failing_migration_rolls_back_and_names_the_file(
    empty_database_url: str, tmp_path: Path
) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(default_migrations_dir(), directory)
    (directory / "9999_broken.sql").write_text("CREATE TABLE half_done (id int);\nSELECT nope;\n")
    with pytest.raises(MigrationError, match="9999_broken"):
        await migrate(empty_database_url, directory=directory)
    assert "half_done" not in await _relations(empty_database_url)
    assert "usage_events" in await _relations(empty_database_url)


def test_every_timescale_file_is_valid_sql_and_pairs_with_a_postgres_file() -> None:
    # CI has no TimescaleDB, so its path is at least parsed by PostgreSQL's own parser.
    for migration in discover(default_migrations_dir()):
        for flavour in ("timescale", "postgres"):
            assert pglast.parse_sql(migration.sql(flavour))


def test_discover_rejects_a_lone_flavoured_file(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0002_b.timescale.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="needs both"):
        discover(tmp_path)


async def test_0004_backfills_on_demand_usage_into_an_existing_rollup(
    empty_database_url: str, tmp_path: Path
) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(default_migrations_dir(), directory)
    later = [f for f in directory.glob("*.sql") if f.name >= "0004"]
    held = {f.name: f.read_text() for f in later}
    for f in later:
        f.unlink()
    await migrate(empty_database_url, directory=directory)
    conn = await asyncpg.connect(empty_database_url)
    try:
        # Days in a non-UTC zone: the backfill must not assume UTC days. 06:00 UTC on the 2nd
        # is still the 1st in Los Angeles.
        await conn.execute(
            """
            INSERT INTO usage_events (provider, event_id, occurred_at, user_email, model, kind,
                                      cost_micros, ingested_at)
            VALUES ('cursor', 'a', '2026-11-01 20:00Z', 'a@x.com', 'm', 'included', 100, now()),
                   ('cursor', 'b', '2026-11-02 06:00Z', 'a@x.com', 'm', 'usage_based', 200, now()),
                   ('cursor', 'c', '2026-11-02 09:00Z', 'a@x.com', 'm', 'usage_based', 400, now()),
                   ('cursor', 'd', '2026-11-02 09:30Z', 'a@x.com', 'n', 'usage_based', 800, now());
            INSERT INTO usage_daily_user_model (day, user_email, provider, model, events,
                                                cost_micros, first_event_at, last_event_at)
            SELECT (occurred_at AT TIME ZONE 'America/Los_Angeles')::date, user_email, provider,
                   model, count(*), sum(cost_micros), min(occurred_at), max(occurred_at)
            FROM usage_events GROUP BY 1, 2, 3, 4;
            """
        )
        for name, text in held.items():
            (directory / name).write_text(text)
        await migrate(empty_database_url, directory=directory)
        rows = await conn.fetch(
            "SELECT day::text, model, usage_based_events, usage_based_micros"
            " FROM usage_daily_user_model ORDER BY day, model"
        )
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [
        ("2026-11-01", "m", 1, 200),
        ("2026-11-02", "m", 1, 400),
        ("2026-11-02", "n", 1, 800),
    ]
