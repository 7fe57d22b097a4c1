"""The provider's agreement-time module checks, against a job creator scripted as an attacker
(it answers the definition request with bytes of its own choosing), over an in-memory network."""

import trio

from lilypad_p2p import wire
from lilypad_p2p.exec import (
    BUILTIN_IDS,
    ModuleCatalog,
    definition_bytes,
    load_definition_text,
    module_id,
)
from lilypad_p2p.exec._catalog import RECEIVED_HELD
from lilypad_p2p.market import ModulePolicy
from lilypad_p2p.net import MODULE_STREAM, PeerAction
from lilypad_p2p.roles._module_gate import ModuleGate, definition_server
from lilypad_p2p.roles._module_setup import modules_beyond
from lilypad_p2p.testing import MemoryNetwork
from lilypad_p2p.testing.offers import make_job_offer

DEFINITION = """
name = "say"
image = "recipe:busybox"
command = ["/bin/echo", "{text}"]
[resources]
milli_cpu = 250
memory_mb = 32
disk_mb = 4
[params.text]
kind = "str"
"""
PEER = "16Uiu2HAmJobCreator"  # the job creator, on the test's network by this name
ASKER = "16Uiu2HAmProvider"


def _job(module: str, image: str = "", ram_mb: int = 32) -> wire.JobOffer:
    return make_job_offer(
        module=module, image=image, spec=wire.ResourceSpec(milli_cpu=250, ram_mb=ram_mb, disk_mb=4))


async def _no_executor():
    return None


def _gate(tmp_path, answer, network=None):
    """A provider's gate on `network`, whose job creator answers `answer(request)`."""
    network = network or MemoryNetwork()

    async def serve(peer_id, request):
        return answer(request)

    network.transport(PEER).serve(MODULE_STREAM, serve)
    return ModuleGate(ModuleCatalog(tmp_path / "modules"), network.transport(ASKER),
                      _no_executor)


def test_a_definition_that_does_not_match_its_id_is_refused_and_not_stored(tmp_path):
    honest = load_definition_text(DEFINITION)
    swapped = load_definition_text(DEFINITION.replace("/bin/echo", "/bin/rm"))
    mid = module_id(honest)
    network = MemoryNetwork()
    gate = _gate(tmp_path, lambda m: wire.ModuleDefinition(
        module=m.module, definition=definition_bytes(swapped)), network)
    reason = trio.run(gate.refusal, PEER, _job(mid), (mid,))
    assert reason is not None and "does not match module ID" in reason
    assert not (tmp_path / "modules" / f"{mid}.module").exists()
    [report] = network.reports
    assert (report.reporter, report.peer, report.action) == (ASKER, PEER,
                                                             PeerAction.LOW_TOLERANCE)


def test_a_matching_definition_is_fetched_checked_and_stored_once_a_deal_needs_it(tmp_path):
    creator = ModuleCatalog(tmp_path / "creator")
    mid = creator.add(load_definition_text(DEFINITION))
    network = MemoryNetwork()
    network.transport(PEER).serve(MODULE_STREAM, definition_server(creator))
    catalog = ModuleCatalog(tmp_path / "provider")

    async def main():
        provider = ModuleGate(catalog, network.transport(ASKER), _no_executor)
        assert await provider.refusal(PEER, _job(mid, "recipe:busybox"), (mid,)) is None
        assert "other-image" in await provider.refusal(
            PEER, _job(mid, "localhost:5000/other-image@sha256:" + "a" * 64), (mid,))
        assert "below what module say needs" in await provider.refusal(
            PEER, _job(mid, ram_mb=8), (mid,))
        assert "not allowed by this provider's module policy" in await provider.refusal(
            PEER, _job(mid), ("hash",))

    trio.run(main)
    assert not (tmp_path / "provider" / f"{mid}.module").exists()  # held, no deal yet
    assert catalog.keep(mid)  # the provider signs a deal for it
    assert (tmp_path / "provider" / f"{mid}.module").exists()
    assert ModuleCatalog(tmp_path / "provider").resolve(mid)[0] == mid
    assert network.reports == []


