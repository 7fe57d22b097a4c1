"""Pure NAT decisions: dial-back messages, the reachability vote, the relay plan."""

from __future__ import annotations

import pytest

from lilypad_p2p.net import (
    DialbackError,
    DialbackRequest,
    DialbackResponse,
    Reachability,
    ReachabilityTracker,
    RelayPlan,
)
from lilypad_p2p.net._reachability import (
    RELAY_RETRY_BACKOFF_MS,
    RESERVATION_RENEW_MARGIN_MS,
    VERDICT_TTL_MS,
)


def test_dialback_messages_round_trip():
    assert DialbackRequest.decode(DialbackRequest((4001, 4002)).encode()).ports == (4001, 4002)
    response = DialbackResponse.decode(DialbackResponse((4001,)).encode())
    assert response.reachable and response.reachable_ports == (4001,)
    assert not DialbackResponse(()).reachable


@pytest.mark.parametrize(
    "data",
    [b"", b"[]", b"{}", b'{"ports": []}', b'{"ports": [0]}', b'{"ports": [70000]}',
     b'{"ports": [true]}', b'{"ports": [1,2,3,4,5]}', b'{"ports": ["80"]}', b"x" * 300],
)
def test_malformed_dialback_requests_raise_dialback_error(data):
    with pytest.raises(DialbackError):
        DialbackRequest.decode(data)


def test_reachability_is_the_majority_of_fresh_verdicts():
    tracker = ReachabilityTracker()
    assert tracker.state(0) is Reachability.UNKNOWN
    assert tracker.record("s1", False, 1_000) is Reachability.PRIVATE
    assert tracker.known_since_ms == 1_000
    assert tracker.record("s2", True, 2_000) is Reachability.UNKNOWN  # a tie
    assert tracker.record("s3", True, 3_000) is Reachability.PUBLIC
    # The same server changing its mind counts once.
    assert tracker.record("s3", False, 4_000) is Reachability.PRIVATE
    # Verdicts expire.
    assert tracker.state(4_000 + VERDICT_TTL_MS) is Reachability.UNKNOWN
    assert tracker.known_since_ms == 1_000


def test_relay_plan_reserves_only_while_private_and_up_to_wanted():
    plan = RelayPlan(wanted=2)
    assert plan.to_reserve(Reachability.PUBLIC, ["r1", "r2"], 0) == []
    assert plan.to_reserve(Reachability.UNKNOWN, ["r1"], 0) == []
    assert plan.to_reserve(Reachability.PRIVATE, ["r1", "r2", "r3", "r1"], 0) == ["r1", "r2"]
    plan.reserved("r1", 3_600_000)
    plan.reserved("r2", 3_600_000)
    assert plan.to_reserve(Reachability.PRIVATE, ["r1", "r2", "r3"], 0) == []


def test_relay_plan_renews_before_expiry_and_moves_when_a_relay_is_lost():
    plan = RelayPlan(wanted=1)
    plan.reserved("r1", 3_600_000)
    due = 3_600_000 - RESERVATION_RENEW_MARGIN_MS
    assert plan.to_reserve(Reachability.PRIVATE, ["r1", "r2"], due - 1) == []
    assert plan.to_reserve(Reachability.PRIVATE, ["r1", "r2"], due) == ["r1"]
    plan.lost("r1")
    assert plan.to_reserve(Reachability.PRIVATE, ["r2"], due) == ["r2"]
    assert [r.relay for r in plan.active(due)] == []


def test_a_failed_relay_is_retried_only_after_the_backoff():
    plan = RelayPlan(wanted=1)
    plan.failed("r1", 1_000)
    assert plan.to_reserve(Reachability.PRIVATE, ["r1"], 1_000) == []
    assert plan.to_reserve(Reachability.PRIVATE, ["r1"], 1_000 + RELAY_RETRY_BACKOFF_MS) == ["r1"]


def test_expired_reservations_are_dropped_and_replaced():
    plan = RelayPlan(wanted=1)
    plan.reserved("r1", 10_000)
    assert plan.active(10_000) == []
    assert plan.to_reserve(Reachability.PRIVATE, ["r2"], 10_000) == ["r2"]
