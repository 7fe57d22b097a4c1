import pytest
from eth_keys.datatypes import PrivateKey

from lilypad_p2p.market import ReplayGuard
from lilypad_p2p.testing.offers import make_resource_offer
from lilypad_p2p.wire import (
    ENVELOPE_MAX_AGE_MS,
    MAX_CLOCK_SKEW_MS,
    sign_envelope,
)

KEY = PrivateKey(b"\x01" * 32)
T0 = 1_700_000_000_000


def envelope(published_at=T0, nonce=0):
    body = make_resource_offer(provider=KEY.public_key.to_checksum_address(),
                               created_at=T0 - 1_000, expires_at=T0 + 3_600_000, nonce=nonce)
    return sign_envelope(body, KEY, published_at)


def test_second_sighting_is_a_replay():
    guard = ReplayGuard()
    first = envelope()
    assert guard.check_and_record(first, T0) is True
    assert guard.check_and_record(first, T0 + 1) is False
    assert guard.statistics().replays == 1


def test_republished_body_in_a_fresh_envelope_is_not_a_replay():
    guard = ReplayGuard()
    assert guard.check_and_record(envelope(T0), T0)
    assert guard.check_and_record(envelope(T0 + 30_000), T0 + 30_000)


def test_remembers_exactly_as_long_as_the_envelope_is_acceptable():
    guard = ReplayGuard()
    first = envelope(T0)
    guard.check_and_record(first, T0)
    assert guard.check_and_record(first, T0 + ENVELOPE_MAX_AGE_MS) is False
    assert first.envelope_id in guard
    # One ms later open_envelope calls it stale; the guard has forgotten it and refuses it too.
    assert guard.check_and_record(first, T0 + ENVELOPE_MAX_AGE_MS + 1) is False
    assert first.envelope_id not in guard
    assert guard.statistics().outside_window == 1


def test_future_dated_envelope_is_remembered_for_max_age_plus_skew():
    guard = ReplayGuard()
    early = envelope(T0 + MAX_CLOCK_SKEW_MS)
    assert guard.check_and_record(early, T0)
    assert guard.check_and_record(early, T0 + MAX_CLOCK_SKEW_MS + ENVELOPE_MAX_AGE_MS) is False
    assert early.envelope_id in guard
    assert guard.check_and_record(envelope(T0 + MAX_CLOCK_SKEW_MS + 1), T0) is False


def test_memory_is_bounded_by_the_acceptance_window():
    guard = ReplayGuard()
    for second in range(600):
        guard.check_and_record(envelope(T0 + second * 1_000, nonce=second), T0 + second * 1_000)
        assert len(guard) <= ENVELOPE_MAX_AGE_MS // 1_000 + 1
    assert guard.statistics().accepted == 600


def test_full_guard_refuses_rather_than_forgets():
    guard = ReplayGuard(capacity=2)
    a, b, c = envelope(nonce=1), envelope(nonce=2), envelope(nonce=3)
    assert guard.check_and_record(a, T0) and guard.check_and_record(b, T0)
    assert guard.check_and_record(c, T0) is False
    assert guard.check_and_record(a, T0) is False  # still remembered: no replay slips through
    assert guard.statistics().refused_full == 1


def test_capacity_must_be_positive():
    with pytest.raises(ValueError):
        ReplayGuard(capacity=0)
