"""Property tests: for any input the Cursor normalisers return a valid model or raise only
InvalidPayloadError (never KeyError, TypeError, ValueError, decimal or overflow errors), and the
page normalisers never raise at all."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from spendwatch.collector.cursor.normalise import (
    daily_usage_page,
    daily_usage_row,
    group,
    groups,
    member,
    member_spend,
    members,
    spend_page,
    usage_event,
    usage_events_page,
)
from spendwatch.common.errors import InvalidPayloadError
from spendwatch.common.events import (
    DailyUsageRow,
    Group,
    Member,
    MemberSpend,
    UsageRecordedV1,
)
from tests.unit.collector.cursor.payloads import (
    DAILY,
    DISCOUNTED_EVENT,
    GROUPS,
    MEMBERS,
    SPEND,
    USAGE_EVENTS,
)

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Scalars JSON can carry, plus what Python's json.loads also accepts (NaN, Infinity) and
# numbers at the edges of every range the normalisers check.
edge_numbers = st.sampled_from(
    [
        0,
        -1,
        1,
        2**62,
        2**62 + 1,
        2**63,
        -(2**63),
        10**30,
        1e300,
        -1e300,
        1e-300,
        0.5,
        -0.0,
        946_684_800_000,
        253_402_300_799_999,
        253_402_300_800_000,
        1750979225854,
    ]
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    edge_numbers,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["1750979225854", "1e999", "-0", "NaN", "2026-02-01T00:00:00Z", "a@b"]),
)
# Plain Python values a caller might put in a Mapping (st.from_type(object) is too wild: it can
# build objects that close file descriptors when collected).
python_values = st.one_of(
    *(
        st.from_type(t)
        for t in (int, float, complex, Decimal, Fraction, str, bytes, bool, type(None))
    ),
    *(st.from_type(t) for t in (datetime, date, list[int], dict[str, float], tuple[str, ...])),
    *(st.from_type(t) for t in (set[int], frozenset[str])),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=12), children, max_size=4),
    ),
    max_leaves=20,
)


def _mutate(base: Any, data: st.DataObject) -> Any:
    """Delete, replace or retype some keys of a valid payload, at any depth."""
    value = copy.deepcopy(base)
    if isinstance(value, dict) and value:
        for key in data.draw(st.lists(st.sampled_from(sorted(value)), max_size=4, unique=True)):
            action = data.draw(st.sampled_from(["delete", "replace", "recurse"]))
            if action == "delete":
                del value[key]
            elif action == "replace":
                value[key] = data.draw(json_values)
            else:
                value[key] = _mutate(value[key], data)
    elif isinstance(value, list) and value:
        index = data.draw(st.integers(0, len(value) - 1))
        value[index] = _mutate(value[index], data)
    elif data.draw(st.booleans()):
        value = data.draw(json_values)
    return value


def _only_invalid_payload(call: Callable[[], object], kind: type) -> None:
    reason = ""
    try:
        result = call()
    except InvalidPayloadError as exc:
        reason = str(exc)
    if reason:
        # The safety net's word: a validator let something through, a bug.
        assert "unhandled" not in reason, reason
    else:
        assert isinstance(result, kind)
        # What came out is valid by the wire contract, and survives a JSON round trip.
        assert kind.model_validate_json(result.model_dump_json()) == result  # type: ignore[attr-defined]


ITEM_NORMALISERS: list[tuple[str, Callable[[Any], object], type, Any]] = [
    (
        "usage_event",
        lambda raw: usage_event(raw, account="t", ingested_at=NOW),
        UsageRecordedV1,
        USAGE_EVENTS["usageEvents"][0],
    ),
    (
        "usage_event_discounted",
        lambda raw: usage_event(raw, account="t", ingested_at=NOW),
        UsageRecordedV1,
        DISCOUNTED_EVENT,
    ),
    ("member", member, Member, MEMBERS["teamMembers"][0]),
    ("member_spend", member_spend, MemberSpend, SPEND["teamMemberSpend"][0]),
    ("daily_usage_row", daily_usage_row, DailyUsageRow, DAILY["data"][0]),
    ("group", group, Group, GROUPS["groups"][0]),
]


@pytest.mark.parametrize(
    ("normaliser", "kind"),
    [(n, k) for _, n, k, _ in ITEM_NORMALISERS],
    ids=[name for name, *_ in ITEM_NORMALISERS],
)
@PROPERTY
@given(raw=json_values)
def test_any_json_is_a_model_or_invalid_payload(
    normaliser: Callable[[Any], object], kind: type, raw: Any
) -> None:
    _only_invalid_payload(lambda: normaliser(raw), kind)


@pytest.mark.parametrize(
    ("normaliser", "kind", "base"),
    [(n, k, b) for _, n, k, b in ITEM_NORMALISERS],
    ids=[name for name, *_ in ITEM_NORMALISERS],
)
@PROPERTY
@given(data=st.data())
def test_mutated_examples_are_a_model_or_invalid_payload(
    normaliser: Callable[[Any], object], kind: type, base: Any, data: st.DataObject
) -> None:
    raw = _mutate(base, data)
    _only_invalid_payload(lambda: normaliser(raw), kind)


@pytest.mark.parametrize(
    ("normaliser", "kind", "base"),
    [(n, k, b) for _, n, k, b in ITEM_NORMALISERS],
    ids=[name for name, *_ in ITEM_NORMALISERS],
)
@PROPERTY
@given(data=st.data())
def test_python_objects_in_known_fields_are_a_model_or_invalid_payload(
    normaliser: Callable[[Any], object], kind: type, base: Any, data: st.DataObject
) -> None:
    # Callers hand over a Mapping, not necessarily parsed JSON: any Python value in any field.
    raw = dict(base)
    for key in data.draw(st.lists(st.sampled_from(sorted(raw)), min_size=1, max_size=3)):
        raw[key] = data.draw(python_values)
    _only_invalid_payload(lambda: normaliser(raw), kind)


@PROPERTY
@given(data=st.data())
def test_listings_raise_only_invalid_payload(data: st.DataObject) -> None:
    for normaliser, base in ((members, MEMBERS), (groups, GROUPS)):
        body = _mutate(base, data) if data.draw(st.booleans()) else data.draw(json_values)
        reason = ""
        try:
            normaliser(body)
        except InvalidPayloadError as exc:
            reason = str(exc)
        assert "unhandled" not in reason, reason


PAGE_EXAMPLES: list[tuple[str, Callable[[bytes], Any], Any, str]] = [
    (
        "usage_events_page",
        lambda body: usage_events_page(body, number=1, account="t", ingested_at=NOW),
        USAGE_EVENTS,
        "events",
    ),
    ("spend_page", lambda body: spend_page(body, number=1), SPEND, "rows"),
    ("daily_usage_page", lambda body: daily_usage_page(body, number=1), DAILY, "rows"),
]


@pytest.mark.parametrize(
    ("parse", "base", "items"),
    [(p, b, i) for _, p, b, i in PAGE_EXAMPLES],
    ids=[name for name, *_ in PAGE_EXAMPLES],
)
@PROPERTY
@given(data=st.data())
def test_pages_never_raise_and_account_for_every_item(
    parse: Callable[[bytes], Any], base: Any, items: str, data: st.DataObject
) -> None:
    choice = data.draw(st.sampled_from(["mutated", "json", "bytes"]))
    if choice == "bytes":
        body = data.draw(st.binary(max_size=64))
    else:
        payload = _mutate(base, data) if choice == "mutated" else data.draw(json_values)
        body = json.dumps(payload).encode()
    page = parse(body)
    if page.envelope_ok:
        assert len(getattr(page, items)) + len(page.invalid) == page.received
    else:
        assert getattr(page, items) == []
        assert page.invalid == [(body, page.invalid[0][1])]
    for raw, reason in page.invalid:
        assert isinstance(raw, bytes)
        assert reason
        assert "unhandled" not in reason, reason


@PROPERTY
@given(
    cents=st.decimals(
        min_value=Decimal(-(10**9)), max_value=Decimal(10**9), places=5, allow_nan=False
    )
)
def test_charged_cents_convert_without_binary_noise(cents: Decimal) -> None:
    # A JSON number with up to 5 decimals, as Python parses it (a float), gives the exact micros.
    raw = dict(USAGE_EVENTS["usageEvents"][0], chargedCents=float(cents))
    assume(Decimal(repr(float(cents))) == cents)  # up to 15 significant digits round-trip
    expected = int((cents * 10_000).to_integral_value())  # half-even, the Decimal default
    assert usage_event(raw, account="t", ingested_at=NOW).cost_micros == expected


@PROPERTY
@given(data=st.data())
def test_event_id_ignores_cost_and_kind_but_not_identity(data: st.DataObject) -> None:
    raw = copy.deepcopy(USAGE_EVENTS["usageEvents"][0])
    first = usage_event(raw, account="t", ingested_at=NOW)
    raw["chargedCents"] = data.draw(st.floats(0, 10_000, allow_nan=False))
    raw["kind"] = data.draw(st.sampled_from(["Usage-based", "Included in Pro", "Free"]))
    raw["tokenUsage"]["totalCents"] = data.draw(st.floats(0, 10_000, allow_nan=False))
    raw["isHeadless"] = data.draw(st.booleans())
    again = usage_event(raw, account="t", ingested_at=datetime.now(UTC))
    assert again.event_id == first.event_id
