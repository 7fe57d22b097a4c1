"""What importing the node costs a process in memory, by package, and how low it could go.

    python benchmarks/import_memory.py [--rounds 3]

Each measurement runs in a fresh interpreter and reads `/proc/self/status` (RSS, and its
anonymous and file-backed parts) after `import lilypad_p2p.node`:

- `node`: the import as a node does it.
- by package (one more run, not in the figures above, as its hook costs memory too): a
  meta-path hook reads the RSS around every module's execution and charges each package
  (top-level name) what its own modules added, not what the modules they imported added.
- `stubbed: ...`: the same import with whole packages replaced by inert stand-ins (a module
  whose every attribute is a placeholder class), cumulatively: py-libp2p's parts the node never
  uses (QUIC, WebSocket, TLS, mDNS, Kademlia, Bitswap, SECIO, the persistent peer stores and
  their libraries), then the HTTP and DNS stacks libraries bring in, then the Docker SDK with
  `requests`. Such a process could not run a node; the figure is a floor for what trimming the
  imports could reach, not a configuration.

Prints the median of `--rounds` fresh runs per measurement and the packages that cost most;
writes benchmarks/results/import-memory.json.
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import json
import os
import statistics
import subprocess
import sys
import types
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
BY_PACKAGE = "node, by package"

UNUSED_LIBP2P = (
    "libp2p.transport.quic", "aioquic", "libp2p.transport.websocket", "websockets", "wsproto",
    "libp2p.security.tls", "OpenSSL", "service_identity", "libp2p.discovery", "zeroconf",
    "libp2p.kad_dht", "libp2p.filecoin", "libp2p.bitswap", "libp2p.security.secio",
    "libp2p.peer.persistent", "libp2p.perf", "libp2p.observability", "libp2p.metrics",
)
HTTP_AND_DNS = ("dns", "aiohttp", "anyio", "httpx")
DOCKER_SDK = ("docker", "requests")
STUB_SETS = {
    "stubbed: py-libp2p's unused parts": UNUSED_LIBP2P,
    "stubbed: + HTTP and DNS stacks": UNUSED_LIBP2P + HTTP_AND_DNS,
    "stubbed: + Docker SDK, requests": UNUSED_LIBP2P + HTTP_AND_DNS + DOCKER_SDK,
}


def status_mb() -> dict[str, float]:
    fields = {}
    # Binary: a text read could look up its codec, an import inside the import being measured.
    with open("/proc/self/status", "rb") as status:
        for line in status:
            name, _, value = line.decode().partition(":")
            if name in ("VmRSS", "RssAnon", "RssFile"):
                fields[name] = int(value.split()[0]) / 1024
    return {"rss_mb": fields["VmRSS"], "anon_mb": fields["RssAnon"], "file_mb": fields["RssFile"]}


class _Placeholder(type):
    def __getattr__(cls, name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(name, (), {})

    def __call__(cls, *args: object, **kwargs: object) -> type:
        return _Placeholder("instance", (), {})

    def __getitem__(cls, key: object) -> type:
        return cls

    def __or__(cls, other: object) -> type:
        return cls

    __ror__ = __or__


class _StandIn(types.ModuleType):
    def __getattr__(self, name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(name, (), {})


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, packages: tuple[str, ...]) -> None:
        self._packages = packages

    def find_spec(self, name, path, target=None):
        if any(name == p or name.startswith(p + ".") for p in self._packages):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _StandIn(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _ChargingFinder(importlib.abc.MetaPathFinder):
    """Wraps every found module's execution to charge its package the RSS it alone added."""

    def __init__(self) -> None:
        self.charged: Counter[str] = Counter()
        self._stack: list[list[float]] = []  # per running import: [rss at start, children's]

    def find_spec(self, name, path, target=None):
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = self._charging(spec.loader, name.partition(".")[0])
                return spec
        return None

    def _charging(self, loader: importlib.abc.Loader, package: str) -> object:
        charger = self

        class Charging:
            # Everything else (resource readers, get_source) is the wrapped loader's.
            def __getattr__(self, name: str) -> object:
                return getattr(loader, name)

            def create_module(self, spec):
                return loader.create_module(spec)

            def exec_module(self, module: types.ModuleType) -> None:
                start = status_mb()["rss_mb"]
                charger._stack.append([start, 0.0])
                try:
                    loader.exec_module(module)
                finally:
                    _, children = charger._stack.pop()
                    added = status_mb()["rss_mb"] - start
                    charger.charged[package] += added - children
                    if charger._stack:
                        charger._stack[-1][1] += added

        return Charging()


def child(mode: str) -> None:
    before = status_mb()
    charging = None
    if mode == BY_PACKAGE:
        charging = _ChargingFinder()
        sys.meta_path.insert(0, charging)
    elif mode in STUB_SETS:
        sys.meta_path.insert(0, _StandInFinder(STUB_SETS[mode]))
    import lilypad_p2p.node  # noqa: F401 - the import is what is measured

    report = {"before": before, "after": status_mb(), "modules": len(sys.modules)}
    if charging is not None:
        report["by_package_mb"] = dict(charging.charged.most_common(25))
    print(json.dumps(report))


def fresh_run(mode: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--child", mode], check=True,
                          capture_output=True, text=True)
    return dict(json.loads(done.stdout.splitlines()[-1]))


def measure(mode: str, rounds: int) -> dict[str, object]:
    runs = [fresh_run(mode) for _ in range(rounds)]
    median = {key: round(statistics.median(run["after"][key] for run in runs), 1)
              for key in ("rss_mb", "anon_mb", "file_mb")}
    figures: dict[str, object] = {
        **median,
        "interpreter_rss_mb": round(statistics.median(r["before"]["rss_mb"] for r in runs), 1),
        "modules": runs[-1]["modules"],
        "rss_mb_runs": [round(r["after"]["rss_mb"], 1) for r in runs],
    }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=["node", BY_PACKAGE, *STUB_SETS],
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    load_before = os.getloadavg()
    results = {mode: measure(mode, args.rounds) for mode in ["node", *STUB_SETS]}
    for mode, figures in results.items():
        print(f"{mode:36} RSS {figures['rss_mb']:6.1f} MB (anon {figures['anon_mb']:.1f}, "
              f"file {figures['file_mb']:.1f}), {figures['modules']} modules")
    by_package = {name: round(mb, 1) for name, mb in fresh_run(BY_PACKAGE)["by_package_mb"].items()}
    print("packages that cost most (their own modules only, MB of RSS):")
    print(", ".join(f"{name} {mb}" for name, mb in list(by_package.items())[:15]))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "import-memory.json"
    out.write_text(json.dumps({
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "load_before": [round(x, 2) for x in load_before],
        "rounds": args.rounds,
        "results": results,
        "node_by_package_mb": by_package,
    }, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
