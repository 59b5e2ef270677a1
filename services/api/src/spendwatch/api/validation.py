"""Reading a request's query and body into its pydantic model, or a clear problem."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from spendwatch.api.errors import ProblemError

M = TypeVar("M", bound=BaseModel)


def describe(exc: ValidationError) -> str:
    """`field: message; ...` for a person."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
    )


def parse_query(request: web.Request, model: type[M]) -> M:
    """The query string as `model`; 400 if a parameter is unknown, repeated or invalid."""
    query = request.query
    repeated = sorted({k for k in query if len(query.getall(k)) > 1})
    if repeated:
        raise ProblemError(
            400, "Invalid parameter", detail=f"{', '.join(repeated)}: given more than once"
        )
    # PostgreSQL text cannot hold NUL, so such a value can only be a bad request.
    if with_nul := sorted({k for k, v in query.items() if "\x00" in v}):
        raise ProblemError(
            400, "Invalid parameter", detail=f"{', '.join(with_nul)}: contains a NUL character"
        )
    try:
        return model.model_validate(dict(query))
    except ValidationError as exc:
        raise ProblemError(400, "Invalid parameter", detail=describe(exc)) from None


async def read_text(request: web.Request, *, what: str = "body") -> str:
    """The body as text; 400 if it is not UTF-8 (`what` names it in the problem)."""
    try:
        return (await request.read()).decode("utf-8")
    except UnicodeDecodeError:
        raise ProblemError(400, "Malformed body", detail=f"The {what} is not UTF-8.") from None


async def read_body(request: web.Request, model: type[M], *, strict: bool = False) -> M:
    """The JSON body as `model` (an empty body is `{}`); 400 if not JSON, 422 if invalid.

    `strict`: JSON types must match exactly (`false` is not 0, `3.0` is not a count).
    """
    text = await read_text(request)
    if not text.strip():
        text = "{}"
    try:
        data: Any = json.loads(text)
    except ValueError:
        raise ProblemError(400, "Malformed JSON", detail="The body is not JSON.") from None
    try:
        if strict:
            return model.model_validate_json(text, strict=True)
        return model.model_validate(data)
    except ValidationError as exc:
        raise ProblemError(422, "Invalid body", detail=describe(exc)) from None
