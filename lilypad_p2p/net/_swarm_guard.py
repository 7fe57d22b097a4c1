"""Our connection admission on py-libp2p 0.8.1's Swarm: budgets enforced, slots always returned.

The library's inbound handler (`Swarm._do_handle_inbound_connection`) holds its inbound slot
(`_inbound_limiter`, max_connections - min_connections tokens) until the *Swarm* stops, not
until the connection closes: it parks on `manager.wait_finished()` to keep trio's listener from
closing the socket. Every inbound connection over a node's life therefore used one slot for
good, and after 292 of them (300 - 8) every inbound connection was refused. Ours parks on the
connection's own `event_closed` (Mplex and Yamux both set it on every close path) as well, so the
library's slot and our `Admission` ticket come back when the connection ends, whoever ends it.

Before the handshake, the remote IP is checked against the total, inbound, per-IP and
per-subnet budgets (a refused connection costs one accept and one close); after it, the peer
ID against bans and the per-peer budget. Outbound connections are counted by a notifee.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from libp2p.abc import IMuxedConn, INetConn, INetStream, INetwork, INetworkService, INotifee
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.network.swarm import Swarm
from libp2p.rcmgr import Direction
from multiaddr import Multiaddr

from lilypad_p2p.net._admission import Admission, ConnectionTicket, Refusal

logger = logging.getLogger(__name__)


def remote_ip(swarm: Swarm, read_write_closer: Any) -> str | None:
    """The remote IP of an accepted socket, or None if the transport does not say."""
    try:
        remote = read_write_closer.get_remote_address()
    except (AttributeError, OSError):  # a transport without addresses, a socket gone
        return None
    if not remote:
        return None
    try:
        return str(ipaddress.ip_address(remote[0]))
    except ValueError:
        return None


def guard_swarm(swarm: INetworkService, admission: Admission) -> None:
    """Install budgeted inbound admission (with the slot fix) and outbound accounting."""
    if not isinstance(swarm, Swarm):  # the inbound path replaced below is Swarm's own
        raise TypeError(f"guard_swarm needs libp2p's Swarm, got {type(swarm).__name__}")
    library_handler = swarm._do_handle_inbound_connection

    async def do_handle_inbound_connection(
        read_write_closer: Any, maddr: Multiaddr, failure_event: Any
    ) -> None:
        if isinstance(read_write_closer, IMuxedConn):  # QUIC-like transports: not ours
            # The library's handler takes muxed connections too but is typed for raw ones.
            await library_handler(read_write_closer, maddr, failure_event)  # type: ignore[arg-type]
            return
        ticket = admission.admit_connection(inbound=True, ip=remote_ip(swarm, read_write_closer))
        if isinstance(ticket, Refusal):
            logger.debug("inbound connection refused: %s", ticket.value)
            await _close_quietly(read_write_closer)
            return
        try:
            await _serve_inbound(swarm, admission, ticket, read_write_closer, maddr)
        finally:
            admission.release(ticket)

    # Replacing the library's handler is the point (budgets, and the slot fix).
    swarm._do_handle_inbound_connection = do_handle_inbound_connection  # type: ignore[method-assign]
    swarm.register_notifee(_OutboundAccounting(admission))


async def _serve_inbound(
    swarm: Swarm,
    admission: Admission,
    ticket: ConnectionTicket,
    read_write_closer: Any,
    maddr: Multiaddr,
) -> None:
    remote = swarm._build_remote_multiaddr(read_write_closer)
    if remote is not None and not await swarm.connection_gate.is_allowed(remote):
        await _close_quietly(read_write_closer)
        return
    raw_conn = RawConnection(read_write_closer, False)
    try:
        muxed_conn = await swarm.upgrade_inbound_raw_conn(raw_conn, maddr)
    except Exception as error:  # boundary: failed handshakes are ordinary churn
        logger.debug("inbound upgrade from %s failed: %r", remote, error)
        await _close_quietly(raw_conn)
        return
    refusal = admission.attach_peer(ticket, muxed_conn.peer_id)
    if refusal is not None:
        logger.debug("inbound connection from %s refused: %s", muxed_conn.peer_id, refusal.value)
        await _close_quietly(muxed_conn)
        return
    # Returning would let trio's listener close the socket: wait for this connection to end,
    # or for the Swarm to stop (the listener's tasks do not run under the Swarm's scope).
    async with trio.open_nursery() as nursery:

        async def finish_when(wait: Callable[[], Awaitable[object]]) -> None:
            await wait()
            nursery.cancel_scope.cancel()

        # Mplex and Yamux both have `event_closed`; the library's IMuxedConn does not declare it.
        nursery.start_soon(finish_when, muxed_conn.event_closed.wait)  # type: ignore[attr-defined]
        nursery.start_soon(finish_when, swarm.manager.wait_finished)


class _OutboundAccounting(INotifee):
    """Counts our own dials against the budgets; one over them is closed at once."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._tickets: dict[int, ConnectionTicket] = {}

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        if getattr(conn, "direction", None) != Direction.OUTBOUND:
            return
        ticket = self._admission.admit_connection(inbound=False, ip=None)
        refusal = ticket if isinstance(ticket, Refusal) else None
        if isinstance(ticket, ConnectionTicket):
            refusal = self._admission.attach_peer(ticket, conn.muxed_conn.peer_id)
            if refusal is None:
                self._tickets[id(conn)] = ticket
            else:
                self._admission.release(ticket)
        if refusal is not None:
            logger.debug("outbound connection closed: %s", refusal.value)
            await _close_quietly(conn)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        ticket = self._tickets.pop(id(conn), None)
        if ticket is not None:
            self._admission.release(ticket)

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        """Streams are budgeted by `_containment`."""

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        """Streams are budgeted by `_containment`."""

    async def listen(self, network: INetwork, multiaddr: Multiaddr) -> None:
        """Nothing to count."""

    async def listen_close(self, network: INetwork, multiaddr: Multiaddr) -> None:
        """Nothing to count."""


async def _close_quietly(closeable: Any) -> None:
    with trio.move_on_after(_CLOSE_TIMEOUT_S):
        try:
            await closeable.close()
        except Exception as error:  # boundary: already closed by either side
            logger.debug("close failed: %r", error)


# Closing a socket or muxer is local work; one that takes longer than this is abandoned.
_CLOSE_TIMEOUT_S = 5.0
