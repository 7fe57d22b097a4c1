"""An attacker job creator against a real provider node process on an agreed deal: its own
key, its own libp2p host, the job transfer built from the spec's primitives (docs/WIRE.md
§6.1.1). Inputs declared over the provider's max_job_bytes are refused before one byte is asked
for; a stream with one flipped bit is taken in and fails to open, and a well-formed stream of
other inputs than the job offer committed to (`inputs_commitment`, §6.1.1) is named so: in both
cases the provider does not open the deal on chain and no container runs. The provider keeps
running and no funds move."""

import hashlib
import time

import msgpack
import pytest
import trio
from heard_offers import first_resource_offer
from nacl.public import PrivateKey

from lilypad_p2p import wire
from lilypad_p2p.chain import DealStatus
from lilypad_p2p.exec import BUILTIN_IDS, BUILTIN_MODULES
from lilypad_p2p.localnet import market_world
from lilypad_p2p.net import DEAL_STREAM, JOB_STREAM, GossipNet
from lilypad_p2p.roles import DealChain, build_deal, deal_to_wire
from lilypad_p2p.testing import require_anvil, require_docker

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]
EXCHANGE_TIMEOUT_S = 90.0
MAX_JOB_BYTES = 2 * 2**20


def test_oversized_and_tampered_input_streams_on_an_agreed_deal(tmp_path):
    require_anvil()
    require_docker("the provider would run the job in Docker")
    with market_world(tmp_path) as world:
        provider = world.start("provider", roles=["provider"],
                               config_lines=f"max_job_bytes = {MAX_JOB_BYTES}\n")
        attacker = world.prepare_home("attacker")
        before = {a: world.balance(a) for a in (attacker.address, provider.status["address"])}
        hash_module = BUILTIN_MODULES["hash"]
        # A valid input stream (§6.1.1: header length, canonical header, the file's bytes), and
        # the job offer's commitment to it: sha256(nonce || the stream).
        size = wire.CHUNK_BYTES + 100
        header = msgpack.packb({
            "files": [["a.bin", size]], "params": {"algorithm": "sha256", "text": "x"},
            "type": "job-inputs-stream", "v": 1}, use_bin_type=True)
        data = len(header).to_bytes(4, "big") + header + b"\0" * size
        nonce = bytes(range(32))
        commitment = hashlib.sha256(nonce + data).digest()

        async def attack() -> tuple[wire.DealMessage, wire.DealMessage, wire.DealMessage,
                                   DealStatus, int]:
            net = GossipNet(attacker, listen_addrs=["/ip4/127.0.0.1/tcp/0"],
                            bootstrap=[provider.dial_addr], markets=["cpu"])
            async with trio.open_nursery() as nursery:
                await nursery.start(net.run)
                with trio.fail_after(EXCHANGE_TIMEOUT_S):
                    resource = await first_resource_offer(net)
                    chain = DealChain(world.settlement(attacker), attacker)
                    now = int(time.time() * 1000)
                    job = wire.JobOffer(
                        market="cpu", job_creator=attacker.address, module=BUILTIN_IDS["hash"],
                        image=hash_module.image,
                        spec=wire.ResourceSpec(milli_cpu=500, ram_mb=64, disk_mb=16),
                        max_price_wei=resource.price_per_job_wei,
                        trusted_mediators=(world.mediator,), deadline=now + 300_000,
                        target_provider=resource.provider, chain_id=chain.chain_id,
                        inputs_commitment=commitment, created_at=now, expires_at=now + 100_000,
                        nonce=8)
                    deal = build_deal(job, resource, salt=bytes(range(32)))
                    signature = chain.sign_deal(deal)
                    countersigned = await net.deals.request(
                        provider.status["peer_id"], DEAL_STREAM,
                        wire.DealProposal(chain_id=chain.chain_id,
                                          job_offer=attacker.sign_envelope(job, now).encode(),
                                          resource_offer_cid=resource.cid,
                                          deal=deal_to_wire(deal),
                                          job_creator_signature=signature),
                        addrs=provider.status["listen_addrs"])
                    assert isinstance(countersigned, wire.DealAccepted), countersigned
                    deal_id = chain.deal_id(deal)
                    own = PrivateKey.generate()
                    sent: list[int] = []

                    def request(size: int, sealer: wire.ChunkSealer) -> wire.JobRequest:
                        return wire.JobRequest(
                            chain_id=chain.chain_id, deal=deal_to_wire(deal),
                            module=BUILTIN_IDS["hash"], inputs_preamble=sealer.preamble,
                            inputs_bytes=size, inputs_nonce=nonce,
                            output_recipient=bytes(own.public_key))

                    async def on_answer(answer, body):
                        return answer

                    # 1. Over the provider's max_job_bytes: no `send_inputs`, nothing read.
                    big = MAX_JOB_BYTES + 1
                    sealer = wire.ChunkSealer(resource_sealing_key, wire.INPUTS_CONTEXT + deal_id,
                                              big)

                    async def never():
                        sent.append(1)
                        yield b""

                    oversized = await net.deals.exchange(
                        provider.status["peer_id"], JOB_STREAM, request(big, sealer),
                        inputs=never, on_answer=on_answer)
                    async def send(plaintext: bytes, bend: bool = False) -> wire.DealMessage:
                        sealer = wire.ChunkSealer(resource_sealing_key,
                                                  wire.INPUTS_CONTEXT + deal_id, len(plaintext))
                        chunks = sealer.seal(plaintext)
                        if bend:
                            bent = bytearray(chunks[1])
                            bent[7] ^= 1
                            chunks[1] = bytes(bent)

                        async def inputs():
                            for chunk in chunks:
                                yield chunk

                        return await net.deals.exchange(
                            provider.status["peer_id"], JOB_STREAM,
                            request(len(plaintext), sealer), inputs=inputs, on_answer=on_answer)

                    # 2. The committed stream with one bit flipped in its second chunk.
                    refused = await send(data, bend=True)
                    # 3. A well-formed stream of other inputs of the same size: it opens, but
                    # it is not what the deal's job offer committed to.
                    swapped = await send(data[:-1] + b"\1")
                    opened = await chain.status(deal)
                nursery.cancel_scope.cancel()
            return oversized, refused, swapped, opened, len(sent)

        resource_sealing_key = bytes.fromhex(provider.call("status")["sealing_public_key"])
        oversized, refused, swapped, opened, asked = trio.run(attack)
        assert oversized == wire.DealRefused(
            reason=f"the job's inputs take {MAX_JOB_BYTES + 1} bytes, over this provider's "
                   f"max_job_bytes of {MAX_JOB_BYTES}")
        assert asked == 0
        assert isinstance(refused, wire.DealRefused), refused
        assert "do not open with this node's sealing key" in refused.reason
        assert swapped == wire.DealRefused(
            reason="the inputs are not the ones the deal's job offer committed to "
                   "(inputs_commitment); the deal is not opened")
        assert opened is DealStatus.NONE
        assert provider.call("status")["address"] == provider.status["address"]  # alive
        assert {a: world.balance(a) for a in before} == before
