"""The `market` control method: a market as this node sees it (`lilypad-p2p market`).

Open job offers from the book; the going price from the matches heard recently
(`MarketWatch`); and, for each resource offer we published, why the recent jobs did not go to
it (`why_not_matched`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from lilypad_p2p import wire
from lilypad_p2p.errors import LilypadError
from lilypad_p2p.market import is_open
from lilypad_p2p.market._market_watch import (
    MATCHED,
    RECENT_MATCH_MS,
    price_summary,
    reason_counts,
    why_not_matched,
)

if TYPE_CHECKING:
    from lilypad_p2p.node import Node


def watch_proposal(node: Node, envelope: wire.SignedEnvelope) -> None:
    """Note a proposal's matches (heard, or published by our own solver)."""
    if isinstance(envelope.body, wire.MatchProposal):
        node.market_watch.observe(envelope.body, lambda offer_id: _offer_body(node, offer_id))


def _offer_body(node: Node, offer_id: str) -> wire.JobOffer | wire.ResourceOffer | None:
    envelope = node.book.get(offer_id)
    body = envelope.body if envelope is not None else None
    return body if isinstance(body, wire.JobOffer | wire.ResourceOffer) else None


def publish_watched(node: Node) -> Callable[[wire.SignedEnvelope], Awaitable[None]]:
    """The solver's publish: gossip never delivers our own proposals back to us."""
    async def publish(envelope: wire.SignedEnvelope) -> None:
        await node.net.publish(envelope)
        watch_proposal(node, envelope)

    return publish


def _job_row(job: wire.JobOffer, now_ms: int, matched: bool) -> dict[str, Any]:
    return {
        "id": job.cid, "creator": job.job_creator, "module": job.module,
        "max_price_wei": job.max_price_wei, "chain_id": job.chain_id,
        "spec": dataclasses.asdict(job.spec), "expires_in_s": (job.expires_at - now_ms) / 1000,
        "min_completed_deals": job.min_completed_deals,
        "slash_free_blocks": job.slash_free_blocks, "matched_recently": matched,
    }


def market_view(node: Node, market: str) -> dict[str, Any]:
    """What `lilypad-p2p market --json` prints (README "Seeing the market")."""
    now_ms = node._clock_ms()
    recent = node.market_watch.recent(market, now_ms)
    matches = {m.job.cid: m for m in recent}
    open_jobs = [envelope.body for envelope in node.book.offers(market, wire.JobOffer)
                 if isinstance(envelope.body, wire.JobOffer) and is_open(envelope.body, now_ms)]
    seen = {job.cid: job for job in open_jobs} | {m.job.cid: m.job for m in recent}
    records = node.records.for_jobs(seen.values())
    own = []
    for offer in node.publisher.own_offers:
        if offer.market != market:
            continue
        reasons = why_not_matched(offer, offer.cid, seen.values(), matches, now_ms,
                                  records=records)
        examples: dict[str, str] = {}
        for category, detail in reasons.values():
            if category != MATCHED and detail:
                examples.setdefault(category, detail)
        own.append({"id": offer.cid, "price_wei": offer.price_per_job_wei,
                    "spec": dataclasses.asdict(offer.spec), "modules": list(offer.modules),
                    "chain_ids": list(offer.chain_ids), "jobs_seen": len(reasons),
                    "reasons": reason_counts(reasons), "examples": examples})
    return {
        "market": market,
        # Without it the book holds no job offers but our own (DESIGN §4).
        "following": node.config.follows_jobs,
        "window_s": RECENT_MATCH_MS / 1000,
        "open_jobs": [_job_row(job, now_ms, job.cid in matches) for job in open_jobs],
        "recent_matches": len(recent),
        "prices": dataclasses.asdict(price_summary([m.price_wei for m in recent])),
        "own_offers": own,
    }


def own_market(node: Node, method: str, params: dict[str, Any]) -> str:
    """The market a control request names, if this node is in it: an empty answer for a
    mistyped market would read as "nobody trades here"."""
    market = params.get("market", "cpu")
    if not isinstance(market, str) or not market:
        raise LilypadError(f"{method}: give a market name, e.g. --market cpu")
    if market not in node.config.markets:
        raise LilypadError(f"{method}: this node is not in market {market!r}; its markets: "
                           f"{', '.join(node.config.markets)} (`markets` in config.toml)")
    return market


async def market_method(node: Node, params: dict[str, Any]) -> dict[str, Any]:
    return market_view(node, own_market(node, "market", params))
