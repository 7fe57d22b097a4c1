"""The `lilypad-p2p` command line: the app and its commands, each group in its own module.

Each command imports what it needs inside its body, so `lilypad-p2p --help` stays fast and a
command never pays for libraries it does not use (web3 alone takes a second to import).
"""

from __future__ import annotations

import typer

from lilypad_p2p._cli_common import reflow_help
from lilypad_p2p.cli_chain import balance, deposit, providers, withdraw
from lilypad_p2p.cli_deploy import chain_app
from lilypad_p2p.cli_devnet import devnet_app
from lilypad_p2p.cli_jobs import deals, dispute, run
from lilypad_p2p.cli_keys import keys_app, payout_app
from lilypad_p2p.cli_market import market
from lilypad_p2p.cli_modules import modules_app
from lilypad_p2p.cli_node import node, offers, peers, status
from lilypad_p2p.config_doc import help_epilog

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


@app.callback()
def _private_files() -> None:
    """Whatever this program writes (the home, outputs) is its user's alone."""
    import os

    os.umask(0o077)


app.add_typer(modules_app, name="modules")
app.add_typer(devnet_app, name="devnet")
app.add_typer(chain_app, name="chain")
app.command(epilog=help_epilog())(node)
app.command()(status)
app.command()(offers)
app.command()(peers)
# An amount may start with "-" (refused with a clear line, not read as an option).
app.command(context_settings={"ignore_unknown_options": True})(deposit)
app.command(context_settings={"ignore_unknown_options": True})(withdraw)
app.command()(balance)
app.command()(providers)
app.command()(run)
app.command()(deals)
app.command()(dispute)
app.command("market")(market)
app.add_typer(keys_app, name="keys")
app.add_typer(payout_app, name="payout")
reflow_help(app)

if __name__ == "__main__":
    app()
