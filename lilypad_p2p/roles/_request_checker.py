"""The request side of the mediator role: re-run on-chain requests' posted results.

    checker = RequestChecker(requests, identity, executor_factory=Executor.connect)
    await nursery.start(checker.run)

A requester's trust is a consortium of mediators it names in its request (LilypadRequests'
policy), not the settlement contract's registry. Each poll the checker reads the requests that
name this node or are optimistic, and for each whose result a bridge has posted:
- attested, and we are in its consortium: we run the request ourselves (its module and inputs
  as the JobRequested event states them) and `vote` the sha256 of our output tarball;
- optimistic and challenged, and we are in its consortium: the same vote rules on it;
- optimistic, posted by someone else, still in its challenge window, and our run gives another
  hash: we `challenge` it with the request's bond (any node may: a false result's bond pays the
  challenger half, and the consortium's k votes decide).
One run per request (its result is cached): a deterministic module gives the same tarball to
every honest node. A run that fails here gives no vote and no challenge: silence costs nothing,
a guess could be wrong.
Each poll reads the last REORG_DEPTH_BLOCKS blocks again, so a request a reorg mined again at
a height already read is still seen. A challenge of ours that the consortium leaves unruled
past the contract's RULING_WINDOW is refunded (our bond back). A request is forgotten, with
its cached hash and what we did about it, once nothing it can still come to needs us
(`watch_over`): a long-running checker's calls per poll follow the live requests only.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import Awaitable, Callable

import trio

from lilypad_p2p.blocking import run_blocking
from lilypad_p2p.chain import (
    ChainError,
    ContractRevert,
    JobRequest,
    RequestedJob,
    RequestMode,
    RequestsClient,
    RequestStatus,
)
from lilypad_p2p.errors import LilypadError
from lilypad_p2p.exec import BUILTIN_MODULES, ExecError, Executor, JobInputs, JobSpec, seal_for
from lilypad_p2p.identity import Identity
from lilypad_p2p.logs import event
from lilypad_p2p.roles._request_life import challenge_closed, past_deadline, ruling_lapsed
from lilypad_p2p.roles._request_polling import (
    SetAside,
    next_cursor,
    plan_scan,
    poll_chain,
    request_params,
)

log = logging.getLogger("lilypad_p2p.request_checker")

CHECK_POLL_INTERVAL_S = 1.0
# Wall-clock limit of one run of a request.
CHECK_RUN_TIMEOUT_S = 120.0
# How far back the first poll looks for requests (a JSON-RPC node may refuse longer ranges).
LOOKBACK_BLOCKS = 10_000


class CheckAction(enum.Enum):
    NONE = "none"
    VOTE = "vote"
    CHALLENGE = "challenge"


def needs_run(request: JobRequest, requested: RequestedJob, me: str, *, challenges: bool) -> bool:
    """Whether the request's state could call for our own result (voting or challenging)."""
    member = me in requested.policy.mediators
    if request.status is RequestStatus.POSTED:
        if request.mode is RequestMode.ATTESTED:
            return member
        return challenges and request.claimant != me
    return request.status is RequestStatus.CHALLENGED and member


def check_action(request: JobRequest, requested: RequestedJob, me: str, our_hash: bytes,
                 now: int, *, challenges: bool) -> CheckAction:
    """What we do about the request's current state, given our own run's hash (pure)."""
    if not needs_run(request, requested, me, challenges=challenges):
        return CheckAction.NONE
    if request.mode is RequestMode.ATTESTED or request.status is RequestStatus.CHALLENGED:
        return CheckAction.VOTE
    in_window = now <= request.posted_at + request.challenge_window
    return CheckAction.CHALLENGE if in_window and our_hash != request.result_hash \
        else CheckAction.NONE


def watch_over(request: JobRequest, requested: RequestedJob, me: str, now: int, *,
               voted: bool) -> bool:
    """Whether nothing the request can still come to needs our vote, challenge or refund
    (pure). `voted`: we voted in its current round."""
    status = request.status
    if status is RequestStatus.CHALLENGED and request.challenger == me:
        return False  # our bond: the ruling settles it, else we refund it once that lapses
    if status.is_final or status in (RequestStatus.NONE, RequestStatus.UPHELD):
        return True
    if status is RequestStatus.POSTED and request.mode is RequestMode.OPTIMISTIC:
        # Until the window closes anyone may challenge it (we, or another: then we vote);
        # after, it is final: only a delivery or a refund can follow.
        return challenge_closed(request, now)
    member = me in requested.policy.mediators
    if status in (RequestStatus.POSTED, RequestStatus.CHALLENGED) and member and not voted:
        return False  # a vote counts however late, while the result is unruled
    # What is left is a later round: an overturn reopens the request, and a new claim and post
    # must land by the deadline.
    return past_deadline(request, now)


