"""Scenarios: what the simnet starts, the workload it drives and the faults it injects (TOML).

    name = "baseline"
    [roles]            # shares of --nodes (the rest become providers); at least one of each
    solvers = 0.1
    mediators = 0.1
    clients = 0.2
    [workload]
    jobs = 200
    rate_per_s = 4.0
    modules = ["hash", "wordcount"]   # round-robin
    target_providers = false          # true: jobs name providers round-robin (no solver)
    price_levels = 1                  # providers ask 1..n x the default price, round-robin
    [faults]
    cheater_share = 0.0    # share of providers with cheat_wrong_output
    false_failure_share = 0.0  # share of providers with cheat_false_failure (claim exit 1)
    check_rate = 0.0       # the clients' spot-check rate
    churn_share = 0.0      # share of providers killed mid-run, restarted churn_down_s later
    spammers = 0           # providers that also send invalid gossip (spam_gossip_per_s)
    spam_rate_per_s = 20
    [network]              # nodes in network namespaces (needs root): partition or NAT
    partition_after_s = 0  # > 0: groups a and b are cut apart this long into the workload,
    partition_s = 20       # for this long; one late provider per side joins during the cut
    nat_share = 0.0        # share of providers each behind its own NAT; bootstrap nodes relay
    [node]                 # top-level config.toml settings for every node
    agreement_timeout_s = 120
    [metrics]              # every node serves /metrics; the report adds what they say
    scrape = true          # (nodes in network namespaces are not scraped)
    interval_s = 15.0
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lilypad_p2p.errors import ConfigError
from lilypad_p2p.files import read_bounded

# The scenarios that ship with the simnet; `--scenario` takes one's name as well as a path.
SCENARIOS_DIR = Path(__file__).parent / "scenarios"
# A scenario is a few hundred bytes: anything larger is not one (and is not read whole).
SCENARIO_MAX_BYTES = 1 << 20
# The fewest nodes a scenario can have: a solver, a mediator, a client, and the two providers
# the others bootstrap from (`_plan.BOOTSTRAP_NODES`).
MIN_NODES = 5
# The most this machine is asked to run: four times the 50-node baseline (about 50 MB and a
# slice of a core each, forked); beyond that, `export-compose` spreads them over machines.
MAX_NODES = 200
# A scenario file's top level: its keys, and its tables (each a section below).
TOP_KEYS = ("name", "nodes")
TABLES = ("roles", "workload", "faults", "network", "node", "metrics")

# "registry": a user-defined module whose image a local registry serves (_registry_module.py);
# "failing": a user-defined module whose jobs fail by themselves (_faulty.py).
KNOWN_MODULES = frozenset({"hash", "wordcount", "random", "registry", "failing"})


class ScenarioError(ConfigError):
    """A scenario file is missing, malformed or asks for something the simnet cannot do."""


@dataclass(frozen=True, slots=True)
class RoleMix:
    solvers: float = 0.1
    mediators: float = 0.1
    clients: float = 0.2

    def __post_init__(self) -> None:
        for name in ("solvers", "mediators", "clients"):
            share = getattr(self, name)
            if not 0 < share < 1:
                raise ScenarioError(f"roles.{name} = {share!r} is not a share between 0 and 1")
        if self.solvers + self.mediators + self.clients >= 1:
            raise ScenarioError("roles leave no share for providers")

    def counts(self, nodes: int) -> dict[str, int]:
        """Role -> node count for `nodes` nodes; every role at least one, providers the rest."""
        counts = {name: max(1, math.floor(nodes * getattr(self, name)))
                  for name in ("solvers", "mediators", "clients")}
        counts["providers"] = nodes - sum(counts.values())
        if counts["providers"] < 1:
            raise ScenarioError(f"{nodes} nodes leave no provider for the role mix {self}")
        return counts


@dataclass(frozen=True, slots=True)
class Workload:
    jobs: int = 20
    rate_per_s: float = 2.0
    modules: tuple[str, ...] = ("hash", "wordcount")
    job_timeout_s: float = 300.0
    # One solver sends every job to the same best offer; naming providers round-robin makes
    # sure every provider (every cheater) gets work.
    target_providers: bool = False
    # Providers ask 1, 2, ... price_levels times the default price, round-robin (1: all alike).
    price_levels: int = 1

    def __post_init__(self) -> None:
        if self.price_levels < 1:
            raise ScenarioError(f"workload.price_levels must be >= 1, got {self.price_levels}")
        if self.jobs < 1 or self.rate_per_s <= 0 or self.job_timeout_s <= 0:
            raise ScenarioError(f"workload needs jobs >= 1 and positive rate/timeout: {self}")
        unknown = set(self.modules) - KNOWN_MODULES
        if not self.modules or unknown:
            raise ScenarioError(f"workload.modules must be among {sorted(KNOWN_MODULES)}")
        if {"registry", "failing"} <= set(self.modules):
            raise ScenarioError("workload.modules: `registry` and `failing` each set the "
                                "providers' [modules] policy; use one of them")


@dataclass(frozen=True, slots=True)
class Faults:
    cheater_share: float = 0.0
    false_failure_share: float = 0.0  # providers with cheat_false_failure
    check_rate: float = 0.0
    churn_share: float = 0.0
    churn_after_s: float = 5.0
    churn_down_s: float = 5.0
    spammers: int = 0
    spam_rate_per_s: int = 20

    def __post_init__(self) -> None:
        for name in ("cheater_share", "false_failure_share", "check_rate", "churn_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ScenarioError(f"faults.{name} must be between 0 and 1")
        if self.churn_after_s < 0 or self.churn_down_s < 0:
            raise ScenarioError("faults.churn_after_s and churn_down_s must be >= 0")
        if self.spammers < 0 or self.spam_rate_per_s < 1:
            raise ScenarioError("faults.spammers must be >= 0 and spam_rate_per_s >= 1")
        if (self.cheater_share or self.false_failure_share) and self.check_rate < 1:
            # A cheat is only certain to be caught when every output is re-checked.
            raise ScenarioError("cheaters need check_rate = 1 so every cheat is disputed")
        if self.cheater_share + self.false_failure_share >= 1:
            raise ScenarioError("cheater_share + false_failure_share leave no honest provider")


@dataclass(frozen=True, slots=True)
class Network:
    partition_after_s: float = 0.0
    partition_s: float = 20.0
    nat_share: float = 0.0

    def __post_init__(self) -> None:
        if self.partition_after_s < 0 or self.partition_s <= 0:
            raise ScenarioError("network.partition_after_s must be >= 0, partition_s > 0")
        if not 0 <= self.nat_share < 1:
            raise ScenarioError("network.nat_share must be in [0, 1)")
        if self.partition_after_s and self.nat_share:
            raise ScenarioError("a scenario partitions or NATs its nodes, not both")

    @property
    def partitioned(self) -> bool:
        return self.partition_after_s > 0

    @property
    def namespaced(self) -> bool:
        return self.partitioned or self.nat_share > 0


@dataclass(frozen=True, slots=True)
class Metrics:
    scrape: bool = True
    interval_s: float = 15.0

    def __post_init__(self) -> None:
        if not isinstance(self.scrape, bool) or not 1 <= self.interval_s <= 600:
            raise ScenarioError("metrics.scrape must be true or false, interval_s 1..600")


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    nodes: int = 10
    roles: RoleMix = field(default_factory=RoleMix)
    workload: Workload = field(default_factory=Workload)
    faults: Faults = field(default_factory=Faults)
    network: Network = field(default_factory=Network)
    metrics: Metrics = field(default_factory=Metrics)
    # (setting, value) pairs every node's config.toml gets; the node validates them at start.
    node_settings: tuple[tuple[str, bool | int | float | str], ...] = ()

    def __post_init__(self) -> None:
        if not MIN_NODES <= self.nodes <= MAX_NODES:
            raise ScenarioError(
                f"{self.name} with {self.nodes} nodes: a scenario runs {MIN_NODES} to "
                f"{MAX_NODES} (at least a solver, a mediator, a client and the two providers "
                f"the others bootstrap from; at most what one machine holds)")
        for name, value in self.node_settings:
            if not name.isidentifier() or not isinstance(value, bool | int | float | str):
                raise ScenarioError(f"[node] {name} = {value!r} is not a plain setting")
        check_node_settings(self.node_config_lines())
        # Planning is pure and cheap: a node count the role mix and faults cannot be planned
        # for is refused here, with the smallest that can, not when the run starts.
        from simnet._plan import check_plannable

        check_plannable(self)

    def with_nodes(self, nodes: int | None) -> Scenario:
        if nodes is None:
            return self
        return dataclasses.replace(self, nodes=nodes)

    def with_workload(self, *, jobs: int | None = None,
                      rate_per_s: float | None = None) -> Scenario:
        """The scenario with its workload's job count and rate replaced where given."""
        changes = {name: value for name, value in (("jobs", jobs), ("rate_per_s", rate_per_s))
                   if value}
        return dataclasses.replace(self, workload=dataclasses.replace(self.workload, **changes))

    def with_scraping(self, scrape: bool) -> Scenario:
        return dataclasses.replace(self, metrics=dataclasses.replace(self.metrics, scrape=scrape))

    def node_config_lines(self) -> str:
        """The [node] settings as top-level config.toml lines."""
        return "".join(f"{name} = {json.dumps(value)}\n" for name, value in self.node_settings)


