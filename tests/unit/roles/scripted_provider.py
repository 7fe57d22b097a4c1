"""A provider scripted in the test, and the funded parties around it, for the client's unit
tests against a real embedded chain."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Sequence

import trio

from lilypad_p2p import wire
from lilypad_p2p.blocking import run_blocking
from lilypad_p2p.chain import Deal, SettlementClient, deploy_settlement
from lilypad_p2p.exec import BUILTIN_IDS
from lilypad_p2p.identity import Identity
from lilypad_p2p.localnet import chain_test_accounts
from lilypad_p2p.net import DEAL_PROTOCOL, JOB_PROTOCOL, RESULT_PROTOCOL
from lilypad_p2p.roles import DealChain, deal_from_wire, resource_offer, result_hash
from lilypad_p2p.roles._provider import Capacity
from lilypad_p2p.testing import embedded_test_chain


def tarball(content: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("digest.txt")
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


class ScriptedProvider:
    """Answers the three protocols like an honest provider (never settling itself), or one
    whose outputs miss the hash it signed."""

    def __init__(self, identity: Identity, chain: DealChain, *, lie: bool) -> None:
        self.identity, self.chain, self.lie = identity, chain, lie
        self.accepted: list[wire.AcceptanceNotice] = []
        self.first_acceptance = trio.Event()
        self.deals: dict[bytes, Deal] = {}  # the deals it ran, by ID

    async def request(self, peer_id, protocol, message, *, addrs=()):
        if protocol == DEAL_PROTOCOL:
            return wire.DealCountersigned(
                provider_signature=self.chain.sign_deal(deal_from_wire(message.deal))
            )
        assert protocol == RESULT_PROTOCOL
        self.accepted.append(message)
        self.first_acceptance.set()
        return wire.AcceptanceAck(deal_id=message.deal_id)

    async def exchange(self, peer_id, protocol, message, *, inputs, on_answer, addrs=()):
        """A job transfer as a real provider does it, from the spec (docs/WIRE.md §6)."""
        assert protocol == JOB_PROTOCOL
        deal = deal_from_wire(message.deal)
        deal_id = self.chain.deal_id(deal)
        self.deals[deal_id] = deal
        opener = wire.ChunkOpener(self.identity.sealing_private_key(), message.inputs_preamble,
                                  wire.INPUTS_CONTEXT + deal_id, message.inputs_bytes)
        self.inputs = b"".join([opener.open(chunk) async for chunk in inputs()])
        assert opener.finished
        honest = tarball(b"abc\n")
        digest = result_hash(honest)
        sent = tarball(b"forged\n") if self.lie else honest
        sealer = wire.ChunkSealer(message.output_recipient, wire.OUTPUT_CONTEXT + deal_id,
                                  len(sent))
        chunks = sealer.seal(sent)

        async def body():
            for chunk in chunks:
                yield chunk

        answer = wire.JobResultMessage(
            deal_id=deal_id, result_hash=digest,
            provider_signature=self.chain.sign_commitment(deal, digest),
            output_preamble=sealer.preamble, output_bytes=len(sent))
        return await on_answer(answer, body())


DEPOSIT_WEI = 10**18
STAKE_WEI = 10**18


async def funded_parties(
    depositors: Sequence[Identity], mediators: Sequence[Identity] = ()
) -> tuple[int, dict[str, DealChain]]:
    """A fresh embedded chain with the settlement contract: `depositors` deposit DEPOSIT_WEI,
    `mediators` register with STAKE_WEI. The chain ID and each party's DealChain by address."""
    chain = embedded_test_chain()
    deployer = chain_test_accounts(1)[0]
    contract = await run_blocking(deploy_settlement, chain, deployer)
    chains = {}
    for identity in (*depositors, *mediators):
        await run_blocking(chain.transact, deployer, identity.address, b"", 3 * DEPOSIT_WEI)
        sync = SettlementClient(chain, contract, identity.eth_account())
        if identity in mediators:
            await run_blocking(sync.register_mediator, STAKE_WEI)
        else:
            await run_blocking(sync.deposit, DEPOSIT_WEI)
        chains[identity.address] = DealChain(sync, identity)
    return chain.chain_id, chains


def provider_listing(
    provider: Identity, chain_id: int, trusted: tuple[str, ...], now_ms: int
) -> tuple[wire.SignedEnvelope, wire.NodeRecord]:
    """A signed `hash` resource offer in market `cpu` and the provider's NodeRecord."""
    offer = resource_offer(provider=provider.address, market="cpu",
                           capacity=Capacity(2000, 4096, 10_000), modules=(BUILTIN_IDS["hash"],),
                           now_ms=now_ms, chain_ids=(chain_id,), trusted_mediators=trusted)
    record = wire.NodeRecord(
        address=provider.address, peer_id=str(provider.peer_id), roles=("provider",),
        sealing_public_key=provider.sealing_public_key, markets=("cpu",),
        listen_addrs=(), created_at=now_ms, expires_at=now_ms + 60_000, nonce=1)
    return provider.sign_envelope(offer, now_ms), record
