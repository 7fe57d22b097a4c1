"""DCUtR with one driver per pair of peers.

py-libp2p 0.8.1's DCUtR service drives a hole punch toward every peer it holds a relayed
connection to, from both ends. When both ends start at once (their 2 s loops see the relayed
connection together), two sessions run concurrently and each side dials twice from its listen
port to the same address: once as the client of the peer's session and once as the server of
its own. Only one of those dials gets the TCP 4-tuple; when each side's client dial wins, the
merged connection has two Noise initiators and the handshake fails, and the failed socket then
holds the 4-tuple, so every retry fails with EADDRNOTAVAIL until it ages out. The NAT lab's two
private providers stayed relayed that way in 2 of 5 full-suite runs.

The DCUtR spec has the peer that accepted the relayed connection open the DCUtR stream.
`OneSidedDCUtR` follows it: a node initiates only toward peers whose relayed connection to it is
inbound; where both directions (or an unknown one) exist, the lower peer ID drives. The other
end still answers, so exactly one session runs. `tests/unit/net/test_hole_punch.py` pins the
library members this relies on.
"""

from __future__ import annotations

from collections.abc import Iterable

from libp2p.connection_types import ConnectionType
from libp2p.peer.id import ID
from libp2p.rcmgr import Direction
from libp2p.relay.circuit_v2.dcutr import DCUtRProtocol


def drives_hole_punch(me: ID, peer: ID, relayed_directions: Iterable[Direction]) -> bool:
    """Whether we, not `peer`, open the DCUtR session, given our relayed connections to it."""
    directions = set(relayed_directions)
    if not directions:
        return False
    if directions == {Direction.INBOUND}:
        return True
    if directions == {Direction.OUTBOUND}:
        return False
    return me.to_bytes() < peer.to_bytes()


class OneSidedDCUtR(DCUtRProtocol):
    """The library's DCUtR service; the auto-drive loop only starts sessions we should drive."""

    async def initiate_hole_punch(self, peer_id: ID) -> bool:
        directions = [
            conn.direction
            for conn in self.host.get_network().get_connections(peer_id)
            if conn.get_connection_type() is ConnectionType.RELAYED
        ]
        if not drives_hole_punch(self.host.get_id(), peer_id, directions):
            return False
        return await super().initiate_hole_punch(peer_id)
