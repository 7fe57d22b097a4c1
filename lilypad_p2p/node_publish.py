"""What a node says about itself: its signed NodeRecord, its resource offers (republished
before they expire, withdrawn while it cannot run jobs), and the snapshot a syncing peer gets.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio

from lilypad_p2p import wire
from lilypad_p2p.config import NODE_RECORD_INTERVAL_S
from lilypad_p2p.identity import load_handover
from lilypad_p2p.logs import event
from lilypad_p2p.market import Republisher
from lilypad_p2p.roles import DEFAULT_COLLATERAL_WEI, detect_capacity, resource_offer
from lilypad_p2p.roles._module_setup import module_policy, modules_beyond
from lilypad_p2p.wire import ENVELOPE_MAX_AGE_MS

if TYPE_CHECKING:
    from lilypad_p2p.node import Node

log = logging.getLogger("lilypad_p2p.node")

# A NodeRecord is valid for this long; it is re-published every NODE_RECORD_INTERVAL_S.
NODE_RECORD_LIFETIME_MS = 30 * 60 * 1000
# Longest sleep of the republishing loop: the wall clock can jump past trio's (a resumed laptop),
# and offers that expired meanwhile are re-published within this.
PUBLISHER_MAX_SLEEP_S = 30.0
# Envelopes served to syncing peers must still be fresh when they arrive.
SYNC_FRESHNESS_MARGIN_MS = 20_000
# Our NodeRecord is re-published early when our addresses change, never more often than this.
NODE_RECORD_MIN_GAP_S = 2.0


class Publisher:
    """Signs and gossips what `node` publishes, and keeps its own offers alive."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._republisher = Republisher()
        # Set when an offer is tracked: the republishing loop sleeps until the next offer is
        # due, and plans again when there is a new one.
        self._tracked = trio.Event()
        # Set when our addresses change: a new relay address must reach peers before the
        # next periodic NodeRecord.
        self.addrs_changed = trio.Event()
        # Ours, after `keys rotate`: the retired key's hand-over, put in our NodeRecord.
        self._handover = load_handover(node.config.keystore_dir, node.identity.address)
        # Our published resource offers, withdrawn (cancelled) while we cannot run jobs.
        self.own_offers: list[wire.ResourceOffer] = []
        # The modules our policy allows that need more than those offers give (`status`).
        self.modules_beyond_offer: list[str] = []
        # Our last NodeRecord envelope: served to syncing peers while fresh, so a sync round
        # costs no signature and its digest stays the same for peers that hold it.
        self._own_record: wire.SignedEnvelope | None = None

    def node_record(self, now_ms: int) -> wire.NodeRecord:
        node = self._node
        return wire.NodeRecord(
            address=node.identity.address,
            peer_id=str(node.identity.peer_id),
            # Local-only roles (the chain bridge) are not announced on the network.
            roles=tuple(sorted(node.config.roles & set(wire.ROLES))),
            sealing_public_key=node.identity.sealing_public_key,
            markets=tuple(sorted(node.config.markets)),
            mediator_available=node.config.has_role("mediator"),
            listen_addrs=tuple(node.net.listen_addrs()),
            predecessor=self._handover[0] if self._handover else None,
            predecessor_signature=self._handover[1] if self._handover else b"",
            created_at=now_ms,
            expires_at=now_ms + NODE_RECORD_LIFETIME_MS,
            nonce=secrets.randbits(63),
        )

    def offer_snapshot(self, markets: Sequence[str], with_jobs: bool) -> list[bytes]:
        """What a syncing peer gets: the fresh offers we hold on `markets` (job offers only
        `with_jobs`), our NodeRecord and the fresh NodeRecords we hold."""
        node = self._node
        now_ms = node._clock_ms()
        oldest_ms = now_ms - ENVELOPE_MAX_AGE_MS + SYNC_FRESHNESS_MARGIN_MS
        ours = self._own_record
        if ours is None or ours.published_at < oldest_ms:
            ours = self._own_record = node.identity.sign_envelope(self.node_record(now_ms),
                                                                  now_ms)
        records = node.directory.envelopes_except(node.identity.address)
        offers = [envelope for market in markets for envelope in node.book.offers(market)
                  if with_jobs or not isinstance(envelope.body, wire.JobOffer)]
        return [ours.encode()] + [
            envelope.encode() for envelope in records + offers
            if envelope.published_at >= oldest_ms
        ]

    async def publish(self, body: wire.Message) -> None:
        node = self._node
        envelope = node.identity.sign_envelope(body, node._clock_ms())
        if isinstance(body, wire.NodeRecord):
            self._own_record = envelope
        if isinstance(body, wire.ResourceOffer | wire.JobOffer):
            node.book.add(envelope, node._clock_ms())
        cancels_job_offer = False
        if isinstance(body, wire.Cancel):
            withdrawn = node.book.get(body.offer_cid)
            cancels_job_offer = withdrawn is not None and isinstance(withdrawn.body, wire.JobOffer)
            node.book.cancel(envelope, node._clock_ms())
        await node.net.publish(envelope, cancels_job_offer=cancels_job_offer)

    async def publish_node_record(self) -> None:
        # A newcomer learns our record (and every fresh one we hold) by offer sync when it
        # connects, so a new peer needs no network-wide re-publication: at 50 nodes starting
        # together that was one record per node every 2 s, gossiped to all.
        while True:
            await self.publish(self.node_record(self._node._clock_ms()))
            await trio.sleep(NODE_RECORD_MIN_GAP_S)
            with trio.move_on_after(NODE_RECORD_INTERVAL_S - NODE_RECORD_MIN_GAP_S):
                await self.addrs_changed.wait()
            self.addrs_changed = trio.Event()

    async def offer_capacity(self) -> None:
        node = self._node
        capacity = await trio.to_thread.run_sync(detect_capacity, node.config.home)
        if node.config.offer_disk_mb:
            capacity = dataclasses.replace(capacity, disk_mb=node.config.offer_disk_mb)
        chain_ids = await self._offered_chain_ids()
        policy = module_policy(node.config, node.modules)
        for market in node.config.markets:
            offer = resource_offer(
                provider=node.identity.address,
                market=market,
                capacity=capacity,
                modules=policy.entries(),
                now_ms=node._clock_ms(),
                chain_ids=chain_ids,
                trusted_mediators=_checksummed(node.config.mediators),
                price_per_job_wei=node.config.price_per_job_wei,
            )
            await self.publish(offer)
            self._republisher.track(offer, node._clock_ms())
            self._tracked.set()
            self.own_offers.append(offer)
            event(log, "offer.published", offer=offer.cid, market=market, kind="resource")
        self.modules_beyond_offer = modules_beyond(policy, node.modules, offer.spec)
        if self.modules_beyond_offer:  # most often: less free disk than a module may write
            event(log, "offer.modules_beyond_capacity", logging.WARNING,
                  modules="; ".join(self.modules_beyond_offer), disk_mb=capacity.disk_mb,
                  ram_mb=capacity.ram_mb, milli_cpu=capacity.milli_cpu,
                  hint="no job of these matches this node: free disk under its home, where "
                       "jobs write (then restart), set offer_disk_mb, or allow fewer modules")

    async def health_changed(self) -> None:
        """After every probe round: a provider that cannot run jobs withdraws its offers (a
        client would only waste a match on it) and offers again once it can."""
        node = self._node
        if not node.config.has_role("provider"):
            return
        why = node.health.why_no_jobs()
        if why is not None and self.own_offers:
            for offer in self.own_offers:
                self._republisher.untrack(offer.cid)
                await self.publish(wire.Cancel(
                    market=offer.market, offer_cid=offer.cid, owner=node.identity.address,
                    created_at=node._clock_ms(), nonce=secrets.randbits(63)))
            event(log, "offers.withdrawn", logging.WARNING, count=len(self.own_offers),
                  reason=why)
            self.own_offers.clear()
        elif why is None and not self.own_offers:
            await self.offer_capacity()

    async def _offered_chain_ids(self) -> tuple[int, ...]:
        """The chains our resource offers accept: those where our free deposit covers a deal's
        collateral when we start (all of them if none does: deals are then refused, saying
        so). Money stays on each deal's own chain, so a deposit on one cannot back another."""
        chains = self._node.chains
        assert chains is not None, "the provider role opens the chains first"
        funded = [chain.chain_id for chain in chains.values()
                  if await chain.free_balance() >= DEFAULT_COLLATERAL_WEI]
        return tuple(sorted(funded)) or chains.ids

    async def republish_own_offers(self) -> None:
        clock_ms = self._node._clock_ms
        while True:
            for offer in self._republisher.take_due(clock_ms()):
                await self.publish(offer)
            next_due = self._republisher.next_due_ms()
            delay_s = PUBLISHER_MAX_SLEEP_S
            if next_due is not None:
                delay_s = min(delay_s, max(0.0, (next_due - clock_ms()) / 1000))
            with trio.move_on_after(delay_s):
                await self._tracked.wait()
            self._tracked = trio.Event()


def _checksummed(addresses: Sequence[str]) -> tuple[str, ...]:
    from eth_utils import to_checksum_address

    return tuple(to_checksum_address(address) for address in addresses)
