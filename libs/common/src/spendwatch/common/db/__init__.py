"""PostgreSQL / TimescaleDB access: the asyncpg pool and the migration runner."""

from spendwatch.common.db.migrate import MigrationReport, migrate
from spendwatch.common.db.pool import create_pool

__all__ = ["MigrationReport", "create_pool", "migrate"]
