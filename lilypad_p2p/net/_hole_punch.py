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
end still answers, so exactly one session runs. The library's attempt budget
(`MAX_HOLE_PUNCH_ATTEMPTS` per peer) still bounds the retries.

The library's first step, a plain direct dial before hole punching, dialled every non-relay
address of the peer, including the unspecified one its identify reports (`0.0.0.0`), which
reaches this node itself: about 0.7 s and an error-level handshake failure per session. Ours
dials only the `dialable` ones. `tests/unit/net/test_hole_punch.py` pins the library members
this relies on.
"""

from __future__ import annotations

from collections.abc import Iterable

import trio
from libp2p.connection_types import ConnectionType
from libp2p.peer.id import ID
from libp2p.peer.peerstore import PeerStoreError
from libp2p.rcmgr import Direction
from libp2p.relay.circuit_v2.dcutr import MAX_HOLE_PUNCH_ATTEMPTS, DCUtRProtocol

from lilypad_p2p.net._discovery import dialable


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
    """The library's DCUtR service, answering sessions as before; it starts none by itself.

    `to_drive` names the peers whose session is ours to start, and the NAT service's relay loop,
    which walks the connections anyway, starts them: the library's own loop woke every 2 s on
    every node to walk them again, for nothing on a node with no relayed connection.
    """

    async def _auto_drive_loop(self) -> None:
        """Not run: see the class docstring."""

    async def _try_unilateral_upgrade(self, peer_id: ID) -> bool:
        """The library's step 0 over the peer's dialable addresses (module docstring)."""
        try:
            addrs = dialable(self.host.get_peerstore().addrs(peer_id))
        except PeerStoreError:  # not in the peerstore: nothing to dial
            return False
        if not addrs:
            return False
        with trio.move_on_after(self.dial_timeout):
            async with trio.open_nursery() as nursery:
                for addr in addrs:
                    nursery.start_soon(self._dial_peer, peer_id, addr)
        return await self._verify_direct_connection(peer_id)

    def to_drive(self) -> list[ID]:
        """Peers reached only through a relay, whose DCUtR session we should start now."""
        me = self.host.get_id()
        peers = []
        for peer, conns in self.host.get_network().get_connections_map().items():
            relayed = [
                # SwarmConn records it; the INetConn interface does not promise it (UNKNOWN
                # falls back to the peer-ID order).
                getattr(conn, "direction", Direction.UNKNOWN)
                for conn in conns
                if conn.get_connection_type() is ConnectionType.RELAYED
            ]
            if len(relayed) < len(conns) or peer in self._in_progress:
                continue
            if self._hole_punch_attempts.get(peer, 0) >= MAX_HOLE_PUNCH_ATTEMPTS:
                continue
            if drives_hole_punch(me, peer, relayed):
                peers.append(peer)
        return peers
