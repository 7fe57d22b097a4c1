"""`lilypad-simnet`: N real nodes on this machine, a scenario's workload and faults, a report."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from simnet._scenario import Scenario

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)

DEFAULT_SCENARIO = Path(__file__).parent / "scenarios" / "baseline.toml"


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _scenario_or_exit(path: Path, nodes: int | None) -> Scenario:
    """The scenario at `path` with `nodes` if given, or one line saying what is wrong with it."""
    from simnet._scenario import ScenarioError, load_scenario

    try:
        return load_scenario(path).with_nodes(nodes)
    except ScenarioError as exc:
        _fail(str(exc))


@app.callback()
def main() -> None:
    """`up` runs a scenario here; `export-compose` writes it as a docker compose project."""


@app.command()
def up(
    scenario: Annotated[Path, typer.Option(help="scenario TOML")] = DEFAULT_SCENARIO,
    nodes: Annotated[int | None, typer.Option(help="node count (default: the scenario's)")] = None,
    out: Annotated[Path | None, typer.Option(help="report + node homes (default: temp)")] = None,
    fork: Annotated[bool, typer.Option(
        help="fork the nodes from one process that has imported the node: they start at once "
             "and share its memory; --no-fork starts each as a process of its own")] = True,
) -> None:
    """Start anvil and N nodes, drive the scenario, tear everything down, write the report.

    Exits 1 when an invariant of the scenario fails, 130 on Ctrl-C."""
    from rich.console import Console
    from rich.table import Table

    from simnet._runner import run_scenario
    from simnet._scenario import ScenarioError

    console = Console(width=max(Console().width, 110))
    loaded = _scenario_or_exit(scenario, nodes)
    out_dir = out or Path(tempfile.mkdtemp(prefix=f"simnet-{loaded.name}-"))
    try:
        report = run_scenario(loaded, out_dir, console, forked=fork)
    except KeyboardInterrupt:
        console.print("[red]interrupted; everything started was stopped[/]")
        raise typer.Exit(130) from None
    except ScenarioError as exc:
        _fail(f"{exc} (logs in {out_dir})")
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


@app.command("export-compose")
def export_compose(
    out: Annotated[Path, typer.Option(help="directory for the compose project")],
    scenario: Annotated[Path, typer.Option(help="scenario TOML")] = DEFAULT_SCENARIO,
    nodes: Annotated[int | None, typer.Option(help="node count (default: the scenario's)")] = None,
    subnet: Annotated[str, typer.Option(help="the project's bridge network")] = "172.29.0.0/24",
) -> None:
    """Write the scenario as a docker compose project: anvil, a setup step, one service per node.

    Then: cd OUT && ./build-image.sh && docker-compose up -d (providers need the module
    images on the engine: lilypad-p2p modules build)."""
    from simnet._compose import export_compose as export

    loaded = _scenario_or_exit(scenario, nodes)
    compose_file = export(loaded, out, repo=Path(__file__).parents[1], subnet=subnet)
    typer.echo(f"{loaded.name}: {loaded.nodes} node services in {compose_file}")


@app.command("compose-setup", hidden=True)
def compose_setup(
    rpc_url: Annotated[str, typer.Option(help="anvil's JSON-RPC URL")],
    nodes_dir: Annotated[Path, typer.Option(help="the project's nodes/ directory")],
) -> None:
    """(Inside the compose project) deploy, fund and deposit, write every node's config."""
    from simnet._compose import setup_chain

    typer.echo(f"settlement contract {setup_chain(rpc_url, nodes_dir)}")


if __name__ == "__main__":
    app()