def _section(raw: dict[str, Any], name: str, kind: type) -> Any:
    values = _table(raw, name)
    for setting in dataclasses.fields(kind):
        if setting.name in values and not _fits(values[setting.name], setting.default):
            raise ScenarioError(f"[{name}] {setting.name} = {values[setting.name]!r} is not "
                                f"{type(setting.default).__name__}, like its default "
                                f"{setting.default!r}")
    known = [setting.name for setting in dataclasses.fields(kind)]
    for key in values:
        if key not in known:
            raise ScenarioError(f"[{name}] has no key {key!r}{_did_you_mean(key, known)}; "
                                f"known: {', '.join(known)}")
    if "modules" in values:
        if not isinstance(values["modules"], list):
            raise ScenarioError(f"[{name}] modules must be a list of module names")
        values = {**values, "modules": tuple(values["modules"])}
    try:
        return kind(**values)
    except (TypeError, ValueError) as exc:  # a value of the wrong type
        raise ScenarioError(f"[{name}]: {exc}") from exc


def _did_you_mean(word: str, known: list[str], spell: str = "'{}'") -> str:
    close = difflib.get_close_matches(word, known, n=1)
    return f" (did you mean {spell.format(close[0])}?)" if close else ""


def _fits(value: object, default: object) -> bool:
    """Whether a TOML value can stand where `default` does (an integer may be a float)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    if isinstance(default, int | str):
        return isinstance(value, type(default))
    return True  # no plain default (a tuple's factory): the dataclass checks it


def shipped_scenarios() -> list[str]:
    """The names of the scenarios that ship with the simnet (`simnet/scenarios/*.toml`)."""
    return sorted(p.stem for p in SCENARIOS_DIR.glob("*.toml"))


def scenario_path(name_or_path: str) -> Path:
    """The scenario file `name_or_path` names: a path, or a shipped scenario's name (`smoke`)
    when it is a bare name and no file of that name is here."""
    path = Path(name_or_path)
    bare = "/" not in name_or_path and path.suffix != ".toml"
    if bare and not path.is_file():
        if (SCENARIOS_DIR / f"{name_or_path}.toml").is_file():
            return SCENARIOS_DIR / f"{name_or_path}.toml"
        raise ScenarioError(f"no scenario {name_or_path!r}: pass a scenario file's path, or "
                            f"a shipped scenario's name ({', '.join(shipped_scenarios())})")
    return path


def load_scenario(path: Path) -> Scenario:
    try:
        text = read_bounded(path, SCENARIO_MAX_BYTES).decode()
        raw = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ScenarioError(f"cannot read scenario {path}: {reason}") from None
    known = [*TOP_KEYS, *(f"[{t}]" for t in TABLES)]
    for key, value in raw.items():
        if key in TOP_KEYS or key in TABLES:
            continue
        if isinstance(value, dict):
            raise ScenarioError(f"{path}: unknown table [{key}]"
                                f"{_did_you_mean(key, list(TABLES), '[{}]')}; known: "
                                f"{', '.join(known)}")
        raise ScenarioError(f"{path}: unknown key {key!r}"
                            f"{_did_you_mean(key, [*TOP_KEYS, *TABLES])}; known: "
                            f"{', '.join(known)}")
    nodes = raw.get("nodes", 10)
    if not isinstance(nodes, int) or isinstance(nodes, bool):
        raise ScenarioError(f"{path}: nodes = {nodes!r} is not a whole number of nodes")
    return Scenario(
        name=str(raw.get("name", path.stem)),
        nodes=nodes,
        roles=_section(raw, "roles", RoleMix),
        workload=_section(raw, "workload", Workload),
        faults=_section(raw, "faults", Faults),
        network=_section(raw, "network", Network),
        metrics=_section(raw, "metrics", Metrics),
        node_settings=tuple(_table(raw, "node").items()),
    )


def _table(raw: dict[str, Any], name: str) -> dict[str, Any]:
    values = raw.get(name, {})
    if not isinstance(values, dict):
        raise ScenarioError(f"[{name}] must be a table")
    return values


@functools.lru_cache(maxsize=32)
def check_node_settings(config_lines: str) -> None:
    """Refuse [node] settings the node itself would refuse at start (its own parsing), so a
    typo is one line now, not a node that fails to start after anvil and the others did."""
    from lilypad_p2p.config import load_config

    if not config_lines:
        return
    with tempfile.TemporaryDirectory(prefix="simnet-node-check-") as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(config_lines)
        try:
            load_config(home=Path(tmp), environ={})
        except ConfigError as exc:
            text = str(exc).replace(f" ({config})", "").replace(f"{config}: ", "")
            raise ScenarioError(f"[node] {text.replace(str(config), 'config.toml')}") from None
