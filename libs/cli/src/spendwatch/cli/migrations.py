"""Running migrations from the CLI and saying what they did in one line."""

from __future__ import annotations

from spendwatch.common.db.migrate import MigrationReport, migrate
from spendwatch.common.db.roles import GRAFANA_READER, set_login_password
from spendwatch.common.settings import MigrateSettings


async def run_migrations(dsn: str, settings: MigrateSettings) -> MigrationReport:
    """Apply pending migrations to `dsn` with the directory and retention from `settings`.

    Then, with GRAFANA_DB_PASSWORD set, let `grafana_reader` (made by 0009) log in with it.
    """
    report = await migrate(
        dsn, directory=settings.migrations_dir, retention_days=settings.usage_retention_days
    )
    password = settings.grafana_db_password
    if password is not None and password.get_secret_value():
        await set_login_password(dsn, role=GRAFANA_READER, password=password.get_secret_value())
    return report


def summary(report: MigrationReport) -> str:
    """`migrations (postgres): applied 0001_schema, 0002_usage_history` or `... up to date`."""
    if report.applied:
        return f"migrations ({report.flavour}): applied {', '.join(report.applied)}"
    return f"migrations ({report.flavour}): up to date, {report.already_applied} already applied"
