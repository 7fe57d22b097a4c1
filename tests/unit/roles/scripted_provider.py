"""A provider and mediators scripted in the test, on an in-memory network, and the funded
parties around them, for the client's unit tests against a real embedded chain."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from lilypad_p2p import wire
from lilypad_p2p.chain import Deal, Outcome, SettlementItem, Verdict
from lilypad_p2p.clock import Clock, wall_clock_ms
from lilypad_p2p.identity import Identity
from lilypad_p2p.market import OfferBook
from lilypad_p2p.net import DEAL_STREAM, JOB_STREAM, MEDIATION_STREAM, RESULT_STREAM, Reply
from lilypad_p2p.roles import (
    ClientDisputes,
    ClientRole,
    DealChain,
    DealChains,
    MediationSettings,
    MediatorContact,
    deal_from_wire,
    result_hash,
)
from lilypad_p2p.testing import MemoryNetwork, WatchedStore, funded_deal_chains, provider_listing

FEE_WEI = 3 * 10**12


def tarball(content: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("digest.txt")
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


async def receive_opened(gate, identity: Identity,
                         request: wire.JobRequest | wire.MediationRequest,
                         context: bytes, deal_id: bytes) -> bytes:
    """The request's inputs, taken through `gate` and opened chunk by chunk with `identity`'s
    sealing key under `context`, to their last chunk."""
    opener = wire.ChunkOpener(identity.sealing_private_key(), request.inputs_preamble, context,
                              request.inputs_bytes)
    opened: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        opened.append(opener.open(chunk))

    await gate.receive(deal_id, request.inputs_bytes, sink)
    assert opener.finished
    return b"".join(opened)


class ScriptedProvider:
    """Serves the three protocols on an in-memory network like an honest provider (never
    settling itself, unless given `settles`), or one whose outputs miss the hash it signed;
    without `acks` it never acknowledges an acceptance (as while it is unreachable); with
    `ack_after` it answers one only once that event is set."""

    def __init__(self, identity: Identity, chain: DealChain, *, lie: bool,
                 settles: bool = False, acks: bool = True,
                 ack_after: trio.Event | None = None) -> None:
        self.identity, self.chain, self.lie, self.settles = identity, chain, lie, settles
        self.acks, self.ack_after = acks, ack_after
        self.accepted: list[wire.AcceptanceNotice] = []
        self.first_acceptance = trio.Event()
        self.deals: dict[bytes, Deal] = {}  # the deals it ran, by ID
        self.proposals: dict[bytes, bytes] = {}  # the job creator's signature, by deal ID

    def join(self, network: MemoryNetwork) -> None:
        transport = network.transport(self.identity.peer_id)
        transport.serve(DEAL_STREAM, self.on_proposal)
        transport.serve(RESULT_STREAM, self.on_acceptance)
        transport.serve_transfer(JOB_STREAM, self.on_job)

    async def on_proposal(self, peer_id: str, proposal: wire.DealProposal) -> wire.DealMessage:
        deal_id = self.chain.deal_id(deal_from_wire(proposal.deal))
        self.proposals[deal_id] = proposal.job_creator_signature
        return wire.DealAccepted()

    async def on_acceptance(self, peer_id: str, notice: wire.AcceptanceNotice
                            ) -> wire.DealMessage:
        self.accepted.append(notice)
        if self.settles:  # as an honest provider does on the acceptance: settle, then ack
            await self.chain.settle_batch([SettlementItem(
                self.deals[notice.deal_id], notice.result_hash, notice.job_creator_signature)])
        self.first_acceptance.set()
        if self.ack_after is not None:  # it holds the Acceptance; its answer is slow to come
            await self.ack_after.wait()
        if not self.acks:
            return wire.DealRefused(reason="not now")
        return wire.AcceptanceAck(deal_id=notice.deal_id)

    async def on_job(self, peer_id: str, request: wire.JobRequest, gate) -> Reply:
        """A job transfer as a real provider does it, from the spec (docs/WIRE.md §6)."""
        deal = deal_from_wire(request.deal)
        deal_id = self.chain.deal_id(deal)
        self.deals[deal_id] = deal
        self.inputs = await receive_opened(gate, self.identity, request,
                                           wire.INPUTS_CONTEXT + deal_id, deal_id)
        await self.chain.open_deal(deal, self.proposals[deal_id], self.chain.sign_deal(deal))
        honest = tarball(b"abc\n")
        digest = result_hash(honest)
        sent = tarball(b"forged\n") if self.lie else honest
        sealer = wire.ChunkSealer(request.output_recipient, wire.OUTPUT_CONTEXT + deal_id,
                                  len(sent))
        chunks = sealer.seal(sent)

        async def body():
            for chunk in chunks:
                yield chunk

        return Reply(wire.JobResultMessage(
            deal_id=deal_id, result_hash=digest,
            provider_signature=self.chain.sign_commitment(deal, digest),
            output_preamble=sealer.preamble, output_bytes=len(sent)), body)


class ScriptedMediator:
    """Signs the verdict it is told to: (outcome, hash) from the committed hash; upholding it,
    it sends `output` to a job creator that asks for it (docs/WIRE.md §6.1.2)."""

    def __init__(self, identity: Identity, chain: DealChain, outcome: Outcome,
                 output: bytes | None = None) -> None:
        self.identity, self.chain, self.outcome = identity, chain, outcome
        self.output = output
        self.asked = 0

    def join(self, network: MemoryNetwork) -> None:
        network.transport(self.identity.peer_id).serve_transfer(MEDIATION_STREAM, self.judge)

    async def judge(self, peer_id: str, request: wire.MediationRequest, gate) -> Reply:
        self.asked += 1
        deal_id = self.chain.deal_id(deal_from_wire(request.deal))
        # The streamed inputs open with our key, for this deal's mediation, to their last chunk.
        plaintext = await receive_opened(gate, self.identity, request,
                                         wire.MEDIATION_CONTEXT + deal_id, deal_id)
        assert len(plaintext) == request.inputs_bytes
        digest = (request.result_hash if self.outcome is Outcome.PROVIDER_CORRECT
                  else hashlib.sha256(request.result_hash).digest())
        signature = self.chain.sync.sign(Verdict(deal_id, self.outcome, digest))
        verdict = {"deal_id": deal_id, "outcome": int(self.outcome), "result_hash": digest,
                   "mediator_signature": signature}
        output = self.output
        if output is None or not request.output_recipient or self.outcome is not (
                Outcome.PROVIDER_CORRECT):
            return Reply(wire.VerdictNotice(**verdict))
        sealer = wire.ChunkSealer(request.output_recipient, wire.OUTPUT_CONTEXT + deal_id,
                                  len(output))

        async def body():
            for chunk in sealer.seal(output):
                yield chunk

        return Reply(wire.VerdictWithOutput(**verdict, output_preamble=sealer.preamble,
                                            output_bytes=len(output)), body)


@dataclass
class ClientMarket:
    """A real client role facing one provider and three mediators, scripted, on an in-memory
    network and a fresh embedded chain; `clock` is the client's (trio's mock clock alone)."""

    client: ClientRole
    provider: Any
    provider_id: Identity
    mediators: dict[str, ScriptedMediator]
    chain: DealChain
    clock: Clock


async def client_market(tmp_path: Path, outcome: Outcome,
                        provider_of: Callable[[Identity, DealChain], Any],
                        output: bytes | None = None) -> ClientMarket:
    """`provider_of(identity, chain)` builds the provider, which joins the network itself; the
    mediators send `output` with a verdict upholding the provider, if asked."""
    client_id, provider_id = Identity.generate(), Identity.generate()
    mediator_ids = [Identity.generate() for _ in range(3)]
    chain_id, chains = await funded_deal_chains([client_id, provider_id], mediator_ids)
    mediators = {i.address: ScriptedMediator(i, chains[i.address], outcome, output)
                 for i in mediator_ids}
    trusted = tuple(sorted(mediators, key=str.lower))
    clock = Clock(wall_clock_ms())  # from now on, trio's mock clock alone
    listing, record = provider_listing(provider_id, chain_id, trusted, clock())
    book = OfferBook()
    book.add(listing, clock())
    provider = provider_of(provider_id, chains[provider_id.address])
    network = MemoryNetwork()
    provider.join(network)
    for mediator in mediators.values():
        mediator.join(network)
    asker = network.transport(client_id.peer_id)

    def contact(address: str) -> MediatorContact | None:
        mediator = mediators[address]
        return MediatorContact(address, mediator.identity.sealing_public_key,
                               str(mediator.identity.peer_id), asker)

    async def publish(body):
        return None

    client_chain = chains[client_id.address]
    client = ClientRole(
        client_id, store=WatchedStore.open(tmp_path / "db"), chains=DealChains([client_chain]),
        book=book, publish=publish, transport=asker,
        node_record=lambda address: record if address == provider_id.address else None,
        mediators=trusted, results_dir=tmp_path / "results", clock_ms=clock,
        disputes=ClientDisputes(client_id, DealChains([client_chain]), contact,
                                MediationSettings(mediation_fee_wei=FEE_WEI)))
    return ClientMarket(client, provider, provider_id, mediators, client_chain, clock)
