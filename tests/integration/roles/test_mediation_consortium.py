"""Mediation against the real parts: anvil, the settlement contract, Docker.

Mediators are `MediatorRole`s in this process (each with its own identity, stake and chain
account), each serving mediation on its own peer of an in-memory network; the disputing side is
`roles.mediate`, streaming the inputs it spooled to each mediator over that network. The
provider's run is the real executor on the one-piece inputs document, the mediators' runs the
streamed executor on their spools: an honest provider's hash is theirs byte for byte. A cheating
provider commits to a tarball that is not its job's output. One anvil and one set of
five registered mediators serve every scenario.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest
import trio

from lilypad_p2p import wire
from lilypad_p2p.chain import (
    Chain,
    Deal,
    DealStatus,
    Outcome,
    SettlementClient,
    SignatureRejected,
    Verdict,
    deploy_settlement,
    open_rpc_chain,
)
from lilypad_p2p.deal_detail import ProviderDetail
from lilypad_p2p.exec import (
    BUILTIN_IDS,
    BUILTIN_MODULES,
    Executor,
    JobInputs,
    JobSpec,
    ModuleCatalog,
    UnknownModule,
    load_definition_file,
    seal_for,
)
from lilypad_p2p.exec._job_stream import inputs_commitment, write_spool
from lilypad_p2p.identity import Identity
from lilypad_p2p.market import EquivocationWatch, VerdictOutcome, new_provider_deal
from lilypad_p2p.net import MEDIATION_STREAM, MODULE_STREAM, BodyGate, Reply
from lilypad_p2p.roles import (
    DealChain,
    DealChains,
    DisputeCase,
    MediationRefused,
    MediatorContact,
    MediatorFault,
    MediatorRole,
    ProviderDisputes,
    gather_verdicts,
    mediate,
    open_dispute,
    resolve,
)
from lilypad_p2p.roles import _mediator as mediator_module
from lilypad_p2p.roles._module_gate import definition_server
from lilypad_p2p.roles._terms import job_spec_hash, module_hash
from lilypad_p2p.roles._transfer import (
    SpooledInputs,
    inputs_context,
    mediation_context,
    spool_context,
)
from lilypad_p2p.store import StoredDeal
from lilypad_p2p.testing import (
    MemoryNetwork,
    advance_chain_time,
    anvil_test_chain,
    fund_on_anvil,
    require_anvil,
    require_docker,
)
from lilypad_p2p.testing._mediation import ChunksGate
from lilypad_p2p.testing._proxy import Forwarder
from lilypad_p2p.testing.offers import make_job_offer
from lilypad_p2p.wire import deal_to_wire

pytestmark = [pytest.mark.chain, pytest.mark.docker]
ASKER = "the-disputing-party"  # its peer on the consortium's network
# A module no mediator holds: the example a user adds by hand.
HELLO = Path(__file__).parents[3] / "examples" / "modules" / "hello" / "module.toml"

ETH = 10**18
STAKE = ETH
PAYMENT = ETH // 100
COLLATERAL = ETH // 10
FEE = ETH // 1000 + 2  # not divisible by 3: the remainder goes to the first signer
DEPOSIT = 10 * ETH
MEDIATORS = 5
SILENT_ANSWER_TIMEOUT_S = 20.0
MEDIATION_WINDOW_S = 600


@dataclass
class Setup:
    chain: Chain
    contract: str
    client: DealChain
    provider: DealChain
    client_id: Identity
    provider_id: Identity
    mediator_ids: list[Identity]  # ascending by address
    outsider: DealChain
    spools: Path  # the client's spooled inputs and each mediator's spool directory


def _deal_chain(chain: Chain, contract: str, identity: Identity) -> DealChain:
    return DealChain(SettlementClient(chain, contract, identity.eth_account()), identity)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    require_anvil()
    require_docker("mediators re-run jobs in Docker")
    with anvil_test_chain() as chain:
        identities = [Identity.generate() for _ in range(MEDIATORS + 3)]
        fund_on_anvil(chain, [i.eth_account() for i in identities])
        deployer = identities[0].eth_account()
        contract = deploy_settlement(chain, deployer, withdraw_notice_s=60,
                                     min_mediator_stake=STAKE)
        client_id, provider_id, outsider_id, *mediator_ids = identities
        mediator_ids.sort(key=lambda i: int(i.address, 16))
        for identity in (client_id, provider_id):
            SettlementClient(chain, contract, identity.eth_account()).deposit(DEPOSIT)
        for identity in [*mediator_ids, outsider_id]:  # the outsider is registered elsewhere
            SettlementClient(chain, contract, identity.eth_account()).register_mediator(STAKE)
        yield Setup(chain, contract, _deal_chain(chain, contract, client_id),
                    _deal_chain(chain, contract, provider_id), client_id, provider_id,
                    mediator_ids, _deal_chain(chain, contract, outsider_id),
                    tmp_path_factory.mktemp("spools"))


async def _provider_result(
    executor: Executor, setup: Setup, module: str, inputs: bytes, *, cheat: bool
) -> bytes:
    """Run the job as the provider does; a cheat commits to an output it did not compute."""
    result = await executor.run(JobSpec(module),
                                seal_for(setup.provider_id.sealing_public_key, inputs),
                                setup.provider_id.sealing_private_key(), timeout_s=60)
    tarball = result.output_tarball + (b"\0" * 512 if cheat else b"")
    return hashlib.sha256(tarball).digest()


def _client_spool(setup: Setup, params: dict[str, object]) -> SpooledInputs:
    """The client's spool of a job's inputs: the stream sealed to itself, as at submit."""
    cid = secrets.token_hex(8)
    spool = setup.spools / f"{cid}.inputs"
    write_spool(spool, setup.client_id.sealing_public_key, spool_context(cid), {}, params)
    return SpooledInputs(spool, setup.client_id.sealing_private_key(), spool_context(cid))


async def _open_with_result(
    setup: Setup, executor: Executor, module: str, params: dict[str, object],
    mediators: tuple[str, ...], threshold: int, *, cheat: bool = False,
) -> DisputeCase:
    now = await setup.client.now_s()
    resolved = BUILTIN_MODULES[module].resolve_params(params)
    # The job offer commits to the inputs; its hash is the deal's jobSpecHash.
    nonce = wire.new_inputs_nonce()
    job = make_job_offer(job_creator=setup.client_id.address, module=BUILTIN_IDS[module],
                         chain_id=setup.chain.chain_id, nonce=secrets.randbits(63),
                         inputs_commitment=inputs_commitment(nonce, {}, resolved))
    deal = Deal(
        job_creator=setup.client_id.address, provider=setup.provider_id.address,
        payment=PAYMENT, collateral=COLLATERAL, mediation_fee=FEE, mediators=mediators,
        threshold=threshold, result_deadline=now + 600, acceptance_window=300,
        mediation_window=MEDIATION_WINDOW_S, job_spec_hash=job_spec_hash(job),
        module_hash=module_hash(module), salt=secrets.token_bytes(32),
    )
    await setup.client.open_deal(deal, setup.client.sign_deal(deal),
                                 setup.provider.sign_deal(deal))
    document = JobInputs(files={}, params=resolved).encode()
    digest = await _provider_result(executor, setup, module, document, cheat=cheat)
    return DisputeCase(deal, module, _client_spool(setup, resolved), digest,
                       setup.provider.sign_commitment(deal, digest),
                       setup.client_id.sign_envelope(job, job.created_at).encode(), nonce)


def _spool_of(setup: Setup, identity: Identity) -> Path:
    path = setup.spools / identity.address
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _request_for(
    setup: Setup, case: DisputeCase, identity: Identity
) -> tuple[wire.MediationRequest, ChunksGate]:
    """The request and the inputs stream a disputing party sends the mediator `identity`."""
    deal_id = setup.client.deal_id(case.deal)
    inputs = case.inputs.resealed(identity.sealing_public_key, mediation_context(deal_id))
    request = wire.MediationRequest(
        chain_id=setup.chain.chain_id, deal=deal_to_wire(case.deal), module=case.module,
        inputs_preamble=inputs.preamble, inputs_bytes=inputs.size, inputs_nonce=case.inputs_nonce,
        job_offer=case.job_offer, result_hash=case.result_hash,
        provider_signature=case.provider_commitment, output_recipient=b"")
    return request, ChunksGate(inputs.chunks)


@dataclass
class Consortium:
    """The mediators, each serving its own peer on an in-memory network; an offline one
    takes the request and never answers."""

    roles: dict[str, MediatorRole]
    offline: set[str]
    network: MemoryNetwork

    def serve(self, address: str) -> None:
        role = self.roles[address]

        async def judge(peer_id: str, request: wire.MediationRequest, gate: BodyGate) -> Reply:
            if address in self.offline:
                await trio.sleep_forever()
            return await role.on_mediation_request(peer_id, request, gate)

        self.network.transport(role._identity.peer_id).serve_transfer(MEDIATION_STREAM, judge)

    def contact(self, address: str, asker: str = ASKER) -> MediatorContact | None:
        identity = self.roles[address]._identity
        return MediatorContact(address, identity.sealing_public_key, str(identity.peer_id),
                               self.network.transport(asker))

    def impostor(self, address: str, answer: wire.DealMessage) -> MediatorContact:
        """A contact for `address` whose peer answers every mediation request with `answer`."""
        peer = f"impostor-of-{address}"

        async def answering(peer_id: str, request: wire.MediationRequest,
                            gate: BodyGate) -> Reply:
            return Reply(answer)

        self.network.transport(peer).serve_transfer(MEDIATION_STREAM, answering)
        return MediatorContact(address, self.roles[address]._identity.sealing_public_key, peer,
                               self.network.transport(ASKER))


async def _start_mediators(
    nursery: trio.Nursery, setup: Setup, executor: Executor, liars: set[str] = frozenset(),
    chain: Chain | None = None,
) -> Consortium:
    """The registered mediators, each reaching the chain through `chain` (the setup's by
    default)."""
    async def shared() -> Executor:
        return executor

    roles = {}
    for identity in setup.mediator_ids:
        fault = MediatorFault.LIE if identity.address in liars else MediatorFault.NONE
        chains = DealChains([_deal_chain(chain or setup.chain, setup.contract, identity)])
        role = MediatorRole(identity, chains=chains, executor_factory=shared, stake_wei=STAKE,
                            fault=fault, spool=_spool_of(setup, identity))
        await nursery.start(role.run)
        roles[identity.address] = role
    consortium = Consortium(roles, set(), MemoryNetwork())
    for address in roles:
        consortium.serve(address)
    return consortium


async def _balances(setup: Setup, *addresses: str) -> list[tuple[int, int]]:
    out = []
    for address in addresses:
        balance = await setup.client.client.balance(address)
        out.append((balance.free, balance.locked))
    return out


async def _wait_fee_claims(
    setup: Setup, consortium: Consortium, signers: tuple[str, ...]
) -> None:
    """Close the window for late signatures (the chain's clock), then wait for the claims."""
    await trio.to_thread.run_sync(advance_chain_time, setup.chain, MEDIATION_WINDOW_S + 1)
    with trio.fail_after(30):
        while not all(consortium.roles[s].fees_claimed for s in signers):
            await trio.sleep(0.1)


async def test_wrong_output_slashes_the_provider_and_pays_the_mediators(setup: Setup) -> None:
    executor = await Executor.connect()
    three = tuple(i.address for i in setup.mediator_ids[:3])
    async with trio.open_nursery() as nursery:
        consortium = await _start_mediators(nursery, setup, executor)
        case = await _open_with_result(setup, executor, "hash", {"text": "cheat me"}, three, 3,
                                       cheat=True)
        client, provider = setup.client_id.address, setup.provider_id.address
        (c0, _), (p0, p_locked0) = await _balances(setup, client, provider)
        mediator0 = await _balances(setup, *three)
        resolution = await mediate(setup.client, case, consortium.contact)
        assert resolution is not None and resolution.resolved_by_us
        assert resolution.outcome is VerdictOutcome.PROVIDER_WRONG
        assert resolution.result_hash != case.result_hash
        assert await setup.client.status(case.deal) is DealStatus.RESOLVED
        await _wait_fee_claims(setup, consortium, resolution.signers)
        (c1, _), (p1, p_locked1) = await _balances(setup, client, provider)
        share = FEE // 3
        # Client: payment back plus the provider's collateral; the fee goes to the mediators,
        # the division's remainder to the first signer.
        assert c1 - c0 == PAYMENT + COLLATERAL
        assert p1 == p0 and p_locked0 - p_locked1 == COLLATERAL  # slashed
        gains = [after - before for (before, _), (after, _) in
                 zip(mediator0, await _balances(setup, *three), strict=True)]
        assert sorted(gains) == [share, share, share + FEE % 3]
        nursery.cancel_scope.cancel()


async def test_mediators_cut_off_from_the_chain_claim_their_fees_once_it_is_back(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lilypad_p2p")
    executor = await Executor.connect()
    three = tuple(i.address for i in setup.mediator_ids[:3])
    anvil_port = urlparse(str(setup.chain.w3.provider.endpoint_uri)).port
    assert anvil_port is not None
    with Forwarder.tcp(anvil_port) as rpc:
        async with trio.open_nursery() as nursery:
            consortium = await _start_mediators(
                nursery, setup, executor,
                chain=open_rpc_chain(f"http://127.0.0.1:{rpc.port}"))
            case = await _open_with_result(setup, executor, "hash", {"text": "outage"}, three,
                                           3, cheat=True)
            before = await _balances(setup, *three)
            resolution = await mediate(setup.client, case, consortium.contact)
            assert resolution is not None and len(resolution.signers) == 3
            with trio.fail_after(60):  # each signer heard of the resolution
                while caplog.messages.count("mediation.resolved") < 3:
                    await trio.sleep(0.1)
            rpc.stop()  # the mediators' chain goes away as the fee becomes claimable
            await trio.to_thread.run_sync(advance_chain_time, setup.chain,
                                          MEDIATION_WINDOW_S + 1)
            with trio.fail_after(60):
                while (caplog.messages.count("mediation.fee_claim_failed") < 3
                       or caplog.messages.count("chain.watch_failed") < len(consortium.roles)):
                    await trio.sleep(0.1)
            assert await _balances(setup, *three) == before
            rpc.start()
            with trio.fail_after(60):
                while (not all(consortium.roles[s].fees_claimed for s in resolution.signers)
                       or caplog.messages.count("chain.watch_resumed") < len(consortium.roles)):
                    await trio.sleep(0.1)
            # Each watcher said once that it lost the chain, and once that it has it again.
            assert caplog.messages.count("chain.watch_failed") == len(consortium.roles)
            gains = [after - free for (free, _), (after, _) in
                     zip(before, await _balances(setup, *three), strict=True)]
            assert sorted(gains) == [FEE // 3, FEE // 3, FEE // 3 + FEE % 3]
            nursery.cancel_scope.cancel()


async def test_greedy_client_pays_the_fee_and_the_honest_provider_is_paid(setup: Setup) -> None:
    executor = await Executor.connect()
    three = tuple(i.address for i in setup.mediator_ids[1:4])
    async with trio.open_nursery() as nursery:
        consortium = await _start_mediators(nursery, setup, executor)
        case = await _open_with_result(setup, executor, "hash", {"text": "honest"}, three, 3)
        client, provider = setup.client_id.address, setup.provider_id.address
        (c0, _), (p0, _) = await _balances(setup, client, provider)
        resolution = await mediate(setup.client, case, consortium.contact)
        assert resolution is not None
        assert resolution.outcome is VerdictOutcome.PROVIDER_CORRECT
        assert resolution.result_hash == case.result_hash
        (c1, _), (p1, _) = await _balances(setup, client, provider)
        assert c1 == c0  # the fee is the mediators'

        assert p1 - p0 == PAYMENT + COLLATERAL
        await _wait_fee_claims(setup, consortium, resolution.signers)
        nursery.cancel_scope.cancel()


async def test_non_deterministic_job_client_pays_fee_provider_keeps_collateral(
    setup: Setup,
) -> None:
    executor = await Executor.connect()
    three = tuple(i.address for i in setup.mediator_ids[2:5])
    async with trio.open_nursery() as nursery:
        consortium = await _start_mediators(nursery, setup, executor)
        case = await _open_with_result(setup, executor, "random", {"size": 32}, three, 3)
        client, provider = setup.client_id.address, setup.provider_id.address
        (c0, _), (p0, _) = await _balances(setup, client, provider)
        resolution = await mediate(setup.client, case, consortium.contact)
        assert resolution is not None
        assert resolution.outcome is VerdictOutcome.NON_DETERMINISTIC
        (c1, _), (p1, _) = await _balances(setup, client, provider)
        assert c1 - c0 == FEE % 3
        assert p1 - p0 == PAYMENT + COLLATERAL  # collateral kept, and paid (DESIGN §7)
        nursery.cancel_scope.cancel()


async def test_five_mediators_one_silent_one_lying_and_forged_quorums(setup: Setup) -> None:
    executor = await Executor.connect()
    five = tuple(i.address for i in setup.mediator_ids)
    liar, silent = five[0], five[3]
    async with trio.open_nursery() as nursery:
        consortium = await _start_mediators(nursery, setup, executor, liars={liar})
        consortium.offline.add(silent)
        case = await _open_with_result(setup, executor, "hash", {"text": "five"}, five, 3,
                                       cheat=True)
        other = await _open_with_result(setup, executor, "hash", {"text": "other"}, five, 3,
                                        cheat=True)

        # Forged quorums first (the deal is disputed, nothing resolved yet).
        await open_dispute(setup.client, case)
        await open_dispute(setup.client, other)
        deal_id = setup.client.deal_id(case.deal)
        computed = hashlib.sha256(b"whatever").digest()
        wrong = Verdict(deal_id, Outcome.PROVIDER_WRONG, computed)
        members = [consortium.roles[a]._chains.default for a in five[1:3]]
        with pytest.raises(SignatureRejected, match="NotInConsortium"):
            # Two members and a registered mediator outside this deal's consortium.
            sigs = [m.sync.sign(wrong) for m in members] + [setup.outsider.sync.sign(wrong)]
            await setup.client.client.resolve(case.deal, wrong, sigs)
        replayed = Verdict(setup.client.deal_id(other.deal), Outcome.PROVIDER_WRONG, computed)
        with pytest.raises(SignatureRejected):
            # A third member's signature, but over the other deal's verdict.
            sigs = [m.sync.sign(wrong) for m in members]
            sigs.append(consortium.roles[five[4]]._chains.default.sync.sign(replayed))
            await setup.client.client.resolve(case.deal, wrong, sigs)
        assert await setup.client.status(case.deal) is DealStatus.DISPUTED

        resolution = await mediate(setup.client, case, consortium.contact,
                                   answer_timeout_s=SILENT_ANSWER_TIMEOUT_S)
        assert resolution is not None
        assert resolution.outcome is VerdictOutcome.PROVIDER_WRONG
        assert liar not in resolution.signers and silent not in resolution.signers
        assert [v.mediator for v in resolution.dissent] in ([], [liar])
        assert silent in resolution.missing  # its silence did not block the quorum
        assert await setup.client.status(case.deal) is DealStatus.RESOLVED
        nursery.cancel_scope.cancel()



async def test_garbage_or_oversized_inputs_get_a_one_line_refusal_and_the_mediator_lives(
    setup: Setup,
) -> None:
    """A party of a disputed deal streams chunks that do not open, or declares inputs over the
    mediator's max_job_bytes: each gets one refusal line (the oversized one before any input
    byte is asked for), nothing is left in the mediator's spool, and it still judges the deal."""
    executor = await Executor.connect()
    three = tuple(i.address for i in setup.mediator_ids[:3])
    async with trio.open_nursery() as nursery:
        consortium = await _start_mediators(nursery, setup, executor)
        case = await _open_with_result(setup, executor, "hash", {"text": "garbage"}, three, 2)
        await open_dispute(setup.client, case)
        role = consortium.roles[three[0]]
        honest, _ = _request_for(setup, case, role._identity)
        size = 3 * wire.CHUNK_BYTES + 5

        async def garbage() -> AsyncIterator[bytes]:
            for index in range(wire.chunk_count(size)):
                yield secrets.token_bytes(wire.chunk_size(size, index))

        bad = dataclasses.replace(honest, inputs_preamble=secrets.token_bytes(len(
            honest.inputs_preamble)), inputs_bytes=size)
        gate = ChunksGate(garbage)
        reply = await role.on_mediation_request(str(role._identity.peer_id), bad, gate)
        assert isinstance(reply.answer, wire.DealRefused)
        assert reply.answer.reason.startswith("the inputs do not open with this node's sealing key")
        assert "\n" not in reply.answer.reason and len(gate.asked) == 1
        huge = dataclasses.replace(honest, inputs_bytes=5 * 1024**3)
        gate = ChunksGate(garbage)
        reply = await role.on_mediation_request(str(role._identity.peer_id), huge, gate)
        assert isinstance(reply.answer, wire.DealRefused) and gate.asked == []
        assert "over this mediator's max_job_bytes" in reply.answer.reason
        assert list(_spool_of(setup, role._identity).iterdir()) == []
        for _ in range(3):  # deals that were never opened, named by anyone
            unknown = dataclasses.replace(case.deal, salt=secrets.token_bytes(32))
            reply = await role.on_mediation_request(
                str(role._identity.peer_id),
                dataclasses.replace(honest, deal=deal_to_wire(unknown)), ChunksGate(garbage))
            assert isinstance(reply.answer, wire.DealRefused)
        notice = await role.judge(*_request_for(setup, case, role._identity))
        assert notice.outcome == Outcome.PROVIDER_CORRECT
        assert notice.result_hash == case.result_hash  # its streamed runs hash as the provider's
        assert list(_spool_of(setup, role._identity).iterdir()) == []
        assert role._judging == {}  # nothing kept per deal asked about once answered
        nursery.cancel_scope.cancel()


async def test_a_request_that_does_not_qualify_makes_no_mediator_fetch_its_module(
    setup: Setup, tmp_path: Path
) -> None:
    """Anyone can ask a mediator about a deal naming a module it lacks: the deal is checked
    first, so a request that does not qualify never makes it fetch and store the module."""
    executor = await Executor.connect()

    async def shared() -> Executor:
        return executor

    identity = setup.mediator_ids[0]
    catalog = ModuleCatalog(tmp_path / "modules")
    role = MediatorRole(identity, chains=DealChains([_deal_chain(setup.chain, setup.contract,
                                                                 identity)]),
                        executor_factory=shared, stake_wei=STAKE, modules=catalog,
                        spool=_spool_of(setup, identity))
    network = MemoryNetwork()
    role.install(network.transport(str(identity.peer_id)))
    creator = ModuleCatalog(tmp_path / "creator")
    mid = creator.add(load_definition_file(HELLO))
    network.transport(ASKER).serve(MODULE_STREAM, definition_server(creator))
    three = tuple(i.address for i in setup.mediator_ids[:3])
    case = await _open_with_result(setup, executor, "hash", {"text": "not ours"}, three, 2)
    request, _ = _request_for(setup, case, identity)
    not_ours = dataclasses.replace(case.deal, mediators=tuple(
        i.address for i in setup.mediator_ids[1:4]))
    reply = await role.on_mediation_request(
        ASKER, dataclasses.replace(request, module=mid, deal=deal_to_wire(not_ours)),
        ChunksGate(_no_chunks))
    assert isinstance(reply.answer, wire.DealRefused)
    assert reply.answer.reason == "this node is not in the deal's consortium"
    assert not (tmp_path / "modules").exists()
    with pytest.raises(UnknownModule):
        catalog.resolve(mid)


async def _no_chunks() -> AsyncIterator[bytes]:
    raise AssertionError("no input is asked for")
    yield b""



async def test_mediators_cut_out_of_the_resolve_join_and_share_the_fee(setup: Setup) -> None:
    """Whoever resolves sends only k = 3 of the 5 agreeing signatures; the two left out add
    theirs within the window, and the one claim after it pays all five equally."""
    executor = await Executor.connect()
    five = tuple(i.address for i in setup.mediator_ids)
    async with trio.open_nursery() as nursery:
        consortium = await _start_mediators(nursery, setup, executor)
        case = await _open_with_result(setup, executor, "hash", {"text": "cut"}, five, 3,
                                       cheat=True)
        await open_dispute(setup.client, case)
        before = await _balances(setup, *five)
        notices = []
        for address in five:
            role = consortium.roles[address]
            request, gate = _request_for(setup, case, role._identity)
            notices.append(await role.judge(request, gate))
        verdict = Verdict(setup.client.deal_id(case.deal), Outcome(notices[0].outcome),
                          notices[0].result_hash)
        assert all(n.outcome == notices[0].outcome for n in notices)
        await setup.client.client.resolve(case.deal, verdict,
                                          [n.mediator_signature for n in notices[:3]])
        with trio.fail_after(30):  # the two left out see DealResolved and join
            while (await setup.client.client.deal_state(case.deal)).signer_count < 5:
                await trio.sleep(0.2)
        await _wait_fee_claims(setup, consortium, five)
        gains = sorted(after - was for (was, _), (after, _) in
                       zip(before, await _balances(setup, *five), strict=True))
        assert gains == [FEE // 5] * 4 + [FEE // 5 + FEE % 5]
        nursery.cancel_scope.cancel()


async def test_a_mediator_that_answers_two_rounds_differently_is_slashed(setup: Setup) -> None:
    """Round one: only mediator X answers (no quorum). Round two: X signs the opposite verdict
    with its own key. The client's watch holds both signatures and the contract takes X's stake,
    half to the client; the honest two still resolve the deal."""
    executor = await Executor.connect()
    three = tuple(i.address for i in setup.mediator_ids[:3])
    liar = three[0]
    watch = EquivocationWatch()
    async with trio.open_nursery() as nursery:
        consortium = await _start_mediators(nursery, setup, executor)
        case = await _open_with_result(setup, executor, "hash", {"text": "two faces"}, three, 2,
                                       cheat=True)
        deal_id = setup.client.deal_id(case.deal)
        consortium.offline.update(three[1:])
        first = await mediate(setup.client, case, consortium.contact, answer_timeout_s=5,
                              watch=watch)
        assert first is None  # one verdict: no quorum
        consortium.offline.clear()
        liar_key = consortium.roles[liar]._chains.default.sync
        flipped = Verdict(deal_id, Outcome.PROVIDER_CORRECT, case.result_hash)

        def contact(address: str) -> MediatorContact | None:
            if address != liar:
                return consortium.contact(address)

            return consortium.impostor(address, wire.VerdictNotice(
                deal_id=deal_id, outcome=int(flipped.outcome), result_hash=flipped.result_hash,
                mediator_signature=liar_key.sign(flipped)))

        (c0, _), = await _balances(setup, setup.client_id.address)
        resolution = await mediate(setup.client, case, contact, answer_timeout_s=60,
                                   watch=watch)
        assert resolution is not None and resolution.outcome is VerdictOutcome.PROVIDER_WRONG
        assert liar not in resolution.signers
        assert setup.client.sync.mediator(liar)[0] == 0  # slashed
        (c1, _), = await _balances(setup, setup.client_id.address)
        assert c1 - c0 == PAYMENT + COLLATERAL + STAKE // 2
        nursery.cancel_scope.cancel()


async def test_a_restarted_mediator_repeats_its_verdict_and_claims_a_missed_fee(
    setup: Setup, tmp_path: Path
) -> None:
    executor = await Executor.connect()

    async def shared() -> Executor:
        return executor

    identity = setup.mediator_ids[0]
    three = tuple(i.address for i in setup.mediator_ids[:3])

    def restartable() -> MediatorRole:
        chains = DealChains([_deal_chain(setup.chain, setup.contract, identity)])
        return MediatorRole(identity, chains=chains, executor_factory=shared, stake_wei=STAKE,
                            verdict_dir=tmp_path, spool=_spool_of(setup, identity))

    async with trio.open_nursery() as nursery:
        others = await _start_mediators(nursery, setup, executor)
        case = await _open_with_result(setup, executor, "hash", {"text": "restart"}, three, 3,
                                       cheat=True)
        await open_dispute(setup.client, case)
        request, gate = _request_for(setup, case, identity)
        first = restartable()
        async with trio.open_nursery() as lifetime:
            await lifetime.start(first.run)
            signed = await first.judge(request, gate)
            lifetime.cancel_scope.cancel()  # it crashes before the deal is resolved

        def contact(address: str) -> MediatorContact | None:
            if address != identity.address:
                return others.contact(address)

            return others.impostor(address, signed)

        quorum = (await gather_verdicts(setup.client, case, contact)).quorum()
        assert quorum is not None and identity.address in quorum.signers
        assert await resolve(setup.client, case.deal, quorum)
        before = (await setup.client.client.balance(identity.address)).free

        again = restartable()
        await nursery.start(again.run)
        # The saved verdict, without taking the inputs again: no second verdict.
        _, unasked = _request_for(setup, case, identity)
        assert await again.judge(request, unasked) == signed
        assert unasked.asked == []

        await trio.to_thread.run_sync(advance_chain_time, setup.chain, MEDIATION_WINDOW_S + 1)
        first_signer = min(quorum.signers, key=lambda address: int(address, 16))
        owed = FEE // 3 + (FEE % 3 if identity.address == first_signer else 0)
        with trio.fail_after(30):  # its claim, or another signer's, pays it
            while (await setup.client.client.balance(identity.address)).free - before < owed:
                await trio.sleep(0.1)
        assert (await setup.client.client.balance(identity.address)).free - before == owed
        # The deal is over and the fee settled: the record goes, and a request for the deal
        # can no longer qualify.
        with trio.fail_after(30):
            while list(tmp_path.glob("*.verdict")):
                await trio.sleep(0.1)
        with pytest.raises(MediationRefused, match="RESOLVED on chain"):
            await again.judge(request, _request_for(setup, case, identity)[1])
        nursery.cancel_scope.cancel()


async def test_a_spot_checked_deal_that_settles_leaves_the_mediator_no_record(
    setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mediator_module, "JUDGED_SWEEP_S", 0.2)
    executor = await Executor.connect()

    async def shared() -> Executor:
        return executor

    identity = setup.mediator_ids[0]
    three = tuple(i.address for i in setup.mediator_ids[:3])
    role = MediatorRole(identity, chains=DealChains([_deal_chain(setup.chain, setup.contract,
                                                                 identity)]),
                        executor_factory=shared, stake_wei=STAKE, verdict_dir=tmp_path,
                        spool=_spool_of(setup, identity))
    async with trio.open_nursery() as nursery:
        await nursery.start(role.run)
        case = await _open_with_result(setup, executor, "hash", {"text": "spot"}, three, 3)
        request, gate = _request_for(setup, case, identity)
        notice = await role.judge(request, gate)  # a private spot check: the deal is open
        assert notice.outcome == VerdictOutcome.PROVIDER_CORRECT
        assert len(list(tmp_path.glob("*.verdict"))) == 1
        # The check agreed; the deal settles with no dispute, so no DealResolved comes.
        await setup.provider.settle(case.deal, case.result_hash,
                                    setup.client.sign_acceptance(case.deal, case.result_hash))
        with trio.fail_after(30):
            while list(tmp_path.glob("*.verdict")):
                await trio.sleep(0.1)
        with pytest.raises(MediationRefused, match="SETTLED on chain"):
            await role.judge(request, _request_for(setup, case, identity)[1])
        assert role.fees_claimed == []  # nothing was owed on chain
        nursery.cancel_scope.cancel()


async def test_a_client_that_disputes_and_walks_away_is_resolved_by_the_provider(
    setup: Setup, tmp_path: Path,
) -> None:
    executor = await Executor.connect()
    three = tuple(i.address for i in setup.mediator_ids[2:5])
    async with trio.open_nursery() as nursery:
        consortium = await _start_mediators(nursery, setup, executor)
        case = await _open_with_result(setup, executor, "hash", {"text": "walk away"}, three, 3)
        await open_dispute(setup.client, case)  # ... and the client asks nobody
        defence = ProviderDisputes(setup.provider_id, DealChains([setup.provider]),
                                   consortium.contact)
        await nursery.start(defence.run)
        (p0, _), = await _balances(setup, setup.provider_id.address)
        record = new_provider_deal("defended", now_ms=0, result_deadline_ms=0)
        # The provider's spool: the inputs as the job creator streamed them to it.
        spool = tmp_path / "defended.inputs"
        write_spool(spool, setup.provider_id.sealing_public_key,
                    inputs_context(setup.provider.deal_id(case.deal)), {},
                    BUILTIN_MODULES["hash"].resolve_params({"text": "walk away"}))
        defence.defend_soon(StoredDeal(record, ProviderDetail(
            deal=case.deal, job_creator_signature=b"", provider_signature=b"", module="hash",
            spec=wire.ResourceSpec(milli_cpu=1, ram_mb=1, disk_mb=1), job_offer_cid="",
            job_offer=case.job_offer, inputs_spool=str(spool), inputs_nonce=case.inputs_nonce,
            result_hash=case.result_hash, commitment_signature=case.provider_commitment,
        ), setup.chain.chain_id))
        with trio.fail_after(60):
            while not defence.resolved:
                await trio.sleep(0.1)
        assert await setup.client.status(case.deal) is DealStatus.RESOLVED
        (p1, _), = await _balances(setup, setup.provider_id.address)
        assert p1 - p0 == PAYMENT + COLLATERAL
        nursery.cancel_scope.cancel()


async def test_a_recorded_result_the_client_never_received_is_judged_without_its_signature(
    setup: Setup,
) -> None:
    # A provider that records a result on chain and never delivers it leaves the job creator
    # without the provider's signed commitment: the chain's record stands for it, so a dispute
    # sends zeros in its place and the recorded hash, read whole from the ResultSubmitted event.
    executor = await Executor.connect()
    three = tuple(i.address for i in setup.mediator_ids[:3])
    async with trio.open_nursery() as nursery:
        consortium = await _start_mediators(nursery, setup, executor)
        case = await _open_with_result(setup, executor, "hash", {"text": "withheld"}, three, 3,
                                       cheat=True)
        unsigned = dataclasses.replace(case, provider_commitment=bytes(65))
        first = setup.mediator_ids[0]
        request, gate = _request_for(setup, unsigned, first)
        with pytest.raises(MediationRefused, match="needs the provider's signed commitment"):
            await consortium.roles[first.address].judge(request, gate)  # open: nothing recorded

        await setup.provider.submit_result(case.deal, case.result_hash, case.provider_commitment)
        state = await setup.client.client.deal_state(case.deal)
        recorded = await setup.client.client.recorded_result_hash(state.deal_id, state.since)
        assert recorded == case.result_hash and state.result_prefix == recorded[:20]
        resolution = await mediate(setup.client, unsigned, consortium.contact)
        assert resolution is not None and resolution.outcome is VerdictOutcome.PROVIDER_WRONG
        assert await setup.client.status(case.deal) is DealStatus.RESOLVED
        nursery.cancel_scope.cancel()


async def test_a_job_creator_whose_provider_withheld_a_correct_result_gets_it_from_them(
    setup: Setup, tmp_path: Path,
) -> None:
    # The provider records the correct hash and never delivers. The mediators uphold it (the
    # provider is paid), and with their verdicts the job creator gets the output their runs
    # produced, sealed to it. Anyone else asking for the output gets the verdict alone, and a
    # lying member's verdict comes without it.
    executor = await Executor.connect()
    three = tuple(i.address for i in setup.mediator_ids[2:5])
    async with trio.open_nursery() as nursery:
        consortium = await _start_mediators(nursery, setup, executor, liars={three[1]})
        case = await _open_with_result(setup, executor, "hash", {"text": "kept back"}, three, 2)
        await setup.provider.submit_result(case.deal, case.result_hash, case.provider_commitment)
        await open_dispute(setup.client, case)
        output = tmp_path / "job.tar"
        withheld = dataclasses.replace(case, provider_commitment=wire.NO_COMMITMENT,
                                       output=output)
        outsider = setup.mediator_ids[2]
        request, gate = _request_for(setup, withheld, outsider)
        request = dataclasses.replace(request, output_recipient=bytes(32))
        reply = await consortium.roles[outsider.address].on_mediation_request(ASKER, request, gate)
        assert type(reply.answer) is wire.VerdictNotice and reply.body is None
        assert reply.answer.outcome == VerdictOutcome.PROVIDER_CORRECT

        job_creator = str(setup.client_id.peer_id)
        liar = setup.mediator_ids[3]
        request, gate = _request_for(setup, withheld, liar)
        request = dataclasses.replace(request, output_recipient=bytes(32))
        reply = await consortium.roles[liar.address].on_mediation_request(job_creator, request,
                                                                          gate)
        assert type(reply.answer) is wire.VerdictNotice and reply.body is None, reply.answer
        assert reply.answer.outcome == VerdictOutcome.PROVIDER_WRONG
        resolution = await mediate(setup.client, withheld,
                                   lambda address: consortium.contact(address, job_creator))
        assert resolution is not None and resolution.outcome is VerdictOutcome.PROVIDER_CORRECT
        nursery.cancel_scope.cancel()
    assert hashlib.sha256(output.read_bytes()).digest() == case.result_hash
    assert output.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.tar"]
    # No inputs stay; an output whose transfer the quorum cut short waits for the deal's end.
    for identity in setup.mediator_ids[2:5]:
        assert [p for p in _spool_of(setup, identity).iterdir()
                if not p.name.endswith(".output.tar")] == []


async def test_a_job_creator_cannot_have_an_honest_provider_slashed_with_other_inputs(
    setup: Setup,
) -> None:
    # The job creator received the honest result of its inputs, then disputes it and streams
    # the mediators other inputs for the same module, with the deal's job offer or with another
    # that commits to them. Every mediator refuses (the inputs are not the ones the deal's job
    # offer committed to, or the job offer is not the deal's): no verdict. The provider defends
    # with the committed inputs and is paid, its collateral back; the job creator gains nothing.
    executor = await Executor.connect()
    three = tuple(i.address for i in setup.mediator_ids[1:4])
    async with trio.open_nursery() as nursery:
        consortium = await _start_mediators(nursery, setup, executor)
        case = await _open_with_result(setup, executor, "hash", {"text": "honest"}, three, 3)
        resolved = BUILTIN_MODULES["hash"].resolve_params({"text": "other inputs"})
        forged = dataclasses.replace(case, inputs=_client_spool(setup, resolved))
        other_offer = make_job_offer(
            job_creator=setup.client_id.address, module=BUILTIN_IDS["hash"],
            chain_id=setup.chain.chain_id,
            inputs_commitment=inputs_commitment(case.inputs_nonce, {}, resolved))
        reoffered = dataclasses.replace(forged, job_offer=setup.client_id.sign_envelope(
            other_offer, other_offer.created_at).encode())
        client, provider = setup.client_id.address, setup.provider_id.address
        (c0, _), (p0, p_locked0) = await _balances(setup, client, provider)
        assert await mediate(setup.client, forged, consortium.contact) is None
        assert await mediate(setup.client, reoffered, consortium.contact) is None
        member = setup.mediator_ids[1]
        for attempt, why in ((forged, "not the ones the deal's job offer committed to"),
                             (reoffered, "job_offer is not the deal's")):
            request, gate = _request_for(setup, attempt, member)
            with pytest.raises((MediationRefused, wire.MalformedMessage), match=why):
                await consortium.roles[member.address].judge(request, gate)
        assert await setup.client.status(case.deal) is DealStatus.DISPUTED
        defence = await mediate(setup.provider, case, consortium.contact)
        (c1, _), (p1, p_locked1) = await _balances(setup, client, provider)
        nursery.cancel_scope.cancel()
    assert defence is not None and defence.outcome is VerdictOutcome.PROVIDER_CORRECT
    assert not defence.dissent and not defence.missing
    # The collateral comes back to the provider with the payment; the job creator gains none.
    assert p_locked0 - p_locked1 == COLLATERAL and p1 - p0 == PAYMENT + COLLATERAL
    assert c1 == c0
