"""Benchmark-only instrument, loaded by node processes when benchmarks/task_trace is on their
PYTHONPATH and TRACE_TASKS_DIR is set (benchmarks/cpu_profile.py --trace-tasks does both).

Counts, per trio task name, the steps each task ran and the wall time they took, plus the
process's CPU time and trio's I/O waits, and writes them every TRACE_EVERY_S seconds (2 unless
the environment sets it) to TRACE_TASKS_DIR/<pid>.json. A periodic loop or a per-connection task
shows by name and rate.
Streams opened and accepted are counted by protocol, and pubsub RPCs by what they carry, so a
task's traffic has a name (parsing each RPC a second time costs microseconds, against the
milliseconds py-libp2p spends on it). The cyclic garbage collector's runs and time are counted
per generation, since they land in whichever frame allocated last.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
import time

TRACE_DIR = os.environ.get("TRACE_TASKS_DIR")
TRACE_EVERY_S = float(os.environ.get("TRACE_EVERY_S", "2.0"))

if TRACE_DIR:
    import trio
    from trio.abc import Instrument

    class _TaskCounter(Instrument):
        def __init__(self) -> None:
            self.steps: dict[str, int] = {}
            self.seconds: dict[str, float] = {}
            self.io_waits = 0
            self.streams: dict[str, int] = {}
            self.gc_runs = [0, 0, 0]
            self.gc_seconds = [0.0, 0.0, 0.0]
            self._started = 0.0
            self._gc_started = 0.0

        def time_gc(self, phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                self._gc_started = time.perf_counter()
                return
            generation = info["generation"]
            self.gc_runs[generation] += 1
            self.gc_seconds[generation] += time.perf_counter() - self._gc_started

        def count(self, kind: str, what: object) -> None:
            key = f"{kind} {what}"
            self.streams[key] = self.streams.get(key, 0) + 1

        def before_task_step(self, task: trio.lowlevel.Task) -> None:
            self._started = time.perf_counter()

        def after_task_step(self, task: trio.lowlevel.Task) -> None:
            name = task.name
            self.steps[name] = self.steps.get(name, 0) + 1
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - self._started

        def before_io_wait(self, timeout: float) -> None:
            self.io_waits += 1

    def _dump_forever(counter: _TaskCounter, path: str) -> None:
        while True:
            time.sleep(TRACE_EVERY_S)
            snapshot = {"argv": sys.argv, "at": time.time(), "cpu_s": time.process_time(),
                        "io_waits": counter.io_waits, "steps": dict(counter.steps),
                        "streams": dict(counter.streams),
                        "gc_runs": list(counter.gc_runs),
                        "gc_seconds": list(counter.gc_seconds),
                        "seconds": dict(counter.seconds)}
            with open(path + ".tmp", "w") as out:
                json.dump(snapshot, out)
            os.replace(path + ".tmp", path)

    def _count_traffic(counter: _TaskCounter) -> None:
        """Streams by protocol ("out"/"in"), muxed connections ("yamux"), the pubsub RPCs
        read, by what they carry ("rpc publish+ihave"; "rec": a signed peer record), and the
        chain's JSON-RPC requests by method ("chain eth_call")."""
        from libp2p.host.basic_host import BasicHost
        from libp2p.pubsub.pb import rpc_pb2
        from libp2p.stream_muxer.yamux.yamux import Yamux
        from web3 import HTTPProvider

        import lilypad_p2p.net._pubsub_levers as levers

        new_stream, handle = BasicHost.new_stream, BasicHost._swarm_stream_handler
        read_rpc, yamux_start = levers.read_varint_prefixed_bytes_limited, Yamux.start
        make_request = HTTPProvider.make_request

        def counted_make_request(self, method, params):  # type: ignore[no-untyped-def]
            counter.count("chain", method)
            return make_request(self, method, params)

        async def counted_new_stream(self, peer_id, protocol_ids):  # type: ignore[no-untyped-def]
            stream = await new_stream(self, peer_id, protocol_ids)
            counter.count("out", stream.get_protocol())
            return stream

        async def counted_handle(self, net_stream):  # type: ignore[no-untyped-def]
            try:
                await handle(self, net_stream)
            finally:
                counter.count("in", net_stream.get_protocol())

        async def counted_read_rpc(stream, limit):  # type: ignore[no-untyped-def]
            data = await read_rpc(stream, limit)
            rpc = rpc_pb2.RPC()
            rpc.ParseFromString(data)
            kinds = [kind for kind, present in (
                ("publish", len(rpc.publish)), ("subs", len(rpc.subscriptions)),
                ("rec", rpc.HasField("senderRecord"))) if present]
            if rpc.HasField("control"):
                kinds += [name for name in ("ihave", "iwant", "graft", "prune", "idontwant")
                          if len(getattr(rpc.control, name))]
            counter.count("rpc", "+".join(kinds) or "empty")
            return data

        async def counted_start(self):  # type: ignore[no-untyped-def]
            counter.count("yamux", "opened")
            try:
                await yamux_start(self)
            finally:
                counter.count("yamux", "ended")

        BasicHost.new_stream = counted_new_stream
        BasicHost._swarm_stream_handler = counted_handle
        levers.read_varint_prefixed_bytes_limited = counted_read_rpc
        Yamux.start = counted_start
        HTTPProvider.make_request = counted_make_request

    _run = trio.run

    def _traced_run(*args, **kwargs):  # type: ignore[no-untyped-def]
        counter = _TaskCounter()
        _count_traffic(counter)
        gc.callbacks.append(counter.time_gc)
        kwargs["instruments"] = [*kwargs.get("instruments", ()), counter]
        path = os.path.join(TRACE_DIR, f"{os.getpid()}.json")
        threading.Thread(target=_dump_forever, args=(counter, path), daemon=True).start()
        return _run(*args, **kwargs)

    trio.run = _traced_run
