"""Runs a scenario: anvil + contract + N real node processes, a workload, faults, the report.

Everything started here (node processes and their containers, anvil) is stopped on the way
out, also on Ctrl-C, SIGTERM, SIGHUP or failure: `world_for` (`market_world`, or the namespaced
world that also owns the namespaces) owns anvil and the cluster in try/finally, and SIGTERM and
SIGHUP are turned into KeyboardInterrupt so the same path runs.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from rich.console import Console

from lilypad_p2p.localnet import anvil_binary, node_identity
from simnet._faulty import FAILING_MODULE, failing_module
from simnet._figures import latency_section, posted_rate, work_section
from simnet._invariants import invariants
from simnet._measure import chain_figures, holdings, node_figures
from simnet._outdir import claim_run_dir, clear_previous_run
from simnet._plan import lab_for, plan_nodes, provider_prices, scraper_for
from simnet._registry_module import REGISTRY_MODULE, registry_module
from simnet._report import (
    DealCounts,
    Funds,
    GasFigures,
    GossipFigures,
    MetricsFigures,
    NetworkFigures,
    Report,
    write_json,
    write_plots,
)
from simnet._run import Run
from simnet._scenario import Scenario, ScenarioError
from simnet._scrape import summary_by_role
from simnet._worlds import world_for

# How long the shipped module images may take to build (first run only; cached after).
IMAGE_BUILD_TIMEOUT_S = 900.0


# Signals that end a run as Ctrl-C does: SIGTERM (kill, systemd, CI) and SIGHUP (the terminal
# closed). Their default action ends the process at once, leaving anvil and, unforked, every
# node running; as KeyboardInterrupt they unwind through the teardown instead.
INTERRUPTING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def build_module_images(console: Console) -> None:
    console.print("building the module images (skipped when present)")
    try:
        subprocess.run([sys.executable, "-m", "lilypad_p2p.cli", "modules", "build"],
                       check=True, timeout=IMAGE_BUILD_TIMEOUT_S, stdout=subprocess.DEVNULL)
    except subprocess.CalledProcessError as exc:
        raise ScenarioError(f"the module images did not build (exit status {exc.returncode}): "
                            "`lilypad-p2p modules build` says why") from None
    except subprocess.TimeoutExpired:
        raise ScenarioError(f"the module images did not build in {IMAGE_BUILD_TIMEOUT_S:.0f} s: "
                            "run `lilypad-p2p modules build` first") from None


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt while open; once one has, later ones are
    ignored, so that a second signal (a closing terminal may send more than one) cannot cut
    the teardown short; SIGKILL still ends a stuck one. A signal already ignored stays so:
    under `nohup` the run is meant to outlive its terminal."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        for each in previous:
            signal.signal(each, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous = {each: signal.getsignal(each) for each in INTERRUPTING_SIGNALS
                if signal.getsignal(each) != signal.SIG_IGN}
    for each in previous:
        signal.signal(each, interrupt)
    try:
        yield
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)


def run_scenario(scenario: Scenario, out_dir: Path, console: Console, *,
                 forked: bool = True) -> Report:
    """Run `scenario`, write report.json and the plots into `out_dir`; the report.

    `forked`: the nodes are forked from one zygote that has imported the node (they start at
    once and share its memory); False starts each as a `python -m` process of its own.

    `out_dir` must be new, empty or a previous run's (`claim_run_dir`; else OutDirError): a
    previous run's node homes, report and plots are replaced, once the run's checks passed."""
    with signals_as_interrupt():
        return _run_scenario(scenario, out_dir, console, forked=forked)


def _run_scenario(scenario: Scenario, out_dir: Path, console: Console, *,
                  forked: bool) -> Report:
    claim_run_dir(out_dir)
    if anvil_binary() is None:
        raise ScenarioError("anvil not found: run `npm ci` in contracts/ (scripts/setup), or "
                            "set LILYPAD_ANVIL")
    plans = plan_nodes(scenario)
    lab = lab_for(scenario, plans)
    group_of = {p.name: p.group for p in plans}
    scraper = scraper_for(scenario, plans, lab)
    build_module_images(console)
    wall_started = time.monotonic()
    # Everything is checked: only now is a previous run's output removed. Its node homes belong
    # to an anvil that is gone: their accounts would not be funded again on the new chain
    # (homes are funded when first created).
    clear_previous_run(out_dir)
    if lab is not None:  # what to look for (`ip netns list`) should a run ever leave any
        (out_dir / "netns-prefix").write_text(lab.prefix + "\n")
    with contextlib.ExitStack() as stack:
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
        world = stack.enter_context(world_for(out_dir / "nodes", lab, group_of,
                                              forked=forked))
        run = Run(scenario, plans, world, lab, console)
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
        before = holdings(world, plans)
        with scraper.running() if scraper else contextlib.nullcontext():
            workload_s = run.drive()
        providers_final = run.wait_providers_final()
        spam = run.spam_view()
        network = NetworkFigures(partitioned=scenario.network.partitioned)
        if lab is not None:
            network.groups = run.group_of
        if nat is not None:
            network.nat_at_start = nat
            network.nat_at_end = run.nat_view().nodes
        if scenario.network.partitioned:
            network.partition_window_s = run.partition_window
            network.converged_after_heal_s = run.wait_converged()
        nodes = node_figures(run.nodes, plans, run.samples, scraper,
                             world.cluster.zygote_pid)
        chain = chain_figures(world)
        after = holdings(world, plans)
        checks = invariants(run, before, after, chain, spam, nodes, network)
        world.stop_all()
    deals = list(run.client_deals.values())
    gas = list(chain.gas_per_deal.values())
    report = Report(
        scenario=scenario.name, node_count=scenario.nodes,
        roles=scenario.roles.counts(scenario.nodes), jobs=len(run.submitted),
        startup_s=round(startup_s, 1), workload_s=round(workload_s, 1),
        posted_per_s=posted_rate(at for at, _ in run.posted.values()),
        wall_s=round(time.monotonic() - wall_started, 1),
        providers_final=providers_final, events=run.events_log,
        deals=DealCounts(
            by_final_state=dict(Counter(d["phase"] for d in deals)),
            outcomes=dict(Counter(str(d["outcome"]) for d in deals if d.get("outcome"))),
            checked_off_chain=dict(Counter(str(d["check_outcome"]) for d in deals
                                           if d.get("check_outcome")))),
        latencies=latency_section(deals),
        work=work_section(deals, {node_identity(world, p.name).address.lower(): p.name
                                  for p in plans if p.role == "provider"},
                          provider_prices(plans)),
        gas=GasFigures(per_deal=chain.gas_per_deal,
                       mean=round(sum(gas) / len(gas)) if gas else None,
                       chain_events=chain.events),
        funds=Funds(contract_balance=chain.contract_balance, accounted=chain.accounted,
                    holdings_change={n: after[n] - before[n] for n in before}),
        nodes=nodes,
        memory=run.samples.memory(scenario.nodes),
        gossip=GossipFigures(provider_offer_coverage_mean=_mean(
            [r.provider_offers_known for r in nodes.values()
             if r.provider_offers_known is not None])),
        metrics=MetricsFigures(scraped=scraper is not None,
                               interval_s=scraper.interval_s if scraper else None,
                               by_role=summary_by_role(nodes)),
        spam_scores=spam,
        network=network,
        invariants=checks,
        passed=all(c.ok for c in checks),
    )
    write_json(report.as_json(), out_dir)
    report.plots = [str(p) for p in write_plots(report.as_json(), out_dir)]
    write_json(report.as_json(), out_dir)
    return report



def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None
