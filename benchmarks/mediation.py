"""Mediation figures: dispute -> resolved latency for a trivial job, gas of `resolve`.

    python benchmarks/mediation.py [--rounds 5]

One anvil, one settlement contract, ten registered mediators (`MediatorRole`s in this process,
each with its own key and chain account, sharing one Docker executor). Latency: a `hash` job's
deal is opened and its provider's (wrong) result computed first; the clock runs from the
disputing call (`roles.mediate`: submitResult, dispute, ask the consortium, two Docker runs per
mediator, verdicts, resolve) to the resolve transaction's receipt, for 3 mediators (k = 3) and
5 mediators (k = 4). Gas: `resolve` with 3-of-5 and 7-of-10 signatures (ProviderWrong), the
median of `--rounds` deals. Writes benchmarks/results/mediation.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio

from lilypad_p2p.chain import (
    Deal,
    Outcome,
    SettlementClient,
    Verdict,
    default_threshold,
    deploy_settlement,
)
from lilypad_p2p.exec import BUILTIN_IDS, BUILTIN_MODULES, Executor, JobInputs, JobSpec, seal_for
from lilypad_p2p.exec._job_stream import inputs_commitment, write_spool
from lilypad_p2p.identity import Identity
from lilypad_p2p.roles import (
    DealChain,
    DealChains,
    DisputeCase,
    MediatorContact,
    MediatorRole,
    mediate,
    open_dispute,
)
from lilypad_p2p.roles._terms import job_spec_hash, module_hash
from lilypad_p2p.roles._transfer import SpooledInputs, spool_context
from lilypad_p2p.testing import MemoryNetwork, anvil_test_chain, fund_on_anvil
from lilypad_p2p.testing.offers import make_job_offer
from lilypad_p2p.wire import JobOffer, new_inputs_nonce

ETH = 10**18
MEDIATORS = 10
RESULTS = Path(__file__).parent / "results" / "mediation.json"
GAS_TARGETS = {"resolve 3-of-5": 75_000}


def _deal(client: DealChain, provider: DealChain, mediators: tuple[str, ...], k: int,
          now: int, job: JobOffer) -> Deal:
    return Deal(job_creator=client.address, provider=provider.address, payment=ETH // 100,
                collateral=ETH // 10, mediation_fee=ETH // 1000 + 7, mediators=mediators,
                threshold=k, result_deadline=now + 3600, acceptance_window=600,
                mediation_window=600, job_spec_hash=job_spec_hash(job),
                module_hash=module_hash("hash"), salt=secrets.token_bytes(32))


async def _run(rounds: int) -> dict[str, object]:
    with anvil_test_chain() as chain, tempfile.TemporaryDirectory() as spools:
        ids = [Identity.generate() for _ in range(MEDIATORS + 2)]
        await trio.to_thread.run_sync(fund_on_anvil, chain, [i.eth_account() for i in ids])
        contract = deploy_settlement(chain, ids[0].eth_account(), withdraw_notice_s=60,
                                     min_mediator_stake=ETH)
        client_id, provider_id, *mediator_ids = ids
        mediator_ids.sort(key=lambda i: int(i.address, 16))

        def deal_chain(identity: Identity) -> DealChain:
            return DealChain(SettlementClient(chain, contract, identity.eth_account()), identity)

        client, provider = deal_chain(client_id), deal_chain(provider_id)
        await client.client.deposit(100 * ETH)
        await provider.client.deposit(100 * ETH)
        executor = await Executor.connect()

        async def shared() -> Executor:
            return executor

        def spool_of(identity: Identity) -> Path:
            path = Path(spools) / identity.address
            path.mkdir()
            return path

        roles = {i.address: MediatorRole(i, chains=DealChains([deal_chain(i)]),
                                         executor_factory=shared, stake_wei=ETH,
                                         spool=spool_of(i))
                 for i in mediator_ids}

        network = MemoryNetwork()  # the mediators in this process, each on its own peer
        for identity in mediator_ids:
            roles[identity.address].install(network.transport(identity.peer_id))

        def contact(address: str) -> MediatorContact:
            identity = next(i for i in mediator_ids if i.address == address)
            return MediatorContact(address, identity.sealing_public_key, str(identity.peer_id),
                                   network.transport("the-disputing-client"))

        async def case_for(mediators: tuple[str, ...], k: int, text: str) -> DisputeCase:
            params = BUILTIN_MODULES["hash"].resolve_params({"text": text})
            nonce = new_inputs_nonce()  # the job offer commits to the inputs
            job = make_job_offer(job_creator=client.address, module=BUILTIN_IDS["hash"],
                                 nonce=secrets.randbits(63),
                                 inputs_commitment=inputs_commitment(nonce, {}, params))
            deal = _deal(client, provider, mediators, k, await client.now_s(), job)
            await client.open_deal(deal, client.sign_deal(deal), provider.sign_deal(deal))
            result = await executor.run(JobSpec("hash"), seal_for(
                provider_id.sealing_public_key, JobInputs(files={}, params=params).encode()),
                provider_id.sealing_private_key(), timeout_s=60)
            digest = hashlib.sha256(result.output_tarball + b"\0" * 512).digest()  # a cheat
            cid = secrets.token_hex(8)  # the client's spool, as at submit
            spool = Path(spools) / f"{cid}.inputs"
            write_spool(spool, client_id.sealing_public_key, spool_context(cid), {}, params)
            inputs = SpooledInputs(spool, client_id.sealing_private_key(), spool_context(cid))
            return DisputeCase(deal, "hash", inputs, digest,
                               provider.sign_commitment(deal, digest),
                               client_id.sign_envelope(job, job.created_at).encode(), nonce)

        figures: dict[str, object] = {}
        async with trio.open_nursery() as nursery:
            for role in roles.values():
                await nursery.start(role.run)
            members = tuple(i.address for i in mediator_ids)
            for n in (3, 5):
                k = default_threshold(n)
                seconds = []
                for r in range(rounds):
                    case = await case_for(members[:n], k, f"round {r}")
                    started = time.perf_counter()
                    resolution = await mediate(client, case, contact)
                    seconds.append(time.perf_counter() - started)
                    assert resolution is not None and resolution.resolved_by_us
                figures[f"dispute -> resolved, {k}-of-{n}, hash job (s)"] = {
                    "median": round(statistics.median(seconds), 3),
                    "min": round(min(seconds), 3), "max": round(max(seconds), 3),
                    "rounds": rounds,
                }
            for k, n in ((3, 5), (7, 10)):
                gas = []
                for _ in range(rounds):
                    case = await case_for(members[:n], k, "gas")
                    await open_dispute(client, case)
                    verdict = Verdict(client.deal_id(case.deal), Outcome.PROVIDER_WRONG,
                                      hashlib.sha256(b"computed").digest())
                    sigs = [roles[m]._chains.default.sync.sign(verdict) for m in members[:k]]
                    receipt = await client.client.resolve(case.deal, verdict, sigs)
                    gas.append(receipt.gas_used)
                figures[f"resolve {k}-of-{n}"] = int(statistics.median(gas))
            nursery.cancel_scope.cancel()
        executor.close()
        return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    figures = trio.run(_run, args.rounds)
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "load_1min_before": round(load, 2), "figures": figures, "targets": GAS_TARGETS}
    for name, value in figures.items():
        print(f"{name}: {value}")
    for name, target in GAS_TARGETS.items():
        value = figures[name]
        assert isinstance(value, int)
        print(f"target {name} <= {target}: {'met' if value <= target else 'MISSED'} ({value})")
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"load (1 min) before the run: {load:.2f}; written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
