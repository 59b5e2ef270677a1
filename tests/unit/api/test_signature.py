"""Slack request signatures: valid, wrong secret, stale either way, replayed, missing, tampered."""

from __future__ import annotations

import pytest

from spendwatch.api.errors import SlackSignatureError
from spendwatch.api.slack import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ReplayGuard,
    SlackRequestVerifier,
    sign,
)
from tests.unit.api.payloads import SECRET, block_actions, form_body, signed_headers

NOW = 1_800_000_000
BODY = form_body(block_actions("incident.acknowledge", value="inc-1"))


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def verifier(
    clock: Clock | None = None, replay_guard: ReplayGuard | None = None
) -> SlackRequestVerifier:
    return SlackRequestVerifier(SECRET, clock=clock or Clock(), replay_guard=replay_guard)


def check(v: SlackRequestVerifier, body: bytes, headers: dict[str, str]) -> None:
    v.verify(body, timestamp=headers.get(TIMESTAMP_HEADER), signature=headers.get(SIGNATURE_HEADER))


def reason(v: SlackRequestVerifier, body: bytes, headers: dict[str, str]) -> str:
    with pytest.raises(SlackSignatureError) as caught:
        check(v, body, headers)
    return caught.value.reason


def test_sign_matches_slacks_documented_example() -> None:
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
        b"&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
        b"&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    assert sign("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body) == (
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


def test_a_request_signed_with_our_secret_is_accepted() -> None:
    check(verifier(), BODY, signed_headers(BODY, timestamp=NOW))


@pytest.mark.parametrize("offset", [-300, -1, 0, 1, 300])
def test_timestamps_within_five_minutes_either_way_are_accepted(offset: int) -> None:
    check(verifier(), BODY, signed_headers(BODY, timestamp=NOW + offset))


def test_a_wrong_secret_is_refused() -> None:
    headers = signed_headers(BODY, secret="not-the-secret", timestamp=NOW)
    assert reason(verifier(), BODY, headers) == "bad_signature"


@pytest.mark.parametrize("offset", [-301, -3600, 301, 86_400])
def test_stale_or_future_timestamps_are_refused(offset: int) -> None:
    # Correctly signed, but too old (a captured request) or too far in the future.
    headers = signed_headers(BODY, timestamp=NOW + offset)
    assert reason(verifier(), BODY, headers) == "stale_timestamp"


def test_a_replayed_request_is_refused_until_its_timestamp_is_stale() -> None:
    clock = Clock()
    v = verifier(clock)
    headers = signed_headers(BODY, timestamp=NOW)
    check(v, BODY, headers)
    assert reason(v, BODY, headers) == "replayed"
    clock.now = NOW + 299
    assert reason(v, BODY, headers) == "replayed"
    clock.now = NOW + 301
    assert reason(v, BODY, headers) == "stale_timestamp"


def test_the_same_body_at_another_second_is_a_new_request() -> None:
    v = verifier()
    check(v, BODY, signed_headers(BODY, timestamp=NOW))
    check(v, BODY, signed_headers(BODY, timestamp=NOW + 1))


def test_a_refused_signature_is_not_remembered() -> None:
    guard = ReplayGuard()
    v = verifier(replay_guard=guard)
    reason(v, BODY, signed_headers(BODY, secret="wrong", timestamp=NOW))
    assert len(guard) == 0


@pytest.mark.parametrize(
    "drop", [[TIMESTAMP_HEADER], [SIGNATURE_HEADER], [TIMESTAMP_HEADER, SIGNATURE_HEADER]]
)
def test_missing_headers_are_refused(drop: list[str]) -> None:
    headers = signed_headers(BODY, timestamp=NOW)
    for name in drop:
        del headers[name]
    assert reason(verifier(), BODY, headers) == "missing_headers"


def test_empty_headers_are_refused() -> None:
    assert reason(verifier(), BODY, {TIMESTAMP_HEADER: "", SIGNATURE_HEADER: ""}) == (
        "missing_headers"
    )


@pytest.mark.parametrize("timestamp", ["abc", "-5", "1.5", "1e9", "9" * 40, " "])
def test_a_timestamp_that_is_not_unix_seconds_is_refused(timestamp: str) -> None:
    headers = {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(SECRET, timestamp, BODY)}
    assert reason(verifier(), BODY, headers) == "bad_timestamp"


def test_a_tampered_body_is_refused() -> None:
    headers = signed_headers(BODY, timestamp=NOW)
    tampered = form_body(block_actions("incident.resolve", value="inc-1"))
    assert reason(verifier(), tampered, headers) == "bad_signature"
    assert reason(verifier(), BODY + b"&x=1", headers) == "bad_signature"


@pytest.mark.parametrize("signature", ["v0=", "v1=abc", "garbage", "v0=é" + "0" * 63])
def test_malformed_signatures_are_refused(signature: str) -> None:
    headers = {TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: signature}
    assert reason(verifier(), BODY, headers) == "bad_signature"


def test_the_replay_guard_forgets_expired_and_stays_bounded() -> None:
    guard = ReplayGuard(max_entries=3)
    for n in range(3):
        assert guard.first_use(f"s{n}", expires_at=100 + n, now=0)
    assert not guard.first_use("s1", expires_at=200, now=50)
    assert guard.first_use("s3", expires_at=200, now=50)  # full: s0 (soonest to expire) goes
    assert len(guard) == 3
    assert guard.first_use("s0", expires_at=200, now=50)
    assert guard.first_use("s9", expires_at=300, now=150)  # s2 expired meanwhile
    assert len(guard) == 3


def test_the_secret_stays_out_of_reprs() -> None:
    assert SECRET not in repr(verifier())


def test_an_empty_secret_is_a_configuration_mistake() -> None:
    with pytest.raises(ValueError, match="empty"):
        SlackRequestVerifier("")
