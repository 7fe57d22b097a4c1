"""Our Yamux (`net/_yamux.py`): a cancelled close still ends the connection for both sides,
and window credit comes back in half windows without stalling a sender.

py-libp2p 0.8.1's `Yamux.close` took a lock and wrote GO_AWAY before closing the socket, so a
cancelled close (a node or task shutting down) left the socket open: the peer never learnt the
connection was gone (`_yamux.GuardedYamux`). Real hosts on real sockets, Yamux only.
"""

import contextlib

import pytest
import trio
from libp2p.abc import INetConn, INetwork, INotifee
from libp2p.peer.peerinfo import info_from_p2p_addr
from multiaddr import Multiaddr
from net_testbed import MESH_TIMEOUT_S

from lilypad_p2p.identity import Identity
from lilypad_p2p.net._admission import NetLimits
from lilypad_p2p.net._eager_lock import EagerLock
from lilypad_p2p.net._host import Muxer, build_host
from lilypad_p2p.net._secure_channel import (
    LeanNoiseTransport,
    LeanSecureSession,
    ReadAheadTCPStream,
)
from lilypad_p2p.net._yamux import GuardedYamux, TunedYamuxStream

pytestmark = pytest.mark.net

# Far longer than a close takes on a loaded machine; without the fix it never comes.
CLOSE_SEEN_TIMEOUT_S = 10.0


class _Disconnections(INotifee):
    def __init__(self) -> None:
        self.seen = trio.Event()

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self.seen.set()

    async def connected(self, network: INetwork, conn: INetConn) -> None: ...
    async def opened_stream(self, network: INetwork, stream: object) -> None: ...
    async def closed_stream(self, network: INetwork, stream: object) -> None: ...
    async def listen(self, network: INetwork, multiaddr: Multiaddr) -> None: ...
    async def listen_close(self, network: INetwork, multiaddr: Multiaddr) -> None: ...


def _yamux_host():
    return build_host(
        Identity.generate().libp2p_key_pair(),
        [Multiaddr("/ip4/127.0.0.1/tcp/0")],
        (Muxer.YAMUX,),
        target_connections=1,
        limits=NetLimits(),
    )


async def test_a_cancelled_close_still_ends_the_connection_for_the_peer():
    listener, dialer = _yamux_host(), _yamux_host()
    seen_by_listener = _Disconnections()
    listener.get_network().register_notifee(seen_by_listener)
    async with (
        listener.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]),
        dialer.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]),
    ):
        addr = f"{listener.get_addrs()[0]}"
        await dialer.connect(info_from_p2p_addr(Multiaddr(addr)))
        (connection,) = dialer.get_network().get_connections(listener.get_id())
        assert isinstance(connection.muxed_conn, GuardedYamux)
        with trio.fail_after(MESH_TIMEOUT_S):
            while not listener.get_network().get_connections(dialer.get_id()):
                await trio.sleep(0.05)

        with trio.CancelScope() as scope:
            scope.cancel()
            await connection.close()

        assert connection.muxed_conn.is_closed
        with trio.fail_after(CLOSE_SEEN_TIMEOUT_S):
            await seen_by_listener.seen.wait()
        assert listener.get_network().get_connections(dialer.get_id()) == []


PROTOCOL = "/lilypad-test/credit/1"
SMALL_MESSAGES = 100
MESSAGE = b"x" * 1024
BULK_BYTES = 1 << 20


async def test_window_credit_comes_back_in_half_windows_and_bulk_never_stalls():
    listener, dialer = _yamux_host(), _yamux_host()

    async def reader(stream) -> None:
        for expected in (SMALL_MESSAGES * len(MESSAGE), BULK_BYTES):
            got = 0
            while got < expected:
                got += len(await stream.read(64 * 1024))
            await stream.write(b"k")

    listener.set_stream_handler(PROTOCOL, reader)
    async with (
        listener.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]),
        dialer.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]),
    ):
        await dialer.connect(info_from_p2p_addr(Multiaddr(f"{listener.get_addrs()[0]}")))
        stream = await dialer.new_stream(listener.get_id(), [PROTOCOL])
        muxed = stream.muxed_stream
        assert isinstance(muxed, TunedYamuxStream)
        # Every per-frame lock is eager, the TCP stream reads ahead and Noise frames take the
        # one-step path, on a real connection.
        session = muxed.conn.secured_conn
        assert isinstance(session, LeanSecureSession)
        assert isinstance(session.conn, LeanNoiseTransport)
        tcp = session.conn.read_writer.read_write_closer.stream
        assert isinstance(tcp, ReadAheadTCPStream)
        for lock in (muxed.window_lock, muxed.conn._write_lock, muxed.conn.streams_lock,
                     tcp.read_lock, tcp.write_lock):
            assert isinstance(lock, EagerLock)
        with trio.fail_after(MESH_TIMEOUT_S):
            window_before = muxed.send_window
            for _ in range(SMALL_MESSAGES):
                await stream.write(MESSAGE)
            # The reader writes its ack after any window update it sends, on the same
            # connection, so both have been processed once the ack is read.
            assert await stream.read(1) == b"k"
            # 100 KiB read is under half the 256 KiB window: no credit frame per read.
            assert muxed.send_window == window_before - SMALL_MESSAGES * len(MESSAGE)

            # Four windows' worth: credit must come back in time for the sender to go on.
            for _ in range(BULK_BYTES // (64 * 1024)):
                await stream.write(b"y" * 64 * 1024)
            assert await stream.read(1) == b"k"
            assert muxed.send_window > 0
        await stream.close()


STUFFING_STREAMS = 64
# Well past GO_AWAY_TIMEOUT_S; without the fix the close never returns.
STUCK_CLOSE_TIMEOUT_S = 20.0


async def test_a_close_towards_a_peer_that_stopped_reading_still_returns():
    listener, dialer = _yamux_host(), _yamux_host()
    async with (
        listener.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]),
        dialer.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]),
    ):
        await dialer.connect(info_from_p2p_addr(Multiaddr(f"{listener.get_addrs()[0]}")))
        with trio.fail_after(MESH_TIMEOUT_S):
            while not listener.get_network().get_connections(dialer.get_id()):
                await trio.sleep(0.05)
        (their_side,) = listener.get_network().get_connections(dialer.get_id())

        async def never_read() -> bytes:
            await trio.sleep_forever()
            raise AssertionError("unreachable")

        # The listener stops reading its socket (from its next Noise frame on), which stays open.
        their_side.muxed_conn.secured_conn.conn.read_msg = never_read
        (ours,) = dialer.get_network().get_connections(listener.get_id())
        muxed = ours.muxed_conn
        assert isinstance(muxed, GuardedYamux)

        async def stuff() -> None:
            with contextlib.suppress(Exception):  # fails once our close ends the socket
                stream = await muxed.open_stream()
                await stream.write(b"z" * 256 * 1024)

        async with trio.open_nursery() as nursery:
            for _ in range(STUFFING_STREAMS):
                nursery.start_soon(stuff)
            await trio.sleep(1)  # the socket's send buffer fills; writers block
            with trio.fail_after(STUCK_CLOSE_TIMEOUT_S):
                await muxed.close()
        assert muxed.is_closed
