"""The disputing side reports a mediator whose answer no honest one gives (a verdict for
another deal, or one signed by someone else), and not one that refuses: an honest mediator
refuses a deal it cannot judge. Against scripted mediators on an in-memory network and the
embedded chain's signing domain."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import trio

from lilypad_p2p import wire
from lilypad_p2p.chain import Deal, Outcome, Verdict
from lilypad_p2p.exec._job_stream import write_spool
from lilypad_p2p.identity import Identity
from lilypad_p2p.net import MEDIATION_STREAM, Reply
from lilypad_p2p.roles import DisputeCase, MediatorContact, gather_verdicts
from lilypad_p2p.roles._terms import module_hash
from lilypad_p2p.roles._transfer import SpooledInputs, spool_context
from lilypad_p2p.testing import MemoryNetwork, funded_deal_chains

pytestmark = pytest.mark.chain
LIMIT_S = 60


async def test_false_verdicts_are_reported_and_a_refusal_is_not(tmp_path: Path, autojump):
    client_id, provider_id = Identity.generate(), Identity.generate()
    mediator_ids = sorted((Identity.generate() for _ in range(3)),
                          key=lambda i: i.address.lower())
    _, chains = await funded_deal_chains([client_id, provider_id], mediator_ids)
    client = chains[client_id.address]
    deal = Deal(job_creator=client_id.address, provider=provider_id.address, payment=1,
                collateral=1, mediation_fee=0, mediators=tuple(i.address for i in mediator_ids),
                threshold=2, result_deadline=10**10, acceptance_window=600,
                mediation_window=600, job_spec_hash=bytes(32), module_hash=module_hash("hash"),
                salt=secrets.token_bytes(32))
    deal_id = client.deal_id(deal)
    spool = tmp_path / "job.inputs"
    write_spool(spool, client_id.sealing_public_key, spool_context("job"), {}, {"text": "x"})
    case = DisputeCase(deal, "hash", SpooledInputs(spool, client_id.sealing_private_key(),
                                                   spool_context("job")),
                       bytes(32), bytes(65), b"a job offer", bytes(32))

    def verdict(signer: Identity, for_deal: bytes) -> wire.VerdictNotice:
        signed = Verdict(for_deal, Outcome.PROVIDER_CORRECT, bytes(32))
        return wire.VerdictNotice(deal_id=for_deal, outcome=int(signed.outcome),
                                  result_hash=bytes(32),
                                  mediator_signature=chains[signer.address].sync.sign(signed))

    other_deal, forger, refuser = mediator_ids
    answers = {
        other_deal.address: verdict(other_deal, bytes(32)),      # another deal's verdict
        forger.address: verdict(refuser, deal_id),               # signed by another member
        refuser.address: wire.DealRefused(reason="busy"),        # honest
    }
    network = MemoryNetwork()
    asker = network.transport(client_id.peer_id)

    def serving(answer: wire.DealMessage):
        async def judge(peer_id: str, request: wire.MediationRequest, gate) -> Reply:
            return Reply(answer)
        return judge

    for identity in mediator_ids:
        network.transport(identity.peer_id).serve_transfer(
            MEDIATION_STREAM, serving(answers[identity.address]))

    def contact(address: str) -> MediatorContact:
        identity = next(i for i in mediator_ids if i.address == address)
        return MediatorContact(address, identity.sealing_public_key, str(identity.peer_id),
                               asker)

    with trio.fail_after(LIMIT_S):
        tally = await gather_verdicts(client, case, contact)
    assert tally.quorum() is None
    reported = {report.peer for report in network.reports}
    assert reported == {str(other_deal.peer_id), str(forger.peer_id)}
    assert all(report.reporter == str(client_id.peer_id) for report in network.reports)
