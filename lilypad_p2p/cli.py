"""The `lilypad-p2p` command line.

Each command imports what it needs inside its body, so `lilypad-p2p --help` stays fast and a
command never pays for libraries it does not use (web3 alone takes a second to import).
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="lilypad-p2p",
    help=(
        "A peer-to-peer compute marketplace node.\n\n"
        "Start a node with `lilypad-p2p node`, choosing roles with --client, --provider, "
        "--solver, --mediator. Other commands talk to a running node or to the chain."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="Create and show this node's keys (never prints a secret).")
modules_app = typer.Typer(help="Job modules: list them, build their images offline.")
chain_app = typer.Typer(help="Settlement contract administration on a JSON-RPC chain.")
app.add_typer(keys_app, name="keys")
app.add_typer(modules_app, name="modules")
app.add_typer(chain_app, name="chain")


# --- node, offers, peers (node foundation) -------------------------------------------------


# --- keys (identity) -------------------------------------------------------------------------


# --- modules (exec) --------------------------------------------------------------------------


# --- deposit, withdraw, balance, chain deploy (chain) ---------------------------------------


if __name__ == "__main__":
    app()
