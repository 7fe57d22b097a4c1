"""What a mediator node does about an on-chain request's state, given its own run's hash."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from lilypad_p2p.chain import (
    JobRequest,
    RequestedJob,
    RequestMode,
    RequestsClient,
    RequestStatus,
    RpcUnavailable,
    TrustPolicy,
    deploy_requests,
)
from lilypad_p2p.identity import Identity
from lilypad_p2p.localnet import chain_test_accounts
from lilypad_p2p.roles import CheckAction, RequestChecker, check_action
from lilypad_p2p.roles._request_checker import watch_over
from lilypad_p2p.roles._request_life import RULING_WINDOW_S, ruling_lapsed
from lilypad_p2p.testing import advance_chain_time, embedded_test_chain

ME = "0x" + "11" * 20
OTHER = "0x" + "22" * 20
BRIDGE = "0x" + "33" * 20
TRUE, FALSE = b"\x01" * 32, b"\x02" * 32
POSTED_AT, WINDOW, DEADLINE = 1_000, 60, 5_000


def _pair(mode: RequestMode, status: RequestStatus, *, member: bool = True,
          claimant: str = BRIDGE, posted: bytes = FALSE) -> tuple[JobRequest, RequestedJob]:
    optimistic = mode is RequestMode.OPTIMISTIC
    policy = TrustPolicy((ME if member else BRIDGE, OTHER), 1, mode, 10 if optimistic else 0,
                         WINDOW if optimistic else 0)
    request = JobRequest(b"r" * 32, OTHER, DEADLINE, 100_000, status, mode, 1, 0,
                         policy.challenge_window, POSTED_AT, 100, policy.bond, 50, b"m" * 32,
                         b"c" * 32, claimant, "0x" + "00" * 20, posted)
    requested = RequestedJob(b"r" * 32, OTHER, "hash", b"{}", 100, DEADLINE, 100_000, policy, 1)
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


@pytest.mark.parametrize(("status", "mode", "member", "voted", "now", "over"), [
    # Open or claimed: a post can still come until the deadline, never after.
    (RequestStatus.OPEN, RequestMode.ATTESTED, True, False, DEADLINE, False),
    (RequestStatus.OPEN, RequestMode.ATTESTED, True, False, DEADLINE + 1, True),
    (RequestStatus.CLAIMED, RequestMode.OPTIMISTIC, False, False, DEADLINE + 1, True),
    # Posted, attested: our vote counts however late; once cast, only a later round needs us.
    (RequestStatus.POSTED, RequestMode.ATTESTED, True, False, DEADLINE + 10**6, False),
    (RequestStatus.POSTED, RequestMode.ATTESTED, True, True, DEADLINE, False),
    (RequestStatus.POSTED, RequestMode.ATTESTED, True, True, DEADLINE + 1, True),
    # Posted, optimistic: watched for its window (a challenge, ours or another's), then final.
    (RequestStatus.POSTED, RequestMode.OPTIMISTIC, False, False, POSTED_AT + WINDOW, False),
    (RequestStatus.POSTED, RequestMode.OPTIMISTIC, True, False, POSTED_AT + WINDOW + 1, True),
    (RequestStatus.CHALLENGED, RequestMode.OPTIMISTIC, True, False, DEADLINE + 1, False),
    (RequestStatus.CHALLENGED, RequestMode.OPTIMISTIC, False, False, DEADLINE + 1, True),
    (RequestStatus.UPHELD, RequestMode.OPTIMISTIC, True, False, POSTED_AT, True),
    (RequestStatus.REFUNDED, RequestMode.ATTESTED, True, False, POSTED_AT, True),
])
def test_a_request_is_watched_while_it_can_still_need_us(
    status: RequestStatus, mode: RequestMode, member: bool, voted: bool, now: int, over: bool
) -> None:
    request, requested = _pair(mode, status, member=member)
    assert watch_over(request, requested, ME, now, voted=voted) is over


def test_our_own_challenge_is_watched_until_ruled_or_refunded() -> None:
    request, requested = _pair(RequestMode.OPTIMISTIC, RequestStatus.CHALLENGED, member=False)
    ours = replace(request, challenger=ME)
    assert not watch_over(ours, requested, ME, DEADLINE + 10**6, voted=False)
    assert not ruling_lapsed(ours, POSTED_AT + RULING_WINDOW_S)
    assert ruling_lapsed(ours, POSTED_AT + RULING_WINDOW_S + 1)


class _ScriptedChain:
    def __init__(self) -> None:
        self.head, self.time = 100, POSTED_AT

    def block_number(self) -> int:
        return self.head

    def now(self) -> int:
        return self.time


class _ScriptedRequests:
    """LilypadRequests as the checker sees it, its one request scripted; calls recorded."""

    def __init__(self, request: JobRequest, requested: RequestedJob) -> None:
        self.chain = _ScriptedChain()
        self.account = SimpleNamespace(address=ME)
        self.stored, self.requested = request, requested
        self.calls: list[str] = []
        self.rpc_down = False
        self.mined = True  # False: its block is not on the chain (yet)

    def requested_between(self, start: int, end: int) -> list[RequestedJob]:
        block = self.requested.block_number
        return [self.requested] if self.mined and start <= block <= end else []

    def request(self, request_id: bytes) -> JobRequest:
        self.calls.append("requests")
        return self.stored

    def vote(self, request_id: bytes, policy: TrustPolicy, result_hash: bytes) -> Any:
        self.calls.append("vote")
        if self.rpc_down:
            raise RpcUnavailable("the RPC did not answer")
        return SimpleNamespace(gas_used=1)

    def refund(self, request_id: bytes) -> Any:
        self.calls.append("refund")
        self.stored = replace(self.stored, status=RequestStatus.REFUNDED)
        return SimpleNamespace(gas_used=1)


def _checker(requests: Any) -> RequestChecker:
    async def no_executor() -> Any:
        raise AssertionError("no run here")
    return RequestChecker(requests, Identity.generate(), executor_factory=no_executor)


async def test_after_voting_a_request_past_its_deadline_is_forgotten_with_its_tables(
    autojump
) -> None:
    request, requested = _pair(RequestMode.ATTESTED, RequestStatus.POSTED)
    scripted = _ScriptedRequests(request, requested)
    checker = _checker(scripted)
    checker._hashes[requested.request_id] = TRUE  # our run, done before

    await checker.poll_once()  # votes; a later round could still need us
    assert scripted.calls == ["requests", "vote"] and requested.request_id in checker._watched

    scripted.chain.time = DEADLINE + 1  # no later round can be posted now
    await checker.poll_once()
    await checker.poll_once()

    assert scripted.calls == ["requests", "vote", "requests"]
    assert (checker._watched, checker._hashes, checker._acted) == ({}, {}, {})


async def test_a_vote_the_rpc_failed_to_send_is_sent_at_the_next_poll(autojump) -> None:
    request, requested = _pair(RequestMode.ATTESTED, RequestStatus.POSTED)
    scripted = _ScriptedRequests(request, requested)
    checker = _checker(scripted)
    checker._hashes[requested.request_id] = TRUE

    scripted.rpc_down = True
    with pytest.raises(RpcUnavailable):
        await checker.poll_once()
    scripted.rpc_down = False
    await checker.poll_once()
    await checker.poll_once()

    assert scripted.calls == ["requests", "vote", "requests", "vote", "requests"]
    assert checker.votes == 1


async def test_a_request_a_reorg_mined_again_at_a_height_already_read_is_voted_on(
    autojump
) -> None:
    request, requested = _pair(RequestMode.ATTESTED, RequestStatus.POSTED)
    scripted = _ScriptedRequests(request, replace(requested, block_number=101))
    scripted.chain.head, scripted.mined = 101, False  # block 101 as first read held no request
    checker = _checker(scripted)
    checker._hashes[requested.request_id] = TRUE
    await checker.poll_once()

    scripted.mined = True  # a reorg: block 101 again, now with the request
    await checker.poll_once()
    await checker.poll_once()

    assert scripted.calls == ["requests", "vote", "requests"]


async def test_a_lapsed_challenge_of_ours_is_refunded(autojump) -> None:
    request, requested = _pair(RequestMode.OPTIMISTIC, RequestStatus.CHALLENGED, member=False)
    scripted = _ScriptedRequests(replace(request, challenger=ME), requested)
    scripted.chain.time = POSTED_AT + RULING_WINDOW_S + 1
    checker = _checker(scripted)

    for _ in range(3):
        await checker.poll_once()

    assert scripted.calls == ["requests", "refund", "requests"]
    assert checker._watched == {}


async def test_an_expired_request_is_forgotten_and_costs_no_more_calls(autojump) -> None:
    chain = embedded_test_chain()
    deployer, requester, mediator = chain_test_accounts(3)
    address = deploy_requests(chain, deployer, deployer.address)  # the settlement is never read
    asked = RequestsClient(chain, address, requester).request_job(
        "hash", b'{"text": "hi"}', max_price=10**15, deadline=chain.now() + 60, callback_gas=0,
        policy=TrustPolicy((mediator.address,), 1))
    checker = _checker(RequestsClient(chain, address, mediator))
    await checker.poll_once()
    assert asked.request_id in checker._watched  # open: a bridge may still claim it
    checker._hashes[asked.request_id] = TRUE  # as if run for an earlier round

    advance_chain_time(chain, 61)
    await checker.poll_once()
    calls = sum(e["count"] for e in chain.calls.snapshot()
                if e["labels"]["function"] == "requests")
    await checker.poll_once()

    assert (checker._watched, checker._hashes, checker._acted) == ({}, {}, {})
    assert sum(e["count"] for e in chain.calls.snapshot()
               if e["labels"]["function"] == "requests") == calls
