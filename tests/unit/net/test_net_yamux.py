"""Muxer selection: hosts offer Yamux first and still accept Mplex (multistream order)."""

import inspect

from libp2p.crypto.secp256k1 import create_new_key_pair
from libp2p.stream_muxer.muxer_multistream import MuxerMultistream
from libp2p.stream_muxer.rw_lock import ReadWriteLock
from libp2p.stream_muxer.yamux.yamux import Yamux, YamuxStream

from lilypad_p2p.net._admission import NetLimits
from lilypad_p2p.net._host import DEFAULT_MUXERS, Muxer, build_host, preferring
from lilypad_p2p.net._mplex import GuardedMplex
from lilypad_p2p.net._yamux import RTT_MEASURE_INTERVAL_S, GuardedYamux


def _offered(muxers):
    host = build_host(create_new_key_pair(), [], muxers, target_connections=8, limits=NetLimits())
    upgrader = host.get_network().upgrader  # type: ignore[attr-defined]
    return list(upgrader.muxer_multistream.transports.items())


def test_hosts_offer_yamux_first_and_still_accept_mplex():
    assert DEFAULT_MUXERS == (Muxer.YAMUX, Muxer.MPLEX)
    assert _offered(DEFAULT_MUXERS) == [
        ("/yamux/1.0.0", GuardedYamux),
        ("/mplex/6.7.0", GuardedMplex),
    ]


def test_a_preference_only_changes_the_order():
    assert [p for p, _ in _offered(preferring(Muxer.MPLEX))] == ["/mplex/6.7.0", "/yamux/1.0.0"]
    assert [p for p, _ in _offered((Muxer.MPLEX,))] == ["/mplex/6.7.0"]


def test_the_library_members_our_yamux_relies_on_are_still_there():
    # `net/_yamux.py` overrides these; a py-libp2p upgrade that moves them must fail here.
    assert {"_selector", "negotiate_timeout"} <= set(MuxerMultistream.__annotations__)
    assert callable(MuxerMultistream._annotate_connection)
    for name in ("_grow_threshold", "_grow_to_delta", "_apply_autotune_epoch"):
        assert callable(getattr(YamuxStream, name))
    assert "_pending_recv_release" in inspect.getsource(YamuxStream.__init__)
    assert "_auto_tune_and_send_window_update(" in inspect.getsource(YamuxStream.read)
    for member in ("_write_lock", "event_closed", "event_shutting_down", "secured_conn"):
        assert f"self.{member} =" in inspect.getsource(Yamux.__init__)
    # `TunedYamuxStream.write` reads the writer lock's semaphore and debits the window itself;
    # the window is only ever changed synchronously under `window_lock`.
    assert "self.rw_lock = ReadWriteLock()" in inspect.getsource(YamuxStream.__init__)
    assert "self._writer_lock = trio.Semaphore(1)" in inspect.getsource(ReadWriteLock.__init__)
    assert "self.send_window -= to_send" in inspect.getsource(YamuxStream.write)
    assert "rw_lock" not in inspect.getsource(YamuxStream.read)
    # `GuardedYamux._read_data_body` stands in for this read when the body is buffered.
    assert "read_exactly(self.secured_conn, length)" in inspect.getsource(Yamux._read_data_body)
    assert "await self._read_data_body(length)" in inspect.getsource(Yamux.handle_incoming)
    # The library still builds its own Yamux on negotiation (why `MuxerClassMultistream` exists).
    assert "Yamux(" in inspect.getsource(MuxerMultistream.new_conn)
    # The RTT loop still reads the module's interval on each round, after a first ping at once.
    loop = inspect.getsource(Yamux._measure_rtt_loop)
    assert "move_on_after(RTT_MEASURE_INTERVAL)" in loop
    assert loop.index("TYPE_PING") < loop.index("RTT_MEASURE_INTERVAL")


def test_connections_ping_for_rtt_every_five_minutes_not_every_30_s():
    import libp2p.stream_muxer.yamux.yamux as library_yamux

    assert library_yamux.RTT_MEASURE_INTERVAL == RTT_MEASURE_INTERVAL_S == 300
