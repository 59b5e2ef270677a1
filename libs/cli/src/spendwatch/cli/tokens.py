"""`spendwatch token create|list|revoke`: API tokens, stored hashed; a token is shown only once.

The format and the hash are the API's (spendwatch.api.auth, which the CLI does not import):
`sw_` + `secrets.token_urlsafe(32)`, stored as the SHA-256 hex of the whole token. A fast hash
is fine for 256 random bits: there is nothing to guess or look up in a dictionary.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

import asyncpg
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from spendwatch.common.db import create_pool
from spendwatch.common.errors import SpendwatchError

TOKEN_PREFIX = "sw_"  # noqa: S105 - a prefix, not a secret
MAX_NAME_LENGTH = 100
# The API's own actors (api:admin is API_ADMIN_TOKEN, api:anonymous is API_AUTH=off).
RESERVED_NAMES = frozenset({"admin", "anonymous"})


class TokenNameError(SpendwatchError):
    """The name is taken or not a usable name."""


def generate_token() -> str:
    """A new API token: `sw_` and 32 random bytes, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token: SHA-256 hex (must match spendwatch.api.auth.hash_token)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class CreatedToken:
    """A token just stored; `token` exists nowhere else."""

    token_id: str
    name: str
    is_admin: bool
    token: str


def valid_name(name: str) -> str:
    """`name` stripped; TokenNameError if empty, too long or not printable."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise TokenNameError(
            f"a token name is 1 to {MAX_NAME_LENGTH} printable characters, got {name!r}"
        )
    if name.lower() in RESERVED_NAMES:
        raise TokenNameError(f"{name!r} is reserved for the API's own actors; choose another name")
    return name


async def create_token(database_url: str, *, name: str, admin: bool) -> CreatedToken:
    """Store a new token named `name`; TokenNameError if that name is taken."""
    name = valid_name(name)
    token = generate_token()
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        token_id = await pool.fetchval(
            """
            INSERT INTO api_tokens (token_id, name, token_hash, is_admin)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT (name) DO NOTHING
            RETURNING token_id
            """,
            uuid.uuid4(),
            name,
            hash_token(token),
            admin,
        )
    except asyncpg.PostgresError as exc:  # e.g. not migrated yet
        raise SpendwatchError(f"cannot store the token: {exc}") from exc
    finally:
        await pool.close()
    if token_id is None:
        raise TokenNameError(f"a token named {name!r} already exists; choose another name")
    return CreatedToken(token_id=str(token_id), name=name, is_admin=admin, token=token)


def created_panel(created: CreatedToken) -> Panel:
    """What `token create` prints: the token, once, and how to use it."""
    role = "admin (reads and writes)" if created.is_admin else "read-only"
    body = Text()
    body.append(created.token + "\n\n", style="bold")
    body.append(f"name: {created.name}   role: {role}\n")
    body.append("Send it as `Authorization: Bearer <token>`. ")
    body.append("It is shown only now; spendwatch keeps only its hash.", style="yellow")
    return Panel(body, title="new API token", expand=False)


async def list_tokens(database_url: str) -> list[asyncpg.Record]:
    """Every token's name, role and dates (never the hash)."""
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        rows: list[asyncpg.Record] = await pool.fetch(
            "SELECT name, is_admin, created_at, last_used_at, revoked_at FROM api_tokens"
            " ORDER BY created_at, name"
        )
    except asyncpg.PostgresError as exc:
        raise SpendwatchError(f"cannot read the tokens: {exc}") from exc
    finally:
        await pool.close()
    return rows


async def revoke_token(database_url: str, *, name: str) -> bool:
    """Revoke the token named `name` (the API refuses it from now on); False if already revoked.

    TokenNameError if there is no such token.
    """
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        row = await pool.fetchrow(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE name = $1"
            " RETURNING revoked_at = now() AS revoked_now",
            name.strip(),
        )
    except asyncpg.PostgresError as exc:
        raise SpendwatchError(f"cannot revoke the token: {exc}") from exc
    finally:
        await pool.close()
    if row is None:
        raise TokenNameError(f"no token named {name!r}")
    revoked_now: bool = row["revoked_now"]
    return revoked_now


def tokens_table(rows: list[asyncpg.Record]) -> Table:
    """What `token list` prints."""
    table = Table(title=f"{len(rows)} API tokens")
    for column in ("name", "role", "created", "last used", "revoked"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["name"],
            "admin" if r["is_admin"] else "read-only",
            f"{r['created_at']:%Y-%m-%d %H:%M}",
            f"{r['last_used_at']:%Y-%m-%d %H:%M}" if r["last_used_at"] else "-",
            f"{r['revoked_at']:%Y-%m-%d %H:%M}" if r["revoked_at"] else "-",
        )
    return table
