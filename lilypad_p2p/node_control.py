"""The node's own control methods (`status`, `offers`, `peers`, `deals`, `tallies`,
`nat.ping`, `market`); the roles add theirs (the client's `submit`, `deal`, `dispute`)."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import TYPE_CHECKING, Any

import trio

from lilypad_p2p import wire
from lilypad_p2p.chain import ChainError
from lilypad_p2p.control import Handler
from lilypad_p2p.errors import LilypadError
from lilypad_p2p.health import Fault
from lilypad_p2p.node_market import market_method, own_market
from lilypad_p2p.roles import describe

if TYPE_CHECKING:
    from lilypad_p2p.node import Node

# `status` gives up on a chain that does not answer within this (and shows it disconnected).
CHAIN_STATUS_TIMEOUT_S = 3.0
# The oldest chain section a `status` caller may accept (`chain_max_age_s`).
MAX_CHAIN_STATUS_AGE_S = 3600.0
# The most deals a `deals` call by `key` describes when the key only starts theirs: enough to
# say it is ambiguous, without describing a node's every deal for a short prefix.
MAX_NAMED_DEALS = 10


class NodeControl:
    def __init__(self, node: Node) -> None:
        self.node = node
        # Chain ID -> (trio time, our deals by phase then, entry) of the last chain section
        # read that got answers.
        self._chain_reads: dict[int, tuple[float, list[tuple[str, str, int]], dict[str, Any]]] = {}

    def handlers(self) -> dict[str, Handler]:
        return {
            "status": self._status, "offers": self._offers, "peers": self._peers,
            "nodes": self._nodes,
            "deals": self._deals, "tallies": self._tallies, "nat.ping": self._nat_ping,
            "market": functools.partial(market_method, self.node),
        }

    async def _tallies(self, params: dict[str, Any]) -> dict[str, Any]:
        """Counts and durations for the metrics: deals by phase and time in each phase, job
        runs and image pulls per role, contract calls per chain (`tally.py`)."""
        node = self.node
        store = node.store
        return {
            "deal_phases": [] if store is None else store.phase_counts(),
            "phase_durations": [] if store is None else store.phase_durations.snapshot(),
            "runs": {role: ex.runs.snapshot() for role, ex in sorted(node.executors.items())},
            "pulls": {role: ex.pulls.snapshot() for role, ex in sorted(node.executors.items())},
            "chain_calls": {
                str(chain_id): chain.sync.chain.calls.snapshot()
                for chain_id, chain in (node.chains or {}).items()
            },
        }

    async def _deals(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """This node's deals, in creation order: every one, or the `limit` newest, or
        (`open_only`) the unfinished ones, or those a `key` may name (`DealStore.deals_named`:
        the one it names exactly, or at most MAX_NAMED_DEALS it starts)."""
        key, limit, open_only = params.get("key"), params.get("limit"), params.get("open_only")
        if key is not None and not isinstance(key, str):
            raise LilypadError("deals: key must be text")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                                  or limit < 1):
            raise LilypadError("deals: limit must be a whole number of deals, at least 1")
        if open_only is not None and not isinstance(open_only, bool):
            raise LilypadError("deals: open_only must be true or false")
        store = self.node.store
        if store is None:
            return []
        if key is not None:
            chosen = store.deals_named(key, most=MAX_NAMED_DEALS)
        else:
            chosen = store.deals(open_only=bool(open_only), newest=limit)
        return [describe(stored, store) for stored in chosen]

    async def _status(self, params: dict[str, Any]) -> dict[str, Any]:
        """The node at a glance. `chain_max_age_s` (default 0) lets each chain's section be
        that old (a scrape every few seconds need not cost three chain calls each time); it is
        read afresh whenever the watchdog finds the chain unreachable or one of our deals has
        changed phase since (our balance moves with them)."""
        max_age_s = params.get("chain_max_age_s", 0.0)
        if (not isinstance(max_age_s, int | float) or isinstance(max_age_s, bool)
                or not 0 <= max_age_s <= MAX_CHAIN_STATUS_AGE_S):
            raise LilypadError(f"status: chain_max_age_s must be a number of seconds from 0 "
                               f"to {MAX_CHAIN_STATUS_AGE_S:.0f}")
        return {
            **self.node.health.describe(self.node._clock_ms()),
            "peer_id": str(self.node.identity.peer_id),
            "address": self.node.identity.address,
            "sealing_public_key": self.node.identity.sealing_public_key.hex(),
            "roles": sorted(self.node.config.roles),
            "markets": list(self.node.config.markets),
            "listen_addrs": self.node.net.listen_addrs(),
            "peers": len(self.node.net.peers()),
            "known_nodes": len(self.node.node_records),
            "key_rotations": dict(self.node.successors),
            "uptime_s": round(trio.current_time() - self.node._started_at, 1),
            "gossip": dataclasses.asdict(self.node.net.statistics()),
            "book": dataclasses.asdict(self.node.book.statistics()),
            "nat": self.node.net.nat.status(),
            "chains": await self._chain_status(float(max_age_s)),
            "modules_beyond_offer": self.node.publisher.modules_beyond_offer,
        }

    async def _chain_status(self, max_age_s: float) -> list[dict[str, Any]]:
        """Each settlement chain: ID, contract, endpoint, head block, our deposit, and how old
        that read is (`age_s`)."""
        if self.node.chains is None:
            return []
        now = trio.current_time()
        if self.node.health.has(Fault.CHAIN_UNREACHABLE):
            max_age_s = 0.0
        deals = [] if self.node.store is None else self.node.store.phase_counts()
        shown = []
        for settings, chain in zip(self.node.config.chains, self.node.chains.values(), strict=True):
            read_at, deals_then, entry = self._chain_reads.get(chain.chain_id, (-math.inf, [], {}))
            if now - read_at <= max_age_s and deals_then == deals:
                shown.append({**entry, "age_s": round(now - read_at, 1)})
                continue
            entry = {
                "chain_id": chain.chain_id, "contract": chain.sync.address,
                "rpc_url": settings.rpc_url or "embedded",
                "default": chain is self.node.chains.default,
            }
            try:
                with trio.fail_after(CHAIN_STATUS_TIMEOUT_S):
                    balance = await chain.client.balance(self.node.identity.address)
                    entry["head"] = await trio.to_thread.run_sync(chain.sync.chain.block_number)
                entry.update(connected=True, free_wei=balance.free, locked_wei=balance.locked,
                             withdrawing_wei=balance.withdraw_requested)
                self._chain_reads[chain.chain_id] = (now, deals, entry)
            except (ChainError, trio.TooSlowError) as exc:
                entry.update(connected=False, error=repr(exc))
            shown.append({**entry, "age_s": 0.0})
        return shown

    async def _nat_ping(self, params: dict[str, Any]) -> dict[str, Any]:
        """One echo exchange with a peer, through a relay if that is the only way.

        Addresses come from `params["addrs"]` or else the peer's NodeRecord.
        """
        from libp2p.peer.id import ID

        peer_id = params.get("peer_id")
        if not isinstance(peer_id, str):
            raise LilypadError("nat.ping: peer_id must be a string")
        addrs = params.get("addrs")
        if addrs is None:
            records = [r for r in self.node.node_records.values() if r.peer_id == peer_id]
            addrs = list(records[0].listen_addrs) if records else []
        if not isinstance(addrs, list) or not all(isinstance(a, str) for a in addrs):
            raise LilypadError("nat.ping: addrs must be a list of multiaddr strings")
        result = await self.node.net.nat.ping(ID.from_base58(peer_id), addrs)
        return dataclasses.asdict(result)

    async def _offers(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        market = own_market(self.node, "offers", params)
        now_ms = self.node._clock_ms()
        listed = []
        for envelope in self.node.book.offers(market):
            body = envelope.body
            if isinstance(body, wire.ResourceOffer):
                kind, owner = "resource", body.provider
                summary = (
                    f"{body.spec.milli_cpu}m CPU, {body.spec.ram_mb} MB RAM, "
                    f"{body.spec.disk_mb} MB disk, {body.spec.gpu_count} GPU, "
                    f"{body.price_per_job_wei} wei/job"
                )
                chain_ids = list(body.chain_ids)
                price = body.price_per_job_wei
            else:
                assert isinstance(body, wire.JobOffer)
                kind, owner = "job", body.job_creator
                summary = f"{body.module}, max {body.max_price_wei} wei"
                chain_ids = [body.chain_id]
                price = body.max_price_wei
            listed.append(
                {
                    "kind": kind,
                    "id": body.cid,
                    "owner": owner,
                    "summary": summary,
                    "chain_ids": chain_ids,
                    "price_wei": price,
                    "expires_in_s": (body.expires_at - now_ms) / 1000,
                }
            )
        return listed

    async def _peers(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return [dataclasses.asdict(peer) for peer in self.node.net.peers()]

    async def _nodes(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The nodes whose NodeRecord we hold: whom a client can reach as a mediator."""
        return [{"address": record.address, "roles": list(record.roles),
                 "mediator_available": record.mediator_available}
                for record in self.node.node_records.values()]
