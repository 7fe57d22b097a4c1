"""A provider cannot take an honest job creator's payment by recording a result on chain that
it never delivers, built as the attacker would: its own handlers for the deal and job protocols
(docs/WIRE.md §6), its own `openDeal`, `submitResult` with a hash it made up, and
`claimTimeout` once the acceptance window has passed, against the real client role on the
embedded chain, whose time follows trio's autojumping clock.

Two attacks worked while the client disputed only results it had received:
- **withheld**: take the inputs, open the deal, record a made-up result at once and never
  answer; the client waited on its job stream until the result deadline, and by then the
  acceptance window had closed and `claimTimeout` paid the provider;
- **opened late**: accept the proposal, refuse every job request until the client ended the
  deal at its agreement timeout, then open it (the provider holds both signatures) and record a
  made-up result; the client no longer followed the deal, so nobody disputed it.
The mediators here are honest ones scripted from the spec: the job they re-run does not give the
made-up hash, so they rule PROVIDER_WRONG. A provider that withholds a correct result is upheld,
and the job creator gets the output from the mediators with their verdicts."""

from __future__ import annotations

import hashlib
import secrets
from functools import partial
from pathlib import Path

import pytest
import trio
from scripted_provider import client_market, receive_opened

from lilypad_p2p import wire
from lilypad_p2p.chain import ContractRevert, Deal, DealStatus, Outcome
from lilypad_p2p.identity import Identity
from lilypad_p2p.market import AGREEMENT_TIMEOUT_MS
from lilypad_p2p.net import DEAL_STREAM, JOB_STREAM, Reply
from lilypad_p2p.roles import (
    DealChain,
    JobSubmission,
    deal_from_wire,
)
from lilypad_p2p.testing import (
    MemoryNetwork,
    WatchedStore,
    chain_follows_clock,
)

pytestmark = pytest.mark.chain
LIMIT_S = 4 * 3600  # virtual seconds


class HostileProvider:
    """Accepts every proposal; `late`: refuses every job request and opens the deal itself
    once the client has given up on it; otherwise takes the inputs, opens the deal and never
    answers. Either way it records a result hash it made up, with its own signature."""

    def __init__(self, identity: Identity, chain: DealChain, *, late: bool,
                 holds: bool = False, output: bytes | None = None) -> None:
        self.identity, self.chain, self.late, self.holds = identity, chain, late, holds
        self.output = output  # its hash is recorded instead of a made-up one
        self.signatures: dict[bytes, bytes] = {}
        self.deal: Deal | None = None
        self.recorded = trio.Event()
        self.job_requests = 0

    def join(self, network: MemoryNetwork) -> None:
        transport = network.transport(self.identity.peer_id)
        transport.serve(DEAL_STREAM, self.on_proposal)
        transport.serve_transfer(JOB_STREAM, self.on_job)

    async def on_proposal(self, peer_id: str, proposal: wire.DealProposal) -> wire.DealMessage:
        self.deal = deal_from_wire(proposal.deal)
        self.signatures[self.chain.deal_id(self.deal)] = proposal.job_creator_signature
        return wire.DealAccepted()

    async def on_job(self, peer_id: str, request: wire.JobRequest, gate):
        self.job_requests += 1
        if self.holds:  # the stream stays open; no input is asked for
            await trio.sleep_forever()
        if self.late:
            return Reply(wire.DealRefused(reason="busy: try again"))
        deal = deal_from_wire(request.deal)
        deal_id = self.chain.deal_id(deal)
        await receive_opened(gate, self.identity, request, wire.INPUTS_CONTEXT + deal_id, deal_id)
        await self.open_and_record()
        await trio.sleep_forever()  # the job stream stays open; no result ever comes

    async def open_and_record(self) -> None:
        deal = self.deal
        assert deal is not None
        deal_id = self.chain.deal_id(deal)
        sync = self.chain.sync
        await trio.to_thread.run_sync(sync.open_deal, deal, self.signatures[deal_id],
                                      sync.sign(deal))
        recorded = (secrets.token_bytes(32) if self.output is None
                    else hashlib.sha256(self.output).digest())
        commitment = sync.sign(sync.result_commitment(deal, recorded))
        await trio.to_thread.run_sync(sync.submit_result, deal, recorded, commitment)
        self.recorded.set()


@pytest.mark.parametrize("late", [False, True], ids=["withheld", "opened-late"])
async def test_a_provider_cannot_take_the_payment_for_a_result_it_never_delivers(
    tmp_path, autojump, late: bool
) -> None:
    market = await client_market(tmp_path, Outcome.PROVIDER_WRONG, partial(HostileProvider,
                                                                        late=late))
    client, provider, chain, clock = market.client, market.provider, market.chain, market.clock
    store = client._store
    assert isinstance(store, WatchedStore)
    attacker = provider.chain.sync
    before = await chain.client.balance()

    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(chain_follows_clock, attacker.chain, clock, step_s=5))
            await nursery.start(client.run)
            key = await client.submit(JobSubmission(module="hash", params={"text": "x"},
                                                    target=market.provider_id.address))
            if late:  # past the client's agreement timeout, with nothing opened
                await store.until(lambda: store.phase(key) == "agreed")
                await trio.sleep(2 * AGREEMENT_TIMEOUT_MS / 1000)
                await provider.open_and_record()
            await provider.recorded.wait()
            deal = provider.deal
            assert deal is not None
            # The attacker waits out the acceptance window, then claims the payment.
            window_ends = (await chain.client.deal_state(deal)).since + deal.acceptance_window
            while await trio.to_thread.run_sync(attacker.chain.now) <= window_ends:
                await trio.sleep(5)
            with pytest.raises(ContractRevert):
                await trio.to_thread.run_sync(attacker.claim_timeout, deal)
            await store.until(lambda: store.phase(key) in {"resolved", "settled", "timed_out",
                                                           "cancelled"})
            nursery.cancel_scope.cancel()

    shown = store.get(key)
    assert shown.record.phase.value == "resolved" and shown.detail.outcome == "PROVIDER_WRONG"
    assert (await chain.client.deal_state(deal)).status is DealStatus.RESOLVED
    after = await chain.client.balance()
    # The payment comes back and the provider's collateral is the job creator's; it paid only
    # the mediation fee.
    assert after.locked == before.locked == 0
    assert after.free == before.free + deal.collateral - deal.mediation_fee


