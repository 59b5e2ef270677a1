"""RFC 9457 problem documents (`application/problem+json`)."""

from __future__ import annotations

import json
from http import HTTPStatus

from aiohttp import web

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem(
    status: int,
    title: str | None = None,
    *,
    detail: str | None = None,
    type_: str = "about:blank",
    headers: dict[str, str] | None = None,
    **extensions: object,
) -> web.Response:
    """A problem+json response; `title` defaults to the status's reason phrase."""
    body: dict[str, object] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    body.update(extensions)
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )
