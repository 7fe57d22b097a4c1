"""The plan of a scenario's nodes: each node's name, role, config and faults, its namespace
group, and the scraper port its config is told; pure, read off the scenario."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass

from lilypad_p2p.config import MARKET_FOLLOWING_ROLES
from lilypad_p2p.roles import DEFAULT_PRICE_PER_JOB_WEI as PRICE_PER_JOB_WEI
from simnet._faulty import FALSE_FAILURE_CONFIG
from simnet._netns import Group, NetnsLab, netns_missing
from simnet._scenario import MAX_NODES, MIN_NODES, Scenario, ScenarioError
from simnet._scrape import Scraper, free_loopback_ports

# Nodes the others bootstrap from (the first providers started).
BOOTSTRAP_NODES = 2
# Consortium size the clients ask for (capped by the mediators present).
CONSORTIUM_SIZE = 3


@dataclass
class NodePlan:
    name: str
    role: str
    config_lines: str = ""
    cheater: bool = False
    false_failure: bool = False  # a cheater that claims failures instead of wrong outputs
    spammer: bool = False
    group: str = ""       # its network namespace group (namespaced scenarios only)
    relay: bool = False   # also serves as a relay (NAT scenarios: the bootstrap nodes)
    late: bool = False    # started during the partition, not with the others

    @property
    def roles(self) -> list[str]:
        return [self.role, "relay"] if self.relay else [self.role]

    @property
    def follows_markets(self) -> bool:
        """Whether the node receives its markets' gossip (providers only publish into it)."""
        return not MARKET_FOLLOWING_ROLES.isdisjoint(self.roles)


def check_plannable(scenario: Scenario) -> None:
    """Raise ScenarioError if `scenario`'s nodes cannot be planned, saying the fewest nodes
    that can be when more would do (the role mix and the faults set a floor above MIN_NODES)."""
    try:
        plan_nodes(scenario)
    except ScenarioError as exc:
        fewest = next((n for n in range(MIN_NODES, MAX_NODES + 1) if _plans(scenario, n)), None)
        if fewest is None or fewest <= scenario.nodes:
            raise
        raise ScenarioError(f"{scenario.name} needs at least {fewest} nodes, not "
                            f"{scenario.nodes}: at {scenario.nodes}, {exc}") from None


def _plans(scenario: Scenario, nodes: int) -> bool:
    try:
        plan_nodes(scenario, nodes)
    except ScenarioError:
        return False
    return True


def plan_nodes(scenario: Scenario, nodes: int | None = None) -> list[NodePlan]:
    """The plan of `scenario`'s nodes (of `nodes` of them, if given, instead of its own)."""
    counts = scenario.roles.counts(scenario.nodes if nodes is None else nodes)
    faults = scenario.faults
    providers = counts["providers"]
    false_claimants = math.floor(providers * faults.false_failure_share)
    cheaters = math.floor(providers * faults.cheater_share) + false_claimants
    honest = providers - cheaters - faults.spammers
    if honest < BOOTSTRAP_NODES:
        raise ScenarioError(f"{providers} providers leave fewer than {BOOTSTRAP_NODES} honest "
                            f"ones to bootstrap from after {cheaters} cheaters and "
                            f"{faults.spammers} spammers")
    # A fault the scenario asks for must fall on a node: with too few providers its share
    # rounds down to none, and the invariant that judges it would find nothing to judge.
    for name, share, made in (("cheater_share", faults.cheater_share, cheaters - false_claimants),
                              ("false_failure_share", faults.false_failure_share,
                               false_claimants)):
        if share and not made:
            raise ScenarioError(f"faults.{name} = {share} of {providers} providers makes none")
    churned = min(math.floor(honest * faults.churn_share), honest - BOOTSTRAP_NODES)
    if faults.churn_share and churned < 1:
        raise ScenarioError(f"faults.churn_share = {faults.churn_share} of {honest} honest "
                            f"providers churns none (the {BOOTSTRAP_NODES} the others "
                            "bootstrap from are never churned)")
    consortium = min(CONSORTIUM_SIZE, counts["mediators"])
    client_lines = f"check_rate = {faults.check_rate}\nconsortium_size = {consortium}\n"
    levels = scenario.workload.price_levels
    plans = [NodePlan(f"provider-{i}", "provider",
                      f"price_per_job_wei = {PRICE_PER_JOB_WEI * (1 + (i - 1) % levels)}\n"
                      if levels > 1 else "")
             for i in range(1, providers + 1)]
    # The last cheaters claim false failures; the others commit wrong outputs.
    for index, plan in enumerate(plans[providers - cheaters:], start=providers - cheaters):
        plan.cheater = True
        if index >= providers - false_claimants:
            plan.false_failure = True
            plan.config_lines += FALSE_FAILURE_CONFIG
        else:
            plan.config_lines += "cheat_wrong_output = true\n"
    for plan in plans[honest:providers - cheaters]:
        plan.spammer = True
        plan.config_lines += f"spam_gossip_per_s = {faults.spam_rate_per_s}\n"
    plans += [NodePlan(f"solver-{i}", "solver") for i in range(1, counts["solvers"] + 1)]
    plans += [NodePlan(f"mediator-{i}", "mediator") for i in range(1, counts["mediators"] + 1)]
    plans += [NodePlan(f"client-{i}", "client", client_lines)
              for i in range(1, counts["clients"] + 1)]
    # The simnet's own settings of each node (and the lines it adds later, below) may not be
    # given again in [node]: a key set twice makes the node's config.toml invalid TOML.
    ours = {"mediators"}
    if scenario.metrics.scrape and not scenario.network.namespaced:
        ours.add("metrics_listen")
    for plan in plans:
        twice = sorted({name for name, _ in scenario.node_settings}
                       & (ours | set(tomllib.loads(plan.config_lines))))
        if twice:
            raise ScenarioError(f"[node] sets {', '.join(twice)}, which the simnet sets itself "
                                f"for {plan.name} (from the scenario's other tables): remove "
                                "it from [node]")
        plan.config_lines = scenario.node_config_lines() + plan.config_lines
    place_in_groups(scenario, plans)
    return plans


