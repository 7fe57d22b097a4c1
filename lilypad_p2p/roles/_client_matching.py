"""A client's matching (offered -> matched): which resource offer each of its jobs goes to.

Candidates come from the solvers' proposals naming our job offers (several solvers proposing
the same matching count once, and an offer is a job's candidate once), or for a targeted job
from the named provider's offers in our book; after a failed match also from our whole book
(`_fallback_offers`). The first candidate that is still usable (not sitting out a refusal,
still matching the job, with mediators registered on the deal's chain) gets the deal, signed;
the driver (roles/_client.py) records it.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from lilypad_p2p import wire
from lilypad_p2p.blocking import run_blocking
from lilypad_p2p.deal_detail import required
from lilypad_p2p.identity import Identity
from lilypad_p2p.logs import event
from lilypad_p2p.market import PROPOSAL_LIFETIME_MS, OfferBook, Phase, Side, mismatch
from lilypad_p2p.net import NetError
from lilypad_p2p.roles._client_disputes import ClientDisputes
from lilypad_p2p.roles._client_records import ClientRecords
from lilypad_p2p.roles._settlement import DealChains
from lilypad_p2p.roles._terms import NoMediators, build_deal
from lilypad_p2p.store import ClientDeal, DealStore

log = logging.getLogger("lilypad_p2p.client")

# A resource offer whose provider did not answer our proposal (unreachable, or silent until the
# agreement timeout) sits out longer: it is overloaded or gone; the job is matched elsewhere.
UNANSWERED_BACKOFF_MS = 60_000
# A matching's ID is kept only while another solver's copy of it could still reach us: the
# network drops a proposal once it expires, and an honest one expires PROPOSAL_LIFETIME_MS
# after its epoch ends, which our clock may reach up to MAX_CLOCK_SKEW_MS after we hear it.
# A later expiry (a solver's own choice, up to a day) is not waited for: a copy heard after
# its ID is forgotten costs a store read per pair again, never a second candidate.
SEEN_MATCHING_MAX_MS = PROPOSAL_LIFETIME_MS + wire.MAX_CLOCK_SKEW_MS
# Backstop against a flood of made-up matchings (~150 bytes each: ~2.5 MB). Honest traffic
# stays far below it: a market has at most one matching per 500 ms epoch when its solvers
# agree, ~120 within SEEN_MATCHING_MAX_MS. Forgetting early costs only the store reads above.
MAX_SEEN_MATCHINGS = 16_384


@dataclass(eq=False, repr=False)  # it holds the node's identity: never printed
class JobMatcher:
    """Candidates for each of a client's jobs, and the deal for the first usable one."""

    book: OfferBook
    _: KW_ONLY
    identity: Identity
    store: DealStore
    chains: DealChains
    mediators: tuple[str, ...]
    records: ClientRecords | None
    disputes: ClientDisputes | None
    acceptance_window_s: int
    clock_ms: Callable[[], int]
    wake: Callable[[str], None]  # a job's driver, which has new candidates
    # job offer CID -> resource offer CIDs
    _candidates: dict[str, list[str]] = field(default_factory=dict, init=False)
    # matching ID -> when to forget it (ms), in the order heard
    _seen_matchings: OrderedDict[str, int] = field(default_factory=OrderedDict, init=False)

    def observe_proposal(self, envelope: wire.SignedEnvelope) -> None:
        """Note the matches naming our job offers (the first valid one per job wins)."""
        proposal = envelope.body
        if not isinstance(proposal, wire.MatchProposal):
            return
        if not self._first_copy(proposal):
            return  # another solver's copy of a matching we already took note of
        for job_cid, resource_cid in proposal.matches:
            stored = self.store.get(job_cid)
            # An ended job's candidates are gone (`forget`): none are kept for it again.
            if (stored is None or stored.record.side is not Side.CLIENT
                    or stored.record.phase.is_final):
                continue
            candidates = self._candidates.setdefault(job_cid, [])
            if resource_cid not in candidates:  # also a copy heard after its ID was forgotten
                candidates.append(resource_cid)
            self.wake(job_cid)

    def _first_copy(self, proposal: wire.MatchProposal) -> bool:
        """Whether `proposal` is the first copy of its matching that we hear; its ID is kept
        until the proposal expires, SEEN_MATCHING_MAX_MS at most."""
        now = self.clock_ms()
        seen = self._seen_matchings
        # Heard in about their epochs' order, so the oldest are the first to expire; one kept
        # longer holds those after it back by SEEN_MATCHING_MAX_MS at most.
        while seen and next(iter(seen.values())) <= now:
            seen.popitem(last=False)
        if proposal.matching_id in seen:
            return False
        if len(seen) >= MAX_SEEN_MATCHINGS:
            seen.popitem(last=False)
        seen[proposal.matching_id] = min(proposal.expires_at, now + SEEN_MATCHING_MAX_MS)
        return True

    def forget(self, key: str) -> None:
        """The job `key` has ended: drop its candidates."""
        self._candidates.pop(key, None)

    def restore_job_offer(self, stored: ClientDeal) -> None:
        """Put a resumed, unmatched job offer back into our (empty) offer book, freshly signed.

        Peers may never have heard it (we had none when we posted it, or they dropped it); offer
        sync serves the book to every peer that connects to us, so the solvers see it again
        before its match timeout. (The network is not up yet: nothing to publish to.)
        """
        job = job_offer(stored)
        if job.target_provider is None:  # targeted offers are never gossiped
            now = self.clock_ms()
            self.book.add(self.identity.sign_envelope(job, now), now)

    def _usable_offer(
        self, job: wire.JobOffer, resource_cid: str, refused: dict[str, int]
    ) -> wire.ResourceOffer | None:
        if refused.get(resource_cid, 0) > self.clock_ms():
            return None
        envelope = self.book.get(resource_cid)
        if envelope is None or not isinstance(envelope.body, wire.ResourceOffer):
            return None
        resource = envelope.body
        # A job naming a records block: the proposed provider's record is checked here too.
        records = self.records.view(job) if self.records else None
        reason = mismatch(job, resource, self.clock_ms(), records=records)
        if reason is not None:
            event(log, "match.skipped", logging.DEBUG, job=job.cid, offer=resource_cid,
                  reason=reason)
            return None
        return resource

    async def find(self, stored: ClientDeal) -> dict[str, Any] | None:
        """The first usable candidate's deal, signed: what `Event.MATCH_FOUND` records;
        None: no candidate yet."""
        job = job_offer(stored)
        refused = stored.detail.refused
        if job.target_provider is not None:
            candidates = [
                e.body.cid for e in self.book.offers(job.market, wire.ResourceOffer)
                if isinstance(e.body, wire.ResourceOffer)
                and e.body.provider == job.target_provider
            ]
        else:
            candidates = self._candidates.get(job.cid, [])
            if refused:
                candidates = [*candidates, *self._fallback_offers(job)]
        for resource_cid in candidates:
            resource = self._usable_offer(job, resource_cid, refused)
            if resource is None:
                continue
            try:
                deal = build_deal(job, resource,
                                  salt=stored.detail.salt or secrets.token_bytes(32),
                                  acceptance_window_s=self.acceptance_window_s,
                                  **(self.disputes.deal_terms() if self.disputes else {}))
            except NoMediators:
                continue
            if not self.mediators and not await self._all_registered(stored, deal.mediators):
                continue
            signature = self.chains.require(stored.chain_id).sign_deal(deal)
            return {"resource_offer": resource_cid, "deal": deal,
                    "job_creator_signature": signature,
                    "result_deadline_ms": deal.result_deadline * 1000,
                    "matched_ms": self.clock_ms()}
        return None

    async def _all_registered(self, stored: ClientDeal, mediators: tuple[str, ...]) -> bool:
        """A client with no mediators of its own (its job offers name none) takes those its
        provider trusts, but only mediators registered and active on the deal's chain."""
        chain = self.chains.require(stored.chain_id)
        for address in mediators:
            stake, exit_ready_at = await run_blocking(chain.sync.mediator, address)
            if stake == 0 or exit_ready_at:
                event(log, "deal.mediator_unregistered", key=stored.record.key, mediator=address)
                return False
        return True

    def unanswered(self, stored: ClientDeal, why: str) -> dict[str, Any]:
        """What `Event.REFUSED` records when the matched provider did not answer: back to
        offered, nothing is signed by the provider yet, so the job is not lost, only this
        match; the offer sits out UNANSWERED_BACKOFF_MS."""
        offer = required(stored.detail.resource_offer, "resource offer")
        event(log, "deal.unanswered", logging.WARNING, key=stored.record.key, offer=offer,
              error=why)
        until = self.clock_ms() + UNANSWERED_BACKOFF_MS
        return {"refused": {**stored.detail.refused, offer: until}, "refusal": why}

    def _fallback_offers(self, job: wire.JobOffer) -> list[str]:
        """After a failed match, the offers in our own book, cheapest first; equal prices in an
        order drawn from the job, so clients' fallbacks do not all pile onto the oldest offer.

        The solvers' holds keep a failed pair out of their next epochs only for a while, after
        which they may propose the same provider again; a job whose provider did not answer
        would wait for a match it skips. So, once a match has failed, the client also tries
        the offers it holds itself (each still vetted by `_usable_offer` and, in the end, by
        the provider's own checks), as `--target` would, instead of letting the job lapse.
        """
        offers = [e.body for e in self.book.offers(job.market, wire.ResourceOffer)
                  if isinstance(e.body, wire.ResourceOffer)]
        offers.sort(key=lambda offer: (
            offer.price_per_job_wei, hashlib.sha256(f"{job.cid}/{offer.cid}".encode()).digest()
        ))
        return [offer.cid for offer in offers]


