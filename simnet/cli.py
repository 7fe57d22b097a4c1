"""`lilypad-simnet`: N real nodes on this machine, a scenario's workload and faults, a report."""

from __future__ import annotations

import contextlib
import ipaddress
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from lilypad_p2p.cli import reflow_help
from simnet._scenario import MAX_NODES, MIN_NODES, shipped_scenarios

if TYPE_CHECKING:
    from simnet._scenario import Scenario

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)

DEFAULT_SCENARIO = "baseline"
SCENARIO_HELP = ("a scenario file (TOML), or the name of one shipped in simnet/scenarios/: "
                 + ", ".join(shipped_scenarios()))
NODES_HELP = f"node count, {MIN_NODES} to {MAX_NODES} (default: the scenario's)"
# The exit status of a refusal: bad input, said in one line before anything starts.
REFUSED = 2


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(REFUSED)


def _scenario_or_exit(name_or_path: str, nodes: int | None) -> Scenario:
    """The scenario `name_or_path` names, with `nodes` if given, or one line saying what is
    wrong with it (its plan and [node] settings included: they are checked on loading)."""
    from simnet._scenario import ScenarioError, load_scenario, scenario_path

    try:
        return load_scenario(scenario_path(name_or_path)).with_nodes(nodes)
    except ScenarioError as exc:
        _fail(str(exc))


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@app.callback()
def main() -> None:
    """`up` runs a scenario here; `export-compose` writes it as a docker compose project."""


@app.command()
def up(
    scenario: Annotated[str, typer.Option(help=SCENARIO_HELP)] = DEFAULT_SCENARIO,
    nodes: Annotated[int | None, typer.Option(help=NODES_HELP)] = None,
    out: Annotated[Path | None, typer.Option(
        help="directory for the report and node homes: new, empty, or a previous run's, whose "
             "node homes, report and plots this run replaces (default: a new temp dir)")] = None,
    fork: Annotated[bool, typer.Option(
        help="fork the nodes from one process that has imported the node: they start at once "
             "and share its memory; --no-fork starts each as a process of its own")] = True,
) -> None:
    """Start anvil and N nodes, drive the scenario, tear everything down, write the report.

    Exits 1 when an invariant of the scenario fails, 2 when the scenario or --out is refused
    or the run fails, 130 on Ctrl-C, SIGTERM or SIGHUP."""
    from rich.console import Console
    from rich.table import Table

    from lilypad_p2p.localnet import ClusterError
    from simnet._netns import NetnsError
    from simnet._outdir import OutDirError, claim_run_dir, holds_output
    from simnet._runner import run_scenario
    from simnet._scenario import ScenarioError

    console = Console(width=max(Console().width, 110))
    loaded = _scenario_or_exit(scenario, nodes)
    temporary = out is None
    try:
        # The name comes from the file: a slash in it must not place the directory elsewhere.
        safe_name = re.sub(r"[^A-Za-z0-9_.-]", "-", loaded.name)
        out_dir = out or Path(tempfile.mkdtemp(prefix=f"simnet-{safe_name}-"))
        previous = claim_run_dir(out_dir)
    except OutDirError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot make a temp directory ({exc.strerror or exc}): pass --out DIR")
    if previous:
        console.print(f"{out_dir} holds a previous run: its node homes, report.json and plots "
                      "are replaced")

    def left_behind() -> str:
        """Where a run that did not finish left its files (a temp dir nobody named, with
        throwaway node keys in it, is said out loud), or removed an empty temp dir."""
        if holds_output(out_dir):
            what = "node homes (throwaway keys) and logs" if temporary else "logs"
            return f"; its {what} are in {out_dir}" + (" (remove it when done)"
                                                        if temporary else "")
        if temporary:
            with contextlib.suppress(OSError):
                for entry in out_dir.iterdir():
                    entry.unlink()
                out_dir.rmdir()
        return ""

    try:
        report = run_scenario(loaded, out_dir, console, forked=fork)
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            console.print(f"[red]interrupted; everything started was stopped[/]{left_behind()}")
        raise typer.Exit(130) from None
    except OutDirError as exc:
        _fail(str(exc))
    except (ScenarioError, ClusterError, NetnsError) as exc:
        _fail(f"{_one_line(exc)}{left_behind()}")
    table = Table(title=f"{loaded.name}: {report.jobs} jobs on {report.node_count} nodes "
                  f"in {report.wall_s} s")
    for column in ("invariant", "ok", "detail"):
        table.add_column(column)
    for check in report.invariants:
        table.add_row(check.name, "[green]yes[/]" if check.ok else "[red]NO[/]", check.detail)
    console.print(table)
    console.print(f"jobs posted at {report.posted_per_s} /s "
                  f"(the scenario asks {loaded.workload.rate_per_s} /s)")
    console.print("latency p50/p99 s: " + ", ".join(
        f"{name} {row.p50}/{row.p99}" for name, row in report.latencies.summary.items()))
    console.print(f"deals: {report.deals.by_final_state}; gas/deal mean "
                  f"{report.gas.mean}; report in {out_dir / 'report.json'}")
    counted = "the nodes' and the zygote's PSS" if fork else "the nodes' PSS"
    console.print(f"memory: {report.memory.per_node_mb} MB per node ({counted}, summed, over "
                  f"{report.node_count})")
    if not report.passed:
        raise typer.Exit(1)