def place_in_groups(scenario: Scenario, plans: list[NodePlan]) -> None:
    """Namespace groups: partitions split every role between sides a and b (the last provider
    of each side joins late); NAT puts a share of honest providers each behind its own NAT."""
    network = scenario.network
    if network.partitioned:
        for role in ("provider", "solver", "mediator", "client"):
            members = [p for p in plans if p.role == role]
            for index, plan in enumerate(members):
                plan.group = "ab"[index % 2]
        for side in "ab":
            providers = [p for p in plans if p.role == "provider" and p.group == side
                         and not p.cheater and not p.spammer]
            if len(providers) < 2:
                raise ScenarioError(f"side {side} needs two honest providers (one joins late)")
            providers[-1].late = True
    elif network.nat_share:
        honest = [p for p in plans[BOOTSTRAP_NODES:]
                  if p.role == "provider" and not p.cheater and not p.spammer]
        natted = honest[len(honest) - math.floor(len(honest) * network.nat_share):]
        if not natted:
            raise ScenarioError("network.nat_share puts no provider behind a NAT")
        for plan in plans:
            plan.group = "pub"
        for index, plan in enumerate(natted, start=1):
            plan.group = f"nat{index}"
        for plan in plans[:BOOTSTRAP_NODES]:
            plan.relay = True


def lab_for(scenario: Scenario, plans: list[NodePlan]) -> NetnsLab | None:
    if not scenario.network.namespaced:
        return None
    missing = netns_missing()
    if missing:
        raise ScenarioError(f"scenario {scenario.name} runs nodes in namespaces: {missing}")
    names = sorted({p.group for p in plans})
    return NetnsLab(tuple(Group(name, index, natted=name.startswith("nat"))
                          for index, name in enumerate(names, start=1)))


def scraper_for(scenario: Scenario, plans: list[NodePlan],
                lab: NetnsLab | None) -> Scraper | None:
    """A scraper of every node's /metrics, each node's config told its port; None when the
    scenario turns scraping off or its nodes live in network namespaces (out of our reach)."""
    if not scenario.metrics.scrape or lab is not None:
        return None
    ports = free_loopback_ports(len(plans))
    scraper = Scraper({plan.name: port for plan, port in zip(plans, ports, strict=True)},
                      scenario.metrics.interval_s)
    for plan in plans:
        plan.config_lines += scraper.config_line(plan.name)
    return scraper


def provider_prices(plans: list[NodePlan]) -> dict[str, int]:
    """Each provider's asking price, from the config lines it was given."""
    prices = {}
    for plan in plans:
        if plan.role == "provider":
            asked = [line.split("=")[1] for line in plan.config_lines.splitlines()
                     if line.startswith("price_per_job_wei")]
            prices[plan.name] = int(asked[-1]) if asked else PRICE_PER_JOB_WEI
    return prices

