"""The OpenAPI 3.1 document, built from the routes and the pydantic models they declare.

A handler declares its contract with `@operation(...)`: the query model it parses, the body
model it reads, the model it answers with. The same models validate the request and serialise
the answer, and the document is generated from them and the router, so it cannot drift.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from spendwatch.api.models import Problem

H = TypeVar("H", bound=Callable[..., Any])
REF_TEMPLATE = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")
# Every operation may answer these; add others per operation with `errors=`.
COMMON_ERRORS = (400, 503)
AUTH_ERRORS = (401, 403)


@dataclass(frozen=True)
class Operation:
    """What one handler takes and answers."""

    summary: str
    response: type[BaseModel] | None = None
    status: int = 200
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    tag: str | None = None
    public: bool = False
    # A non-JSON answer (CSV, text) or request body, described by its media type only.
    response_media: str = "application/json"
    body_media: str = "application/json"
    # An answer or a body that is not described by a model (metrics text, Slack's form post).
    raw_response: bool = False
    raw_body: bool = False
    path_params: dict[str, dict[str, Any]] = field(default_factory=dict)


OPERATIONS: dict[Callable[..., Any], Operation] = {}


def operation(summary: str, **details: Any) -> Callable[[H], H]:
    """Declare a handler's contract (see `Operation`); the handler itself is unchanged."""

    def mark(handler: H) -> H:
        OPERATIONS[handler] = Operation(summary, **details)
        return handler

    return mark


def _models(operations: Iterable[Operation]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(Problem, "serialization"): None}
    for op in operations:
        if op.response is not None and op.response_media == "application/json":
            wanted[(op.response, "serialization")] = None
        if op.body is not None and op.body_media == "application/json":
            wanted[(op.body, "validation")] = None
    return list(wanted)


def _parameters(op: Operation, path: str) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": op.path_params.get(name, {"type": "string"}),
        }
        for name in _PATH_PARAM.findall(path)
    ]
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template=REF_TEMPLATE)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            param: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": {k: v for k, v in prop.items() if k not in {"title", "description"}},
            }
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
    return params


def _problem(status: int) -> dict[str, Any]:
    return {
        "description": HTTPStatus(status).phrase,
        "content": {
            "application/problem+json": {"schema": {"$ref": REF_TEMPLATE.format(model="Problem")}}
        },
    }


def _operation(
    op: Operation, method: str, path: str, refs: Mapping[tuple[Any, JsonSchemaMode], Any]
) -> dict[str, Any]:
    doc: dict[str, Any] = {"summary": op.summary, "operationId": f"{method}_{path}"}
    if op.tag:
        doc["tags"] = [op.tag]
    if params := _parameters(op, path):
        doc["parameters"] = params
    if op.body is not None or op.raw_body:
        body_schema = (
            refs[(op.body, "validation")]
            if op.body is not None and op.body_media == "application/json"
            else {"type": "string"}
        )
        # A body whose fields are all optional may be left out (`read_body` reads it as `{}`).
        required = op.body is None or any(f.is_required() for f in op.body.model_fields.values())
        doc["requestBody"] = {
            "required": required,
            "content": {op.body_media: {"schema": body_schema}},
        }
    ok: dict[str, Any] = {"description": HTTPStatus(op.status).phrase}
    if op.response is not None or op.raw_response:
        schema = (
            refs[(op.response, "serialization")]
            if op.response is not None and op.response_media == "application/json"
            else {"type": "string"}
        )
        ok["content"] = {op.response_media: {"schema": schema}}
    responses: dict[str, Any] = {str(op.status): ok}
    errors = set(COMMON_ERRORS) | set(op.errors)
    if op.body is not None and op.body_media == "application/json":
        errors.add(422)
    if not op.public:
        errors |= set(AUTH_ERRORS)
    for status in sorted(errors):
        responses[str(status)] = _problem(status)
    doc["responses"] = responses
    if op.public:
        doc["security"] = []
    return doc


def build_document(router: web.UrlDispatcher, *, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route on `router` declared with `@operation`."""
    routes: list[tuple[str, str, Operation]] = []
    for route in router.routes():
        op = OPERATIONS.get(route.handler)
        if op is None or route.resource is None or route.method == "HEAD":
            continue
        routes.append((route.resource.canonical, route.method.lower(), op))
    refs, schemas = models_json_schema(
        _models(op for _, _, op in routes), ref_template=REF_TEMPLATE
    )
    paths: dict[str, dict[str, Any]] = {}
    for path, method, op in sorted(routes, key=lambda r: (r[0], r[1])):
        paths.setdefault(path, {})[method] = _operation(op, method, path, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "spendwatch API",
            "version": version,
            "description": "Spend, usage, anomalies and incidents of AI coding assistants.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
