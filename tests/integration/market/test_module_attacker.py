"""An attacker job creator against a real provider node process: it proposes a properly signed
deal for a module ID the provider does not hold, then answers the provider's definition request
with a different definition (its own key, its own libp2p host, the messages built from the
spec). The provider must refuse before signing anything, keep running, and no funds move.
The same attacker proposing deals for a stream of fresh, valid modules that the provider's
policy refuses must not make it store their definitions."""

import time

import pytest
import trio
from heard_offers import first_resource_offer

from lilypad_p2p import wire
from lilypad_p2p.exec import definition_bytes, load_definition_text, module_id
from lilypad_p2p.localnet import market_world
from lilypad_p2p.net import DEAL_STREAM, MODULE_STREAM, GossipNet
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


def _propose(world, attacker, provider, modules: dict[str, bytes]) -> list[wire.DealMessage]:
    """The attacker's host proposes a deal for each module ID in `modules` (one after another,
    its definition request for an ID answered with the given bytes); the provider's answers.
    The provider may recycle its attacker-side connections; each proposal names its addrs."""
    asked: list[str] = []

    async def serve_definition(peer_id, request):
        asked.append(request.module)
        return wire.ModuleDefinition(module=request.module, definition=modules[request.module])

    async def attack() -> list[wire.DealMessage]:
        net = GossipNet(attacker, listen_addrs=["/ip4/127.0.0.1/tcp/0"],
                        bootstrap=[provider.dial_addr], markets=["cpu"])
        net.deals.serve(MODULE_STREAM, serve_definition)
        answers = []
        async with trio.open_nursery() as nursery:
            await nursery.start(net.run)
            with trio.fail_after(EXCHANGE_TIMEOUT_S):
                resource = await first_resource_offer(net)
                chain = DealChain(world.settlement(attacker), attacker)
                for nonce, claimed in enumerate(modules):
                    now = int(time.time() * 1000)
                    job = wire.JobOffer(
                        market="cpu", job_creator=attacker.address, module=claimed,
                        image="recipe:busybox",
                        spec=wire.ResourceSpec(milli_cpu=250, ram_mb=32, disk_mb=4),
                        max_price_wei=resource.price_per_job_wei,
                        trusted_mediators=(world.mediator,), deadline=now + 300_000,
                        target_provider=resource.provider, chain_id=chain.chain_id,
                        inputs_commitment=bytes(32), created_at=now,
                        expires_at=now + 100_000, nonce=nonce)
                    envelope = attacker.sign_envelope(job, now)
                    deal = build_deal(job, resource, salt=nonce.to_bytes(32, "big"))
                    answers.append(await net.deals.request(
                        provider.status["peer_id"], DEAL_STREAM,
                        wire.DealProposal(chain_id=chain.chain_id,
                                          job_offer=envelope.encode(),
                                          resource_offer_cid=resource.cid,
                                          deal=deal_to_wire(deal),
                                          job_creator_signature=chain.sign_deal(deal)),
                        addrs=provider.status["listen_addrs"]))
            nursery.cancel_scope.cancel()
        return answers

    answers = trio.run(attack)
    assert asked == list(modules)
    return answers


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

        [answer] = _propose(world, attacker, provider, {claimed: definition_bytes(swapped)})
        assert isinstance(answer, wire.DealRefused), answer
        assert "does not match module ID" in answer.reason
        assert provider.call("deals") == []
        assert not (world.base_dir / "provider" / "modules" / f"{claimed}.module").exists()
        assert provider.call("status")["address"] == provider.status["address"]  # alive
        assert {a: world.balance(a) for a in before} == before


def test_proposals_for_fresh_modules_fill_neither_the_disk_nor_the_memory(tmp_path):
    """Each proposal names a new, valid module its policy refuses: the provider fetches and
    checks each definition, refuses, and stores none of them."""
    require_anvil()
    with market_world(tmp_path) as world:
        provider = world.start("provider", roles=["provider"])  # shipped modules only
        attacker = world.prepare_home("attacker")
        before = {a: world.balance(a) for a in (attacker.address, provider.status["address"])}
        fresh = [load_definition_text(HONEST.replace('"innocent"', f'"innocent{n}"'))
                 for n in range(12)]
        answers = _propose(world, attacker, provider,
                           {module_id(m): definition_bytes(m) for m in fresh})
        assert all(isinstance(a, wire.DealRefused) and "module policy" in a.reason
                   for a in answers), answers
        modules_dir = world.base_dir / "provider" / "modules"
        assert not modules_dir.exists() or list(modules_dir.iterdir()) == []
        assert provider.call("deals") == []
        assert provider.call("status")["address"] == provider.status["address"]  # alive
        assert {a: world.balance(a) for a in before} == before
