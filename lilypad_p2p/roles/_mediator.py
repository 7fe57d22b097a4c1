"""The mediator role: re-run disputed jobs, sign verdicts, claim fees.

    mediator = MediatorRole(identity, chains=deal_chains, executor_factory=Executor.connect,
                            stake_wei=10**18, spool=spool_dir(home, "mediator"))
    mediator.install(net.deals); await nursery.start(mediator.run)

`run` registers the node with its stake on each of its chains where it is not registered yet,
then watches each contract's events (EventWatcher): `DealDisputed` is logged (the disputing
party brings the deal and streams the inputs over `/lilypad/mediation/3`, as the event only
carries a dealId), and a `DealResolved` of a deal we judged starts collecting our fee share:
if whoever resolved left our agreeing signature out, we add it (`addVerdictSignature`, open for
one mediation window after `resolve`); once that window has closed, one `claimMediationFee`
(ours or another signer's) pays every signer. A claim that fails for a reason that may pass (the
chain's RPC, say) is tried again with a growing pause; one the contract refuses for good is
logged and asked again at the next start.

`judge(request, gate)` is the work: the deal must name us, be disputed on chain with the
provider's committed hash recorded on the chain the request names (one we serve), or open there
for a job creator's private spot check (`roles/_spot_check.py`; the provider's signed commitment
comes with the request), its module must be the deal's, and its job offer the one whose hash is
the deal's `jobSpecHash`. Only then are the inputs asked for (`gate`): a sealed chunk stream
re-sealed to our key, its declared size within our `max_job_bytes` and free disk, spooled 0600
under `<home>/spool/mediator/` as it arrives (`roles/_transfer.py`). We run the job twice on our
own executor from that spool, each run bounded by the module's maximum run time and writing its
output tarball to a spool file hashed as it is written (the provider's result hash is the sha256
of the same canonical tarball), and sign `market.judge_runs`' verdict (every spool file is
removed once the runs are over). A run that fails for a reason inside the job counts as its
failure claim's hash (`roles/_failure.py`), so a provider's failure result is upheld exactly
when the same failure reproduces. Inputs that do not open with our key, or are not the ones the
job offer committed to (`inputs_commitment`), are refused in one line, nothing run: streaming
other inputs gets the asker no verdict against anyone. One verdict per deal, ever: a repeated
request gets the same signed answer (two different verdicts from one mediator would be
equivocation), also after a restart (`verdict_dir`); the record goes once the deal is over on
chain and the fee settled, when no request can qualify again. Every judged deal not settled yet
is looked at again every `JUDGED_SWEEP_S`: a spot check that agreed ends in a settlement, which
sends no event a mediator watches. A job that fails on our machine for a reason outside the job
(Docker, the image) gets no verdict: silence costs us the fee, while a guess could be wrong.


`MediatorFault.LIE` is a test fault (the simnet's lying mediator): the mediator signs the
opposite of what its runs say. Never set it on a real node.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import trio

from lilypad_p2p import wire
from lilypad_p2p.blocking import run_blocking
from lilypad_p2p.chain import (
    ChainError,
    ContractRevert,
    DeadlineError,
    Deal,
    DealStatus,
    EventWatcher,
    Outcome,
    Verdict,
    WrongDealStatus,
)
from lilypad_p2p.config import DEFAULT_MAX_JOB_BYTES
from lilypad_p2p.deal_detail import MediatorDetail
from lilypad_p2p.errors import LilypadError, PeerMisbehaved
from lilypad_p2p.exec import (
    BadDefinition,
    ExecError,
    Executor,
    InputDecryptionFailed,
    JobSpec,
    ModuleCatalog,
    UnknownModule,
)
from lilypad_p2p.identity import Identity
from lilypad_p2p.logs import event
from lilypad_p2p.market import VerdictOutcome, judge_runs
from lilypad_p2p.net import MEDIATION_STREAM, BodyGate, DealTransport, PeerAction, Reply
from lilypad_p2p.roles._executor_link import connect_executor
from lilypad_p2p.roles._failure import classify
from lilypad_p2p.roles._module_gate import fetch_definition
from lilypad_p2p.roles._settlement import DealChain, DealChains, UnknownChain
from lilypad_p2p.roles._terms import deal_from_wire, deal_job_offer, module_hash
from lilypad_p2p.roles._transfer import (
    JobTooLarge,
    discard,
    keep_output,
    mediation_context,
    output_body,
    receive_inputs,
    uncommitted,
)
from lilypad_p2p.store import decode_verdict, encode_verdict

log = logging.getLogger("lilypad_p2p.mediator")

# Pause between polls of the contract's events: disputes give mediators minutes, and at 0.5 s
# the polling was most of an idle mediator's CPU.
EVENT_POLL_INTERVAL_S = 2.0
# Pause between reads of the chain's clock while a fee is not claimable yet.
FEE_POLL_INTERVAL_S = 1.0
# A fee claim that failed for a reason that may pass (the RPC, a transaction that reverted
# without a reason, the chain's clock, the account's gas money) is tried again after this pause,
# doubled each time up to the most: the fee stays owed until a signer claims it.
FEE_RETRY_FIRST_S = 2.0
FEE_RETRY_MOST_S = 300.0
# Pause between looks at every judged deal whose fee is not settled: a spot-checked deal that
# settles without a dispute sends no event a mediator watches, so this is how its record goes.
JUDGED_SWEEP_S = 600.0
# Events waiting to be handled (the watcher blocks when the mediator falls behind).
EVENT_BUFFER = 64
# The events a mediator acts on: the only ones its watcher asks the chain for.
MEDIATOR_EVENTS = frozenset({"DealDisputed", "DealResolved"})
RUNS_PER_VERDICT = 2
# A refusal's reason is cut to what a DealRefused carries.
REFUSAL_REASON_CHARS = 512


# Deal statuses a mediator judges in: disputed, or open to a job creator's private spot check.
_JUDGED = (DealStatus.DISPUTED, DealStatus.OPEN, DealStatus.RESULT_SUBMITTED)


class MediatorFault(enum.StrEnum):
    """Test faults of a mediator (hidden from --help; the simnet uses them)."""

    NONE = "none"
    LIE = "lie"  # sign the opposite of what the runs show


class MediationRefused(LilypadError):
    """This mediator will not judge the request (not a member, not disputed, bad module...)."""


def _lie(truth: VerdictOutcome, provider_hash: bytes) -> tuple[VerdictOutcome, bytes]:
    if truth is VerdictOutcome.PROVIDER_CORRECT:
        return VerdictOutcome.PROVIDER_WRONG, hashlib.sha256(b"lie" + provider_hash).digest()
    return VerdictOutcome.PROVIDER_CORRECT, provider_hash


def _from_job_creator(peer_id: str, request: wire.MediationRequest) -> bool:
    """Whether the peer asking is the job creator of the request's deal (only it may have the
    output; the stream authenticates the peer's key, hence its address)."""
    try:
        asker = wire.address_from_peer_id_text(peer_id)
    except ValueError:
        return False
    return str(request.deal.get("job_creator", "")).lower() == asker.lower()


