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