async def test_an_agreed_deal_the_provider_never_opens_is_followed_to_its_deadline(
    tmp_path, autojump
) -> None:
    # No inputs are sent after the agreement timeout, but the chain is watched until the
    # contract can no longer open the deal; then it ends with nothing locked.
    market = await client_market(tmp_path, Outcome.PROVIDER_WRONG,
                                 partial(HostileProvider, late=True))
    client, provider, chain = market.client, market.provider, market.chain
    store = client._store
    assert isinstance(store, WatchedStore)
    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(chain_follows_clock, provider.chain.sync.chain,
                                        market.clock, step_s=5))
            await nursery.start(client.run)
            key = await client.submit(JobSubmission(module="hash", params={"text": "x"},
                                                    target=market.provider_id.address))
            await store.until(lambda: store.phase(key) == "agreed")
            await trio.sleep(AGREEMENT_TIMEOUT_MS / 1000 + 2)
            asked = provider.job_requests
            assert asked > 0 and store.phase(key) == "agreed"
            await store.until(lambda: store.phase(key) == "cancelled")
            nursery.cancel_scope.cancel()
    deal = provider.deal
    assert deal is not None and provider.job_requests == asked
    assert market.clock() >= deal.result_deadline * 1000
    assert (await chain.client.deal_state(deal)).status is DealStatus.NONE
    assert (await chain.client.balance()).locked == 0


async def test_a_provider_that_holds_the_job_stream_open_is_watched_at_a_slow_pace(
    tmp_path, autojump, monkeypatch
) -> None:
    # The stream may stay open to the deadline (inputs can take long to move), and the client
    # watches the chain meanwhile for the open: often within the agreement timeout, then every
    # few seconds, so a provider holding many such streams costs the client little.
    market = await client_market(tmp_path, Outcome.PROVIDER_WRONG,
                                 partial(HostileProvider, late=False, holds=True))
    client, chain = market.client, market.chain
    store = client._store
    assert isinstance(store, WatchedStore)
    reads = []
    read_status = chain.status

    async def status(deal):
        reads.append(trio.current_time())
        return await read_status(deal)

    monkeypatch.setattr(chain, "status", status)
    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            key = await client.submit(JobSubmission(module="hash", params={"text": "x"},
                                                    target=market.provider_id.address))
            await store.until(lambda: store.phase(key) == "agreed")
            agreed = trio.current_time()
            await trio.sleep(AGREEMENT_TIMEOUT_MS / 1000 + 60)
            nursery.cancel_scope.cancel()
    within = [t for t in reads if t <= agreed + AGREEMENT_TIMEOUT_MS / 1000]
    after = [t for t in reads if t > agreed + AGREEMENT_TIMEOUT_MS / 1000]
    assert len(within) >= AGREEMENT_TIMEOUT_MS / 1000 / 0.25 - 2
    assert 10 <= len(after) <= 14  # one each 5 s
    assert store.phase(key) == "agreed" and market.provider.job_requests == 1


async def test_a_job_creator_gets_a_correct_result_its_provider_withheld_from_the_mediators(
    tmp_path, autojump
) -> None:
    # The provider records the hash of the true output and never delivers it: the mediators
    # uphold it, so it is paid, and the job creator gets the output with their verdicts.
    output = b"the output tarball the job gives"
    market = await client_market(tmp_path, Outcome.PROVIDER_CORRECT,
                                 partial(HostileProvider, late=False, output=output), output)
    client, provider, chain, clock = market.client, market.provider, market.chain, market.clock
    store = client._store
    assert isinstance(store, WatchedStore)
    before = await chain.client.balance()
    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(chain_follows_clock, provider.chain.sync.chain, clock,
                                        step_s=5))
            await nursery.start(client.run)
            key = await client.submit(JobSubmission(module="hash", params={"text": "x"},
                                                    target=market.provider_id.address))
            await store.until(lambda: store.phase(key) in {"resolved", "settled", "timed_out",
                                                           "cancelled"})
            nursery.cancel_scope.cancel()

    shown = store.get(key)
    assert shown.record.phase.value == "resolved" and shown.detail.outcome == "PROVIDER_CORRECT"
    assert shown.detail.result_path is not None
    assert Path(shown.detail.result_path).read_bytes() == output
    assert [p.name for p in (tmp_path / "results").iterdir()] == [f"{key}.tar"]
    deal = provider.deal
    assert deal is not None
    after = await chain.client.balance()
    assert after.locked == 0 and after.free == before.free - deal.payment - deal.mediation_fee