def job_offer(stored: ClientDeal) -> wire.JobOffer:
    """The job offer a client's deal was posted with."""
    envelope = wire.SignedEnvelope.from_wire(wire.decode(stored.detail.job_offer))
    assert isinstance(envelope.body, wire.JobOffer)
    return envelope.body


async def withdraw_offer(publish: Callable[[wire.Message], Awaitable[None]], job: wire.JobOffer,
                         now_ms: int) -> None:
    """Cancel the job offer once it has a deal (or none will come), so solvers stop matching
    it."""
    if job.target_provider is not None:
        return  # never published
    cancel = wire.Cancel(market=job.market, offer_cid=job.cid, owner=job.job_creator,
                         created_at=now_ms, nonce=secrets.randbits(63))
    try:
        await publish(cancel)
    except NetError as exc:  # the offer expires anyway; solvers' holds cover the gap
        event(log, "offer.cancel_failed", logging.WARNING, offer=job.cid, error=repr(exc))


def timed_out_error(phase: Phase, job: wire.JobOffer) -> str:
    """What a client's deal for `job` that timed out in `phase` tells its owner."""
    if phase is Phase.AGREED:
        return ("the provider did not open the deal by its result deadline (it took no inputs; "
                "`last_refusal` says why, if it said): nothing was locked")
    if phase is not Phase.OFFERED:
        return f"{phase} timed out"
    return (f"no provider took the job in time: `lilypad-p2p offers --market {job.market}` "
            "lists the providers this node hears; `lilypad-p2p status` on a provider says why "
            "it takes none")
