"""PostgreSQL / TimescaleDB access: the asyncpg pool, the migration runner, advisory locks."""

from spendwatch.common.db.locks import exclusive
from spendwatch.common.db.migrate import MigrationReport, migrate
from spendwatch.common.db.pool import create_pool

__all__ = ["MigrationReport", "create_pool", "exclusive", "migrate"]
