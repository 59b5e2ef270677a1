"""Forward-only SQL migrations: numbered files, recorded in `schema_migrations`, one advisory lock.

Files are `NNNN_name.sql` (both flavours) or a pair `NNNN_name.timescale.sql` /
`NNNN_name.postgres.sql`. The flavour is TimescaleDB when the extension is installed or can be
created on a fresh database, plain PostgreSQL otherwise; once chosen, it is kept.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import asyncpg

from spendwatch.common.errors import DatabaseError, MigrationError
from spendwatch.common.logging import get_logger

Flavour = Literal["timescale", "postgres"]
FLAVOURS: tuple[Flavour, ...] = ("timescale", "postgres")

# pg_advisory_lock key: any constant shared by every runner ("spendwatch" as a bigint).
LOCK_KEY = int.from_bytes(b"spndwtch", "big") & 0x7FFF_FFFF_FFFF_FFFF
_FILE = re.compile(
    r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+?)(?:\.(?P<flavour>timescale|postgres))?\.sql$"
)

log = get_logger(__name__)


def default_migrations_dir() -> Path:
    """`migrations/` at the repository root (the source tree or the container's /app)."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "migrations"
        if candidate.is_dir() and any(candidate.glob("0001_*.sql")):
            return candidate
    raise MigrationError("cannot find the migrations directory; set MIGRATIONS_DIR")


@dataclass(frozen=True)
class Migration:
    """One numbered migration with its SQL per flavour."""

    version: int
    name: str
    files: dict[str, Path] = field(hash=False)

    def path(self, flavour: Flavour) -> Path:
        """The file to run on `flavour`."""
        return self.files.get(flavour) or self.files["any"]

    def sql(self, flavour: Flavour) -> str:
        """The SQL to run on `flavour`."""
        return self.path(flavour).read_text(encoding="utf-8")

    def checksum(self, flavour: Flavour) -> str:
        """sha256 of the SQL, to notice an applied migration that was edited afterwards."""
        return hashlib.sha256(self.sql(flavour).encode()).hexdigest()


def discover(directory: Path) -> list[Migration]:
    """All migrations in `directory`, in order; a malformed set is an error, not a guess."""
    found: dict[int, tuple[str, dict[str, Path]]] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"migration file name not understood: {path.name}")
        version = int(match["version"])
        name, files = found.setdefault(version, (match["name"], {}))
        if name != match["name"]:
            raise MigrationError(f"two names for migration {version:04d}: {name}, {match['name']}")
        files[match["flavour"] or "any"] = path
    migrations = []
    for version, (name, files) in sorted(found.items()):
        if "any" in files and len(files) > 1:
            raise MigrationError(f"migration {version:04d} has both a common and a flavoured file")
        if "any" not in files and set(files) != set(FLAVOURS):
            raise MigrationError(
                f"migration {version:04d} needs both .timescale.sql and .postgres.sql"
            )
        migrations.append(Migration(version, name, files))
    return migrations


@dataclass(frozen=True)
class MigrationReport:
    """What one run did."""

    flavour: Flavour
    applied: list[str]
    already_applied: int


_SCHEMA_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    flavour     text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


async def migrate(
    dsn: str, *, directory: Path | None = None, retention_days: int = 400
) -> MigrationReport:
    """Apply every pending migration; a second run, or a concurrent one, changes nothing."""
    migrations = discover(directory or default_migrations_dir())
    try:
        conn = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"cannot connect to PostgreSQL: {exc}") from exc
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        try:
            return await _migrate_locked(conn, migrations, retention_days)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    finally:
        await conn.close()


async def _migrate_locked(
    conn: asyncpg.Connection, migrations: list[Migration], retention_days: int
) -> MigrationReport:
    await conn.execute(_SCHEMA_TABLE)
    rows = await conn.fetch("SELECT version, flavour, checksum FROM schema_migrations")
    applied = {row["version"]: row for row in rows}
    flavour = await _flavour(conn, recorded={row["flavour"] for row in rows})
    done: list[str] = []
    for migration in migrations:
        label = f"{migration.version:04d}_{migration.name}"
        if migration.version in applied:
            if applied[migration.version]["checksum"] != migration.checksum(flavour):
                raise MigrationError(
                    f"{label} was edited after it was applied; add a new migration"
                )
            continue
        try:
            async with conn.transaction():
                await conn.execute(migration.sql(flavour))
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, flavour, checksum)"
                    " VALUES ($1, $2, $3, $4)",
                    migration.version,
                    migration.name,
                    flavour,
                    migration.checksum(flavour),
                )
        except asyncpg.PostgresError as exc:
            raise MigrationError(f"{label} ({migration.path(flavour).name}) failed: {exc}") from exc
        log.info("migration.applied", migration=label, flavour=flavour)
        done.append(label)
    if flavour == "timescale":
        await _apply_retention(conn, retention_days)
    return MigrationReport(flavour=flavour, applied=done, already_applied=len(applied))


async def _flavour(conn: asyncpg.Connection, *, recorded: set[str]) -> Flavour:
    if recorded:
        if len(recorded) > 1:
            raise MigrationError(f"schema_migrations mixes flavours: {sorted(recorded)}")
        (only,) = recorded
        return "timescale" if only == "timescale" else "postgres"
    installed = await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
    if installed:
        return "timescale"
    available = await conn.fetchval(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    )
    if not available:
        return "postgres"
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except asyncpg.PostgresError as exc:
        log.warning("migration.timescaledb_unavailable", error=str(exc))
        return "postgres"
    return "timescale"


async def _apply_retention(conn: asyncpg.Connection, days: int) -> None:
    """Set the raw-event retention policy to `days`, only touching it if it differs."""
    current = await conn.fetchval(
        "SELECT config->>'drop_after' FROM timescaledb_information.jobs"
        " WHERE proc_name = 'policy_retention' AND hypertable_name = 'usage_events'"
    )
    wanted = f"{days} days"
    if current == wanted:
        return
    async with conn.transaction():
        await conn.execute("SELECT remove_retention_policy('usage_events', if_exists => true)")
        await conn.execute(
            "SELECT add_retention_policy('usage_events', drop_after => make_interval(days => $1))",
            days,
        )
    log.info("migration.retention_set", days=days, previous=current)
