"""Login passwords for the database roles the migrations create (Grafana's `grafana_reader`).

`ALTER ROLE ... PASSWORD` takes no bind parameters, and a plain-text password in that
statement would land in the server log wherever statements are logged. So the password is
turned into a SCRAM-SHA-256 verifier here (what `psql`'s `\\password` does) and quoted by the
server (`format('%L')`): the password itself never leaves this process and is never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import unicodedata

import asyncpg

from spendwatch.common.errors import DatabaseError
from spendwatch.common.logging import get_logger

GRAFANA_READER = "grafana_reader"
SCRAM_ITERATIONS = 4096  # PostgreSQL's own default (scram_iterations)

log = get_logger(__name__)


def scram_sha256_verifier(
    password: str, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS
) -> str:
    """The `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` PostgreSQL stores.

    Clients normalise non-ASCII passwords (SASLprep, essentially NFKC) before hashing, so
    the verifier is made from the NFKC form too; ASCII passwords are unchanged by it.
    """
    salt = os.urandom(16) if salt is None else salt
    secret = unicodedata.normalize("NFKC", password).encode()
    salted = hashlib.pbkdf2_hmac("sha256", secret, salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


async def set_login_password(dsn: str, *, role: str, password: str) -> bool:
    """Give `role` LOGIN with `password`; False (and a warning) when the role does not exist."""
    try:
        conn = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"cannot connect to PostgreSQL: {exc}") from exc
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
            log.warning("db.role_missing", role=role, hint="see grafana/README.md")
            return False
        statement: str = await conn.fetchval(
            "SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', $1::text, $2::text)",
            role,
            scram_sha256_verifier(password),
        )
        await conn.execute(statement)
    except asyncpg.PostgresError as exc:
        # The error names the role and the reason, never the statement (it holds the verifier).
        raise DatabaseError(f"cannot set the password of {role}: {exc}") from exc
    finally:
        await conn.close()
    log.info("db.role_password_set", role=role)
    return True
