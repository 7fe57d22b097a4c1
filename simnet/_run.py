"""One scenario's run in one `MarketWorld`: start the planned nodes in waves, post the workload
at the scenario's rate, inject churn and the partition, and wait (bounded) on what the network
must then show: natted nodes relayed, offers converged after a heal, the spammer scored out,
the providers' deals ended."""

from __future__ import annotations

import base64
import contextlib
import functools
import math
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lilypad_p2p.control import ControlError
from lilypad_p2p.localnet import (
    ClusterError,
    MarketWorld,
    NodeProcess,
    node_identity,
    prepare_trusting_home,
)
from simnet._faulty import FAILING_MODULE, failing_job
from simnet._figures import FINAL
from simnet._invariants import CONVERGE_TIMEOUT_S, scored_out
from simnet._measure import Samples
from simnet._netns import NetnsLab
from simnet._plan import BOOTSTRAP_NODES, NodePlan
from simnet._report import NatView
from simnet._scenario import Scenario
from simnet._worlds import dial_addr

# How often the run polls the clients' deals and samples the node processes.
SAMPLE_INTERVAL_S = 1.0
# After the clients' deals end, how long the providers may take to settle theirs.
PROVIDERS_SETTLE_TIMEOUT_S = 45.0
# Bounded wait for every client to hold every provider's offer before the workload starts.
MARKET_KNOWN_TIMEOUT_S = 180.0
# Nodes started at once: a node's start (imports, keys, libp2p) is CPU-heavy, and 50 at once on
# two cores starve each other past any sane readiness timeout.
START_WAVE_SIZE = 8
START_WAVE_TIMEOUT_S = 180.0
# How long the honest nodes may take, after the workload, to all show the spammer scored out
# (a graylisted peer's messages are ignored, so its score decays and dips back above the
# threshold for a moment until its next message is judged).
SPAM_SCORED_OUT_TIMEOUT_S = 20.0
# Partitions: a late provider per side joins this long after the cut.
LATE_JOIN_AFTER_S = 3.0
# NAT: how long the natted nodes may take to find they are private and reserve on a relay.
NAT_READY_TIMEOUT_S = 120.0
TEXT = "the quick brown fox jumps over the lazy dog and the dog sleeps"


def wait_started(node: NodeProcess, timeout_s: float = START_WAVE_TIMEOUT_S) -> None:
    """`NodeProcess.wait_ready`, refusing in one line: a node that exits first ends the wait
    at once, with its last log line."""
    try:
        node.wait_ready(timeout_s)
    except ClusterError:
        code = node.process.poll()
        if code is None:
            raise ClusterError(f"{node.name} did not start within {timeout_s:.0f} s; its "
                               f"log: {node.log_path}") from None
        lines = [line for line in node.log_tail(5).splitlines() if line.strip()]
        last = lines[-1].strip() if lines else "(it logged nothing)"
        raise ClusterError(f"{node.name} exited with status {code} while starting: {last} "
                           f"(its log: {node.log_path})") from None


def job(index: int, module: str) -> dict[str, Any]:
    if module == FAILING_MODULE:
        return failing_job(index)
    if module == "wordcount":
        data = base64.b64encode(f"{TEXT} {index}\n".encode()).decode()
        return {"module": module, "params": {"top": 3}, "files": {"input.txt": data}}
    if module == "random":
        return {"module": module, "params": {"size": 16}}
    return {"module": module, "params": {"text": f"job {index}: {TEXT}"}}


class Run:
    """One scenario in one `MarketWorld`: what `drive` posted, and what the clients said of it."""

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
            wait_started(node)
            self.nodes[plan.name] = node
            boot.append(dial_addr(node))
        self.bootstrap = boot
        rest = [p for p in self.plans[BOOTSTRAP_NODES:] if not p.late]
        for first in range(0, len(rest), START_WAVE_SIZE):
            wave = [self.world.cluster.start_node(plan.name, roles=plan.roles, bootstrap=boot)
                    for plan in rest[first:first + START_WAVE_SIZE]]
            for node in wave:
                wait_started(node)
                self.nodes[node.name] = node
        self.world.nodes.update(self.nodes)
        providers = self.roles_of("provider")
        wanted = {p.status["address"] for p in providers} | set(trusted)

        for client in self.roles_of("client"):
            self.world.wait_until_known(client, providers)
            self.world.cluster.wait_until(
                functools.partial(client.holds_records, wanted),
                timeout_s=MARKET_KNOWN_TIMEOUT_S, what=f"{client.name} to know every node")

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
                        again = self.world.cluster.start_node(name, roles=["provider"],
                                                              bootstrap=self.bootstrap)
                        wait_started(again)
                        self.nodes[name] = self.world.nodes[name] = again
                    self.events_log.append(f"{time.monotonic() - started:.1f}s restarted")
                    restarted = True
                if time.monotonic() >= next_sample:
                    done = self.poll_clients()
                    self.samples.take(list(self.nodes.values()),
                                      self.world.cluster.zygote_pid, time.monotonic())
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
            wait_started(node)
            self.nodes[plan.name] = self.world.nodes[plan.name] = node
        self.events_log.append(f"{elapsed:.1f}s late providers joined their sides")

    def heal(self, elapsed: float) -> None:
        assert self.lab is not None and self.partition_window is not None
        self.lab.heal()
        self.partition_window = (self.partition_window[0], elapsed)
        self.healed_at = time.monotonic()
        self.events_log.append(f"{elapsed:.1f}s healed")

    def nat_view(self) -> NatView:
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
        return NatView(ready_after_s=ready_s,
                       relayed={n: relayed(s) for n, s in statuses.items()},
                       nodes={name: {key: status.get(key) for key in (
                           "reachability", "reservations", "relayed_peers",
                           "direct_upgraded_peers")}
                           for name, status in statuses.items()})

    def wait_converged(self) -> float | None:
        """Seconds from the heal until every node that follows the market (client, solver) holds
        every provider's offer (None: not within CONVERGE_TIMEOUT_S)."""
        providers = {n.status["address"] for n in self.roles_of("provider")}
        followers = [self.nodes[p.name] for p in self.plans
                     if p.follows_markets and p.name in self.nodes]

        def converged() -> bool:
            for node in followers:
                with contextlib.suppress(ControlError, OSError):
                    owners = {o["owner"] for o in node.call("offers", {"market": "cpu"})}
                    if providers <= owners:
                        continue
                return False
            return True

        with contextlib.suppress(ClusterError):
            self.world.cluster.wait_until(
                converged, timeout_s=CONVERGE_TIMEOUT_S,
                what="every client and solver to hold every provider's offer")
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

