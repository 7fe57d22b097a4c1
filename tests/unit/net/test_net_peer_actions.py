import pytest

from lilypad_p2p.net import (
    GRAYLIST_THRESHOLD,
    DropReason,
    PeerAction,
    action_for,
    disconnects,
    invalid_message_weight,
)
from lilypad_p2p.net._params import P4_INVALID_MESSAGE_CAP, P4_INVALID_MESSAGE_WEIGHT


def test_every_reason_is_graded():
    for reason in DropReason:
        action = action_for(reason)
        assert action is None or isinstance(action, PeerAction)


@pytest.mark.parametrize(
    "reason",
    [
        DropReason.OVERSIZED,
        DropReason.MALFORMED,
        DropReason.BAD_SIGNATURE,
        DropReason.SIGNER_NOT_SOURCE,
        DropReason.SIGNER_NOT_OWNER,
        DropReason.WRONG_TOPIC,
    ],
)
def test_what_only_a_liar_sends_is_low_tolerance(reason):
    assert action_for(reason) is PeerAction.LOW_TOLERANCE


def test_what_clock_skew_produces_is_high_tolerance():
    assert action_for(DropReason.FUTURE_DATED) is PeerAction.HIGH_TOLERANCE


@pytest.mark.parametrize("reason", [DropReason.EXPIRED, DropReason.STALE])
def test_what_a_slow_network_produces_is_not_held_against_the_forwarder(reason):
    assert action_for(reason) is None


def test_our_own_validator_bug_is_not_held_against_the_peer():
    assert action_for(DropReason.VALIDATOR_FAILED) is None


def test_weights_are_ordered_by_severity():
    weights = [invalid_message_weight(action) for action in PeerAction]
    assert weights == sorted(weights, reverse=True)
    assert all(weight > 0 for weight in weights)


def _score_after(count: int, action: PeerAction) -> float:
    p4 = min(count * invalid_message_weight(action), P4_INVALID_MESSAGE_CAP)
    return -P4_INVALID_MESSAGE_WEIGHT * p4


def test_one_fatal_action_graylists():
    assert _score_after(1, PeerAction.FATAL) < GRAYLIST_THRESHOLD


def test_three_low_tolerance_actions_graylist_but_two_do_not():
    assert _score_after(2, PeerAction.LOW_TOLERANCE) >= GRAYLIST_THRESHOLD
    assert _score_after(3, PeerAction.LOW_TOLERANCE) < GRAYLIST_THRESHOLD


def test_a_few_clock_skew_drops_do_not_graylist():
    assert _score_after(10, PeerAction.HIGH_TOLERANCE) > GRAYLIST_THRESHOLD


def test_only_fatal_disconnects():
    assert [action for action in PeerAction if disconnects(action)] == [PeerAction.FATAL]
