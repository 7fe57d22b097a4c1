"""Runs a scenario: anvil + contract + N real node processes, a workload, faults, the report.

Everything started here (node processes and their containers, anvil) is stopped on the way
out, also on Ctrl-C, SIGTERM or failure: `world_for` (`market_world`, or the namespaced world
that also owns the namespaces) owns anvil and the cluster in
try/finally, and SIGTERM is turned into KeyboardInterrupt so the same path runs.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import math
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lilypad_p2p.chain import EventWatcher, SettlementClient, open_rpc_chain
from lilypad_p2p.control import ControlError
from lilypad_p2p.net import GRAYLIST_THRESHOLD
from lilypad_p2p.roles._provider import DEFAULT_PRICE_PER_JOB_WEI as PRICE_PER_JOB_WEI
from lilypad_p2p.testing._cluster import ClusterError, NodeProcess
from lilypad_p2p.testing._market import MarketWorld
from lilypad_p2p.testing._mediation import node_identity, prepare_trusting_home
from simnet._faulty import (
    FAILING_MODULE,
    FALSE_FAILURE_CONFIG,
    failing_job,
    failing_module,
    faulty_invariants,
)
from simnet._netns import Group, NetnsLab, netns_missing
from simnet._registry_module import REGISTRY_MODULE, registry_module
from simnet._report import (
    FINAL,
    deal_latencies,
    gas_per_deal,
    latency_section,
    work_section,
    write_json,
    write_plots,
)
from simnet._scenario import Scenario, ScenarioError
from simnet._scrape import Scraper, free_loopback_port, summary_by_role
from simnet._worlds import dial_addr, world_for

# How often the run polls the clients' deals and samples the node processes.
SAMPLE_INTERVAL_S = 1.0
# After the clients' deals end, how long the providers may take to settle theirs.
PROVIDERS_SETTLE_TIMEOUT_S = 45.0
# How long the shipped module images may take to build (first run only; cached after).
IMAGE_BUILD_TIMEOUT_S = 900.0
# Bounded wait for every client to hold every provider's offer before the workload starts.
MARKET_KNOWN_TIMEOUT_S = 180.0
# Nodes the others bootstrap from (the first providers started).
BOOTSTRAP_NODES = 2
# Nodes started at once: a node's start (imports, keys, libp2p) is CPU-heavy, and 50 at once on
# two cores starve each other past any sane readiness timeout.
START_WAVE_SIZE = 8
START_WAVE_TIMEOUT_S = 180.0
# How long the honest nodes may take, after the workload, to all show the spammer scored out
# (a graylisted peer's messages are ignored, so its score decays and dips back above the
# threshold for a moment until its next message is judged).
SPAM_SCORED_OUT_TIMEOUT_S = 20.0
# Partitions: a late provider per side joins this long after the cut; after the heal, every
# node must hold every provider's offer within CONVERGE_TIMEOUT_S (offers are re-published
# every 60 s, and reconnecting peers sync them, so one republish round plus gossip at most).
LATE_JOIN_AFTER_S = 3.0
# Deal transition times are the client node's clock, the cut's times the simnet's.
CLOCK_SLACK_S = 1.0
CONVERGE_TIMEOUT_S = 90.0
# NAT: how long the natted nodes may take to find they are private and reserve on a relay.
NAT_READY_TIMEOUT_S = 120.0
# Consortium size the clients ask for (capped by the mediators present).
CONSORTIUM_SIZE = 3
TEXT = "the quick brown fox jumps over the lazy dog and the dog sleeps"


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


@dataclass
class Samples:
    """psutil samples per node name (summing the processes a restarted node had)."""

    cpu_by_pid: dict[str, dict[int, float]] = field(default_factory=lambda: defaultdict(dict))
    rss_max_mb: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def take(self, nodes: list[NodeProcess]) -> None:
        for node in nodes:
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(node.process.pid)
                times = process.cpu_times()
                self.cpu_by_pid[node.name][process.pid] = times.user + times.system
                rss = process.memory_info().rss / 2**20
                self.rss_max_mb[node.name] = max(self.rss_max_mb[node.name], rss)

    def cpu_s(self, name: str) -> float:
        return round(sum(self.cpu_by_pid[name].values()), 2)


def plan_nodes(scenario: Scenario) -> list[NodePlan]:
    counts = scenario.roles.counts(scenario.nodes)
    faults = scenario.faults
    providers = counts["providers"]
    false_claimants = math.floor(providers * faults.false_failure_share)
    cheaters = math.floor(providers * faults.cheater_share) + false_claimants
    honest = providers - cheaters - faults.spammers
    if honest < BOOTSTRAP_NODES:
        raise ScenarioError(f"{providers} providers leave fewer than {BOOTSTRAP_NODES} honest "
                            f"ones to bootstrap from after {cheaters} cheaters and "
                            f"{faults.spammers} spammers")
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
    for plan in plans:
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


def job(index: int, module: str) -> dict[str, Any]:
    if module == FAILING_MODULE:
        return failing_job(index)
    if module == "wordcount":
        data = base64.b64encode(f"{TEXT} {index}\n".encode()).decode()
        return {"module": module, "params": {"top": 3}, "files": {"input.txt": data}}
    if module == "random":
        return {"module": module, "params": {"size": 16}}
    return {"module": module, "params": {"text": f"job {index}: {TEXT}"}}


def build_module_images(console: Console) -> None:
    console.print("building the module images (skipped when present)")
    subprocess.run([sys.executable, "-m", "lilypad_p2p.cli", "modules", "build"], check=True,
                   timeout=IMAGE_BUILD_TIMEOUT_S, stdout=subprocess.DEVNULL)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Run:
    """One scenario in one `MarketWorld`; `execute` returns the raw material of the report."""

    def __init__(self, scenario: Scenario, plans: list[NodePlan], world: MarketWorld,
                 lab: NetnsLab | None, console: Console) -> None:
        self.scenario = scenario
        self.world = world
        self.lab = lab
        self.console = console
        self.plans = plans
        self.group_of = {p.name: p.group for p in plans}
        # deal key -> (seconds into the workload it was posted, its target's name or None)
        self.posted: dict[str, tuple[float, str | None]] = {}
        self.partition_window: tuple[float, float] | None = None
        self.healed_at = 0.0
        self.nodes: dict[str, NodeProcess] = {}
        self.samples = Samples()
        self.submitted: list[tuple[str, str]] = []  # (client name, deal key)
        self.client_deals: dict[str, dict[str, Any]] = {}
        self.events_log: list[str] = []
        self.module_ids: dict[str, str] = {}  # workload name -> module ID (user modules)
        self.scraper: Scraper | None = None

    def roles_of(self, role: str) -> list[NodeProcess]:
        """The started nodes of `role`."""
        return [self.nodes[p.name] for p in self.plans if p.role == role and p.name in self.nodes]

    def start_nodes(self) -> None:
        trusted = [node_identity(self.world, p.name).address
                   for p in self.plans if p.role == "mediator"]
        for plan in self.plans:
            prepare_trusting_home(self.world, plan.name, trusted, config_lines=plan.config_lines)
        boot: list[str] = []
        for plan in self.plans[:BOOTSTRAP_NODES]:
            node = self.world.cluster.start_node(plan.name, roles=plan.roles, bootstrap=boot)
            node.wait_ready()
            self.nodes[plan.name] = node
            boot.append(dial_addr(node))
        self.bootstrap = boot
        rest = [p for p in self.plans[BOOTSTRAP_NODES:] if not p.late]
        for first in range(0, len(rest), START_WAVE_SIZE):
            wave = [self.world.cluster.start_node(plan.name, roles=plan.roles, bootstrap=boot)
                    for plan in rest[first:first + START_WAVE_SIZE]]
            for node in wave:
                node.wait_ready(START_WAVE_TIMEOUT_S)
                self.nodes[node.name] = node
        self.world.nodes.update(self.nodes)
        providers = self.roles_of("provider")
        wanted = len(providers) + len(trusted)
        for client in self.roles_of("client"):
            self.world.wait_until_known(client, providers)
            self.world.cluster.wait_until(
                lambda c=client: c.call("status")["known_nodes"] >= wanted,
                timeout_s=MARKET_KNOWN_TIMEOUT_S, what=f"{client.name} to know every node")

    def holdings(self) -> dict[str, int]:
        """Free + locked + mediator stake of every node's account (wei)."""
        reader = SettlementClient(open_rpc_chain(self.world.rpc_url), self.world.contract)
        out = {}
        for plan in self.plans:
            address = node_identity(self.world, plan.name).address
            balance = reader.balance(address)
            out[plan.name] = balance.free + balance.locked + reader.mediator(address)[0]
        return out

    def poll_clients(self) -> int:
        unfinished: dict[str, set[str]] = {}
        for client_name, key in self.submitted:
            known = self.client_deals.get(key)
            if not (known and known["phase"] in FINAL):
                unfinished.setdefault(client_name, set()).add(key)
        # One call per client, not one per deal: the driver must not load the nodes it
        # measures (with ~100 deals in flight that was ~100 control calls a second).
        for client_name, keys in unfinished.items():
            with contextlib.suppress(ControlError, OSError):
                for deal in self.nodes[client_name].call("deals"):
                    if deal["key"] in keys:
                        self.client_deals[deal["key"]] = deal
        return sum(d["phase"] in FINAL for d in self.client_deals.values())

    def churn_victims(self) -> list[str]:
        honest = [p.name for p in self.plans
                  if p.role == "provider" and not p.cheater and not p.spammer]
        count = math.floor(len(honest) * self.scenario.faults.churn_share)
        return [n for n in honest if n not in {p.name for p in self.plans[:BOOTSTRAP_NODES]}][
            :count]

    def drive(self) -> float:
        """Post the jobs at the scenario's rate, inject churn, wait until every job ended."""
        workload, faults = self.scenario.workload, self.scenario.faults
        clients = self.roles_of("client")
        # Partitions: side a's providers first, so jobs target both sides from both sides.
        target_plans = sorted((p for p in self.plans if p.role == "provider" and not p.spammer
                               and not p.late), key=lambda p: p.group)
        targets = [(p.name, self.nodes[p.name].status["address"]) for p in target_plans]
        cut = self.scenario.network
        network_events = [] if not cut.partitioned else [
            (cut.partition_after_s, self.partition),
            (cut.partition_after_s + LATE_JOIN_AFTER_S, self.start_late_providers),
            (cut.partition_after_s + cut.partition_s, self.heal)]
        victims = self.churn_victims()
        churn_at = faults.churn_after_s
        restart_at = churn_at + faults.churn_down_s
        killed = restarted = False
        started = time.monotonic()
        deadline: float | None = None
        next_sample = started
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=self.console, transient=False) as progress:
            posted = progress.add_task("jobs posted", total=workload.jobs)
            ended = progress.add_task("jobs ended", total=workload.jobs)
            while True:
                elapsed = time.monotonic() - started
                due = min(workload.jobs, int(elapsed * workload.rate_per_s) + 1)
                while len(self.submitted) < due:
                    index = len(self.submitted)
                    client = clients[index % len(clients)]
                    module = workload.modules[index % len(workload.modules)]
                    posted_job = job(index, module)
                    posted_job["module"] = self.module_ids.get(module, module)
                    target = None
                    if workload.target_providers:
                        target, posted_job["target"] = targets[index % len(targets)]
                    key = client.call("submit", posted_job)["key"]
                    self.submitted.append((client.name, key))
                    self.posted[key] = (time.monotonic() - started, target)
                    progress.update(posted, completed=len(self.submitted))
                if len(self.submitted) == workload.jobs and deadline is None:
                    deadline = time.monotonic() + workload.job_timeout_s
                while network_events and elapsed >= network_events[0][0]:
                    network_events.pop(0)[1](time.monotonic() - started)
                if victims and not killed and elapsed >= churn_at:
                    for name in victims:
                        self.nodes[name].kill()
                    self.events_log.append(f"{elapsed:.1f}s killed {victims}")
                    killed = True
                if victims and killed and not restarted and elapsed >= restart_at:
                    for name in victims:
                        self.nodes[name] = self.world.restart(
                            self.nodes[name], roles=["provider"], bootstrap=self.bootstrap)
                    self.events_log.append(f"{time.monotonic() - started:.1f}s restarted")
                    restarted = True
                if time.monotonic() >= next_sample:
                    done = self.poll_clients()
                    self.samples.take(list(self.nodes.values()))
                    progress.update(ended, completed=done)
                    next_sample = time.monotonic() + SAMPLE_INTERVAL_S
                    if done == workload.jobs and (restarted or not victims) \
                            and not network_events:
                        return time.monotonic() - started
                if deadline is not None and time.monotonic() > deadline:
                    self.events_log.append("job timeout: not every job ended")
                    return time.monotonic() - started
                time.sleep(min(SAMPLE_INTERVAL_S, 1 / workload.rate_per_s) / 2)

    def partition(self, elapsed: float) -> None:
        assert self.lab is not None
        self.lab.partition("a", "b")
        self.partition_window = (elapsed, math.inf)
        self.events_log.append(f"{elapsed:.1f}s partitioned a | b")

    def start_late_providers(self, elapsed: float) -> None:
        """One provider per side joins during the partition, bootstrapping from its own side:
        after the heal, the other side must learn its offer."""
        for plan in (p for p in self.plans if p.late):
            boot = [addr for first, addr in zip(self.plans, self.bootstrap, strict=False)
                    if first.group == plan.group]
            node = self.world.cluster.start_node(plan.name, roles=plan.roles, bootstrap=boot)
            node.wait_ready(START_WAVE_TIMEOUT_S)
            self.nodes[plan.name] = self.world.nodes[plan.name] = node
        self.events_log.append(f"{elapsed:.1f}s late providers joined their sides")

    def heal(self, elapsed: float) -> None:
        assert self.lab is not None and self.partition_window is not None
        self.lab.heal()
        self.partition_window = (self.partition_window[0], elapsed)
        self.healed_at = time.monotonic()
        self.events_log.append(f"{elapsed:.1f}s healed")

    def nat_view(self) -> dict[str, Any]:
        """Wait (bounded) until every natted node knows it is private and holds a relay
        reservation; each natted node's NAT status (reachability, relays, relayed and
        DCUtR-upgraded peers) and how long it took."""
        natted = [self.nodes[p.name] for p in self.plans if p.group.startswith("nat")]
        started = time.monotonic()

        def nat_status(node: NodeProcess) -> dict[str, Any]:
            with contextlib.suppress(ControlError, OSError):
                return dict(node.call("status")["nat"])
            return {}

        def relayed(status: dict[str, Any]) -> bool:
            return status.get("reachability") == "private" and bool(status.get("reservations"))

        ready_s: float | None = None
        with contextlib.suppress(ClusterError):
            self.world.cluster.wait_until(
                lambda: all(relayed(nat_status(n)) for n in natted), timeout_s=NAT_READY_TIMEOUT_S,
                what="every natted node to be private with a relay reservation")
            ready_s = round(time.monotonic() - started, 1)
        statuses = {n.name: nat_status(n) for n in natted}
        return {"ready_after_s": ready_s, "relayed": {n: relayed(s) for n, s in statuses.items()},
                "nodes": {name: {key: status.get(key) for key in (
                    "reachability", "reservations", "relayed_peers", "direct_upgraded_peers")}
                    for name, status in statuses.items()}}

    def wait_converged(self) -> float | None:
        """Seconds from the heal until every node holds every provider's offer (None: not within
        CONVERGE_TIMEOUT_S)."""
        providers = {n.status["address"] for n in self.roles_of("provider")}

        def converged() -> bool:
            for node in self.nodes.values():
                with contextlib.suppress(ControlError, OSError):
                    owners = {o["owner"] for o in node.call("offers", {"market": "cpu"})}
                    if providers <= owners:
                        continue
                return False
            return True

        with contextlib.suppress(ClusterError):
            self.world.cluster.wait_until(converged, timeout_s=CONVERGE_TIMEOUT_S,
                                          what="every node to hold every provider's offer")
            return round(time.monotonic() - self.healed_at, 1)
        return None

    def spam_view(self) -> dict[str, dict[str, float | None]]:
        """Spammer -> honest node -> the spammer's GossipSub score there (None: not connected).

        Polled (bounded) until every honest node connected to each spammer scores it below the
        graylist threshold; the last sample is returned either way."""
        spammers = {p.name: self.nodes[p.name].status["peer_id"]
                    for p in self.plans if p.spammer}
        if not spammers:
            return {}

        def sample() -> dict[str, dict[str, float | None]]:
            view: dict[str, dict[str, float | None]] = {name: {} for name in spammers}
            for plan in (p for p in self.plans if not p.spammer):
                scores: dict[str, float] = {}
                with contextlib.suppress(ControlError, OSError):
                    scores = {peer["peer_id"]: peer["score"]
                              for peer in self.nodes[plan.name].call("peers")}
                for name, peer_id in spammers.items():
                    view[name][plan.name] = scores.get(peer_id)
            return view

        deadline = time.monotonic() + SPAM_SCORED_OUT_TIMEOUT_S
        while True:
            view = sample()
            if all(scored_out(row) for row in view.values()) or time.monotonic() > deadline:
                return view
            time.sleep(SAMPLE_INTERVAL_S)

    def wait_providers_final(self) -> bool:
        def settled() -> bool:
            with contextlib.suppress(ControlError, OSError):
                return all(d["phase"] in FINAL for p in self.roles_of("provider")
                           for d in p.call("deals"))
            return False

        with contextlib.suppress(Exception):
            self.world.cluster.wait_until(settled, timeout_s=PROVIDERS_SETTLE_TIMEOUT_S,
                                          what="the providers' deals to end")
            return True
        return False

    def node_figures(self) -> dict[str, dict[str, Any]]:
        self.samples.take(list(self.nodes.values()))
        providers = {n.status["address"] for n in self.roles_of("provider")}
        figures = {}
        for name, node in self.nodes.items():
            row: dict[str, Any] = {"role": next(p.role for p in self.plans if p.name == name),
                                   "cpu_s": self.samples.cpu_s(name),
                                   "rss_max_mb": round(self.samples.rss_max_mb[name], 1),
                                   "gossip_delivered": 0, "gossip_dropped": 0,
                                   "gossip_graylisted_ignored": 0,
                                   "provider_offers_known": None}
            if self.scraper is not None:
                self.scraper.scrape(name)
                row["metrics"] = self.scraper.figures(name)
            with contextlib.suppress(ControlError, OSError):
                gossip = node.call("status")["gossip"]
                row["gossip_delivered"] = gossip["delivered"]
                row["gossip_dropped"] = sum(gossip["dropped"].values())
                row["gossip_graylisted_ignored"] = gossip["graylisted_messages_ignored"]
                owners = {o["owner"] for o in node.call("offers", {"market": "cpu"})}
                row["provider_offers_known"] = len(owners & providers) / len(providers)
            figures[name] = row
        return figures

    def chain_figures(self) -> dict[str, Any]:
        chain = open_rpc_chain(self.world.rpc_url)
        events = EventWatcher(chain, self.world.contract).poll()
        reader = SettlementClient(chain, self.world.contract)
        tx_deals: dict[str, set[str]] = defaultdict(set)
        for event in events:
            if event.deal_id is not None:
                tx_deals["0x" + event.tx_hash.hex()].add("0x" + event.deal_id.hex())
        tx_gas = {tx: int(chain.rpc(lambda t=tx: chain.w3.eth.get_transaction_receipt(t))
                          ["gasUsed"]) for tx in tx_deals}
        addresses = {value for event in events for key, value in event.args.items()
                     if key in ("account", "mediator", "jobCreator", "provider", "presenter")}
        accounted = reader.burned()
        for address in addresses:
            balance = reader.balance(address)
            accounted += balance.free + balance.locked + reader.mediator(address)[0]
        for event in events:
            if event.name == "DealResolved":
                accounted += event.args["fee"]
            elif event.name == "MediationFeeClaimed":
                accounted -= event.args["amount"]
        return {"contract_balance": chain.balance_of(self.world.contract),
                "accounted": accounted,
                "gas_per_deal": gas_per_deal(tx_deals, tx_gas),
                "events": dict(Counter(e.name for e in events))}


