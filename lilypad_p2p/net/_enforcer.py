"""Penalties that act, and trimming: a sweep over the connected peers.

- A peer whose GossipSub score is at the graylist threshold or below (the same test that has
  its messages ignored) is banned for
  `NetLimits.ban_s`: blacklisted in pubsub (its messages dropped, no stream to it), its
  connections closed (which prunes it from every mesh), and any new connection from it refused
  by `_swarm_guard` until the ban ends. Its P4 counts keep decaying while it is away
  (`_levers.ReportedScorer`), so a peer that behaves afterwards comes back with a better score.
- When connections reach the high-water mark (`TRIM_HIGH_WATER` of `max_connections`) the
  lowest-scored peers are closed down to the low-water mark; peers we have open deals with are
  never trimmed.

The sweep runs every second while there is something to act on soon: a peer that may score
below zero (it has been reported), a ban to lift, or connections near the trim mark. Otherwise
it waits `ENFORCE_IDLE_INTERVAL_S`, and `attend()` (called on every report) wakes it at once,
so a reported peer is judged straight away instead of up to a second later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field

import trio
from libp2p.abc import IHost
from libp2p.peer.id import ID
from libp2p.pubsub.pubsub import Pubsub

from lilypad_p2p.net._admission import Admission, peers_to_trim

logger = logging.getLogger(__name__)

# How often peers are checked against the graylist and the connection budget while one may be
# banned or trimmed soon (the GossipSub heartbeat's period: scores change no faster).
ENFORCE_INTERVAL_S = 1.0
# Otherwise: nobody can be graylisted until a report, which wakes the sweep; this only bounds
# how late a trim starts when connections arrive faster than the low-water margin.
ENFORCE_IDLE_INTERVAL_S = 10.0
# Trim when connections reach this share of `max_connections`, down to the low share, so a
# newcomer always finds room (go-libp2p's connection manager high/low water marks).
TRIM_HIGH_WATER = 0.9
TRIM_LOW_WATER = 0.75


def sweep_pause_s(*, suspects: bool, banned: int, connections: int, max_connections: int) -> float:
    """How long the enforcer may wait before its next sweep (a report wakes it earlier)."""
    if suspects or banned or connections >= max_connections * TRIM_LOW_WATER:
        return ENFORCE_INTERVAL_S
    return ENFORCE_IDLE_INTERVAL_S


@dataclass(eq=False)
class Enforcer:
    """Bans the graylisted and trims connections over budget (see the module docstring for when
    it sweeps); `protected` peers (open deals) are never trimmed, and `trimmed` counts those
    that were. `may_be_graylisted` is a cheap test that rules peers out of `is_graylisted`."""

    host: IHost
    pubsub: Pubsub
    admission: Admission
    _: KW_ONLY
    score: Callable[[ID], float]
    is_graylisted: Callable[[ID], bool]
    protected: Callable[[ID], bool]
    may_be_graylisted: Callable[[ID], bool]
    clock: Callable[[], float]
    trimmed: int = field(default=0, init=False)
    _woken: trio.Event = field(default_factory=trio.Event, init=False)

    def attend(self) -> None:
        """Sweep now: a peer was reported."""
        self._woken.set()

    def ban(self, peer_id: ID) -> None:
        """Refuse `peer_id` for the ban period (its connections are closed by the caller)."""
        self.admission.ban(peer_id, self.clock())
        self.pubsub.add_to_blacklist(peer_id)

    async def run(self) -> None:
        while True:
            connected = self.host.get_network().get_connections_map()
            pause_s = sweep_pause_s(
                suspects=any(self.may_be_graylisted(peer) for peer in connected),
                banned=self.admission.banned,
                connections=self.admission.connections,
                max_connections=self.admission.limits.max_connections,
            )
            with trio.move_on_after(pause_s):
                await self._woken.wait()
            self._woken = trio.Event()
            await self.sweep()

    async def sweep(self) -> None:
        for peer_id in self.admission.expire_bans(self.clock()):
            if isinstance(peer_id, ID):  # what `ban` gave the admission
                self.pubsub.remove_from_blacklist(peer_id)
        connected = list(self.host.get_network().get_connections_map())
        for peer_id in connected:
            if self.is_graylisted(peer_id):
                logger.info("banning graylisted peer", extra={"peer_id": str(peer_id)})
                self.ban(peer_id)
                await self._disconnect(peer_id)
        limits = self.admission.limits
        if self.admission.connections < limits.max_connections * TRIM_HIGH_WATER:
            return
        excess = self.admission.connections - int(limits.max_connections * TRIM_LOW_WATER)
        connected = list(self.host.get_network().get_connections_map())
        for peer_id in peers_to_trim(
            connected, excess=excess, score=self.score, protected=self.protected
        ):
            self.trimmed += 1
            await self._disconnect(peer_id)

    async def _disconnect(self, peer_id: ID) -> None:
        try:
            await self.host.disconnect(peer_id)
        except Exception as error:  # boundary: a peer's connection may be in any state
            logger.debug("disconnect %s: %r", peer_id, error)
