"""A long-running bridge forgets requests it can no longer serve: expired, refused, claimed by
us past the deadline, undeliverable. They leave its tables, stop holding the saved cursor back
and cost no chain call per poll; an unruled result of ours is refunded (its bond comes back).
One another bridge claimed costs no call either, and is served if that bridge's result is
overturned; one the bridge cannot fund yet is neither claimed nor dropped, and costs no call
but a read of the deposit per poll that all such requests share; nor are more requests claimed
at once than the deposit covers together. LilypadRequests runs on the embedded EVM."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from lilypad_p2p.blocking import run_blocking
from lilypad_p2p.chain import (
    Chain,
    JobRequest,
    RequestedJob,
    RequestMode,
    RequestsClient,
    RequestStatus,
    TrustPolicy,
    deploy_requests,
)
from lilypad_p2p.chain import _requests as requests_module
from lilypad_p2p.deal_detail import ClientDetail
from lilypad_p2p.localnet import chain_test_accounts
from lilypad_p2p.market import Phase, new_client_deal
from lilypad_p2p.roles._bridge import DELIVERY_MARGIN_S, BridgeRole
from lilypad_p2p.roles._client_submission import UNOPENED_PHASES, JobSubmission, check_funds
from lilypad_p2p.roles._request_life import RULING_WINDOW_S
from lilypad_p2p.roles._request_polling import REORG_DEPTH_BLOCKS
from lilypad_p2p.store import DealStore
from lilypad_p2p.testing import advance_chain_time, embedded_test_chain

pytestmark = pytest.mark.chain

ESCROW_WEI = 10**15
BOND_WEI = 10**14
LIFE_S = 600


@dataclass
class World:
    chain: Chain
    requester: RequestsClient
    bridge_requests: RequestsClient
    mediator: str
    stranger: str

    def ask(self, *, trusted: bool = True, life_s: int = LIFE_S) -> RequestedJob:
        policy = TrustPolicy((self.mediator if trusted else self.stranger,), 1,
                             RequestMode.ATTESTED, BOND_WEI)
        return self.requester.request_job("hash", b'{"text": "hi"}', max_price=ESCROW_WEI,
                                          deadline=self.chain.now() + life_s, callback_gas=0,
                                          policy=policy)

    def bridge(self, tmp_path: Path) -> BridgeRole:
        # No client role: a bridge that reached one here would fail the test.
        return BridgeRole(requests=self.bridge_requests, client=None,  # type: ignore[arg-type]
                          store=DealStore.open(tmp_path / "db"),
                          state_path=tmp_path / "bridge.json", confirmations=0,
                          trusted_mediators=[self.mediator])

    def mine(self, blocks: int) -> None:
        for _ in range(blocks):
            advance_chain_time(self.chain, 1)


@pytest.fixture
def world() -> World:
    chain = embedded_test_chain()
    deployer, requester, bridge, mediator, stranger = chain_test_accounts(5)
    address = deploy_requests(chain, deployer, deployer.address)  # the settlement is never read
    made = World(chain, RequestsClient(chain, address, requester),
                 RequestsClient(chain, address, bridge), mediator.address, stranger.address)
    made.mine(REORG_DEPTH_BLOCKS + 2)  # so that a reread of the reorg margin starts above 0
    return made


def _saved_cursor(tmp_path: Path) -> int:
    return int(json.loads((tmp_path / "bridge.json").read_text())["scan_from"])


def _calls(chain: Chain, function: str) -> int:
    return sum(entry["count"] for entry in chain.calls.snapshot()
               if entry["labels"]["function"] == function)


async def test_expired_and_refused_requests_leave_and_free_the_cursor(
    world: World, tmp_path: Path, autojump
) -> None:
    expired = world.ask(life_s=DELIVERY_MARGIN_S + 5)
    refused = world.ask(trusted=False)  # none of its mediators is one the bridge trusts
    advance_chain_time(world.chain, DELIVERY_MARGIN_S + 10)
    bridge = world.bridge(tmp_path)

    await bridge.poll_once()

    assert bridge._pending == {}
    head = await run_blocking(world.chain.block_number)
    assert _saved_cursor(tmp_path) == head + 1 > max(expired.block_number, refused.block_number)
    assert bridge.statistics().failed_submissions == 1
    # Their blocks are read again (the reorg margin) but they are not taken up again.
    await bridge.poll_once()
    assert bridge._pending == {} and bridge.statistics().failed_submissions == 1


async def test_a_restarted_bridge_reads_from_the_saved_cursor(
    world: World, tmp_path: Path, autojump
) -> None:
    world.ask(life_s=DELIVERY_MARGIN_S + 5)
    advance_chain_time(world.chain, DELIVERY_MARGIN_S + 10)
    await world.bridge(tmp_path).poll_once()
    cursor = _saved_cursor(tmp_path)
    world.mine(REORG_DEPTH_BLOCKS + 2)
    later = world.ask(trusted=False)

    restarted = world.bridge(tmp_path)
    read: list[tuple[int, int]] = []
    requested_between = world.bridge_requests.requested_between
    world.bridge_requests.requested_between = (  # type: ignore[method-assign]
        lambda start, end: read.append((start, end)) or requested_between(start, end))
    await restarted.poll_once()

    assert read == [(cursor - REORG_DEPTH_BLOCKS, later.block_number)]
    assert restarted._pending == {} and restarted.statistics().failed_submissions == 1


async def test_chain_calls_per_poll_do_not_grow_with_dead_requests(
    world: World, tmp_path: Path, autojump
) -> None:
    bridge = world.bridge(tmp_path)
    for _ in range(3):
        world.ask(trusted=False)
        world.ask(life_s=DELIVERY_MARGIN_S + 5)
    advance_chain_time(world.chain, DELIVERY_MARGIN_S + 10)
    await bridge.poll_once()
    world.mine(REORG_DEPTH_BLOCKS + 2)  # their blocks fall out of what a poll reads again
    await bridge.poll_once()
    world.mine(1)  # from now on a block a poll, as a live chain's
    read: list[tuple[int, int]] = []
    requested_between = world.bridge_requests.requested_between
    world.bridge_requests.requested_between = (  # type: ignore[method-assign]
        lambda start, end: read.append((start, end)) or requested_between(start, end))

    before = _calls(world.chain, "requests")
    for _ in range(3):
        await bridge.poll_once()
        world.mine(1)

    assert _calls(world.chain, "requests") == before
    head = await run_blocking(world.chain.block_number)
    assert all(end - start <= REORG_DEPTH_BLOCKS + 1 for start, end in read)
    assert _saved_cursor(tmp_path) == head  # the head before the last block mined


async def test_our_claim_past_the_deadline_is_dropped_with_one_warning(
    world: World, tmp_path: Path, autojump, caplog: pytest.LogCaptureFixture
) -> None:
    requested = world.ask()
    await run_blocking(world.bridge_requests.claim, requested.request_id, BOND_WEI)
    advance_chain_time(world.chain, LIFE_S + 1)  # never posted: postResult would revert
    bridge = world.bridge(tmp_path)

    with caplog.at_level(logging.WARNING, logger="lilypad_p2p.bridge"):
        for _ in range(3):
            await bridge.poll_once()

    assert bridge._pending == {}
    assert [r.getMessage() for r in caplog.records] == ["bridge.claim_expired"]


def test_the_ruling_window_is_the_contracts(world: World) -> None:
    assert world.requester.read("RULING_WINDOW") == RULING_WINDOW_S


class _ScriptedRequests:
    """A LilypadRequests whose stored request is scripted (states a real one reaches only
    through a paid deal): the bridge's calls are counted."""

    def __init__(self, real: RequestsClient, requested: RequestedJob,
                 request: JobRequest) -> None:
        self.chain, self.account, self.address = real.chain, real.account, real.address
        self.requested, self.stored = requested, request
        self.calls: list[str] = []
        self.overturned_at: int | None = None  # the block of a Ruled event, not upheld

    def requested_between(self, start: int, end: int) -> list[RequestedJob]:
        return [self.requested] if start <= self.requested.block_number <= end else []

    def overturned_between(self, start: int, end: int) -> list[bytes]:
        ruled = self.overturned_at
        return [self.requested.request_id] if ruled is not None and start <= ruled <= end else []

    def claim(self, request_id: bytes, bond: int) -> Any:
        self.calls.append("claim")
        self.stored = replace(self.stored, status=RequestStatus.CLAIMED,
                              claimant=self.account.address)
        return type("Receipt", (), {"gas_used": 1})()

    def request(self, request_id: bytes) -> JobRequest:
        self.calls.append("requests")
        return self.stored

    def refund(self, request_id: bytes) -> Any:
        self.calls.append("refund")
        self.stored = replace(self.stored, status=RequestStatus.REFUNDED)
        return type("Receipt", (), {"gas_used": 1})()


