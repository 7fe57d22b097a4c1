"""Runs a scenario: anvil + contract + N real node processes, a workload, faults, the report.

Everything started here (node processes and their containers, anvil) is stopped on the way
out, also on Ctrl-C, SIGTERM or failure: `world_for` (`market_world`, or the namespaced world
that also owns the namespaces) owns anvil and the cluster in
try/finally, and SIGTERM is turned into KeyboardInterrupt so the same path runs.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from rich.console import Console

from lilypad_p2p.localnet import node_identity
from simnet._faulty import FAILING_MODULE, failing_module
from simnet._figures import latency_section, posted_rate, work_section
from simnet._invariants import invariants
from simnet._measure import chain_figures, holdings, node_figures
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
from simnet._scenario import Scenario
from simnet._scrape import summary_by_role
from simnet._worlds import world_for

# How long the shipped module images may take to build (first run only; cached after).
IMAGE_BUILD_TIMEOUT_S = 900.0


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


def run_scenario(scenario: Scenario, out_dir: Path, console: Console, *,
                 forked: bool = True) -> Report:
    """Run `scenario`, write report.json and the plots into `out_dir`; the report.

    `forked`: the nodes are forked from one zygote that has imported the node (they start at
    once and share its memory); False starts each as a `python -m` process of its own."""
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
        deals=DealCounts(by_final_state=dict(Counter(d["phase"] for d in deals)),
                         outcomes=dict(Counter(str(d.get("outcome")) for d in deals
                                               if d.get("outcome")))),
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
