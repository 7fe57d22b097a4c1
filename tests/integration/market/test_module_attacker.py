"""An attacker job creator against a real provider node process: it proposes a properly signed
deal for a module ID the provider does not hold, then answers the provider's definition request
with a different definition (its own key, its own libp2p host, the messages built from the
spec). The provider must refuse before signing anything, keep running, and no funds move."""

import time

import pytest
import trio

from lilypad_p2p import wire
from lilypad_p2p.exec import definition_bytes, load_definition_text, module_id
from lilypad_p2p.localnet import market_world
from lilypad_p2p.net import DEAL_STREAM, MODULE_STREAM, GossipNet, OfferReceived
from lilypad_p2p.roles import DealChain, build_deal, deal_to_wire
from lilypad_p2p.testing import require_anvil

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.slow]
EXCHANGE_TIMEOUT_S = 60.0
HONEST = """
name = "innocent"
image = "recipe:busybox"
command = ["/bin/echo", "{text}"]
[resources]
milli_cpu = 250
memory_mb = 32
disk_mb = 4
[params.text]
kind = "str"
"""


def test_a_definition_that_does_not_match_its_id_is_refused_before_any_signature(tmp_path):
    require_anvil()
    with market_world(tmp_path) as world:
        provider = world.start("provider", roles=["provider"],
                               config_lines="[modules]\nallow_any = true\n")
        attacker = world.prepare_home("attacker")
        before = {a: world.balance(a) for a in (attacker.address, provider.status["address"])}
        honest = load_definition_text(HONEST)
        swapped = load_definition_text(HONEST.replace("/bin/echo", "/bin/rm"))
        claimed = module_id(honest)
        asked: list[str] = []

        async def serve_wrong_definition(peer_id, request):
            asked.append(request.module)
            return wire.ModuleDefinition(module=request.module,
                                         definition=definition_bytes(swapped))

        async def attack() -> wire.DealMessage:
            net = GossipNet(attacker, listen_addrs=["/ip4/127.0.0.1/tcp/0"],
                            bootstrap=[provider.dial_addr], markets=["cpu"])
            net.deals.serve(MODULE_STREAM, serve_wrong_definition)
            async with trio.open_nursery() as nursery:
                await nursery.start(net.run)
                with trio.fail_after(EXCHANGE_TIMEOUT_S):
                    async for event in net.events:
                        if (isinstance(event, OfferReceived)
                                and isinstance(event.envelope.body, wire.ResourceOffer)):
                            resource = event.envelope.body
                            break
                    chain = DealChain(world.settlement(attacker), attacker)
                    now = int(time.time() * 1000)
                    job = wire.JobOffer(
                        market="cpu", job_creator=attacker.address, module=claimed,
                        image=honest.image,
                        spec=wire.ResourceSpec(milli_cpu=250, ram_mb=32, disk_mb=4),
                        max_price_wei=resource.price_per_job_wei,
                        trusted_mediators=(world.mediator,), deadline=now + 300_000,
                        target_provider=resource.provider, chain_id=chain.chain_id,
                        created_at=now, expires_at=now + 100_000, nonce=7)
                    envelope = attacker.sign_envelope(job, now)
                    deal = build_deal(job, resource, salt=bytes(range(32)))
                    answer = await net.deals.request(
                        provider.status["peer_id"], DEAL_STREAM,
                        wire.DealProposal(chain_id=chain.chain_id,
                                          job_offer=envelope.encode(),
                                          resource_offer_cid=resource.cid,
                                          deal=deal_to_wire(deal),
                                          job_creator_signature=chain.sign_deal(deal)),
                        addrs=provider.status["listen_addrs"])
                nursery.cancel_scope.cancel()
            return answer

        answer = trio.run(attack)
        assert isinstance(answer, wire.DealRefused), answer
        assert "does not match module ID" in answer.reason
        assert asked == [claimed]
        assert provider.call("deals") == []
        assert not (world.base_dir / "provider" / "modules" / f"{claimed}.module").exists()
        assert provider.call("status")["address"] == provider.status["address"]  # alive
        assert {a: world.balance(a) for a in before} == before
