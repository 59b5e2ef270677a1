"""Running migrations from the CLI and saying what they did in one line."""

from __future__ import annotations

from spendwatch.common.db.migrate import MigrationReport, migrate
from spendwatch.common.settings import MigrateSettings


async def run_migrations(dsn: str, settings: MigrateSettings) -> MigrationReport:
    """Apply pending migrations to `dsn` with the directory and retention from `settings`."""
    return await migrate(
        dsn, directory=settings.migrations_dir, retention_days=settings.usage_retention_days
    )


def summary(report: MigrationReport) -> str:
    """`migrations (postgres): applied 0001_schema, 0002_usage_history` or `... up to date`."""
    if report.applied:
        return f"migrations ({report.flavour}): applied {', '.join(report.applied)}"
    return f"migrations ({report.flavour}): up to date, {report.already_applied} already applied"