def _stored(requested: RequestedJob, status: RequestStatus, claimant: str, *,
            posted_at: int) -> JobRequest:
    return JobRequest(requested.request_id, requested.requester, requested.deadline, 0, status,
                      RequestMode.ATTESTED, 1, 0, 0, posted_at, ESCROW_WEI, BOND_WEI, 10,
                      b"m" * 32, b"c" * 32, claimant, "0x" + "00" * 20, b"h" * 32)


async def test_an_upheld_result_without_output_warns_once_and_leaves(
    world: World, tmp_path: Path, autojump, caplog: pytest.LogCaptureFixture
) -> None:
    requested = world.ask()
    bridge = world.bridge(tmp_path)
    account = world.bridge_requests.account
    assert account is not None
    scripted = _ScriptedRequests(world.bridge_requests, requested, _stored(
        requested, RequestStatus.UPHELD, account.address, posted_at=0))
    bridge._requests = scripted  # type: ignore[assignment]

    with caplog.at_level(logging.WARNING, logger="lilypad_p2p.bridge"):
        for _ in range(3):
            await bridge.poll_once()

    assert [r.getMessage() for r in caplog.records] == ["bridge.undeliverable"]
    assert scripted.calls == ["requests"] and bridge._pending == {}


@pytest.mark.parametrize(("after_s", "refunded"), [(RULING_WINDOW_S, False),
                                                   (RULING_WINDOW_S + 1, True)])
