"""A provider scripted in the test, for the client's unit tests against a real embedded chain."""

from __future__ import annotations

import io
import tarfile

from lilypad_p2p import wire
from lilypad_p2p.exec import seal_for, unseal
from lilypad_p2p.identity import Identity
from lilypad_p2p.net import DEAL_PROTOCOL, JOB_PROTOCOL, RESULT_PROTOCOL
from lilypad_p2p.roles import DealChain, deal_from_wire, result_hash


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

    async def request(self, peer_id, protocol, message, *, addrs=()):
        if protocol == DEAL_PROTOCOL:
            return wire.DealCountersigned(
                provider_signature=self.chain.sign_deal(deal_from_wire(message.deal))
            )
        if protocol == JOB_PROTOCOL:
            deal = deal_from_wire(message.deal)
            unseal(self.identity.sealing_private_key(), message.sealed_inputs)
            honest = tarball(b"abc\n")
            digest = result_hash(honest)
            sent = tarball(b"forged\n") if self.lie else honest
            return wire.JobResultMessage(
                deal_id=self.chain.deal_id(deal),
                result_hash=digest,
                provider_signature=self.chain.sign_commitment(deal, digest),
                sealed_output=seal_for(message.output_recipient, sent),
            )
        assert protocol == RESULT_PROTOCOL
        self.accepted.append(message)
        return wire.AcceptanceAck(deal_id=message.deal_id)
