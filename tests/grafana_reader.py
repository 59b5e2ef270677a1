"""Connecting as Grafana's read-only `grafana_reader` role (created by migration 0009)."""

from __future__ import annotations

import secrets
from urllib.parse import quote, urlsplit, urlunsplit

from spendwatch.common.db.roles import GRAFANA_READER, set_login_password


def as_role(database_url: str, *, role: str, password: str) -> str:
    """`database_url` with another user and password (same server and database)."""
    parts = urlsplit(database_url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(role)}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def grafana_reader_url(database_url: str) -> str:
    """Give `grafana_reader` LOGIN with a fresh password; the URL Grafana would connect with.

    Works whatever the server's authentication method (trust locally, SCRAM elsewhere).
    """
    password = secrets.token_urlsafe(16)
    assert await set_login_password(database_url, role=GRAFANA_READER, password=password)
    return as_role(database_url, role=GRAFANA_READER, password=password)