async def test_an_unruled_attested_result_of_ours_is_refunded_after_the_ruling_window(
    world: World, tmp_path: Path, autojump, after_s: int, refunded: bool
) -> None:
    requested = world.ask()
    bridge = world.bridge(tmp_path)
    account = world.bridge_requests.account
    assert account is not None
    posted_at = world.chain.now() - after_s  # the deadline (LIFE_S ahead) is earlier still
    scripted = _ScriptedRequests(world.bridge_requests, requested, _stored(
        requested, RequestStatus.POSTED, account.address, posted_at=posted_at))
    scripted.stored = replace(scripted.stored, deadline=posted_at)
    bridge._requests = scripted  # type: ignore[assignment]

    await bridge.poll_once()
    await bridge.poll_once()

    if refunded:
        assert scripted.calls == ["requests", "refund"] and bridge._pending == {}
    else:
        assert scripted.calls == ["requests", "requests"]
        assert requested.request_id in bridge._pending


async def test_a_first_start_reads_from_the_contracts_deployment_in_bounded_ranges(
    tmp_path: Path, autojump, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No saved cursor: a bridge reads from the block that deployed the contract (not from
    genesis), and never asks for more than MAX_BLOCK_RANGE blocks in one eth_getLogs."""
    monkeypatch.setattr(requests_module, "MAX_BLOCK_RANGE", 4)
    chain = embedded_test_chain()
    deployer, requester, bridge_account, mediator, _ = chain_test_accounts(5)
    for _ in range(40):  # a chain that was long before the contract came
        advance_chain_time(chain, 1)
    address = deploy_requests(chain, deployer, deployer.address)
    deployed_at = chain.block_number()
    world = World(chain, RequestsClient(chain, address, requester),
                  RequestsClient(chain, address, bridge_account), mediator.address,
                  mediator.address)
    world.mine(REORG_DEPTH_BLOCKS + 8)
    asked = [world.ask() for _ in range(3)]  # a block each, ten and more blocks apart
    ranges: list[tuple[int, int]] = []
    real_get_logs = chain.w3.eth.get_logs

    def get_logs(query: dict[str, Any]) -> Any:
        ranges.append((int(query["fromBlock"]), int(query["toBlock"])))
        return real_get_logs(query)

    monkeypatch.setattr(chain.w3.eth, "get_logs", get_logs)
    bridge = world.bridge(tmp_path)
    found = await run_blocking(world.bridge_requests.requested_between, deployed_at,
                               chain.block_number())
    assert [r.request_id for r in found] == [r.request_id for r in asked]
    ranges.clear()
    served: list[bytes] = []

    async def serve(requested: RequestedJob, *rest: object) -> None:
        served.append(requested.request_id)  # instead of a claim: no client role here

    bridge._claim_and_submit = serve  # type: ignore[method-assign]
    await bridge.poll_once()
    assert ranges and ranges[0][0] == deployed_at - REORG_DEPTH_BLOCKS > 0
    assert all(last - first < 4 for first, last in ranges)
    assert served == [r.request_id for r in asked]


class _Client:
    """The client role as a bridge uses it: its free deposit, what its jobs not opened yet
    will lock, and the jobs submitted (each a deal in `store`, when given, as the client role
    writes them)."""

    mediation_fee_wei = 0

    def __init__(self, free_wei: int, store: DealStore | None = None) -> None:
        self.free_wei = free_wei
        self.store = store
        self.jobs: list[JobSubmission] = []
        self.deposit_reads = 0

    async def free_deposit(self, chain_id: int) -> int:
        self.deposit_reads += 1
        return self.free_wei

    def promised_wei(self, chain_id: int) -> int:
        if self.store is None:
            return 0
        return sum(job.max_price_wei for n, job in enumerate(self.jobs, 1)
                   if (stored := self.store.client_deal(f"key-{n}")) is not None
                   and stored.record.phase in UNOPENED_PHASES)

    async def submit(self, job: JobSubmission) -> str:
        check_funds(self.free_wei, job, chain_id=job.chain_id or 0, fee_wei=0,
                    promised_wei=self.promised_wei(job.chain_id or 0))
        self.jobs.append(job)
        key = f"key-{len(self.jobs)}"
        if self.store is not None:
            self.store.insert(new_client_deal(key, now_ms=0, expires_ms=1),
                              ClientDetail(job_offer=b"", module=job.module, submitted_ms=0,
                                           salt=job.salt), chain_id=job.chain_id)
        return key


def _scripted_bridge(world: World, tmp_path: Path, status: RequestStatus, claimant: str,
                     client: _Client) -> tuple[BridgeRole, _ScriptedRequests, RequestedJob]:
    requested = world.ask()
    bridge = world.bridge(tmp_path)
    scripted = _ScriptedRequests(world.bridge_requests, requested,
                                 _stored(requested, status, claimant, posted_at=0))
    bridge._requests = scripted  # type: ignore[assignment]
    bridge._client = client  # type: ignore[assignment]
    return bridge, scripted, requested


@pytest.mark.parametrize("restart", [False, True], ids=["running", "restarted"])
async def test_a_request_another_bridge_claimed_is_served_once_its_result_is_overturned(
    world: World, tmp_path: Path, autojump, restart: bool
) -> None:
    client = _Client(free_wei=ESCROW_WEI)
    bridge, scripted, requested = _scripted_bridge(world, tmp_path, RequestStatus.CLAIMED,
                                                   world.stranger, client)
    for _ in range(3):
        await bridge.poll_once()
        world.mine(1)
    assert scripted.calls == ["requests"]  # set aside: no chain call per poll
    assert bridge._pending == {} and client.jobs == []
    if restart:
        world.mine(REORG_DEPTH_BLOCKS + 2)  # its block falls below what a poll reads again
        await bridge.poll_once()
        assert _saved_cursor(tmp_path) <= requested.block_number
        bridge = world.bridge(tmp_path)
        bridge._requests = scripted  # type: ignore[assignment]
        bridge._client = client  # type: ignore[assignment]
        await bridge.poll_once()
        assert scripted.calls == ["requests", "requests"]  # read again, set aside again
    before = len(scripted.calls)

    # The consortium overturns the other bridge's result: open again.
    scripted.stored = replace(scripted.stored, status=RequestStatus.OPEN,
                              claimant="0x" + "00" * 20)
    scripted.overturned_at = await run_blocking(world.chain.block_number)
    world.mine(1)
    await bridge.poll_once()

    assert scripted.calls[before:] == ["requests", "claim"]
    assert [job.salt for job in client.jobs] == [requested.request_id]


async def test_a_bridge_short_of_deposit_neither_claims_nor_drops_the_request(
    world: World, tmp_path: Path, autojump, caplog: pytest.LogCaptureFixture
) -> None:
    client = _Client(free_wei=ESCROW_WEI - 1)
    bridge, scripted, requested = _scripted_bridge(world, tmp_path, RequestStatus.OPEN,
                                                   "0x" + "00" * 20, client)
    with caplog.at_level(logging.WARNING, logger="lilypad_p2p.bridge"):
        for _ in range(3):
            await bridge.poll_once()
    assert "claim" not in scripted.calls and requested.request_id in bridge._pending
    assert [r.getMessage() for r in caplog.records] == ["bridge.request_deferred"]

    client.free_wei = ESCROW_WEI  # the operator deposits
    await bridge.poll_once()
    assert scripted.calls[-1] == "claim"
    assert [job.salt for job in client.jobs] == [requested.request_id]


async def test_a_claimed_request_whose_submission_found_the_deposit_short_is_submitted_again(
    world: World, tmp_path: Path, autojump
) -> None:
    client = _Client(free_wei=ESCROW_WEI - 1)
    account = world.bridge_requests.account
    assert account is not None
    bridge, scripted, requested = _scripted_bridge(world, tmp_path, RequestStatus.CLAIMED,
                                                   account.address, client)
    await bridge.poll_once()
    await bridge.poll_once()
    assert client.jobs == [] and requested.request_id in bridge._pending

    client.free_wei = ESCROW_WEI
    await bridge.poll_once()
    assert [job.salt for job in client.jobs] == [requested.request_id]
    assert "claim" not in scripted.calls  # claimed before, once


async def test_requests_waiting_for_deposit_cost_one_deposit_read_per_poll(
    world: World, tmp_path: Path, autojump
) -> None:
    for _ in range(5):  # a requester may post any number, each escrowing more than we hold
        world.ask()
    client = _Client(free_wei=ESCROW_WEI - 1)
    bridge = world.bridge(tmp_path)
    bridge._client = client  # type: ignore[assignment]
    await bridge.poll_once()
    assert len(bridge._pending) == 5 and client.jobs == []

    before, client.deposit_reads = _calls(world.chain, "requests"), 0
    for _ in range(3):
        await bridge.poll_once()
        world.mine(1)
    assert _calls(world.chain, "requests") == before and client.deposit_reads == 3

    advance_chain_time(world.chain, LIFE_S)  # no time left to serve them: read, and dropped
    await bridge.poll_once()
    assert bridge._pending == {} and client.jobs == []
    assert _saved_cursor(tmp_path) == await run_blocking(world.chain.block_number) + 1


async def test_a_bridge_claims_at_once_only_the_requests_its_deposit_covers_together(
    world: World, tmp_path: Path, autojump
) -> None:
    asked = [world.ask(), world.ask()]
    bridge = world.bridge(tmp_path)
    client = _Client(free_wei=ESCROW_WEI * 3 // 2, store=bridge._store)  # one max price, not two
    bridge._client = client  # type: ignore[assignment]

    def statuses() -> list[RequestStatus]:
        return [world.requester.request(r.request_id).status for r in asked]

    for _ in range(3):  # the first job's deal does not open: it has locked nothing yet
        await bridge.poll_once()
        world.mine(1)
    assert sorted(statuses()) == [RequestStatus.OPEN, RequestStatus.CLAIMED]
    (key,) = [d.record.key for d in bridge._store.client_deals()]
    assert len(client.jobs) == 1 and set(bridge._pending) == {r.request_id for r in asked}

    stored = bridge._store.client_deal(key)  # it opens, locking a payment below its max price
    assert stored is not None
    bridge._store.update(replace(stored.record, phase=Phase.OPEN), stored.detail)
    client.free_wei = ESCROW_WEI
    await bridge.poll_once()
    assert statuses() == [RequestStatus.CLAIMED] * 2
    assert sorted(job.salt for job in client.jobs) == sorted(r.request_id for r in asked)