def _subnet_or_exit(subnet: str) -> str:
    """`subnet` if it is a private IPv4 network (a compose bridge must not shadow public
    addresses the hosts reach), else one line saying what to pass."""
    try:
        network = ipaddress.ip_network(subnet)
    except ValueError as exc:
        _fail(f"--subnet {subnet}: {exc}; pass a private IPv4 network such as 172.29.0.0/24")
    if network.version != 4 or not network.is_private:
        _fail(f"--subnet {subnet} is not a private IPv4 range: pass one inside 10.0.0.0/8, "
              "172.16.0.0/12 or 192.168.0.0/16, such as 172.29.0.0/24")
    return str(network)


@app.command("export-compose")
def export_compose(
    out: Annotated[Path, typer.Option(
        help="directory for the compose project: new, empty, or a previous export's (its node "
             "keys are kept)")],
    scenario: Annotated[str, typer.Option(help=SCENARIO_HELP)] = DEFAULT_SCENARIO,
    nodes: Annotated[int | None, typer.Option(help=NODES_HELP)] = None,
    subnet: Annotated[str, typer.Option(
        help="the project's bridge network, a private IPv4 range")] = "172.29.0.0/24",
) -> None:
    """Write the scenario as a docker compose project: anvil, a setup step, one service per node.

    Then: cd OUT && ./build-image.sh && docker-compose up -d (providers need the module
    images on the engine: lilypad-p2p modules build)."""
    from simnet._compose import export_compose as export
    from simnet._scenario import ScenarioError

    loaded = _scenario_or_exit(scenario, nodes)
    network = _subnet_or_exit(subnet)
    try:
        # It checks the scenario and the subnet, then --out, before it writes anything.
        compose_file = export(loaded, out, repo=Path(__file__).parents[1], subnet=network)
    except ScenarioError as exc:  # OutDirError too
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot write the project into --out {out} ({exc.strerror or exc}): pass a "
              "directory you can write")
    typer.echo(f"{loaded.name}: {loaded.nodes} node services in {compose_file}")


@app.command("compose-setup", hidden=True)
def compose_setup(
    rpc_url: Annotated[str, typer.Option(help="anvil's JSON-RPC URL")],
    nodes_dir: Annotated[Path, typer.Option(help="the project's nodes/ directory")],
) -> None:
    """(Inside the compose project) deploy, fund and deposit, write every node's config."""
    from simnet._compose import setup_chain

    typer.echo(f"settlement contract {setup_chain(rpc_url, nodes_dir)}")


reflow_help(app)

if __name__ == "__main__":
    app()