def test_definitions_fetched_for_refused_proposals_are_held_in_memory_only_and_few(tmp_path):
    """Anyone may propose a deal naming a module: what a stream of proposals for fresh
    modules makes a provider fetch never reaches its disk, and at most RECEIVED_HELD stay."""
    creator = ModuleCatalog(tmp_path / "creator")
    mids = [creator.add(load_definition_text(DEFINITION.replace('"say"', f'"say{n}"')))
            for n in range(RECEIVED_HELD + 6)]
    network = MemoryNetwork()
    network.transport(PEER).serve(MODULE_STREAM, definition_server(creator))
    catalog = ModuleCatalog(tmp_path / "provider")

    async def main():
        gate = ModuleGate(catalog, network.transport(ASKER), _no_executor)
        for mid in mids:
            reason = await gate.refusal(PEER, _job(mid), ("hash",))
            assert reason is not None and "module policy" in reason

    trio.run(main)
    assert not (tmp_path / "provider").exists()
    assert not catalog.keep(mids[0])  # let go: a deal for it would be refused, not broken
    assert catalog.keep(mids[-1])
    assert [p.name for p in (tmp_path / "provider").iterdir()] == [f"{mids[-1]}.module"]


def test_a_creator_without_the_definition_gets_a_refusal_that_says_so(tmp_path):
    gate = _gate(tmp_path, lambda m: wire.DealRefused(reason="no module here"))
    mid = "bafkrei" + "a" * 52
    reason = trio.run(gate.refusal, PEER, _job(mid), (mid,))
    assert "refused to send it" in reason


def test_a_mediator_fetches_a_missing_definition_from_the_disputing_job_creator(tmp_path):
    from lilypad_p2p.identity import Identity
    from lilypad_p2p.roles._mediator import MediationRefused, MediatorRole

    creator = ModuleCatalog(tmp_path / "creator")
    mid = creator.add(load_definition_text(DEFINITION))
    network = MemoryNetwork()
    network.transport(PEER).serve(MODULE_STREAM, definition_server(creator))
    other = module_id(load_definition_text(DEFINITION.replace("echo", "true")))

    async def main():
        async def no_executor():
            raise AssertionError("not needed here")

        mediator = MediatorRole(Identity.load_or_create(tmp_path / "keys"), chains=None,
                                executor_factory=no_executor, stake_wei=1, spool=tmp_path,
                                modules=ModuleCatalog(tmp_path / "mediator"))
        mediator.install(network.transport(ASKER))
        await mediator._have_module(PEER, mid)
        try:
            await mediator._have_module(PEER, other)
        except MediationRefused as exc:
            return str(exc)
        return None

    refusal = trio.run(main)
    assert (tmp_path / "mediator" / f"{mid}.module").exists()
    assert refusal is not None and "refused to send it" in refusal


def test_on_chain_module_hash_is_the_name_for_shipped_modules_and_the_id_otherwise():
    from eth_utils import keccak

    from lilypad_p2p.exec import BUILTIN_IDS
    from lilypad_p2p.roles._terms import module_hash

    # Contracts request shipped modules by name (requestJob("hash", ...)): the deal must agree.
    assert module_hash(BUILTIN_IDS["hash"]) == keccak(text="hash")
    user = module_id(load_definition_text(DEFINITION))
    assert module_hash(user) == keccak(text=user)


def test_modules_beyond_names_the_allowed_modules_an_offer_cannot_take(tmp_path):
    catalog = ModuleCatalog(tmp_path / "modules")
    policy = ModulePolicy(module_ids=tuple(sorted(BUILTIN_IDS.values())))
    small = wire.ResourceSpec(milli_cpu=2000, ram_mb=4096, disk_mb=4000)
    assert modules_beyond(policy, catalog, small) == [
        "python (needs 1000 mCPU, 256 MiB RAM, 4096 MiB disk, 0 GPU)"]
    assert modules_beyond(policy, catalog, wire.ResourceSpec(milli_cpu=2000, ram_mb=4096,
                                                             disk_mb=4096)) == []
