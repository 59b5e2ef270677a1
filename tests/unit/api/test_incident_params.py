"""Parameters and bodies of /api/incidents: validation, cursors, routing of errors to statuses."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import make_mocked_request

from spendwatch.api.errors import ProblemError
from spendwatch.api.models import decode_cursor, encode_cursor
from spendwatch.api.models.incidents import IncidentListQuery, IncidentPatch, MttSummaryRow
from spendwatch.api.routes.incidents import COMMAND_STATUS
from spendwatch.api.validation import parse_query

INCIDENT = "6f1c7a52-1c7e-4c61-9a43-2a0d4a1b9f00"


def parse_list_params(query: dict[str, str] | list[tuple[str, str]]) -> dict[str, object]:
    request = make_mocked_request("GET", f"/api/incidents?{urlencode(query)}")
    parsed = parse_query(request, IncidentListQuery)
    return {
        "state": parsed.state,
        "detector": parsed.detector,
        "after": parsed.after,
        "limit": parsed.limit,
    }


def test_defaults() -> None:
    assert parse_list_params({}) == {
        "state": None,
        "detector": None,
        "after": None,
        "limit": 50,
    }


def test_good_params() -> None:
    at = datetime(2026, 11, 1, 12, tzinfo=UTC)
    params = parse_list_params(
        {
            "state": "acknowledged",
            "detector": "budget",
            "limit": "10",
            "cursor": encode_cursor(at, INCIDENT),
        }
    )
    assert params == {
        "state": "acknowledged",
        "detector": "budget",
        "after": (at, INCIDENT),
        "limit": 10,
    }


@pytest.mark.parametrize(
    "query",
    [
        {"state": "closed"},
        {"limit": "0"},
        {"limit": "201"},
        {"limit": "ten"},
        {"cursor": "garbage!"},
        {"cursor": "W10"},  # "[]"
        {"detector": "x" * 201},
        {"severity": "fatal"},
        {"stat": "open"},  # a typo is an error, not silently ignored
        [("state", "open"), ("state", "resolved")],
        {"detector": "spend\x00spike"},
    ],
)
def test_bad_params_are_400(query: dict[str, str] | list[tuple[str, str]]) -> None:
    with pytest.raises(ProblemError) as bad:
        parse_list_params(query)
    assert bad.value.status == 400


def test_cursor_round_trip_and_naive_times_refused() -> None:
    at = datetime(2026, 11, 1, 12, 30, 15, 123456, tzinfo=UTC)
    assert decode_cursor(encode_cursor(at, INCIDENT)) == (at, INCIDENT)
    with pytest.raises(ValueError, match="cursor"):
        decode_cursor(encode_cursor(datetime(2026, 11, 1), INCIDENT))
    with pytest.raises(ValueError, match="cursor"):
        decode_cursor(encode_cursor(at, "not-a-uuid"))


def test_command_errors_map_to_statuses() -> None:
    assert {code: status for code, (status, _) in COMMAND_STATUS.items()} == {
        "not_found": 404,
        "invalid_transition": 409,
        "invalid_command": 422,
        "timeout": 504,
        "unavailable": 503,
        "bad_reply": 502,
    }


def test_patch_body() -> None:
    assert IncidentPatch.model_validate({"action": "snooze", "minutes": 30}).minutes == 30
    for bad in (
        {"action": "close"},
        {"action": "snooze", "minutes": 0},
        {"action": "resolve", "extra": 1},
        {"action": "resolve", "note": "x" * 2001},
        {"action": "snooze"},
        {"action": "resolve", "minutes": 5},
        {},
    ):
        with pytest.raises(ValueError, match="validation error"):
            IncidentPatch.model_validate(bad)


def test_decimals_are_strings_in_json() -> None:
    row = MttSummaryRow.model_validate(
        {
            "detector": None,
            "incidents": 2,
            **{f"{m}_{s}": None for m in ("mttd", "mtti", "mttr") for s in ("mean", "p50", "p90")},
            "cost_micros": Decimal("1500000"),
        }
    )
    assert '"cost_micros":"1500000"' in row.model_dump_json()
