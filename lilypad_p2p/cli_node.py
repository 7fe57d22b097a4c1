"""`lilypad-p2p node` and what it says about itself: `status`, `offers`, `peers`.

The node's settings come from `config.SETTINGS`: its flags take their help from there and
`node --help` ends with the list of every setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lilypad_p2p._cli_common import HomeOption, JsonOption, _control, _fail, _json_shown
from lilypad_p2p.config import SETTINGS

_SETTINGS = {row.name: row for row in SETTINGS}


def _about(name: str, note: str = "") -> str:
    """A flag's help: the setting's own line from the table, what it allows, where else it is
    set."""
    row = _SETTINGS[name]
    return (f"{row.help[0].upper()}{row.help[1:]}: {row.kind.allowed()}{note}. Also "
            f"{row.label} in config.toml, {row.env}.")


def node(
    home: HomeOption = None,
    config: Annotated[
        Path | None, typer.Option(help="Config file (default: <home>/config.toml).")
    ] = None,
    client: Annotated[bool, typer.Option("--client", help="Submit jobs (job creator).")] = False,
    provider: Annotated[
        bool, typer.Option("--provider", help="Offer this machine's CPU/RAM and run jobs.")
    ] = False,
    solver: Annotated[
        bool, typer.Option("--solver", help="Match offers in this node's markets.")
    ] = False,
    mediator: Annotated[
        bool, typer.Option("--mediator", help="Re-run disputed jobs and sign verdicts.")
    ] = False,
    relay: Annotated[
        bool, typer.Option("--relay", help="Serve as bootstrap and relay for NATed peers.")
    ] = False,
    chain_bridge: Annotated[
        bool, typer.Option("--chain-bridge", help="Serve on-chain job requests (\\[chain] "
                                                  "requests); implies --client.")
    ] = False,
    listen: Annotated[
        list[str] | None,
        typer.Option(help=_about("listen", "; repeatable")),
    ] = None,
    bootstrap: Annotated[
        list[str] | None,
        typer.Option(help=_about("bootstrap", "; repeatable")),
    ] = None,
    market: Annotated[
        list[str] | None, typer.Option(help=_about("markets", "; repeatable"))
    ] = None,
    log_level: Annotated[
        str | None, typer.Option(help=_about("log_level"))
    ] = None,
    rpc_url: Annotated[
        str | None,
        typer.Option(help=_about("rpc_url")),
    ] = None,
    contract: Annotated[str | None, typer.Option(help=_about("contract"))] = None,
    check_rate: Annotated[
        float | None,
        typer.Option(help=_about("check_rate_ppm")),
    ] = None,
    metrics_listen: Annotated[
        str | None,
        typer.Option(help=_about("metrics_listen", ", e.g. 127.0.0.1:9464 (off loopback a "
                                        "token from <home>/metrics.token is required)")),
    ] = None,
    password_file: Annotated[
        Path | None,
        typer.Option("--password-file", envvar="LILYPAD_KEY_PASSWORD_FILE",
                     help="File (mode 0600) with the keystore password, for unattended starts; "
                          "else LILYPAD_KEY_PASSWORD, else a prompt.", show_default=False),
    ] = None,
) -> None:
    """Run a node until Ctrl-C.

    Settings come from <home>/config.toml, then LILYPAD_* environment variables,
    then these flags; each later source wins (every setting is listed below).
    Role flags, when any is given, replace the configured roles.

    Example: lilypad-p2p node --provider --bootstrap /ip4/203.0.113.7/tcp/4001/p2p/16Uiu2...
    """
    import trio

    from lilypad_p2p.config import load_config
    from lilypad_p2p.errors import LilypadError
    from lilypad_p2p.keystore import password_source
    from lilypad_p2p.logs import configure_logging
    from lilypad_p2p.node import run_node

    chosen = [
        name
        for name, wanted in (
            ("client", client),
            ("provider", provider),
            ("solver", solver),
            ("mediator", mediator),
            ("relay", relay),
            ("chain-bridge", chain_bridge),
            ("client", chain_bridge),
        )
        if wanted
    ]
    flags: dict[str, object] = {
        "roles": chosen or None,
        "listen": listen or None,
        "bootstrap": bootstrap or None,
        "markets": market or None,
        "log_level": log_level,
        "rpc_url": rpc_url,
        "contract": contract,
        "check_rate_ppm": check_rate,
        "metrics_listen": metrics_listen,
    }
    try:
        node_config = load_config(home=home, config_file=config, flags=flags)
        configure_logging(node_config.log_level)  # the keystore may log a warning
        trio.run(run_node, node_config, password_source(password_file))
    except LilypadError as exc:
        _fail(str(exc), code=2)
    except KeyboardInterrupt:
        pass


def status(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Show the running node's identity, roles, addresses and gossip statistics."""
    result = _control(home, "status")
    if _json_shown(result, as_json, sort_keys=True):
        return
    typer.echo(f"{'state':>13}: {result.get('state')}")
    for fault in result.get("faults", []):
        typer.echo(f"{fault['fault']:>13}: {fault['error']} ({fault['meaning']})")
    for module in result.get("modules_beyond_offer", []):
        typer.echo(f"{'not offered':>13}: {module}: more than this provider offers, so no job "
                   "of it matches (free disk, or set offer_disk_mb, or allow fewer modules)")
    for key in ("peer_id", "address", "roles", "markets", "listen_addrs", "peers", "uptime_s"):
        typer.echo(f"{key:>13}: {result.get(key)}")
    nat = result.get("nat") or {}
    relays = [reservation["relay"] for reservation in nat.get("reservations", [])]
    typer.echo(f"{'reachability':>13}: {nat.get('reachability', 'unknown')}")
    typer.echo(f"{'relays':>13}: {relays or '-'}")
    for chain in result.get("chains", []):  # settlement chains
        state = (f"head {chain['head']}, free {chain['free_wei']} wei, "
                 f"locked {chain['locked_wei']} wei" if chain.get("connected")
                 else f"not answering: {chain.get('error')}")
        default = " (default)" if chain.get("default") else ""
        typer.echo(f"{'chain':>13}: {chain['chain_id']}{default} {chain['contract']} "
                   f"@ {chain['rpc_url']}: {state}")


def offers(
    home: HomeOption = None,
    market: Annotated[str, typer.Option(help="Market to list.")] = "cpu",
    as_json: JsonOption = False,
) -> None:
    """List the valid offers the running node holds for a market."""
    result = _control(home, "offers", {"market": market})
    if _json_shown(result, as_json, sort_keys=True):
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"offers in market {market!r} ({len(result)})")
    table.add_column("kind")
    table.add_column("id")
    # The owner is what `run --target` takes: shown whole, folded rather than cut short.
    table.add_column("owner", min_width=42, overflow="fold")
    table.add_column("summary")
    table.add_column("expires in")
    for offer in result:
        table.add_row(
            offer["kind"],
            offer["id"][-12:],
            offer["owner"],
            offer["summary"],
            f"{offer['expires_in_s']:.0f} s",
        )
    Console().print(table)


def peers(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """List the peers the running node is connected to."""
    result = _control(home, "peers")
    if _json_shown(result, as_json, sort_keys=True):
        return
    for peer in result:
        typer.echo(f"{peer['peer_id']}  {' '.join(peer.get('addrs', []))}")
    typer.echo(f"{len(result)} peer(s)")