def partition_checks(run: Run, network: dict[str, Any],
                     check: Callable[[str, bool, str], None]) -> None:
    """Each side kept trading during the cut (every job one side's client posted to its own
    side's provider settled), and after the heal every node learnt every offer."""
    window = run.partition_window or (math.inf, math.inf)
    inside: dict[str, Counter[str]] = {"a": Counter(), "b": Counter()}
    across: list[float | None] = []  # seconds into the workload each cross-cut deal opened
    for client, key in run.submitted:
        posted_at, target = run.posted[key]
        if not window[0] <= posted_at < window[1] or target is None:
            continue
        side, deal = run.group_of[client], run.client_deals.get(key, {})
        if run.group_of[target] == side:
            inside[side][deal.get("phase", "unseen")] += 1
            continue
        waited = deal_latencies(deal)["offer_to_deal"] if deal else None
        across.append(None if waited is None else posted_at + waited)
    early = [round(t, 1) for t in across if t is not None and t < window[1] - CLOCK_SLACK_S]
    check("partition_held", bool(across) and not early,
          f"{len(across)} jobs posted across the cut during it; deals opened before the heal "
          f"at {window[1]:.1f} s: {early}; opened after it at "
          f"{sorted(round(t, 1) for t in across if t is not None)}")
    check("each_side_traded_during_partition",
          all(c and set(c) == {"settled"} for c in inside.values()),
          f"jobs posted to their own side during the cut, by final state: "
          f"{ {side: dict(c) for side, c in inside.items()} }")
    converged = network.get("converged_after_heal_s")
    check("offers_converged_after_heal", converged is not None,
          f"every node held every provider's offer (the late joiners' too) {converged} s "
          f"after the heal" if converged is not None
          else f"not within {CONVERGE_TIMEOUT_S} s of the heal")


