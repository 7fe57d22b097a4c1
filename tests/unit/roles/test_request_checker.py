"""What a mediator node does about an on-chain request's state, given its own run's hash."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lilypad_p2p.chain import JobRequest, RequestedJob, RequestMode, RequestStatus, TrustPolicy
from lilypad_p2p.roles import CheckAction, check_action

ME = "0x" + "11" * 20
OTHER = "0x" + "22" * 20
BRIDGE = "0x" + "33" * 20
TRUE, FALSE = b"\x01" * 32, b"\x02" * 32
POSTED_AT, WINDOW = 1_000, 60


def _pair(mode: RequestMode, status: RequestStatus, *, member: bool = True,
          claimant: str = BRIDGE, posted: bytes = FALSE) -> tuple[JobRequest, RequestedJob]:
    optimistic = mode is RequestMode.OPTIMISTIC
    policy = TrustPolicy((ME if member else BRIDGE, OTHER), 1, mode, 10 if optimistic else 0,
                         WINDOW if optimistic else 0)
    request = JobRequest(b"r" * 32, OTHER, 5_000, 100_000, status, mode, 1, 0,
                         policy.challenge_window, POSTED_AT, 100, policy.bond, 50, b"m" * 32,
                         b"c" * 32, claimant, "0x" + "00" * 20, posted)
    requested = RequestedJob(b"r" * 32, OTHER, "hash", b"{}", 100, 5_000, 100_000, policy, 1)
    return request, requested


@pytest.mark.parametrize(("mode", "status", "member", "expected"), [
    (RequestMode.ATTESTED, RequestStatus.POSTED, True, CheckAction.VOTE),
    (RequestMode.ATTESTED, RequestStatus.POSTED, False, CheckAction.NONE),
    (RequestMode.ATTESTED, RequestStatus.CLAIMED, True, CheckAction.NONE),
    (RequestMode.OPTIMISTIC, RequestStatus.CHALLENGED, True, CheckAction.VOTE),
    (RequestMode.OPTIMISTIC, RequestStatus.CHALLENGED, False, CheckAction.NONE),
    (RequestMode.OPTIMISTIC, RequestStatus.POSTED, False, CheckAction.CHALLENGE),
    (RequestMode.OPTIMISTIC, RequestStatus.UPHELD, True, CheckAction.NONE),
])
def test_votes_where_named_and_challenges_a_wrong_optimistic_post(
    mode: RequestMode, status: RequestStatus, member: bool, expected: CheckAction
) -> None:
    request, requested = _pair(mode, status, member=member)
    assert check_action(request, requested, ME, TRUE, POSTED_AT + 1,
                        challenges=True) is expected


def test_no_challenge_of_a_right_result_our_own_or_after_the_window() -> None:
    request, requested = _pair(RequestMode.OPTIMISTIC, RequestStatus.POSTED)
    now = POSTED_AT + WINDOW
    assert check_action(replace(request, result_hash=TRUE), requested, ME, TRUE, now,
                        challenges=True) is CheckAction.NONE
    assert check_action(replace(request, claimant=ME), requested, ME, TRUE, now,
                        challenges=True) is CheckAction.NONE
    assert check_action(request, requested, ME, TRUE, now + 1,
                        challenges=True) is CheckAction.NONE
    assert check_action(request, requested, ME, TRUE, now,
                        challenges=False) is CheckAction.NONE
    assert check_action(request, requested, ME, TRUE, now,
                        challenges=True) is CheckAction.CHALLENGE
