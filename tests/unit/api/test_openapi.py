"""The OpenAPI document: every route is in it, generated from the models the handlers use."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web

from spendwatch.api.main import create_app
from spendwatch.api.openapi import OPERATIONS
from spendwatch.api.routes.openapi import DOCUMENT
from spendwatch.api.settings import ApiSettings


@pytest.fixture(scope="module")
def app() -> web.Application:
    return create_app(ApiSettings.model_validate({"DATABASE_URL": "postgresql://127.0.0.1:1/x"}))


@pytest.fixture(scope="module")
def document(app: web.Application) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(app[DOCUMENT])
    return parsed


def test_every_route_declares_its_contract(app: web.Application) -> None:
    undeclared = [
        f"{route.method} {route.resource.canonical if route.resource else '?'}"
        for route in app.router.routes()
        if route.method != "HEAD" and route.handler not in OPERATIONS
    ]
    assert undeclared == []


def test_every_route_is_documented(app: web.Application, document: dict[str, Any]) -> None:
    routes = {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert documented == routes
    assert document["openapi"] == "3.1.0"


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    refs = {
        ref.rsplit("/", 1)[1]
        for ref in _values(document, "$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/")
    }
    assert refs
    assert refs <= set(schemas)


def test_reads_need_a_token_and_probes_do_not(document: dict[str, Any]) -> None:
    assert document["security"] == [{"bearer": []}]
    incidents = document["paths"]["/api/incidents"]["get"]
    assert "security" not in incidents  # the global bearer requirement applies
    assert {"400", "401", "403", "503"} <= set(incidents["responses"])
    assert document["paths"]["/healthz"]["get"]["security"] == []
    assert "401" not in document["paths"]["/healthz"]["get"]["responses"]


def test_query_parameters_come_from_the_query_model(document: dict[str, Any]) -> None:
    params = {p["name"]: p for p in document["paths"]["/api/incidents"]["get"]["parameters"]}
    assert set(params) >= {"state", "detector", "severity", "subject", "limit", "cursor"}
    assert params["limit"]["schema"] == {
        "default": 50,
        "maximum": 200,
        "minimum": 1,
        "type": "integer",
    }
    detail = document["paths"]["/api/incidents/{incident_id}"]["get"]["parameters"]
    assert detail == [
        {
            "name": "incident_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "format": "uuid"},
        }
    ]


def test_decimals_are_documented_as_strings(document: dict[str, Any]) -> None:
    value = document["components"]["schemas"]["IncidentOut"]["properties"]["value"]
    assert {"type": "string"} in value["anyOf"]


def test_an_optional_body_may_be_left_out(document: dict[str, Any]) -> None:
    ack = document["paths"]["/api/incidents/{incident_id}/ack"]["post"]
    assert ack["requestBody"]["required"] is False
    patch = document["paths"]["/api/incidents/{incident_id}"]["patch"]
    assert patch["requestBody"]["required"] is True
    assert "422" in patch["responses"]


def _values(node: Any, key: str) -> list[Any]:
    if isinstance(node, dict):
        found = [node[key]] if key in node else []
        return found + [v for child in node.values() for v in _values(child, key)]
    if isinstance(node, list):
        return [v for child in node for v in _values(child, key)]
    return []