def scored_out(scores: dict[str, float | None]) -> bool:
    """Every honest node connected to the spammer scores it below the graylist threshold."""
    return all(score < GRAYLIST_THRESHOLD for score in scores.values() if score is not None)


def invariants(run: Run, before: dict[str, int], after: dict[str, int],
               chain: dict[str, Any], spam: dict[str, dict[str, float | None]],
               nodes: dict[str, dict[str, Any]],
               network: dict[str, Any]) -> list[dict[str, Any]]:
    scenario = run.scenario
    deals = list(run.client_deals.values())
    addresses = {node_identity(run.world, p.name).address.lower(): p for p in run.plans}
    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append({"name": name, "ok": bool(ok), "detail": detail})

    unfinished = [d["key"] for d in deals if d["phase"] not in FINAL]
    missing = len(run.submitted) - len(deals)
    check("every_deal_ended", not unfinished and not missing,
          f"{len(unfinished)} unfinished, {missing} never seen")
    if scenario.network.nat_share:
        nat = network["nat_at_start"]
        natted = {p.name for p in run.plans if p.group.startswith("nat")}
        served = Counter(run.client_deals.get(key, {}).get("phase", "unseen")
                         for _, key in run.submitted if run.posted[key][1] in natted)
        check("natted_providers_private_and_relayed", all(nat["relayed"].values()),
              f"private with a reservation after {nat['ready_after_s']} s: {nat['relayed']}")
        check("natted_providers_served_jobs", bool(served) and set(served) == {"settled"},
              f"jobs sent to natted providers, by final state: {dict(served)}")
    if scenario.network.partitioned:
        partition_checks(run, network, check)
    elif not scenario.faults.churn_share:
        bad = Counter(d["phase"] for d in deals if d["phase"] not in {"settled", "resolved"})
        check("every_job_settled_or_resolved", not bad, f"other final phases: {dict(bad)}")
    check("funds_conserved", chain["contract_balance"] == chain["accounted"],
          f"contract holds {chain['contract_balance']}, accounts sum to {chain['accounted']}")

    def provider_of(deal: dict[str, Any]) -> NodePlan | None:
        return addresses.get(str(deal.get("provider") or "").lower())

    losers = [p.name for p in run.plans if p.role in ("provider", "mediator", "solver")
              and not p.cheater and after[p.name] < before[p.name]]
    fee = 10**14  # NodeConfig.mediation_fee_wei, the default every client here uses
    for client in (p for p in run.plans if p.role == "client"):
        own = [run.client_deals[key] for name, key in run.submitted
               if name == client.name and key in run.client_deals]
        spent_bound = sum(d["payment_wei"] or 0 for d in own) + fee * len(own)
        if before[client.name] - after[client.name] > spent_bound:
            losers.append(client.name)
    check("no_honest_party_lost_money", not losers, f"lost money: {losers}")
    wrongly = [d["key"] for d in deals if d.get("outcome") == "PROVIDER_WRONG"
               and (provider_of(d) is None or not provider_of(d).cheater)]  # type: ignore[union-attr]
    check("no_honest_provider_slashed", not wrongly, f"honest deals ruled wrong: {wrongly}")
    if scenario.faults.cheater_share:
        cheats = [d for d in deals if (p := provider_of(d)) is not None and p.cheater]
        unslashed = [d["key"] for d in cheats if d.get("outcome") != "PROVIDER_WRONG"]
        richer = [p.name for p in run.plans if p.cheater and after[p.name] > before[p.name]]
        idle = sorted({p.name for p in run.plans if p.cheater}
                      - {p.name for d in cheats if (p := provider_of(d)) is not None})
        check("every_cheater_slashed", bool(cheats) and not unslashed and not richer
              and not idle,
              f"{len(cheats)} cheating deals, not ruled wrong: {unslashed}, "
              f"cheaters who gained: {richer}, cheaters given no job: {idle}")
    if scenario.faults.spammers:
        spammers = {p.name for p in run.plans if p.spammer}
        honest_drops = sum(row["gossip_dropped"] for name, row in nodes.items()
                           if name not in spammers)
        ignored = sum(row["gossip_graylisted_ignored"] for name, row in nodes.items()
                      if name not in spammers)
        detail = "; ".join(
            f"{name}: connected to {sum(v is not None for v in row.values())} honest nodes, "
            f"max score there {max((v for v in row.values() if v is not None), default=None)}"
            for name, row in spam.items())
        check("spammer_scored_out",
              honest_drops > 0 and all(scored_out(row) for row in spam.values()),
              f"{detail}; honest nodes dropped {honest_drops} invalid messages, then ignored "
              f"{ignored} from graylisted peers (graylist below {GRAYLIST_THRESHOLD})")
    if "random" in scenario.workload.modules and scenario.faults.check_rate:
        random_deals = [d for d in deals if d.get("module") == "random"]
        outcomes = Counter(str(d.get("outcome")) for d in random_deals)
        check("non_deterministic_jobs_not_slashed",
              bool(random_deals) and set(outcomes) <= {"NON_DETERMINISTIC", "None"},
              f"random-job outcomes: {dict(outcomes)}")
    if FAILING_MODULE in run.module_ids:
        faulty_invariants(run.plans, deals, before, after, provider_of,
                          run.module_ids[FAILING_MODULE], check)
    return checks


