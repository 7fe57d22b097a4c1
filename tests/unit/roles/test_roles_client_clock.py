"""The client reads the time from the clock it is given: on trio's `MockClock`, a jump of
hours times a job out at once, in no real time. A client that read the wall clock for its
deadlines would find them still ahead and wait on, past the test's bound in virtual time
(against a real embedded chain)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from lilypad_p2p import wire
from lilypad_p2p.clock import Clock, wall_clock_ms
from lilypad_p2p.identity import Identity
from lilypad_p2p.market import OfferBook
from lilypad_p2p.roles import ClientRole, DealChains, JobSubmission
from lilypad_p2p.store import DealStore
from lilypad_p2p.testing import MemoryNetwork, funded_deal_chains
from lilypad_p2p.testing._chain import chain_test_accounts

pytestmark = pytest.mark.chain
HOURS_S = 3 * 3600
# Virtual seconds past the jump for the client's next look at its deals (it looks every second).
AFTER_JUMP_S = 60


async def test_a_jump_of_hours_times_out_an_unmatched_job_in_no_real_time(
    tmp_path: Path, autojump
) -> None:
    mediator = chain_test_accounts(2)[1].address
    client_id = Identity.generate()
    _, chains = await funded_deal_chains([client_id])
    published: list[wire.Message] = []
    cancelled = trio.Event()

    async def publish(body: wire.Message) -> None:
        published.append(body)
        if isinstance(body, wire.Cancel):
            cancelled.set()

    clock = Clock(wall_clock_ms())  # from now on, trio's mock clock alone
    client = ClientRole(
        client_id, store=DealStore.open(tmp_path / "db"),
        chains=DealChains([chains[client_id.address]]), book=OfferBook(), publish=publish,
        transport=MemoryNetwork().transport(client_id.peer_id),  # no one else on it
        node_record=lambda address: None,
        mediators=(mediator,), results_dir=tmp_path / "results", clock_ms=clock)
    with trio.fail_after(HOURS_S + AFTER_JUMP_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            key = await client.submit(JobSubmission(module="hash", params={"text": "x"}))
            submitted_ms = clock()
            autojump.jump(HOURS_S)
            await cancelled.wait()
            nursery.cancel_scope.cancel()
    stored = client._store.get(key)
    assert stored is not None
    assert stored.record.phase.value == "cancelled"
    assert stored.detail.error.startswith("no provider took the job in time")
    assert "`lilypad-p2p offers --market cpu`" in stored.detail.error
    transitions = client._store.transitions(key)
    assert transitions[-1].at_ms - submitted_ms >= HOURS_S * 1000
