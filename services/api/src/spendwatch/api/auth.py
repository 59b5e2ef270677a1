"""API tokens and the auth middleware: who is calling, and may they do this.

Tokens are `sw_` + `secrets.token_urlsafe(32)` (32 random bytes) and are stored only as the
SHA-256 hex of the whole token. A fast unsalted hash is enough here: a 256-bit random secret
cannot be guessed or dictionary-attacked, so a slow password hash would only cost latency.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler

from spendwatch.api.keys import DB, PRINCIPAL, SETTINGS
from spendwatch.api.problems import problem
from spendwatch.api.settings import ApiSettings
from spendwatch.common.logging import get_logger

log = get_logger("spendwatch.api.auth")

TOKEN_PREFIX = "sw_"  # noqa: S105 - a prefix, not a secret
TOKEN_BYTES = 32
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Probes, scrapes and Slack (which signs its requests) need no token.
OPEN_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/api/slack/interactions", "/api/openapi.json"}
)
_MAX_TOKEN_LENGTH = 512


def generate_token() -> str:
    """A new API token: `sw_` and 32 random bytes, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """How a token is stored and looked up: the SHA-256 hex of the whole token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who made the request; `actor` is what incident commands record."""

    name: str
    is_admin: bool

    @property
    def actor(self) -> str:
        """`api:<token name>`, `api:admin` or `api:anonymous`."""
        return f"api:{self.name}"


ANONYMOUS = Principal("anonymous", is_admin=True)  # API_AUTH=off: everything is allowed
ADMIN = Principal("admin", is_admin=True)  # API_ADMIN_TOKEN

TokenLookup = Callable[[str], Awaitable[Principal | None]]


class AuthDenied(Exception):  # noqa: N818 - a decision, not a failure
    """The request may not proceed: 401 (who are you?) or 403 (not allowed)."""

    def __init__(self, status: int, detail: str, *, error: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.error = error  # RFC 6750 error code for WWW-Authenticate


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


async def authorize(
    *, method: str, authorization: str | None, settings: ApiSettings, lookup: TokenLookup
) -> Principal:
    """The caller of a request to a protected path, or AuthDenied; `lookup` reads api_tokens."""
    if not settings.auth_enabled:
        return ANONYMOUS
    token = bearer_token(authorization)
    if token is None:
        raise AuthDenied(401, "Send `Authorization: Bearer <token>`.")
    principal: Principal | None = None
    admin_token = settings.admin_token
    if admin_token is not None and hmac.compare_digest(
        token.encode(), admin_token.get_secret_value().encode()
    ):
        principal = ADMIN
    elif len(token) <= _MAX_TOKEN_LENGTH:
        principal = await lookup(hash_token(token))
    if principal is None:
        raise AuthDenied(401, "The token is unknown or revoked.", error="invalid_token")
    if method.upper() in WRITE_METHODS and not principal.is_admin:
        raise AuthDenied(
            403,
            "This request changes something; it needs an admin token.",
            error="insufficient_scope",
        )
    return principal


def database_lookup(pool: asyncpg.Pool) -> TokenLookup:
    """Find a live token by its hash, and note that it was used."""

    async def lookup(token_hash: str) -> Principal | None:
        # last_used_at is written at most once a minute per token, not on every request.
        row = await pool.fetchrow(
            """
            WITH found AS (
                SELECT token_id, name, is_admin, last_used_at FROM api_tokens
                WHERE token_hash = $1 AND revoked_at IS NULL
            ), touched AS (
                UPDATE api_tokens AS t SET last_used_at = now()
                FROM found AS f
                WHERE t.token_id = f.token_id
                  AND (f.last_used_at IS NULL OR f.last_used_at < now() - interval '1 minute')
            )
            SELECT name, is_admin FROM found
            """,
            token_hash,
        )
        return Principal(row["name"], row["is_admin"]) if row is not None else None

    return lookup


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Reads need a valid token, writes an admin token; open paths and API_AUTH=off pass."""
    # Unknown paths and methods answer 404/405 as they would anyway; nothing there to protect.
    if request.path in OPEN_PATHS or request.match_info.http_exception is not None:
        return await handler(request)
    settings = request.app[SETTINGS]
    try:
        principal = await authorize(
            method=request.method,
            authorization=request.headers.get("Authorization"),
            settings=settings,
            lookup=database_lookup(request.app[DB]),
        )
    except AuthDenied as exc:
        # Never log the token itself; the reason and the route are enough.
        log.info("auth.denied", status=exc.status, method=request.method, path=request.path)
        challenge = "Bearer" if exc.error is None else f'Bearer error="{exc.error}"'
        return problem(exc.status, detail=exc.detail, headers={"WWW-Authenticate": challenge})
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        log.warning("auth.database_failed", error=type(exc).__name__)
        return problem(
            503, detail="spendwatch cannot check the token: its database is unreachable."
        )
    request[PRINCIPAL] = principal
    return await handler(request)
