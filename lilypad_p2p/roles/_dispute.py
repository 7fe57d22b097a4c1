"""The disputing side of mediation: open the dispute, gather k verdicts, resolve on chain.

    resolution = await mediate(chain, DisputeCase(deal, module, inputs, hash, commitment,
                                                  job_offer, inputs_nonce),
                               contact=lambda address: MediatorContact(..., transport, ...))

1. Put the dispute on chain (`open_dispute`): the contract disputes only a recorded result, so
   the provider's signed ResultCommitment is posted first if it is not (anyone may post it).
2. Ask every member of the consortium at once (`gather_verdicts`), each streamed the spooled
   inputs re-sealed to its own key (`/lilypad/mediation/3`, chunk by chunk: inputs of any size
   up to the members' `max_job_bytes`), each bounded by MEDIATOR_ANSWER_TIMEOUT_S plus the
   inputs' transfer at SLOWEST_INPUTS_BYTES_PER_S. A verdict counts once its EIP-712 signature
   recovers to a member (`market.VerdictTally`); as soon as k agree, the others are cancelled:
   a silent or slow mediator never holds up a quorum of the rest.
3. `resolve` with the k signatures. Whoever gets there first wins; a deal found already resolved
   (e.g. by the provider, who may gather verdicts too) is success. The verdicts that disagreed
   and the members that never answered are returned and logged for the record.
If no quorum forms, nothing is sent: the caller retries later, and after the mediation window
`claimTimeout` splits the price between the parties and returns the collateral and the fee.

Every verdict heard also goes to the caller's `EquivocationWatch` (kept across rounds): a member
that answers one round with one verdict and another round with a different one has signed two
verdicts for the deal, and `report_equivocations` presents the pair to the contract, which
slashes that mediator's stake (half of it to us).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio

from lilypad_p2p import wire
from lilypad_p2p.blocking import run_blocking
from lilypad_p2p.chain import (
    AlreadySettled,
    ChainError,
    Deal,
    DealStatus,
    Outcome,
    SignatureInvalid,
    Verdict,
    recover_typed,
)
from lilypad_p2p.config import DEFAULT_MAX_JOB_BYTES
from lilypad_p2p.errors import LilypadError, PeerMisbehaved
from lilypad_p2p.logs import event
from lilypad_p2p.market import (
    EquivocationWatch,
    Quorum,
    SignedVerdict,
    TallyRejected,
    VerdictOutcome,
    VerdictTally,
)
from lilypad_p2p.net import (
    MEDIATION_STREAM,
    ChunkSource,
    DealTransport,
    NetError,
    PeerAction,
    answer_only,
)
from lilypad_p2p.roles._settlement import DealChain
from lilypad_p2p.roles._transfer import (
    BadOutput,
    SpooledInputs,
    discard,
    mediation_context,
    receive_output,
)

log = logging.getLogger("lilypad_p2p.dispute")

# How long one mediator may take to answer (it runs the job twice) ...
MEDIATOR_ANSWER_TIMEOUT_S = 300.0
# ... after receiving the inputs, given this much time at a rate no slower than this (a relayed
# circuit moved 2.9 MiB/s on the loaded 2-core test machine; a stalled stream ends sooner, at
# the mediator's per-chunk read timeout).
SLOWEST_INPUTS_BYTES_PER_S = 1024 * 1024


class DisputeError(LilypadError):
    """A dispute cannot be opened (the deal is in no state to be disputed)."""


@dataclass(frozen=True, slots=True)
class DisputeCase:
    """What a dispute needs: the deal, the job (module + the inputs this node has spooled), the
    provider's commitment (result hash and its EIP-712 signature), and what binds the inputs to
    the deal: the signed job offer (its hash is the deal's `jobSpecHash`) and the nonce that
    opens its `inputs_commitment`. `output`, for a job creator the provider never delivered
    to: where the first output a mediator sends with its verdict goes (sealed to the key the
    inputs' spool opens with, this node's), once it hashes to the recorded result."""

    deal: Deal
    module: str
    inputs: SpooledInputs
    result_hash: bytes
    provider_commitment: bytes
    job_offer: bytes
    inputs_nonce: bytes
    output: Path | None = None


@dataclass(frozen=True, slots=True)
class MediatorContact:
    """How to reach one mediator (from its NodeRecord): its sealing key, and its peer on our
    deal transport."""

    address: str
    sealing_public_key: bytes
    peer_id: str
    transport: DealTransport
    addrs: tuple[str, ...] = ()

    async def ask(
        self, request: wire.MediationRequest, inputs: ChunkSource,
        on_answer: Callable[[wire.DealMessage, AsyncIterator[bytes] | None],
                            Awaitable[wire.DealMessage]] = answer_only,
    ) -> wire.DealMessage:
        """Send the mediator `request` and, if it asks for them, the `inputs` sealed to it; the
        answer goes through `on_answer` (which takes the output a verdict may bring)."""
        return await self.transport.exchange(self.peer_id, MEDIATION_STREAM, request,
                                             inputs=inputs, on_answer=on_answer,
                                             addrs=self.addrs)

    def report(self, reason: str) -> None:
        """The mediator signed what no honest one signs: lower its standing."""
        self.transport.report(self.peer_id, PeerAction.LOW_TOLERANCE, reason)


@dataclass(frozen=True, slots=True)
class Resolution:
    """How a dispute ended: the applied verdict and who agreed, dissented or stayed silent."""

    outcome: VerdictOutcome
    result_hash: bytes
    signers: tuple[str, ...]
    dissent: tuple[SignedVerdict, ...]
    missing: tuple[str, ...]
    resolved_by_us: bool


async def open_dispute(chain: DealChain, case: DisputeCase) -> DealStatus:
    """Record the result if needed and dispute it; idempotent. The deal's status after.

    Raises:
        DisputeError: the deal is final or not open on chain.
    """
    status = await chain.status(case.deal)
    if status is DealStatus.OPEN:
        status = (await chain.submit_result(case.deal, case.result_hash,
                                            case.provider_commitment)).status
    if status is DealStatus.RESULT_SUBMITTED:
        try:
            await chain.client.dispute(case.deal)
        except AlreadySettled:
            return await chain.status(case.deal)
        event(log, "dispute.opened", deal_id="0x" + chain.deal_id(case.deal).hex())
        return DealStatus.DISPUTED
    if status in (DealStatus.DISPUTED, DealStatus.RESOLVED):
        return status
    raise DisputeError(f"deal is {status.name} on chain: it cannot be disputed")


def _signed_verdict(
    chain: DealChain, deal_id: bytes, answer: wire.DealMessage
) -> SignedVerdict:
    if not isinstance(answer, wire.VerdictNotice):
        reason = answer.reason if isinstance(answer, wire.DealRefused) else type(answer).__name__
        raise MediatorDeclined(reason)
    if answer.deal_id != deal_id:
        raise FalseVerdict("the verdict names another deal")
    verdict = Verdict(deal_id, Outcome(answer.outcome), answer.result_hash)
    signer = recover_typed(verdict, chain.sync.domain, answer.mediator_signature)
    return SignedVerdict(signer, VerdictOutcome(answer.outcome), answer.result_hash,
                         answer.mediator_signature)


async def _take_output(
    case: DisputeCase, mediator: str, answer: wire.DealMessage,
    chunks: AsyncIterator[bytes] | None,
) -> wire.DealMessage:
    """`on_answer` of a mediation request: a verdict's output, asked for, goes to
    `case.output` if it hashes to the recorded result and no other mediator's came first."""
    if chunks is None:
        return answer
    if case.output is None or not isinstance(answer, wire.VerdictWithOutput):
        raise wire.MalformedMessage(f"{answer.TYPE} with a body was not asked for")
    own = case.output.with_name(f"{case.output.stem}.{mediator}.tar")
    if answer.result_hash != case.result_hash:
        raise MediatorDeclined("an output of another result than the one recorded")
    try:
        await receive_output(answer, chunks, case.inputs.key, own, DEFAULT_MAX_JOB_BYTES,
                             case.deal.provider)
    except BadOutput as exc:
        raise MediatorDeclined(f"its output: {exc}") from exc
    if case.output.exists():
        discard(own)
    else:
        own.replace(case.output)
    return answer


class MediatorDeclined(PeerMisbehaved):
    """A mediator refused, or answered something other than a verdict."""


class FalseVerdict(MediatorDeclined):
    """A verdict for another deal, or signed by someone other than the member asked."""


async def gather_verdicts(
    chain: DealChain,
    case: DisputeCase,
    contact: Callable[[str], MediatorContact | None],
    *,
    answer_timeout_s: float = MEDIATOR_ANSWER_TIMEOUT_S,
) -> VerdictTally:
    """Ask every mediator of the deal at once; return once k agree or all have answered/timed
    out. Answers from anyone but the member asked are dropped (see module docstring)."""
    deal = case.deal
    deal_id = chain.deal_id(deal)
    tally = VerdictTally(deal.mediators, deal.threshold)
    wire_deal = wire.deal_to_wire(deal)

    async def ask(address: str, done: trio.CancelScope) -> None:
        reached = contact(address)
        if reached is None:
            event(log, "dispute.mediator_unknown", logging.WARNING, mediator=address)
            return
        try:
            inputs = await run_blocking(
                case.inputs.resealed, reached.sealing_public_key, mediation_context(deal_id))
        except OSError as exc:  # the spool is gone or unreadable: asked again next round
            event(log, "dispute.inputs_unreadable", logging.WARNING, mediator=address,
                  error=repr(exc))
            return
        request = wire.MediationRequest(
            chain_id=chain.chain_id, deal=wire_deal, module=case.module,
            inputs_preamble=inputs.preamble, inputs_bytes=inputs.size,
            inputs_nonce=case.inputs_nonce, job_offer=case.job_offer,
            result_hash=case.result_hash, provider_signature=case.provider_commitment,
            output_recipient=b"" if case.output is None else bytes(case.inputs.key.public_key),
        )
        try:
            with trio.fail_after(answer_timeout_s + inputs.size / SLOWEST_INPUTS_BYTES_PER_S):
                answer = await reached.ask(request, inputs.chunks,
                                           partial(_take_output, case, address))
            verdict = _signed_verdict(chain, deal_id, answer)
            if verdict.mediator != address:
                raise FalseVerdict(f"answer signed by {verdict.mediator}, not {address}")
            quorum = tally.add(verdict)
        except (trio.TooSlowError, NetError, PeerMisbehaved, SignatureInvalid,
                TallyRejected) as exc:
            if isinstance(exc, FalseVerdict | SignatureInvalid):
                reached.report(f"mediation: {exc}")
            event(log, "dispute.no_verdict", logging.WARNING, mediator=address, error=repr(exc))
            return
        event(log, "dispute.verdict", mediator=address, outcome=verdict.outcome.name)
        if quorum is not None:
            done.cancel()

    async with trio.open_nursery() as nursery:
        for address in deal.mediators:
            nursery.start_soon(ask, address, nursery.cancel_scope)
    return tally


async def report_equivocations(
    chain: DealChain, deal_id: bytes, tally: VerdictTally, watch: EquivocationWatch
) -> list[str]:
    """Feed the tally's verdicts to `watch`; slash each mediator found signing two different
    verdicts for this deal. Returns the mediators slashed."""
    slashed = []
    for heard in tally.verdicts():
        proof = watch.observe(deal_id, heard)
        if proof is None:
            continue
        first, second = (Verdict(deal_id, Outcome(int(v.outcome)), v.result_hash) for v in proof)
        try:
            await chain.client.slash_equivocation(first, proof[0].signature, second,
                                                  proof[1].signature)
        except ChainError as exc:  # e.g. already slashed by someone else, or no stake left
            event(log, "dispute.equivocation_not_slashed", logging.WARNING,
                  mediator=heard.mediator, error=repr(exc))
            continue
        slashed.append(heard.mediator)
        event(log, "dispute.equivocation_slashed", logging.WARNING, mediator=heard.mediator,
              deal_id="0x" + deal_id.hex())
    return slashed


async def resolve(chain: DealChain, deal: Deal, quorum: Quorum) -> bool:
    """Apply the quorum's verdict; False if the deal was already resolved (by someone else)."""
    verdict = Verdict(chain.deal_id(deal), Outcome(int(quorum.outcome)), quorum.result_hash)
    if await chain.status(deal) is DealStatus.RESOLVED:
        return False
    try:
        await chain.client.resolve(deal, verdict, list(quorum.signatures))
    except AlreadySettled:
        return False
    return True


async def mediate(
    chain: DealChain,
    case: DisputeCase,
    contact: Callable[[str], MediatorContact | None],
    *,
    answer_timeout_s: float = MEDIATOR_ANSWER_TIMEOUT_S,
    watch: EquivocationWatch | None = None,
) -> Resolution | None:
    """Dispute, gather, resolve (see module docstring); None if no quorum formed this time.

    Raises:
        DisputeError: the deal cannot be disputed.
        ChainError: the chain refused or did not answer.
    """
    status = await open_dispute(chain, case)
    if status is DealStatus.RESOLVED:
        raise DisputeError("the deal is already resolved")
    tally = await gather_verdicts(chain, case, contact, answer_timeout_s=answer_timeout_s)
    if watch is not None:
        await report_equivocations(chain, chain.deal_id(case.deal), tally, watch)
    quorum = tally.quorum()
    deal_id = "0x" + chain.deal_id(case.deal).hex()
    if quorum is None:
        event(log, "dispute.no_quorum", logging.WARNING, deal_id=deal_id,
              heard=len(tally.consortium) - len(tally.missing()), needed=tally.threshold)
        return None
    by_us = await resolve(chain, case.deal, quorum)
    resolution = Resolution(quorum.outcome, quorum.result_hash, quorum.signers, tally.dissent(),
                            tally.missing(), by_us)
    event(log, "dispute.resolved", deal_id=deal_id, outcome=quorum.outcome.name,
          signers=len(quorum.signers), dissent=[v.mediator for v in resolution.dissent],
          missing=list(resolution.missing), by_us=by_us)
    return resolution