class MediatorRole:
    def __init__(
        self,
        identity: Identity,
        *,
        chains: DealChains,
        executor_factory: Callable[[], Awaitable[Executor]],
        stake_wei: int,
        spool: Path,
        max_job_bytes: int = DEFAULT_MAX_JOB_BYTES,
        fault: MediatorFault = MediatorFault.NONE,
        verdict_dir: Path | None = None,
        modules: ModuleCatalog | None = None,
    ) -> None:
        self._identity = identity
        # A user module's definition comes from the disputing job creator, checked by its ID.
        self._modules = modules
        self._transport: DealTransport | None = None
        self._chains = chains
        self._executor_factory = executor_factory
        self._executor: Executor | None = None
        # Inputs and outputs of the deal being judged (0700; `roles/_transfer.spool_dir`).
        self._spool = spool
        self._max_job_bytes = max_job_bytes
        self._stake_wei = stake_wei
        self._fault = fault
        self._verdicts: dict[bytes, wire.VerdictNotice] = {}
        self._judging: dict[bytes, trio.Lock] = {}
        # Fee owed once resolved: the deal and its chain ID.
        self._signed_deals: dict[bytes, tuple[int, Deal]] = {}
        self.fees_claimed: list[bytes] = []
        self._fee_nursery: trio.Nursery | None = None
        self._collecting: set[bytes] = set()
        # Every signed verdict is written here before it is sent, so a restarted mediator
        # answers with the same verdict (never a second, different one) and still claims fees.
        self._verdict_dir = verdict_dir
        if verdict_dir is not None:
            self._load_verdicts(verdict_dir)

    @property
    def address(self) -> str:
        return self._identity.address

    def install(self, transport: DealTransport) -> None:
        """Serve mediation requests on `transport` (and fetch modules over it)."""
        self._transport = transport
        transport.serve_transfer(MEDIATION_STREAM, self.on_mediation_request)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        # What a judgement cut short by a crash left behind: no verdict came of it.
        discard(*(path for path in self._spool.iterdir() if path.is_file()))
        await self._connect_executor()
        for chain in self._chains.values():
            if not await chain.client.is_registered_mediator(self.address):
                await chain.client.register_mediator(self._stake_wei)
                event(log, "mediator.registered", stake_wei=self._stake_wei,
                      chain_id=chain.chain_id)
        async with trio.open_nursery() as nursery:
            self._fee_nursery = nursery
            # Watching first: a deal resolved after the missed fees' statuses are read is
            # then seen by its event.
            for chain in self._chains.values():
                await nursery.start(self._watch, chain)
            self._collect_judged_fees()
            nursery.start_soon(self._look_again_now_and_then)
            task_status.started()

    async def _watch(
        self, chain: DealChain, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        sync = chain.sync
        watcher = EventWatcher(sync.chain, sync.address,
                               from_block=await run_blocking(sync.chain.block_number),
                               events=MEDIATOR_EVENTS)
        send, receive = trio.open_memory_channel[Any](EVENT_BUFFER)
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(watcher.run, send, poll_interval=EVENT_POLL_INTERVAL_S))
            task_status.started()
            async with receive:
                async for chain_event in receive:
                    await self._on_chain_event(chain, chain_event)

    def _load_verdicts(self, directory: Path) -> None:
        for path in sorted(directory.glob("*.verdict")):
            saved = decode_verdict(path.read_bytes())
            if saved.fee_settled:  # an earlier version's record of a deal that is over
                path.unlink(missing_ok=True)
                continue
            notice = saved.verdict
            self._verdicts[notice.deal_id] = notice
            # Verdicts saved before chains were recorded are on the default chain.
            chain_id = (saved.chain_id if saved.chain_id is not None
                        else self._chains.default.chain_id)
            self._signed_deals[notice.deal_id] = (chain_id, saved.deal)

    def _save_verdict(self, chain_id: int, deal: Deal, notice: wire.VerdictNotice) -> None:
        if self._verdict_dir is None:
            return
        self._verdict_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self._verdict_path(notice.deal_id)
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(encode_verdict(MediatorDetail(notice, deal, chain_id)))
        temporary.replace(path)

    def _verdict_path(self, deal_id: bytes) -> Path:
        assert self._verdict_dir is not None
        return self._verdict_dir / f"{deal_id.hex()}.verdict"

    def _forget_verdict(self, deal_id: bytes) -> None:
        """The deal is over on chain and our fee settled: nothing can ask for a verdict on it
        again (`_check_request` judges only disputed or open deals), so its record goes, and
        an output no job creator came back for."""
        self._signed_deals.pop(deal_id, None)
        self._verdicts.pop(deal_id, None)
        discard(self._output_of(deal_id))
        if self._verdict_dir is not None:
            self._verdict_path(deal_id).unlink(missing_ok=True)

    def _collect_judged_fees(self) -> None:
        """Look at every deal we judged whose fee is not settled, each in the background: a
        resolved one's fee is collected, one that ended otherwise (a spot check that agreed,
        so no `DealResolved` comes) is forgotten, one still open waits."""
        assert self._fee_nursery is not None
        for deal_id, (chain_id, deal) in list(self._signed_deals.items()):
            chain = self._chains.get(chain_id)
            if chain is None:  # once, not every sweep: the saved verdict waits for a restart
                event(log, "mediation.chain_gone", logging.WARNING, deal_id="0x" + deal_id.hex(),
                      chain_id=chain_id)
                del self._signed_deals[deal_id]
                continue
            self._fee_nursery.start_soon(self._collect_fee, chain, deal_id, deal)

    async def _look_again_now_and_then(self) -> None:
        while True:
            await trio.sleep(JUDGED_SWEEP_S)
            self._collect_judged_fees()

    async def _collect_fee(
        self, chain: DealChain, deal_id: bytes, deal: Deal, resolved_mask: int = 0
    ) -> None:
        """Join the applied verdict if we agree and were left out, wait out the window for late
        signatures, then claim (one claim pays every signer). `resolved_mask` is the signer
        mask `resolve` applied (from its event): another signer's claim may have cleared the
        deal's mask before we read it."""
        if deal_id in self._collecting:
            return
        self._collecting.add(deal_id)
        try:
            await self._collect_fee_once(chain, deal_id, deal, resolved_mask)
        finally:
            self._collecting.discard(deal_id)

    async def _collect_fee_once(
        self, chain: DealChain, deal_id: bytes, deal: Deal, resolved_mask: int
    ) -> None:
        retry_in = FEE_RETRY_FIRST_S
        while True:
            try:
                claimed = await self._claim_when_due(chain, deal_id, deal, resolved_mask)
                if claimed is None:
                    return
                owed, share = claimed
                break
            except ChainError as exc:
                lasting = isinstance(exc, ContractRevert) and not isinstance(exc, DeadlineError)
                event(log, "mediation.fee_claim_failed", logging.WARNING,
                      deal_id="0x" + deal_id.hex(), error=repr(exc),
                      retry_in_s=None if lasting else retry_in)
                if lasting:  # the saved verdict stays unsettled: a restart asks again
                    self._signed_deals.pop(deal_id, None)
                    return
                await trio.sleep(retry_in)
                retry_in = min(2 * retry_in, FEE_RETRY_MOST_S)
        if owed:
            self.fees_claimed.append(deal_id)
            event(log, "mediation.fee_claimed", deal_id="0x" + deal_id.hex(), share_wei=share)
        self._forget_verdict(deal_id)

    async def _claim_when_due(
        self, chain: DealChain, deal_id: bytes, deal: Deal, resolved_mask: int
    ) -> tuple[bool, int] | None:
        """Whether a share was ours, and its size: joined if we were left out, claimed once
        the window for late signatures has closed (a claim that finds the fee paid is fine:
        another signer's claim paid every signer); none owed for a deal that ended otherwise.
        None: the deal is not over yet."""
        state = await chain.client.deal_state(deal_id)
        if state.status is not DealStatus.RESOLVED:
            return (False, 0) if state.status.is_final else None
        index = deal.mediators.index(self.address)
        owed = (state.unpaid_signers | resolved_mask) >> index & 1 == 1
        if not owed and state.unpaid_signers != 0:
            owed = await self._join_verdict(chain, deal, deal_id, state.outcome)
        if not owed:
            return False, 0
        due = state.since + deal.mediation_window + 1
        while (now := await chain.now_s()) < due:
            await trio.sleep(min(FEE_POLL_INTERVAL_S, due - now))
        state = await chain.client.deal_state(deal_id)
        with contextlib.suppress(WrongDealStatus):  # NoFeeOwed
            await chain.client.claim_mediation_fee(deal)
        return True, deal.mediation_fee // max(state.signer_count, 1)

    async def _join_verdict(
        self, chain: DealChain, deal: Deal, deal_id: bytes, applied: Outcome | None
    ) -> bool:
        """Add our saved signature to the applied verdict if it is the same ruling."""
        notice = self._verdicts.get(deal_id)
        if notice is None or applied is None or notice.outcome != int(applied):
            return False
        verdict = Verdict(deal_id, Outcome(notice.outcome), notice.result_hash)
        try:
            await chain.client.add_verdict_signature(deal, verdict, notice.mediator_signature)
        except ChainError as exc:  # too late, or a ruling the contract finds inconsistent
            event(log, "mediation.join_failed", logging.WARNING, deal_id="0x" + deal_id.hex(),
                  error=repr(exc))
            return False
        event(log, "mediation.joined_verdict", deal_id="0x" + deal_id.hex())
        return True

    async def _on_chain_event(self, chain: DealChain, chain_event: Any) -> None:
        deal_id = chain_event.deal_id
        if chain_event.name == "DealDisputed":
            event(log, "mediation.disputed", deal_id="0x" + deal_id.hex(),
                  chain_id=chain.chain_id)
        elif chain_event.name == "DealResolved" and deal_id in self._signed_deals:
            _, deal = self._signed_deals[deal_id]  # deal IDs differ per chain (EIP-712 domain)
            event(log, "mediation.resolved", deal_id="0x" + deal_id.hex(),
                  chain_id=chain.chain_id)
            assert self._fee_nursery is not None
            self._fee_nursery.start_soon(self._collect_fee, chain, deal_id, deal,
                                         chain_event.args["signerMask"])

    # --- /lilypad/mediation/3 -----------------------------------------------------------

    async def on_mediation_request(
        self, peer_id: str, request: wire.MediationRequest, gate: BodyGate
    ) -> Reply:
        if request.output_recipient and not _from_job_creator(peer_id, request):
            request = dataclasses.replace(request, output_recipient=b"")  # the output is its
        try:
            notice = await self.judge(request, gate, asker=peer_id)
        except (MediationRefused, ChainError, JobTooLarge) as exc:
            if isinstance(exc, PeerMisbehaved) and self._transport is not None:
                self._transport.report(peer_id, PeerAction.LOW_TOLERANCE, str(exc))
            return Reply(wire.DealRefused(reason=str(exc)[:REFUSAL_REASON_CHARS]))
        return self._with_output(notice, request.output_recipient)

    def _output_of(self, deal_id: bytes) -> Path:
        return self._spool / f"{deal_id.hex()}.output.tar"

    def _with_output(self, notice: wire.VerdictNotice, recipient: bytes) -> Reply:
        """The verdict, and the output our runs kept for a job creator that asked for it (it is
        removed once sent whole; a transfer that breaks leaves it for the next ask)."""
        tarball = self._output_of(notice.deal_id)
        upheld = notice.outcome == Outcome.PROVIDER_CORRECT  # not so from a lying test mediator
        if not recipient or not upheld or not tarball.is_file():
            return Reply(notice)
        preamble, size, chunks = output_body(tarball, recipient, notice.deal_id)

        async def once() -> AsyncIterator[bytes]:
            async for chunk in chunks():
                yield chunk
            discard(tarball)

        return Reply(wire.VerdictWithOutput(
            deal_id=notice.deal_id, outcome=notice.outcome, result_hash=notice.result_hash,
            mediator_signature=notice.mediator_signature, output_preamble=preamble,
            output_bytes=size), once)

    async def _have_module(self, peer_id: str, module: str) -> None:
        """Fetch a module definition we lack from the asker and store it (MediationRefused if
        we cannot); asked only once the request qualifies, so no peer makes us store one for
        a deal that is not ours to judge."""
        if self._modules is None or self._transport is None:
            return
        try:
            self._modules.resolve(module)
        except UnknownModule:
            try:
                await fetch_definition(self._transport, peer_id, module, self._modules)
            except (UnknownModule, BadDefinition) as exc:
                raise MediationRefused(str(exc)) from exc
        self._modules.keep(module)

    async def judge(
        self, request: wire.MediationRequest, gate: BodyGate, *, asker: str | None = None
    ) -> wire.VerdictNotice:
        """Check the request, take its inputs through `gate`, re-run the job twice and sign a
        verdict (the same one if asked again, without taking the inputs again). A module we
        lack is fetched from `asker` (the disputing party's peer) once the request qualifies.

        Raises:
            MediationRefused: the request does not qualify, or the job failed here.
            JobTooLarge: the inputs are over `max_job_bytes` or the free disk (none taken).
            ChainError: the chain could not be read.
            TransferRefused, wire.WireError, trio.TooSlowError: the inputs' stream broke.
        """
        deal = deal_from_wire(request.deal)
        try:
            chain = self._chains.require(request.chain_id)
        except UnknownChain as exc:
            raise MediationRefused(str(exc)) from exc
        deal_id = chain.deal_id(deal)
        lock = self._judging.setdefault(deal_id, trio.Lock())
        try:
            async with lock:
                return await self._judge_once(chain, deal, deal_id, request, gate, asker)
        finally:
            # Kept only while a request for the deal waits: anyone may ask about any deal.
            if self._judging.get(deal_id) is lock and lock.statistics().tasks_waiting == 0:
                del self._judging[deal_id]

    async def _judge_once(
        self, chain: DealChain, deal: Deal, deal_id: bytes, request: wire.MediationRequest,
        gate: BodyGate, asker: str | None,
    ) -> wire.VerdictNotice:
        known = self._verdicts.get(deal_id)
        if known is not None:
            return known
        committed = await self._check_request(chain, deal, deal_id, request)
        if asker is not None:
            await self._have_module(asker, request.module)
        hashes = await self._run_twice(deal_id, request, gate, committed)
        outcome, digest = judge_runs(request.result_hash, hashes)
        if self._fault is MediatorFault.LIE:
            outcome, digest = _lie(outcome, request.result_hash)
        verdict = Verdict(deal_id, Outcome(int(outcome)), digest)
        notice = wire.VerdictNotice(deal_id=deal_id, outcome=int(outcome), result_hash=digest,
                                    mediator_signature=chain.sync.sign(verdict))
        self._save_verdict(chain.chain_id, deal, notice)
        self._verdicts[deal_id] = notice
        self._signed_deals[deal_id] = (chain.chain_id, deal)
        event(log, "mediation.verdict", deal_id="0x" + deal_id.hex(), outcome=outcome.name,
              runs_agree=len(set(hashes)) == 1)
        return notice

    async def _check_request(
        self, chain: DealChain, deal: Deal, deal_id: bytes, request: wire.MediationRequest
    ) -> bytes:
        """The job offer's `inputs_commitment` the inputs must open, once the request
        qualifies."""
        if self.address not in deal.mediators:
            raise MediationRefused("this node is not in the deal's consortium")
        if module_hash(request.module) != deal.module_hash:
            raise MediationRefused("the module is not the deal's")
        unsigned = request.provider_signature == wire.NO_COMMITMENT
        if not unsigned:  # checked before the chain is read: a made-up request costs no read
            chain.check_commitment(deal, request.result_hash, request.provider_signature)
        committed = deal_job_offer(deal, request.job_offer).inputs_commitment
        state = await chain.client.deal_state(deal_id)
        if state.status not in _JUDGED:
            raise MediationRefused(f"the deal is {state.status.name} on chain: neither disputed "
                                   "nor open to a spot check")
        if state.status is DealStatus.OPEN:
            # A job creator's private spot check (roles/_spot_check.py) of a deal open with its
            # fee locked: only the provider's signature shows it committed to this hash.
            if unsigned:
                raise MediationRefused("a spot check of an open deal needs the provider's "
                                       "signed commitment")
        elif state.result_prefix != request.result_hash[:20]:
            raise MediationRefused("the result hash is not the one recorded on chain")
        return committed

    async def _run_twice(
        self, deal_id: bytes, request: wire.MediationRequest, gate: BodyGate, committed: bytes
    ) -> list[bytes]:
        executor = await self._connect_executor()
        if executor is None:
            raise MediationRefused("this mediator cannot run jobs now: its Docker engine does "
                                   "not answer")
        module = executor.modules.get(request.module)
        if module is None:
            raise MediationRefused(f"module {request.module} is not on this mediator")
        spool = self._spool / f"{deal_id.hex()}.inputs"
        outputs = [self._spool / f"{deal_id.hex()}.{attempt}.output.tar"
                   for attempt in range(RUNS_PER_VERDICT)]
        discard(spool, *outputs)
        try:
            await receive_inputs(gate, request, deal_id, spool, self._max_job_bytes,
                                 role="mediator")
        except OSError as exc:  # our disk: nothing the asker did
            raise MediationRefused(f"this mediator cannot spool the inputs: {exc}") from exc
        try:
            # Other inputs than the deal's would have us rule on another job: the asker's
            # fault, never a verdict against either party.
            why = await run_blocking(uncommitted, spool, self._identity.sealing_private_key(),
                                     mediation_context(deal_id), request.inputs_nonce, committed)
            if why is not None:
                raise MediationRefused(f"{why}: nothing is ruled")
            hashes = [await self._run_once(deal_id, request.module, spool, output, attempt)
                      for attempt, output in enumerate(outputs)]
            if request.output_recipient and set(hashes) == {request.result_hash}:
                await run_blocking(keep_output, outputs[0], request.result_hash,
                                   self._output_of(deal_id))
            return hashes
        finally:
            with trio.CancelScope(shield=True):  # also when the asker gave up on us
                await run_blocking(discard, spool, *outputs)

    async def _connect_executor(self) -> Executor | None:
        """The Docker executor, connecting on first use (a mediator without Docker still
        starts and registers; it refuses mediation until Docker answers)."""
        if self._executor is None:
            self._executor = await connect_executor(self._executor_factory, log)
        return self._executor

    async def _run_once(
        self, deal_id: bytes, module_name: str, spool: Path, output: Path, attempt: int
    ) -> bytes:
        """One run on the spooled inputs: the sha256 of its output tarball, or of the failure
        claim when the job itself failed (`roles/_failure.classify`)."""
        assert self._executor is not None
        module = self._executor.modules[module_name]
        # Bounded by the module's declared maximum: a job still running then has failed with
        # TIMEOUT, exactly as on a faithful provider.
        timeout_s = float(module.max_run_time_s)
        try:
            result = await self._executor.run_streamed(
                JobSpec(module_name), spool, self._identity.sealing_private_key(),
                mediation_context(deal_id), timeout_s=timeout_s, output=output)
        except InputDecryptionFailed as exc:  # the asker's stream, not the job
            raise MediationRefused(f"the streamed inputs are refused: {exc}") from exc
        except (ExecError, OSError) as exc:  # OSError: our disk
            claim = (classify(exc, timeout_s=timeout_s, module=module)
                     if isinstance(exc, ExecError) else None)
            if claim is None:  # our machine's fault, not the job's: no guess signed
                event(log, "mediation.run_failed", logging.WARNING,
                      deal_id="0x" + deal_id.hex(), attempt=attempt, error=str(exc))
                raise MediationRefused(f"the job failed on this mediator: {exc}") from exc
            event(log, "mediation.run_failed_in_job", deal_id="0x" + deal_id.hex(),
                  attempt=attempt, failure=claim.failure)
            return claim.digest()
        return result.result_hash
