"""`lilypad-p2p devnet up|status|down`: a local network that stays up (see `devnet.py`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lilypad_p2p._cli_common import _fail

devnet_app = typer.Typer(
    help="A local network that stays up: chain, contract, providers, a solver, a client."
)
DirOption = Annotated[
    Path | None,
    typer.Option("--dir", envvar="LILYPAD_DEVNET_DIR", show_default=False,
                 help="Where the devnet keeps its homes and state "
                 "(default ~/.lilypad-p2p-devnet)."),
]


def _directory(directory: Path | None) -> Path:
    from lilypad_p2p.devnet import default_directory

    return directory if directory is not None else default_directory()


@devnet_app.command("up")
def devnet_up(
    directory: DirOption = None,
    providers: Annotated[int, typer.Option(help="How many provider nodes.", min=1, max=8)] = 2,
) -> None:
    """Start anvil, deploy the contract, fund and start the nodes; leave them running."""
    from lilypad_p2p.devnet import DevnetError, docker_problem, up

    try:
        state = up(_directory(directory), providers=providers)
    except DevnetError as exc:
        _fail(str(exc))
    typer.echo(f"devnet up: chain {state.rpc_url}, contract {state.contract}")
    typer.echo(f"nodes: {', '.join(sorted(state.nodes))}")
    typer.echo(f"use the client:  export LILYPAD_HOME={state.client_home}")
    typer.echo("then e.g.:       lilypad-p2p run hash -i text=hello --output out/")
    if problem := docker_problem():
        # Up without Docker still serves gossip and the chain; only jobs cannot run.
        typer.echo(f"warning: the providers cannot run jobs until Docker answers: {problem}",
                   err=True)


@devnet_app.command("status")
def devnet_status(
    directory: DirOption = None,
    client_home: Annotated[bool, typer.Option("--client-home",
                                              help="Print only the client's home.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What is running in the devnet."""
    from lilypad_p2p.devnet import DevnetError, status

    try:
        report = status(_directory(directory))
    except DevnetError as exc:
        _fail(str(exc))
    if client_home:
        typer.echo(report["client_home"])
        return
    if as_json:
        typer.echo(json.dumps(report, indent=2, sort_keys=True))
        return
    typer.echo(f"chain {report['rpc_url']}: {'up' if report['chain_running'] else 'DOWN'}")
    for name, node in sorted(report["nodes"].items()):
        state = "up" if node["running"] else "DOWN"
        typer.echo(f"{name:<12} {state:<5} {node.get('address') or ''}  {node['home']}")
        if node.get("state") == "degraded":
            typer.echo(f"{'':<12} degraded: {', '.join(node['faults'])} "
                       f"(LILYPAD_HOME={node['home']} lilypad-p2p status says why)")


@devnet_app.command("down")
def devnet_down(directory: DirOption = None) -> None:
    """Stop every devnet process (their homes stay, for reading logs, until the next up)."""
    from lilypad_p2p.devnet import DevnetError, down

    try:
        stopped = down(_directory(directory))
    except DevnetError as exc:
        _fail(str(exc))
    typer.echo(f"devnet down ({stopped} processes stopped)")
