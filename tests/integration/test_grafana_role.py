"""The read-only `grafana_reader` role: made by migration 0009, given a password by migrate."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from spendwatch.cli.migrations import run_migrations
from spendwatch.common.db.roles import GRAFANA_READER, scram_sha256_verifier, set_login_password
from spendwatch.common.settings import MigrateSettings
from tests.grafana_reader import as_role

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


async def _stored_verifier(admin: asyncpg.Connection, role: str) -> str:
    verifier: str = await admin.fetchval(
        "SELECT rolpassword FROM pg_authid WHERE rolname = $1", role
    )
    return verifier


def _recomputed(verifier: str, password: str) -> str:
    """The verifier `password` gives with the stored one's salt and iteration count."""
    _, params, _ = verifier.split("$")
    iterations, salt = params.split(":")
    return scram_sha256_verifier(password, salt=base64.b64decode(salt), iterations=int(iterations))


@pytest.mark.parametrize("password", ["correct horse", "pässwörd ﬁx", "q'uo\"te$$\\"])
async def test_our_scram_verifier_is_the_one_postgresql_makes(
    db: asyncpg.Connection, password: str
) -> None:
    role = f"sw_scram_{uuid.uuid4().hex[:8]}"
    await db.execute("SET password_encryption = 'scram-sha-256'")
    statement = await db.fetchval(
        "SELECT format('CREATE ROLE %I PASSWORD %L', $1::text, $2::text)", role, password
    )
    await db.execute(statement)
    try:
        stored = await _stored_verifier(db, role)
        assert stored.startswith("SCRAM-SHA-256$4096:")
        assert _recomputed(stored, password) == stored
        assert _recomputed(stored, password + "x") != stored
    finally:
        await db.execute(f'DROP ROLE "{role}"')


async def test_migrate_with_the_password_lets_grafana_reader_log_in_and_only_read(
    database_url: str, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    await db.execute(f"ALTER ROLE {GRAFANA_READER} NOLOGIN")  # as 0009 leaves it
    password = "s3cret-'quoted'-$tag$"
    reader_url = as_role(database_url, role=GRAFANA_READER, password=password)
    with pytest.raises(
        asyncpg.InvalidAuthorizationSpecificationError, match="not permitted to log in"
    ):
        await asyncpg.connect(reader_url)

    monkeypatch.setenv("GRAFANA_DB_PASSWORD", password)
    await run_migrations(database_url, MigrateSettings(_env_file=None))
    stored = await _stored_verifier(db, GRAFANA_READER)
    assert _recomputed(stored, password) == stored
    assert password not in stored

    await db.execute(
        "INSERT INTO usage_events (provider, event_id, occurred_at, user_email, model, kind,"
        " cost_micros, ingested_at) VALUES ('cursor', 'e1', $1, 'a@x.com', 'gpt-5', 'included',"
        " 40000, $1)",
        NOW,
    )
    await db.execute(
        "INSERT INTO settings (key, value) VALUES"
        ' (\'detection\', \'{"static_caps": {"team_cycle_budget_usd": "2500.50"}}\')'
    )
    await db.execute("CREATE TABLE made_later (x int)")  # as a later migration would
    reader = await asyncpg.connect(reader_url)
    try:
        assert await reader.fetchval("SELECT sum(cost_micros) FROM usage_events") == 40000
        assert await reader.fetchval("SELECT count(*) FROM usage_daily_user_model") == 0
        assert await reader.fetchval("SELECT count(*) FROM usage_hourly") == 1
        assert await reader.fetchval("SELECT count(*) FROM incidents") == 0
        assert await reader.fetchval("SELECT count(*) FROM made_later") == 0
        assert str(await reader.fetchval("SELECT budget_usd FROM team_budget")) == "2500.50"
        assert await reader.fetchval("SHOW statement_timeout") == "30s"

        insert = (
            "INSERT INTO usage_events (provider, event_id, occurred_at, user_email, model, kind,"
            " cost_micros, ingested_at) VALUES ('cursor', 'e2', now(), 'b@x.com', 'gpt-5',"
            " 'included', 1, now())"
        )
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await reader.execute(insert)
        # Read-only is only the session default: the grants refuse writes on their own.
        await reader.execute("SET default_transaction_read_only = off")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await reader.execute(insert)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await reader.execute("DELETE FROM incidents")
        for private in ("api_tokens", "settings", "settings_audit"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await reader.fetch(f"SELECT * FROM {private}")
    finally:
        await reader.close()


async def test_migrate_without_the_password_leaves_the_role_alone(
    database_url: str, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    await db.execute(f"ALTER ROLE {GRAFANA_READER} NOLOGIN PASSWORD NULL")
    monkeypatch.setenv("GRAFANA_DB_PASSWORD", "")
    await run_migrations(database_url, MigrateSettings(_env_file=None))
    row = await db.fetchrow(
        "SELECT rolcanlogin, rolpassword FROM pg_authid WHERE rolname = $1", GRAFANA_READER
    )
    assert row is not None
    assert (row["rolcanlogin"], row["rolpassword"]) == (False, None)


async def test_a_missing_role_is_reported_not_created(database_url: str) -> None:
    assert not await set_login_password(database_url, role="sw_no_such_role", password="x")


async def test_0009_on_a_fresh_database_grants_and_is_idempotent(empty_database_url: str) -> None:
    from spendwatch.common.db.migrate import migrate  # noqa: PLC0415

    await migrate(empty_database_url)
    await migrate(empty_database_url)  # the role exists already: nothing to do, no error
    conn = await asyncpg.connect(empty_database_url)
    try:
        granted = await conn.fetchval(
            "SELECT has_table_privilege($1, 'usage_daily_user_model', 'SELECT')"
            " AND has_table_privilege($1, 'team_budget', 'SELECT')"
            " AND NOT has_table_privilege($1, 'api_tokens', 'SELECT')"
            " AND NOT has_table_privilege($1, 'usage_events', 'INSERT')",
            GRAFANA_READER,
        )
    finally:
        await conn.close()
    assert granted