def run_scenario(scenario: Scenario, out_dir: Path, console: Console) -> dict[str, Any]:
    """Run `scenario`, write report.json and the plots into `out_dir`; the report."""
    # The node homes hold plaintext keys on purpose (a throwaway test network): the warning an
    # operator's node gives for them would be printed each time the simnet reads one.
    logging.getLogger("lilypad_p2p.identity").setLevel(logging.ERROR)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Node homes of an earlier run belong to an anvil that is gone: their accounts would not be
    # funded again on the new chain (homes are funded when first created).
    shutil.rmtree(out_dir / "nodes", ignore_errors=True)
    build_module_images(console)
    wall_started = time.monotonic()
    plans = plan_nodes(scenario)
    lab = lab_for(scenario, plans)
    if lab is not None:  # what to look for (`ip netns list`) should a run ever leave any
        (out_dir / "netns-prefix").write_text(lab.prefix + "\n")
    group_of = {p.name: p.group for p in plans}
    scraper = scraper_for(scenario, plans, lab)
    with sigterm_as_interrupt(), contextlib.ExitStack() as stack:
        if REGISTRY_MODULE in scenario.workload.modules:
            user_module = stack.enter_context(registry_module(out_dir / "registry-module"))
            for plan in plans:
                if plan.role == "provider":
                    plan.config_lines += user_module.provider_config
                elif plan.role == "client":
                    user_module.add_to(out_dir / "nodes" / plan.name)
        if FAILING_MODULE in scenario.workload.modules:
            failing = failing_module()
            for plan in plans:
                if plan.role == "provider":
                    plan.config_lines += failing.provider_config
                elif plan.role == "client":
                    failing.add_to(out_dir / "nodes" / plan.name)
        world = stack.enter_context(world_for(out_dir / "nodes", lab, group_of))
        run = Run(scenario, plans, world, lab, console)
        run.scraper = scraper
        if REGISTRY_MODULE in scenario.workload.modules:
            run.module_ids[REGISTRY_MODULE] = user_module.module_id
        if FAILING_MODULE in scenario.workload.modules:
            run.module_ids[FAILING_MODULE] = failing.module_id
        console.print(f"[bold]{scenario.name}[/]: {scenario.nodes} nodes "
                      f"{scenario.roles.counts(scenario.nodes)}, anvil at {world.rpc_url}")
        run.start_nodes()
        nat = run.nat_view() if scenario.network.nat_share else None
        startup_s = time.monotonic() - wall_started
        console.print(f"{scenario.nodes} nodes up and aware of each other in {startup_s:.1f} s")
        before = run.holdings()
        with scraper.running() if scraper else contextlib.nullcontext():
            workload_s = run.drive()
        providers_final = run.wait_providers_final()
        spam = run.spam_view()
        network: dict[str, Any] = {}
        if lab is not None:
            network["groups"] = run.group_of
        if nat is not None:
            network["nat_at_start"] = nat
            network["nat_at_end"] = run.nat_view()["nodes"]
        if scenario.network.partitioned:
            network["partition_window_s"] = run.partition_window
            network["converged_after_heal_s"] = run.wait_converged()
        nodes = run.node_figures()
        chain = run.chain_figures()
        after = run.holdings()
        checks = invariants(run, before, after, chain, spam, nodes, network)
        world.stop_all()
    deals = list(run.client_deals.values())
    gas = list(chain["gas_per_deal"].values())
    report: dict[str, Any] = {
        "scenario": scenario.name, "node_count": scenario.nodes,
        "roles": scenario.roles.counts(scenario.nodes), "jobs": len(run.submitted),
        "startup_s": round(startup_s, 1), "workload_s": round(workload_s, 1),
        "wall_s": round(time.monotonic() - wall_started, 1),
        "providers_final": providers_final, "events": run.events_log,
        "deals": {"by_final_state": dict(Counter(d["phase"] for d in deals)),
                  "outcomes": dict(Counter(str(d.get("outcome")) for d in deals
                                           if d.get("outcome")))},
        "latencies": latency_section(deals),
        "work": work_section(deals, {node_identity(world, p.name).address.lower(): p.name
                                     for p in plans if p.role == "provider"},
                             provider_prices(plans)),
        "gas": {"per_deal": chain["gas_per_deal"],
                "mean": round(sum(gas) / len(gas)) if gas else None,
                "chain_events": chain["events"]},
        "funds": {"contract_balance": str(chain["contract_balance"]),
                  "accounted": str(chain["accounted"]),
                  "holdings_change": {n: str(after[n] - before[n]) for n in before}},
        "nodes": nodes,
        "gossip": {"provider_offer_coverage_mean": _mean(
            [r["provider_offers_known"] for r in nodes.values()
             if r["provider_offers_known"] is not None])},
        "metrics": {"scraped": scraper is not None,
                    "interval_s": scraper.interval_s if scraper else None,
                    "by_role": summary_by_role(nodes)},
        "spam_scores": spam,
        "network": network,
        "invariants": checks,
        "passed": all(c["ok"] for c in checks),
    }
    write_json(report, out_dir)
    report["plots"] = [str(p) for p in write_plots(report, out_dir)]
    write_json(report, out_dir)
    return report


def scraper_for(scenario: Scenario, plans: list[NodePlan],
                lab: NetnsLab | None) -> Scraper | None:
    """A scraper of every node's /metrics, each node's config told its port; None when the
    scenario turns scraping off or its nodes live in network namespaces (out of our reach)."""
    if not scenario.metrics.scrape or lab is not None:
        return None
    scraper = Scraper({plan.name: free_loopback_port() for plan in plans},
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


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None
