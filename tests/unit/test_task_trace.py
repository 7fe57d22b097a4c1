"""The benchmarks' task counter (`benchmarks/task_trace`, `cpu_profile.py --trace-tasks`) wraps
library functions by name; when one moves, the node it is loaded into fails at start. A trio
program run under it must write its counts."""

import json
import os
import subprocess
import sys
from pathlib import Path

TASK_TRACE = Path(__file__).parents[2] / "benchmarks" / "task_trace"
PROGRAM = "import trio; trio.run(trio.sleep, 0.6)"


def test_a_traced_trio_program_writes_its_task_counts(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(TASK_TRACE), "TRACE_TASKS_DIR": str(tmp_path),
           "TRACE_EVERY_S": "0.2"}
    run = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    (written,) = tmp_path.glob("*.json")
    counts = json.loads(written.read_text())
    assert counts["steps"] and counts["cpu_s"] > 0
