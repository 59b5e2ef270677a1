"""Cursor normalisers against the documented payload examples (reference/provider-apis.md §1)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from spendwatch.collector.cursor import normalise
from spendwatch.collector.cursor.normalise import (
    daily_usage_page,
    daily_usage_row,
    groups,
    member_spend,
    members,
    normalise_kind,
    spend_page,
    usage_event,
    usage_events_page,
)
from spendwatch.common.errors import InvalidPayloadError
from spendwatch.common.events import UsageRecordedV1
from tests.unit.collector.cursor.payloads import (
    DAILY,
    DISCOUNTED_EVENT,
    DROP,
    GROUPS,
    MEMBERS,
    MEMBERS_BARE,
    MEMBERS_WRAPPED_OLD,
    SPEND,
    USAGE_EVENTS,
    event,
)

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)


def _event(raw: Any, account: str = "team-1") -> UsageRecordedV1:
    return usage_event(raw, account=account, ingested_at=NOW)


def _body(payload: Any) -> bytes:
    return json.dumps(payload).encode()


# --- usage events -------------------------------------------------------------------------------


def test_documented_token_based_event() -> None:
    out = _event(event(0))
    assert out.provider == "cursor"
    assert out.account == "team-1"
    assert out.occurred_at == datetime(2025, 6, 26, 23, 7, 5, 854000, tzinfo=UTC)
    assert out.user_email == "developer@company.com"
    assert out.model == "claude-4.5-sonnet"
    assert out.kind == "usage_based"
    assert out.max_mode is True
    assert (out.input_tokens, out.output_tokens) == (126, 450)
    assert (out.cache_write_tokens, out.cache_read_tokens) == (6112, 11964)
    # 21.36232 cents = 213623.2 micro-dollars -> 213623 (half-even, at the end).
    assert out.cost_micros == 213623
    assert out.request_units == Decimal(5)
    assert out.is_headless is False
    assert out.ingested_at == NOW
    assert out.event_id.startswith("cursor:")


def test_documented_included_event_without_token_usage() -> None:
    out = _event(event(1))
    assert out.kind == "included"
    assert out.cost_micros == 80000  # chargedCents 8
    assert out.request_units == Decimal("1.4")
    assert (out.input_tokens, out.output_tokens, out.cache_read_tokens) == (0, 0, 0)


def test_discounted_event_uses_charged_cents() -> None:
    assert _event(DISCOUNTED_EVENT).cost_micros == 373300  # 37.33 cents


def test_discounted_event_without_charged_cents_reconstructs_it() -> None:
    raw = copy.deepcopy(DISCOUNTED_EVENT)
    del raw["chargedCents"]
    # 40.167 x (1 - 10%) + 1.18 = 37.3303 cents; Cursor rounds its own figure to 37.33.
    assert _event(raw).cost_micros == 373303
    assert abs(_event(raw).cost_micros - _event(DISCOUNTED_EVENT).cost_micros) < 10_000


def test_fallback_to_total_cents_plus_token_fee() -> None:
    # Older answers have no chargedCents: totalCents 20.18232 + cursorTokenFee 1.18.
    assert _event(event(0, chargedCents=DROP)).cost_micros == 213623
    assert _event(event(0, chargedCents=DROP, cursorTokenFee=DROP)).cost_micros == 201823


def test_event_with_neither_charge_nor_token_usage_costs_nothing() -> None:
    raw = event(1, kind="Errored, Not Charged", chargedCents=DROP)
    out = _event(raw)
    assert (out.kind, out.cost_micros) == ("errored", 0)


@pytest.mark.parametrize(
    ("cents", "micros"),
    [
        (0.00005, 0),  # 0.5 micro -> 0 (half to even)
        (0.00015, 2),  # 1.5 -> 2
        (0.00025, 2),  # 2.5 -> 2
        (0.00035, 4),
        (0.1, 1000),
        (0.30000000000000004, 3000),  # 0.1 + 0.2: binary noise stays below a micro
        (1234567.891, 12345678910),
        (-1.5, -15000),
        ("21.36232", 213623),  # a numeric string is read exactly too
    ],
)
def test_cents_become_micros_exactly(cents: float | str, micros: int) -> None:
    assert _event(event(0, chargedCents=cents)).cost_micros == micros


def test_timestamp_as_number_equals_timestamp_as_string() -> None:
    as_text = _event(event(0))
    as_number = _event(event(0, timestamp=1750979225854))
    assert as_number.occurred_at == as_text.occurred_at
    assert as_number.event_id == as_text.event_id


def test_email_is_lower_cased_and_trimmed() -> None:
    out = _event(event(0, userEmail="  Developer@Company.COM "))
    assert out.user_email == "developer@company.com"
    assert out.event_id == _event(event(0)).event_id


@pytest.mark.parametrize(
    ("kind", "ours"),
    [
        ("Usage-based", "usage_based"),
        ("Included in Business", "included"),
        ("Included in Pro", "included"),
        ("Included", "included"),
        ("Errored, Not Charged", "errored"),
        ("Free", "free"),
        ("USAGE_EVENT_KIND_USAGE_BASED", "usage_based"),
        ("Aborted, Not Charged", "aborted_not_charged"),
        ("User API Key", "user_api_key"),
        ("  ", "unknown"),
    ],
)
def test_kind_vocabulary(kind: str, ours: str) -> None:
    assert normalise_kind(kind) == ours


def test_optional_fields_may_be_missing_or_null() -> None:
    raw = {
        "timestamp": "1750979225854",
        "userEmail": "a@b.co",
        "model": "gpt-5",
        "kind": "Usage-based",
        "maxMode": None,
        "isHeadless": None,
        "tokenUsage": {"inputTokens": None, "outputTokens": 3, "totalCents": 1.5},
    }
    out = _event(raw)
    assert (out.max_mode, out.is_headless, out.input_tokens, out.output_tokens) == (
        False,
        False,
        0,
        3,
    )
    assert out.cost_micros == 15000
    assert out.request_units == 0


def test_unknown_fields_are_ignored() -> None:
    assert _event(event(0, someNewField={"x": 1})) == _event(event(0))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"userEmail": DROP}, "userEmail"),
        ({"userEmail": "not-an-email"}, "userEmail"),
        ({"userEmail": 42}, "userEmail"),
        ({"timestamp": DROP}, "timestamp"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"timestamp": "1750979225"}, "timestamp"),  # seconds, not milliseconds
        ({"timestamp": True}, "timestamp"),
        ({"model": DROP}, "model"),
        ({"kind": 3}, "kind"),
        ({"chargedCents": "a lot"}, "chargedCents"),
        ({"chargedCents": float("nan")}, "chargedCents"),
        ({"chargedCents": float("inf")}, "chargedCents"),
        ({"chargedCents": True}, "chargedCents"),
        ({"chargedCents": 1e300}, "chargedCents"),
        ({"requestsCosts": -1}, "requestsCosts"),
        ({"tokenUsage": {"inputTokens": "abc"}}, "tokenUsage.inputTokens"),
        ({"tokenUsage": {"inputTokens": -5}}, "tokenUsage.inputTokens"),
        ({"tokenUsage": {"inputTokens": 1.5}}, "tokenUsage.inputTokens"),
        ({"tokenUsage": [1, 2]}, "tokenUsage"),
        ({"maxMode": "perhaps"}, "maxMode"),
    ],
)
def test_malformed_events_name_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidPayloadError, match=field.replace(".", r"\.")) as info:
        _event(event(0, **changes))
    assert "unhandled" not in str(info.value)


@pytest.mark.parametrize("raw", [None, [], "event", 3, True])
def test_non_objects_are_invalid(raw: Any) -> None:
    with pytest.raises(InvalidPayloadError, match="expected a JSON object"):
        _event(raw)


# --- event ids ----------------------------------------------------------------------------------


def test_event_id_is_stable_and_ignores_cost_and_kind() -> None:
    first = _event(event(0))
    assert _event(event(0)).event_id == first.event_id
    corrected = _event(event(0, chargedCents=19.5, kind="Included in Business"))
    assert corrected.event_id == first.event_id
    assert corrected.cost_micros != first.cost_micros


def test_event_id_ignores_key_order_and_number_spelling() -> None:
    raw = event(1)
    shuffled = dict(reversed(list(raw.items())))
    assert _event(shuffled).event_id == _event(raw).event_id
    assert _event(event(1, requestsCosts="1.40")).event_id == _event(raw).event_id
    assert _event(event(0, requestsCosts=5.0)).event_id == _event(event(0)).event_id


@pytest.mark.parametrize(
    "changes",
    [
        {"timestamp": "1750979225855"},
        {"userEmail": "someone@company.com"},
        {"model": "gpt-5"},
        {"maxMode": False},
        {"requestsCosts": 6},
        {
            "tokenUsage": {
                "inputTokens": 127,
                "outputTokens": 450,
                "cacheWriteTokens": 6112,
                "cacheReadTokens": 11964,
                "totalCents": 20.18232,
            }
        },
    ],
)
def test_event_id_changes_with_identifying_fields(changes: dict[str, Any]) -> None:
    assert _event(event(0, **changes)).event_id != _event(event(0)).event_id


def test_event_id_depends_on_account() -> None:
    assert _event(event(0), "a").event_id != _event(event(0), "b").event_id


def test_event_ids_do_not_depend_on_page_order() -> None:
    page_one = copy.deepcopy(USAGE_EVENTS)
    page_two = copy.deepcopy(USAGE_EVENTS)
    page_two["usageEvents"] = [DISCOUNTED_EVENT]

    def ids(*pages: dict[str, Any]) -> list[str]:
        out: list[str] = []
        for number, page in enumerate(pages, 1):
            result = usage_events_page(_body(page), number=number, account="t", ingested_at=NOW)
            out += [e.event_id for e in result.events]
        return out

    forward, backward = ids(page_one, page_two), ids(page_two, page_one)
    assert sorted(forward) == sorted(backward)
    assert len(set(forward)) == 3


# --- usage event pages --------------------------------------------------------------------------


def test_usage_events_page_of_the_documented_example() -> None:
    page = usage_events_page(_body(USAGE_EVENTS), number=1, account="t", ingested_at=NOW)
    assert page.envelope_ok
    assert [e.cost_micros for e in page.events] == [213623, 80000]
    assert (page.total_pages, page.has_next, page.total_events, page.received) == (
        12,
        True,
        113,
        2,
    )
    assert page.invalid == []


def test_usage_events_page_keeps_good_items_beside_bad_ones() -> None:
    payload = copy.deepcopy(USAGE_EVENTS)
    payload["usageEvents"] += [
        "garbage",
        event(0, userEmail=DROP),
        event(0, tokenUsage={"inputTokens": "many"}),
    ]
    page = usage_events_page(_body(payload), number=1, account="t", ingested_at=NOW)
    assert len(page.events) == 2
    assert page.received == 5
    reasons = [reason for _, reason in page.invalid]
    assert "expected a JSON object" in reasons[0]
    assert "userEmail" in reasons[1]
    assert "tokenUsage.inputTokens" in reasons[2]
    assert json.loads(page.invalid[0][0]) == "garbage"
    assert json.loads(page.invalid[1][0]) == event(0, userEmail=DROP)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>502 Bad Gateway</html>", "not JSON"),
        (b"", "not JSON"),
        (b"\xff\xfe\x00garbage", "not JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"usageEvents": {"a": 1}}', "usageEvents"),
        (b'{"events": []}', "usageEvents"),
        (b'{"usageEvents": [], "pagination": {"numPages": "many"}}', "pagination.numPages"),
    ],
)
def test_unusable_usage_events_body_is_one_invalid_entry(body: bytes, reason: str) -> None:
    page = usage_events_page(body, number=3, account="t", ingested_at=NOW)
    assert not page.envelope_ok
    assert page.events == []
    assert len(page.invalid) == 1
    assert page.invalid[0][0] == body
    assert reason in page.invalid[0][1]


def test_null_usage_events_reads_as_an_empty_page() -> None:
    page = usage_events_page(b'{"usageEvents": null}', number=1, account="t", ingested_at=NOW)
    assert page.envelope_ok
    assert (page.events, page.invalid, page.received) == ([], [], 0)


# --- spend --------------------------------------------------------------------------------------


def test_documented_spend_row() -> None:
    row = member_spend(SPEND["teamMemberSpend"][0])
    assert row.user_email == "developer@company.com"
    assert row.user_id == "12345"
    assert (row.name, row.role) == ("Alex", "member")
    assert row.spend_micros == 24_500_000
    assert row.overall_spend_micros == 24_500_000
    assert row.fast_premium_requests == 1250
    assert row.hard_limit_override_micros == 100_000_000
    assert row.monthly_limit_micros == 200_000_000


def test_spend_limits_zero_and_null() -> None:
    base = copy.deepcopy(SPEND["teamMemberSpend"][0])
    no_override = member_spend(base | {"hardLimitOverrideDollars": 0, "monthlyLimitDollars": None})
    assert no_override.hard_limit_override_micros is None  # 0 = no override
    assert no_override.monthly_limit_micros is None
    zero_limit = member_spend(base | {"monthlyLimitDollars": 0, "hardLimitOverrideDollars": None})
    assert zero_limit.monthly_limit_micros == 0  # a real $0 limit
    assert zero_limit.hard_limit_override_micros is None
    assert member_spend(base | {"monthlyLimitDollars": 12.5}).monthly_limit_micros == 12_500_000


def test_older_spend_row_without_overall_spend() -> None:
    row = member_spend({"email": "a@test.com", "spendCents": 100, "fastPremiumRequests": 5})
    assert (row.spend_micros, row.overall_spend_micros) == (1_000_000, 1_000_000)
    assert row.user_id is None
    with_included = member_spend(
        {"email": "a@test.com", "spendCents": 100, "includedSpendCents": 50}
    )
    assert with_included.overall_spend_micros == 1_500_000


def test_spend_page_and_cycle_start() -> None:
    page = spend_page(_body(SPEND), number=1)
    assert page.cycle_start == datetime(2024, 2, 27, tzinfo=UTC)
    assert (page.total_pages, page.total_members, len(page.rows)) == (1, 15, 1)
    # The peer's fixture: 1704067200000 is 2024-01-01.
    peer = {
        "teamMemberSpend": [{"email": "a@test.com", "spendCents": 100, "fastPremiumRequests": 5}],
        "subscriptionCycleStart": 1704067200000,
        "totalPages": 2,
    }
    assert spend_page(_body(peer), number=1).cycle_start == datetime(2024, 1, 1, tzinfo=UTC)


def test_spend_page_without_cycle_start_does_not_crash() -> None:
    # The peer's bug 15: a missing subscriptionCycleStart threw and lost the whole stage.
    page = spend_page(_body({"teamMemberSpend": [SPEND["teamMemberSpend"][0]]}), number=1)
    assert page.cycle_start is None
    assert len(page.rows) == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"email": None}, "email"),
        ({"spendCents": "lots"}, "spendCents"),
        ({"hardLimitOverrideDollars": [1]}, "hardLimitOverrideDollars"),
        ({"fastPremiumRequests": -1}, "fastPremiumRequests"),
    ],
)
def test_malformed_spend_rows(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidPayloadError, match=field):
        member_spend(SPEND["teamMemberSpend"][0] | changes)


# --- members ------------------------------------------------------------------------------------


def test_members_current_shape() -> None:
    listing = members(MEMBERS)
    assert [(m.user_email, m.user_id, m.role, m.is_removed) for m in listing.items] == [
        ("developer@company.com", "12345", "member", False),
        ("admin@company.com", "12346", "owner", False),
    ]
    assert listing.invalid == []


@pytest.mark.parametrize("body", [MEMBERS_BARE, MEMBERS_WRAPPED_OLD])
def test_members_older_shapes(body: Any) -> None:
    listing = members(body)
    assert [(m.user_email, m.user_id, m.role) for m in listing.items] == [
        ("developer@company.com", None, "member"),
        ("admin@company.com", None, "free-owner"),
    ]
    assert all(not m.is_removed for m in listing.items)


def test_members_bad_rows_and_bad_envelopes() -> None:
    listing = members([*MEMBERS_BARE, {"name": "no email"}, 7])
    assert len(listing.items) == 2
    assert [r for _, r in listing.invalid] == [
        "member: email: Field required",
        "member: expected a JSON object, got number",
    ]
    bodies: list[Any] = [{"members": []}, "x", None, {"teamMembers": {"a": 1}}]
    for body in bodies:
        with pytest.raises(InvalidPayloadError, match="members"):
            members(body)


# --- daily usage ----------------------------------------------------------------------------------


def test_documented_daily_usage_row() -> None:
    row = daily_usage_row(DAILY["data"][0])
    assert row.user_email == "developer@company.com"
    assert row.user_id == "12345"
    assert row.day == date(2024, 3, 18)
    assert row.is_active
    assert (row.lines_added, row.lines_deleted) == (1543, 892)
    assert (row.accepted_lines_added, row.accepted_lines_deleted) == (1102, 645)
    assert (row.applies, row.accepts, row.rejects) == (87, 73, 14)
    assert (row.tabs_shown, row.tabs_accepted) == (342, 289)
    assert (row.composer_requests, row.chat_requests, row.agent_requests) == (45, 128, 12)
    assert row.cmdk_usages == 67
    assert (row.subscription_included_reqs, row.usage_based_reqs, row.api_key_reqs) == (180, 5, 0)
    assert row.bugbot_usages == 3
    assert (row.most_used_model, row.client_version) == ("gpt-5", "0.25.1")


def test_daily_usage_row_older_shape_uses_date() -> None:
    raw = {k: v for k, v in DAILY["data"][0].items() if k not in ("day", "userId", "isActive")}
    row = daily_usage_row(raw)
    assert row.day == date(2024, 3, 18)  # 1710720000000 = 2024-03-18T00:00Z
    assert (row.user_id, row.is_active) == (None, True)
    with pytest.raises(InvalidPayloadError, match="day"):
        daily_usage_row({k: v for k, v in raw.items() if k != "date"})
    with pytest.raises(InvalidPayloadError, match="day"):
        daily_usage_row(DAILY["data"][0] | {"day": "18/03/2024"})


def test_daily_usage_page() -> None:
    page = daily_usage_page(_body(DAILY), number=1)
    assert (len(page.rows), page.total_pages, page.has_next, page.received) == (1, 1, False, 1)
    without_paging = {"data": DAILY["data"]}
    assert daily_usage_page(_body(without_paging), number=1).total_pages is None


# --- groups ---------------------------------------------------------------------------------------


def test_documented_groups() -> None:
    listing = groups(GROUPS)
    start = datetime(2026, 2, 1, tzinfo=UTC)
    end = datetime(2026, 3, 1, tzinfo=UTC)
    assert (listing.cycle_start, listing.cycle_end) == (start, end)
    assert [(g.group_id, g.name, g.member_emails) for g in listing.groups] == [
        ("group_abc", "Platform", ["admin@company.com", "developer@company.com"]),
        ("group_unassigned", "Unassigned", ["kim@company.com"]),
    ]
    assert all((g.cycle_start, g.cycle_end) == (start, end) for g in listing.groups)
    assert listing.invalid == []


def test_groups_tolerate_missing_cycle_and_bad_groups() -> None:
    body = {"groups": [*GROUPS["groups"], {"name": "no id"}], "billingCycle": None}
    listing = groups(body)
    assert [g.group_id for g in listing.groups] == ["group_abc"]
    assert listing.cycle_start is None
    assert "id" in listing.invalid[0][1]
    offset = groups(GROUPS | {"billingCycle": {"cycleStart": "2026-02-01T01:00:00+01:00"}})
    assert offset.cycle_start == datetime(2026, 2, 1, tzinfo=UTC)
    with pytest.raises(InvalidPayloadError, match=r"billingCycle\.cycleStart"):
        groups(GROUPS | {"billingCycle": {"cycleStart": "the first"}})
    with pytest.raises(InvalidPayloadError, match="groups"):
        groups({"unassignedGroup": {}})


def test_module_exports_exist() -> None:
    for name in normalise.__all__:
        assert hasattr(normalise, name), name
