"""What the network reports about itself: connected peers and counters."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PeerState:
    """One connected peer as the network sees it."""

    peer_id: str
    addrs: tuple[str, ...]
    connected: bool
    mesh_topics: tuple[str, ...]
    score: float


@dataclass(frozen=True, slots=True)
class NetStatistics:
    """Counters since start; `dropped` and `reports` are keyed by reason / action value."""

    delivered: int
    dropped: dict[str, int]
    reports: dict[str, int]
    reported_peers: int
    outbound_queue_drops: int
    event_queue_drops: int
    duplicates_skipped: int
    graylisted_messages_ignored: int
    connected_peers: int
    connections_accepted: int = 0
    connections_refused: dict[str, int] = dataclasses.field(default_factory=dict)
    banned_peers: int = 0
    trimmed_peers: int = 0
    peer_failures_contained: int = 0
    # What the admission budgets hold now, and the budgets (`_admission.NetLimits`).
    in_use: dict[str, int] = dataclasses.field(default_factory=dict)
    limits: dict[str, float] = dataclasses.field(default_factory=dict)
