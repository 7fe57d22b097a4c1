"""Two ways a job creator can still take an honest provider's collateral, built as the attacker
would (its own job offer and deal signature, the real provider role's countersignature, then
`openDeal` and `claimTimeout` on the deployed contract, its time following trio's autojumping
clock). Both rest on the same gap: the provider's countersignature lets the job creator open
the deal whenever it likes until the result deadline, and the contract cannot tell a job
creator that withheld the inputs from a provider that did not run the job.

- Withheld inputs: open the deal at once and never send the inputs; at the result deadline
  `claimTimeout` pays the job creator the provider's collateral.
- A late open: wait until the provider has ended the unopened deal (its agreement timeout),
  then open it; the provider no longer follows the deal, and the deadline pays the same.

Both are marked as expected failures (strict: a fix turns them into failures that say so) until
the deal protocol changes so that a deal can be opened only once the provider holds the inputs,
for instance with the provider opening the deal itself once they have arrived."""

from __future__ import annotations

import secrets
from functools import partial
from pathlib import Path

import pytest
import trio

from lilypad_p2p import wire
from lilypad_p2p.blocking import run_blocking
from lilypad_p2p.chain import DealStatus
from lilypad_p2p.clock import Clock, wall_clock_ms
from lilypad_p2p.exec import ExecError
from lilypad_p2p.identity import Identity
from lilypad_p2p.market import AGREEMENT_TIMEOUT_MS, OfferBook
from lilypad_p2p.roles import DealChains, ProviderRole, build_deal, deal_to_wire, resource_offer
from lilypad_p2p.roles._resource_offer import Capacity
from lilypad_p2p.testing import WatchedStore, chain_follows_clock, funded_deal_chains
from lilypad_p2p.testing._chain import chain_test_accounts
from lilypad_p2p.testing.offers import make_job_offer

pytestmark = [pytest.mark.chain, pytest.mark.xfail(
    strict=True, reason="a co-signed deal can be opened without the provider holding its "
    "inputs: the deal protocol must change (see the module docstring)")]
HASH_SPEC = wire.ResourceSpec(milli_cpu=500, ram_mb=64, disk_mb=16)
DEADLINE_S = 300
LIMIT_S = 4 * 3600  # virtual seconds


@pytest.mark.parametrize("late", [False, True], ids=["inputs-withheld", "opened-late"])
async def test_a_job_creator_cannot_take_the_collateral_of_a_provider_it_gave_no_inputs(
    tmp_path: Path, autojump, late: bool
) -> None:
    mediator = chain_test_accounts(2)[1].address
    attacker, provider = Identity.generate(), Identity.generate()
    chain_id, chains = await funded_deal_chains([attacker, provider])
    attacker_chain, provider_chain = chains[attacker.address], chains[provider.address]
    clock = Clock(wall_clock_ms())
    now = clock()
    offer = resource_offer(provider=provider.address, market="cpu",
                           capacity=Capacity(1000, 4096, 10_000), modules=("hash",),
                           now_ms=now, chain_ids=(chain_id,), trusted_mediators=(mediator,))
    book = OfferBook()
    book.add(provider.sign_envelope(offer, now), now)

    async def no_docker():
        raise ExecError("no job runs in this test")

    store = WatchedStore.open(tmp_path / "db")
    role = ProviderRole(provider, store=store, chains=DealChains([provider_chain]), book=book,
                        executor_factory=no_docker, clock_ms=clock)
    job = make_job_offer(job_creator=attacker.address, spec=HASH_SPEC,
                         trusted_mediators=(mediator,), chain_id=chain_id,
                         deadline=now + DEADLINE_S * 1000, created_at=now,
                         expires_at=now + 60_000, nonce=secrets.randbits(63))
    deal = build_deal(job, offer, salt=secrets.token_bytes(32))
    attacker_signature = attacker_chain.sign_deal(deal)
    before = await provider_chain.client.balance()

    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(chain_follows_clock, attacker_chain.sync.chain, clock))
            await nursery.start(role.run)
            answer = await role.on_deal_proposal(str(attacker.peer_id), wire.DealProposal(
                chain_id=chain_id, job_offer=attacker.sign_envelope(job, now).encode(),
                resource_offer_cid=offer.cid, deal=deal_to_wire(deal),
                job_creator_signature=attacker_signature))
            assert isinstance(answer, wire.DealCountersigned)
            if late:  # the provider ends the deal it sees nobody open
                await trio.sleep(AGREEMENT_TIMEOUT_MS / 1000)
                await store.until(lambda: [d.record.phase.value for d in store.deals()]
                                  == ["cancelled"])
            await run_blocking(attacker_chain.sync.open_deal, deal, attacker_signature,
                               answer.provider_signature)
            # No inputs are ever sent. Past the deadline, the attacker claims.
            while await run_blocking(attacker_chain.sync.chain.now) <= deal.result_deadline:
                await trio.sleep(10)
            await run_blocking(attacker_chain.sync.claim_timeout, deal)
            nursery.cancel_scope.cancel()

    assert (await attacker_chain.client.deal_state(deal)).status is DealStatus.TIMED_OUT_NO_RESULT
    after = await provider_chain.client.balance()
    assert after.free + after.locked == before.free + before.locked  # fails: collateral gone
