"""Benchmark-only instrument, loaded by node processes when benchmarks/task_trace is on their
PYTHONPATH and TRACE_TASKS_DIR is set (benchmarks/cpu_profile.py --trace-tasks does both).

Counts, per trio task name, the steps each task ran and the wall time they took, plus the
process's CPU time and trio's I/O waits, and writes them every TRACE_EVERY_S seconds to
TRACE_TASKS_DIR/<pid>.json. A periodic loop or a per-connection task shows by name and rate.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

TRACE_DIR = os.environ.get("TRACE_TASKS_DIR")
TRACE_EVERY_S = 2.0

if TRACE_DIR:
    import trio
    from trio.abc import Instrument

    class _TaskCounter(Instrument):
        def __init__(self) -> None:
            self.steps: dict[str, int] = {}
            self.seconds: dict[str, float] = {}
            self.io_waits = 0
            self._started = 0.0

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
                        "seconds": dict(counter.seconds)}
            with open(path + ".tmp", "w") as out:
                json.dump(snapshot, out)
            os.replace(path + ".tmp", path)

    _run = trio.run

    def _traced_run(*args, **kwargs):  # type: ignore[no-untyped-def]
        counter = _TaskCounter()
        kwargs["instruments"] = [*kwargs.get("instruments", ()), counter]
        path = os.path.join(TRACE_DIR, f"{os.getpid()}.json")
        threading.Thread(target=_dump_forever, args=(counter, path), daemon=True).start()
        return _run(*args, **kwargs)

    trio.run = _traced_run
