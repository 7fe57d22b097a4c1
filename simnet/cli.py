"""`lilypad-simnet`: N real nodes on this machine, a scenario's workload and faults, a report."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)

DEFAULT_SCENARIO = Path(__file__).parent / "scenarios" / "baseline.toml"


@app.callback()
def main() -> None:
    """Keeps `up` a subcommand (more commands follow: compose export)."""


@app.command()
def up(
    scenario: Annotated[Path, typer.Option(help="scenario TOML")] = DEFAULT_SCENARIO,
    nodes: Annotated[int | None, typer.Option(help="node count (default: the scenario's)")] = None,
    out: Annotated[Path | None, typer.Option(help="report + node homes (default: temp)")] = None,
) -> None:
    """Start anvil and N nodes, drive the scenario, tear everything down, write the report.

    Exits 1 when an invariant of the scenario fails, 130 on Ctrl-C."""
    from rich.console import Console
    from rich.table import Table

    from simnet._runner import run_scenario
    from simnet._scenario import load_scenario

    console = Console(width=max(Console().width, 110))
    loaded = load_scenario(scenario).with_nodes(nodes)
    out_dir = out or Path(tempfile.mkdtemp(prefix=f"simnet-{loaded.name}-"))
    try:
        report = run_scenario(loaded, out_dir, console)
    except KeyboardInterrupt:
        console.print("[red]interrupted; everything started was stopped[/]")
        raise typer.Exit(130) from None
    table = Table(title=f"{loaded.name}: {report['jobs']} jobs on {report['node_count']} nodes "
                  f"in {report['wall_s']} s")
    for column in ("invariant", "ok", "detail"):
        table.add_column(column)
    for check in report["invariants"]:
        table.add_row(check["name"], "[green]yes[/]" if check["ok"] else "[red]NO[/]",
                      check["detail"])
    console.print(table)
    latencies = report["latencies"]["summary"]
    console.print("latency p50/p99 s: " + ", ".join(
        f"{name} {row['p50']}/{row['p99']}" for name, row in latencies.items()))
    console.print(f"deals: {report['deals']['by_final_state']}; gas/deal mean "
                  f"{report['gas']['mean']}; report in {out_dir / 'report.json'}")
    if not report["passed"]:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
