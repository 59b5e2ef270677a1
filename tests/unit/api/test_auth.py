"""Token format and hashing, and who may do what (the auth decision table)."""

from __future__ import annotations

import hashlib
import string

import pytest

from spendwatch.api.auth import (
    ADMIN,
    ANONYMOUS,
    AuthDenied,
    Principal,
    authorize,
    bearer_token,
    generate_token,
    hash_token,
)
from spendwatch.api.settings import ApiSettings
from spendwatch.cli import tokens as cli_tokens

ADMIN_TOKEN = "the-admin-token"
USER = "sw_user"
ADMIN_USER = "sw_admin"
KNOWN = {
    hash_token(USER): Principal("ci", is_admin=False),
    hash_token(ADMIN_USER): Principal("ops", is_admin=True),
}


async def lookup(token_hash: str) -> Principal | None:
    return KNOWN.get(token_hash)


def test_tokens_are_prefixed_random_and_url_safe() -> None:
    made = {generate_token() for _ in range(50)}
    assert len(made) == 50
    for token in made:
        assert token.startswith("sw_")
        assert len(token) >= 3 + 43  # 32 bytes in base64url
        assert set(token[3:]) <= set(string.ascii_letters + string.digits + "-_")


def test_the_hash_is_sha256_hex_and_the_cli_agrees() -> None:
    token = generate_token()
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert cli_tokens.hash_token(token) == hash_token(token)
    assert cli_tokens.generate_token().startswith("sw_")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer   ", None),
        ("Basic abc", None),
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
    ],
)
def test_bearer_token(header: str | None, expected: str | None) -> None:
    assert bearer_token(header) == expected


def settings(**extra: str) -> ApiSettings:
    return ApiSettings.model_validate({"API_ADMIN_TOKEN": ADMIN_TOKEN, **extra})


# (method, Authorization header, auth on?) -> status or the principal
TABLE = [
    ("GET", None, True, 401),
    ("GET", "Bearer nope", True, 401),
    ("GET", f"Bearer {USER}", True, "ci"),
    ("GET", f"Bearer {ADMIN_USER}", True, "ops"),
    ("GET", f"Bearer {ADMIN_TOKEN}", True, "admin"),
    ("GET", None, False, "anonymous"),
    ("GET", "Bearer nope", False, "anonymous"),
    ("POST", None, True, 401),
    ("POST", "Bearer nope", True, 401),
    ("POST", f"Bearer {USER}", True, 403),
    ("PATCH", f"Bearer {USER}", True, 403),
    ("DELETE", f"Bearer {USER}", True, 403),
    ("PUT", f"Bearer {USER}", True, 403),
    ("POST", f"Bearer {ADMIN_USER}", True, "ops"),
    ("PATCH", f"Bearer {ADMIN_TOKEN}", True, "admin"),
    ("POST", None, False, "anonymous"),
    ("PATCH", f"Bearer {USER}", False, "anonymous"),
]


@pytest.mark.parametrize(("method", "header", "auth_on", "expected"), TABLE)
async def test_auth_decisions(
    method: str, header: str | None, auth_on: bool, expected: int | str
) -> None:
    config = settings(API_AUTH="on" if auth_on else "off")
    if isinstance(expected, int):
        with pytest.raises(AuthDenied) as denied:
            await authorize(method=method, authorization=header, settings=config, lookup=lookup)
        assert denied.value.status == expected
        return
    principal = await authorize(method=method, authorization=header, settings=config, lookup=lookup)
    assert principal.name == expected
    assert principal.actor == f"api:{expected}"


async def test_without_an_admin_token_setting_only_stored_tokens_count() -> None:
    config = ApiSettings.model_validate({})
    with pytest.raises(AuthDenied):
        await authorize(
            method="GET", authorization=f"Bearer {ADMIN_TOKEN}", settings=config, lookup=lookup
        )


async def test_an_absurdly_long_token_is_not_looked_up() -> None:
    async def must_not_be_called(_: str) -> Principal | None:
        raise AssertionError("looked up")

    with pytest.raises(AuthDenied):
        await authorize(
            method="GET",
            authorization="Bearer " + "x" * 10_000,
            settings=settings(),
            lookup=must_not_be_called,
        )


def test_special_principals_are_admins() -> None:
    assert ADMIN.actor == "api:admin"
    assert ANONYMOUS.actor == "api:anonymous"
    assert ADMIN.is_admin
    assert ANONYMOUS.is_admin


@pytest.mark.parametrize("name", ["", "   ", "admin", "Anonymous", "x" * 101, "tab\there"])
def test_cli_refuses_unusable_token_names(name: str) -> None:
    with pytest.raises(cli_tokens.TokenNameError):
        cli_tokens.valid_name(name)


def test_cli_token_names_are_stripped() -> None:
    assert cli_tokens.valid_name("  grafana ") == "grafana"
