"""Per-node figures scraped from each node's /metrics, as an operator's Prometheus would.

Every node of a scenario run serves `/metrics` on its own loopback port (`metrics_listen`);
a background thread scrapes them all every `interval_s` and once more at the end. The report
then shows, per node, what the node says of itself: CPU and memory, gossip, deals by phase,
jobs by outcome, contract calls and their latency. A restarted node's counters start again
from zero; the CPU seconds of its earlier processes are carried over.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from simnet._report import NodeFigures
from simnet._scenario import ScenarioError

# A node busy with a job burst may take a while to answer; a slow scrape is retried next round.
SCRAPE_TIMEOUT_S = 5.0


# The start of the kernel's ephemeral port range when it cannot be read (Linux's default).
_DEFAULT_EPHEMERAL_LOW = 32768
# The lowest port picked: above the well-known and most registered services' ports.
_LOWEST_PORT = 10000


def free_loopback_ports(count: int, *, rng: random.Random | None = None,
                        candidates: Sequence[int] | None = None) -> list[int]:
    """`count` distinct loopback ports, free now, picked at random among `candidates`
    (default: every port from 10000 up to the kernel's ephemeral range).

    A node binds its metrics port seconds or a minute after it is picked (nodes start in
    waves). A port from the ephemeral range may be taken by then by any outbound connection
    or `tcp/0` listener of the 50 nodes; one below that range is taken only by a process that
    asks for it by number.
    """
    pool = list(candidates if candidates is not None
                else range(_LOWEST_PORT, ephemeral_low()))
    (rng or random.Random()).shuffle(pool)
    picked: list[int] = []
    for port in pool:
        if len(picked) == count:
            break
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:  # in use: try the next
                continue
        picked.append(port)
    if len(picked) < count:
        raise ScenarioError(f"only {len(picked)} of {count} loopback ports are free for the "
                            "nodes' metrics: run fewer nodes, or set [metrics] scrape = false")
    return picked


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (`ip_local_port_range`)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _DEFAULT_EPHEMERAL_LOW


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@dataclass
class _NodeScrapes:
    port: int
    last: Samples = field(default_factory=dict)
    cpu_carried_s: float = 0.0
    rss_max_bytes: float = 0.0
    scrapes: int = 0
    failures: int = 0


class Scraper:
    """Scrapes `ports` (node name -> its metrics port) in a background thread while open."""

    def __init__(self, ports: Mapping[str, int], interval_s: float) -> None:
        self._nodes = {name: _NodeScrapes(port) for name, port in ports.items()}
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._stop = threading.Event()

    @property
    def interval_s(self) -> float:
        return self._interval_s

    def config_line(self, name: str) -> str:
        """The config.toml line that makes node `name` serve its metrics where we scrape."""
        return f'metrics_listen = "127.0.0.1:{self._nodes[name].port}"\n'

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        thread = threading.Thread(target=self._loop, name="simnet-scraper", daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.scrape_all()

    def scrape_all(self) -> None:
        for name in list(self._nodes):
            self.scrape(name)

    def scrape(self, name: str) -> None:
        node = self._nodes[name]
        url = f"http://127.0.0.1:{node.port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as answer:
                samples = parse(answer.read().decode())
        except (OSError, urllib.error.URLError, ValueError):
            with self._lock:
                node.failures += 1
            return
        with self._lock:
            cpu = samples.get(("process_cpu_seconds_total", ()), 0.0)
            previous = node.last.get(("process_cpu_seconds_total", ()), 0.0)
            if cpu < previous:  # a new process: keep what the old one had used
                node.cpu_carried_s += previous
            node.last = samples
            node.rss_max_bytes = max(node.rss_max_bytes,
                                     samples.get(("process_resident_memory_bytes", ()), 0.0))
            node.scrapes += 1

    def figures(self, name: str) -> dict[str, Any]:
        """What node `name`'s last scrape says (see the module docstring); empty if none."""
        with self._lock:
            node = self._nodes[name]
            last, carried, rss, scrapes, failures = (
                dict(node.last), node.cpu_carried_s, node.rss_max_bytes, node.scrapes,
                node.failures)
        if not last:
            return {"scrapes": 0, "failed_scrapes": failures}
        return {
            "scrapes": scrapes, "failed_scrapes": failures,
            "cpu_s": round(carried + last.get(("process_cpu_seconds_total", ()), 0.0), 2),
            "rss_max_mb": round(rss / 2**20, 1),
            "peers": last.get(("lilypad_peers", ()), 0.0),
            "gossip_delivered": last.get(("lilypad_gossip_delivered_messages_total", ()), 0.0),
            "deals": _by_label(last, "lilypad_deals", "phase"),
            "job_runs": _by_label(last, "lilypad_job_run_duration_seconds_count", "outcome"),
            "chain_calls": _by_label(last, "lilypad_chain_call_duration_seconds_count",
                                     "function"),
            "chain_call_mean_ms": _mean_ms(last, "lilypad_chain_call_duration_seconds"),
            "job_run_mean_s": _mean_s(last, "lilypad_job_run_duration_seconds"),
        }


def _by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for (sample_name, labels), value in samples.items():
        if sample_name == name:
            key = dict(labels).get(label, "")
            totals[key] = totals.get(key, 0.0) + value
    return dict(sorted(totals.items()))


def _mean_s(samples: Samples, histogram: str) -> float | None:
    count = sum(_by_label(samples, f"{histogram}_count", "").values())
    total = sum(_by_label(samples, f"{histogram}_sum", "").values())
    return round(total / count, 3) if count else None


def _mean_ms(samples: Samples, histogram: str) -> float | None:
    mean = _mean_s(samples, histogram)
    return None if mean is None else round(mean * 1000, 1)


def summary_by_role(rows: Mapping[str, NodeFigures]) -> dict[str, dict[str, Any]]:
    """Scraped figures summed per role: CPU, job runs by outcome, contract calls."""
    by_role: dict[str, dict[str, Any]] = {}
    for row in rows.values():
        scraped = row.metrics or {}
        if not scraped.get("scrapes"):
            continue
        role = by_role.setdefault(row.role, {"nodes": 0, "cpu_s": 0.0, "job_runs": {},
                                                "chain_calls": 0.0})
        role["nodes"] += 1
        role["cpu_s"] = round(role["cpu_s"] + scraped["cpu_s"], 2)
        for outcome, count in scraped["job_runs"].items():
            role["job_runs"][outcome] = role["job_runs"].get(outcome, 0.0) + count
        role["chain_calls"] += sum(scraped["chain_calls"].values())
    return dict(sorted(by_role.items()))