class RequestChecker:
    def __init__(
        self,
        requests: RequestsClient,
        identity: Identity,
        *,
        executor_factory: Callable[[], Awaitable[Executor]],
        challenges: bool = True,
    ) -> None:
        if requests.account is None:
            raise LilypadError("the request checker votes and challenges: it needs an account")
        self._requests = requests
        self._identity = identity
        self._me = requests.account.address
        self._executor_factory = executor_factory
        self._executor: Executor | None = None
        self._challenges = challenges
        self._next_block: int | None = None
        self._watched: dict[bytes, RequestedJob] = {}
        self._forgotten = SetAside()
        # Per watched request (forgotten with it): our run's hash, or that it failed, and the
        # (round, action) pairs we sent.
        self._hashes: dict[bytes, bytes] = {}
        self._failed: set[bytes] = set()
        self._acted: dict[bytes, set[tuple[int, CheckAction]]] = {}
        self.votes = 0
        self.challenges = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._executor = await self._executor_factory()
        task_status.started()
        await poll_chain(self.poll_once, log, "check", CHECK_POLL_INTERVAL_S)

    async def poll_once(self) -> None:
        latest = await run_blocking(self._requests.chain.block_number)
        # As the bridge reads: the reorg margin again, so a request a reorg mined again at a
        # height already read is still seen.
        plan = plan_scan(self._next_block if self._next_block is not None
                         else max(0, latest - LOOKBACK_BLOCKS), latest, 0)
        if plan.from_block <= plan.to_block:
            found = await run_blocking(self._requests.requested_between, plan.from_block,
                                       plan.to_block)
            for requested in found:
                policy = requested.policy
                if requested not in self._forgotten and (self._me in policy.mediators or (
                        self._challenges and policy.mode is RequestMode.OPTIMISTIC)):
                    self._watched[requested.request_id] = requested
        self._forgotten.trim(plan)
        self._next_block = next_cursor((), plan)
        now = await run_blocking(self._requests.chain.now)
        for request_id, requested in list(self._watched.items()):
            request = await run_blocking(self._requests.request, request_id)
            if request.challenger == self._me and ruling_lapsed(request, now):
                await self._refund(request_id)
                continue  # refunded (final) or ruled meanwhile: the next poll reads which
            if not request.status.is_final and request.status is not RequestStatus.NONE:
                await self._check(requested, request, now)
            voted = (request.round, CheckAction.VOTE) in self._acted.get(request_id, ())
            # A request our run failed on gets neither vote nor challenge from us, in any round.
            if request_id in self._failed or watch_over(request, requested, self._me, now,
                                                        voted=voted):
                self._forget(request_id)

    def _forget(self, request_id: bytes) -> None:
        requested = self._watched.pop(request_id, None)
        if requested is not None:
            self._forgotten.add(requested)
        self._hashes.pop(request_id, None)
        self._failed.discard(request_id)
        self._acted.pop(request_id, None)

    async def _refund(self, request_id: bytes) -> None:
        """End a challenge of ours that the consortium left unruled: the contract then gives
        our bond back to whoever calls `refund`."""
        try:
            receipt = await run_blocking(self._requests.refund, request_id)
        except ContractRevert as exc:
            event(log, "check.refused", request="0x" + request_id.hex(), action="refund",
                  error=str(exc))
            return
        event(log, "check.refund", request="0x" + request_id.hex(), gas=receipt.gas_used)

    async def _check(self, requested: RequestedJob, request: JobRequest, now: int) -> None:
        request_id = requested.request_id
        if not needs_run(request, requested, self._me, challenges=self._challenges):
            return
        our_hash = await self._our_hash(requested)
        if our_hash is None:
            return
        action = check_action(request, requested, self._me, our_hash, now,
                              challenges=self._challenges)
        key = (request.round, action)
        acted = self._acted.setdefault(request_id, set())
        if action is CheckAction.NONE or key in acted:
            return
        acted.add(key)
        try:
            if action is CheckAction.VOTE:
                receipt = await run_blocking(
                    self._requests.vote, request_id, requested.policy, our_hash)
                self.votes += 1
            else:
                receipt = await run_blocking(
                    self._requests.challenge, request_id, request.bond)
                self.challenges += 1
        except ContractRevert as exc:  # already voted, window closed, ruled meanwhile
            event(log, "check.refused", request="0x" + request_id.hex(), action=action.value,
                  error=str(exc))
            return
        except ChainError:
            acted.discard(key)  # the RPC failed, not the contract: the next poll tries again
            raise
        event(log, f"check.{action.value}", request="0x" + request_id.hex(),
              agrees=our_hash == request.result_hash, round=request.round, gas=receipt.gas_used)

    async def _our_hash(self, requested: RequestedJob) -> bytes | None:
        request_id = requested.request_id
        if request_id in self._hashes:
            return self._hashes[request_id]
        if request_id in self._failed:
            return None
        assert self._executor is not None, "run() connects the executor first"
        try:
            module = BUILTIN_MODULES[requested.module]
            inputs = JobInputs(params=module.resolve_params(request_params(requested.inputs)))
            sealed = seal_for(self._identity.sealing_public_key, inputs.encode())
            result = await self._executor.run(
                JobSpec(requested.module), sealed, self._identity.sealing_private_key(),
                timeout_s=CHECK_RUN_TIMEOUT_S)
        except (KeyError, ValueError, LilypadError, ExecError) as exc:
            self._failed.add(request_id)
            event(log, "check.run_failed", logging.WARNING, request="0x" + request_id.hex(),
                  error=str(exc) or repr(exc))
            return None
        digest = hashlib.sha256(result.output_tarball).digest()
        self._hashes[request_id] = digest
        return digest
