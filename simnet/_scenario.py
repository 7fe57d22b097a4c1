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
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lilypad_p2p.errors import ConfigError

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
        if self.nodes < 4:
            raise ScenarioError("a scenario needs at least 4 nodes (one per role)")
        self.roles.counts(self.nodes)
        for name, value in self.node_settings:
            if not name.isidentifier() or not isinstance(value, bool | int | float | str):
                raise ScenarioError(f"[node] {name} = {value!r} is not a plain setting")

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
    if "modules" in values:
        if not isinstance(values["modules"], list):
            raise ScenarioError(f"[{name}] modules must be a list of module names")
        values = {**values, "modules": tuple(values["modules"])}
    try:
        return kind(**values)
    except (TypeError, ValueError) as exc:  # an unknown key, or a value of the wrong type
        raise ScenarioError(f"[{name}]: {exc}") from exc


def _fits(value: object, default: object) -> bool:
    """Whether a TOML value can stand where `default` does (an integer may be a float)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    if isinstance(default, int | str):
        return isinstance(value, type(default))
    return True  # no plain default (a tuple's factory): the dataclass checks it


def load_scenario(path: Path) -> Scenario:
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc}") from exc
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
