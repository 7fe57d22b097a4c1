"""The `lilypad-p2p` command line.

Each command imports what it needs inside its body, so `lilypad-p2p --help` stays fast and a
command never pays for libraries it does not use (web3 alone takes a second to import).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from lilypad_p2p._cli_common import HomeOption, _fail, _home
from lilypad_p2p.cli_devnet import devnet_app
from lilypad_p2p.cli_modules import modules_app

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
chain_app = typer.Typer(help="Settlement contract administration on a JSON-RPC chain.")


@app.callback()
def _private_files() -> None:
    """Whatever this program writes (the home, outputs) is its user's alone."""
    import os

    os.umask(0o077)


app.add_typer(modules_app, name="modules")
app.add_typer(devnet_app, name="devnet")
app.add_typer(chain_app, name="chain")


# --- node, offers, peers (node foundation) -------------------------------------------------

def _control(home: Path | None, method: str, params: dict[str, Any] | None = None) -> Any:
    from lilypad_p2p.control import ControlError, call

    try:
        return call(_home(home), method, params)
    except ControlError as exc:
        _fail(str(exc))


@app.command()
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
        bool, typer.Option("--chain-bridge",
                           help="Serve on-chain job requests ([chain] requests); implies --client.")
    ] = False,
    listen: Annotated[
        list[str] | None,
        typer.Option(help="Multiaddr to listen on; repeatable. Default /ip4/0.0.0.0/tcp/4001."),
    ] = None,
    bootstrap: Annotated[
        list[str] | None,
        typer.Option(help="Bootstrap peer multiaddr with /p2p/<peer id>; repeatable."),
    ] = None,
    market: Annotated[
        list[str] | None, typer.Option(help="Market to join (cpu, gpu, ...); repeatable.")
    ] = None,
    log_level: Annotated[
        str | None, typer.Option(help="debug, info, warning or error.")
    ] = None,
    rpc_url: Annotated[
        str | None,
        typer.Option(help="JSON-RPC URL of the settlement chain (default: embedded chain)."),
    ] = None,
    contract: Annotated[str | None, typer.Option(help="Settlement contract address.")] = None,
    check_rate: Annotated[
        float | None,
        typer.Option(help="Client: fraction of jobs sent to mediation as spot checks (0-1)."),
    ] = None,
    metrics_listen: Annotated[
        str | None,
        typer.Option(help="HOST:PORT for /metrics, /healthz, /readyz and the status page, "
                     "e.g. 127.0.0.1:9464 (off loopback a token from <home>/metrics.token "
                     "is required)."),
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
    then these flags; each later source wins.
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


@app.command()
def status(
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the running node's identity, roles, addresses and gossip statistics."""
    result = _control(home, "status")
    if as_json:
        typer.echo(json.dumps(result, indent=2, sort_keys=True))
        return
    typer.echo(f"{'state':>13}: {result.get('state')}")
    for fault in result.get("faults", []):
        typer.echo(f"{fault['fault']:>13}: {fault['error']} ({fault['meaning']})")
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


@app.command()
def offers(
    home: HomeOption = None,
    market: Annotated[str, typer.Option(help="Market to list.")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the valid offers the running node holds for a market."""
    result = _control(home, "offers", {"market": market})
    if as_json:
        typer.echo(json.dumps(result, indent=2, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"offers in market {market!r} ({len(result)})")
    for column in ("kind", "id", "owner", "summary", "expires in"):
        table.add_column(column)
    for offer in result:
        table.add_row(
            offer["kind"],
            offer["id"][-12:],
            offer["owner"],
            offer["summary"],
            f"{offer['expires_in_s']:.0f} s",
        )
    Console().print(table)


@app.command()
def peers(
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the peers the running node is connected to."""
    result = _control(home, "peers")
    if as_json:
        typer.echo(json.dumps(result, indent=2, sort_keys=True))
        return
    for peer in result:
        typer.echo(f"{peer['peer_id']}  {' '.join(peer.get('addrs', []))}")
    typer.echo(f"{len(result)} peer(s)")




# --- deposit, withdraw, balance, chain deploy (chain) ---------------------------------------

RpcOption = Annotated[
    str | None,
    typer.Option("--rpc", help="JSON-RPC URL of the chain (default: chain.rpc_url in config, "
                 "or LILYPAD_RPC_URL).", show_default=False),
]
ContractOption = Annotated[
    str | None,
    typer.Option("--contract", help="Settlement contract address (default: chain.contract in "
                 "config, or LILYPAD_CONTRACT).", show_default=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ChainIdOption = Annotated[
    int | None,
    typer.Option("--chain-id", help="Which of the config's [[chains]] (default: the first).",
                 show_default=False),
]


def _chain_target(home: Path | None, rpc: str | None, contract: str | None) -> Any:
    """The node's config with --rpc/--contract applied (file < env < flags)."""
    from lilypad_p2p.config import load_config
    from lilypad_p2p.errors import ConfigError

    try:
        return load_config(home=_home(home), flags={"rpc_url": rpc, "contract": contract})
    except ConfigError as exc:
        _fail(str(exc))


def _node_account(config: Any, password_file: Path | None = None) -> Any:
    """This node's account, its keystore unlocked (a password asked only if encrypted)."""
    from lilypad_p2p.cli_keys import unlock_identity

    return unlock_identity(config.keystore_dir, password_file).eth_account()


def _settlement(
    home: Path | None,
    rpc: str | None,
    contract: str | None,
    chain_id: int | None = None,
    *,
    as_node: bool = True,
    password_file: Path | None = None,
    account: Any = None,
) -> Any:
    """A SettlementClient on the configured JSON-RPC chain (with `[[chains]]`: the one
    `chain_id` names, else the first), acting as `account` (default: this node's key,
    unlocked), or read-only when `as_node` is False."""
    from lilypad_p2p.chain import ChainError, SettlementClient, open_rpc_chain

    config = _chain_target(home, rpc, contract)
    chosen = [c for c in config.chains if chain_id is None or c.chain_id == chain_id]
    if not chosen:
        _fail(f"--chain-id {chain_id}: not one of the config's [[chains]] "
              f"{[c.chain_id for c in config.chains]}")
    target = chosen[0]
    if target.rpc_url is None:
        _fail("no chain: give --rpc URL (or set chain.rpc_url); the embedded chain lives "
              "inside a node process, so the CLI cannot use it")
    if target.contract is None:
        _fail("no settlement contract: give --contract ADDRESS, set chain.contract, or run "
              "`lilypad-p2p chain deploy`")
    if account is None and as_node:
        account = _node_account(config, password_file)
    try:
        return SettlementClient(open_rpc_chain(target.rpc_url), target.contract, account)
    except ChainError as exc:
        _fail(str(exc))


def _amount(text: str) -> int:
    from lilypad_p2p.chain import parse_amount

    if text.strip().startswith("-"):
        _fail(f"{text!r}: an amount cannot be negative (to take money out of the contract, "
              "use `lilypad-p2p withdraw AMOUNT`)")
    try:
        return parse_amount(text)
    except ValueError as exc:
        _fail(str(exc))


def _show_balance(client: Any, as_json: bool) -> None:
    from lilypad_p2p.chain import format_wei

    address = client.account.address
    balance = client.balance(address)
    wallet = client.chain.balance_of(address)
    if as_json:
        typer.echo(json.dumps({
            "address": address, "contract": client.address, "free_wei": balance.free,
            "locked_wei": balance.locked, "withdraw_requested_wei": balance.withdraw_requested,
            "withdraw_ready_at": balance.withdraw_ready_at, "wallet_wei": wallet,
        }, indent=2))
        return
    typer.echo(f"{'account':<20}{address}")
    typer.echo(f"{'free':<20}{format_wei(balance.free)}")
    typer.echo(f"{'locked in deals':<20}{format_wei(balance.locked)}")
    if balance.withdraw_requested:
        typer.echo(f"{'withdrawal pending':<20}{format_wei(balance.withdraw_requested)}, "
                   f"ready at unix {balance.withdraw_ready_at}")
    typer.echo(f"{'wallet (on chain)':<20}{format_wei(wallet)}")


@app.command(context_settings={"ignore_unknown_options": True})
def deposit(
    amount: Annotated[str, typer.Argument(help="e.g. 1.5eth, 1000gwei, or wei.")],
    home: HomeOption = None,
    rpc: RpcOption = None,
    contract: ContractOption = None,
    chain_id: ChainIdOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move native ETH from this node's wallet into its settlement account."""
    from lilypad_p2p.chain import ChainError

    wei = _amount(amount)
    client = _settlement(home, rpc, contract, chain_id)
    try:
        client.deposit(wei)
    except ChainError as exc:
        _fail(str(exc))
    _show_balance(client, as_json)


@app.command(context_settings={"ignore_unknown_options": True})
def withdraw(
    amount: Annotated[
        str | None, typer.Argument(help="Amount to announce (starts the notice period).")
    ] = None,
    complete: Annotated[
        bool, typer.Option("--complete", help="Pay out the announced withdrawal after notice.")
    ] = False,
    home: HomeOption = None,
    rpc: RpcOption = None,
    contract: ContractOption = None,
    chain_id: ChainIdOption = None,
    as_json: JsonOption = False,
) -> None:
    """Withdraw in two steps: `withdraw AMOUNT` announces, `withdraw --complete` pays out.

    During the notice the announced funds stay usable by deals; completing pays at most what is
    still free then (locked funds are never withdrawn).
    """
    from lilypad_p2p.chain import ChainError

    if (amount is None) == (not complete):
        _fail("give an AMOUNT to announce a withdrawal, or --complete to finish one")
    wei = None if amount is None else _amount(amount)
    client = _settlement(home, rpc, contract, chain_id)
    try:
        if wei is None:
            client.withdraw()
        else:
            client.request_withdraw(wei)
    except ChainError as exc:
        _fail(str(exc))
    _show_balance(client, as_json)


@app.command()
def balance(
    home: HomeOption = None,
    rpc: RpcOption = None,
    contract: ContractOption = None,
    chain_id: ChainIdOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show this node's settlement account: free, locked in deals, pending withdrawal."""
    from lilypad_p2p.chain import ChainError

    client = _settlement(home, rpc, contract, chain_id)
    try:
        _show_balance(client, as_json)
    except ChainError as exc:
        _fail(str(exc))


@app.command()
def providers(
    home: HomeOption = None,
    rpc: RpcOption = None,
    contract: ContractOption = None,
    chain_id: ChainIdOption = None,
    from_block: Annotated[
        int, typer.Option("--from-block", min=0, help="First block to replay (the contract's "
                          "deployment block saves time on a long chain).")
    ] = 0,
    as_json: JsonOption = False,
) -> None:
    """Providers' track records, replayed from the settlement contract's events.

    Anyone can check them: they come from the chain alone (deals opened, completed, slashed
    for a missed deadline or a wrong result), not from the providers or from this node.
    """
    from lilypad_p2p.chain import ChainError, read_track_records

    client = _settlement(home, rpc, contract, chain_id, as_node=False)
    try:
        records, head = read_track_records(client.chain, client.address, from_block=from_block)
    except ChainError as exc:
        _fail(str(exc))
    rows = sorted(records.values(), key=lambda r: (-r.completed, r.slashes, r.provider.lower()))
    if as_json:
        typer.echo(json.dumps({"head_block": head, "providers": [
            {**dataclasses.asdict(r), "completed": r.completed, "in_progress": r.in_progress}
            for r in rows
        ]}, indent=2))
        return
    if not rows:
        typer.echo(f"no deals on {client.address} up to block {head}")
        return
    typer.echo(f"{'provider':<44}{'opened':>8}{'completed':>11}{'slashed':>9}"
               f"{'open':>6}  last slash (block {head} now)")
    for r in rows:
        slash = "-" if r.last_slash_block is None else str(r.last_slash_block)
        typer.echo(f"{r.provider:<44}{r.opened:>8}{r.completed:>11}{r.slashes:>9}"
                   f"{r.in_progress:>6}  {slash}")


@chain_app.command("deploy")
def chain_deploy(
    rpc: Annotated[str, typer.Option("--rpc", help="JSON-RPC URL of the chain.")],
    home: HomeOption = None,
    withdraw_notice: Annotated[
        int, typer.Option(help="Seconds between announcing and completing a withdrawal.")
    ] = 24 * 3600,
    min_mediator_stake: Annotated[
        str, typer.Option(help="Smallest stake a mediator must lock, e.g. 1eth.")
    ] = "1eth",
    dev_fund: Annotated[
        bool, typer.Option("--dev-fund", help="First give the node's address 1000 ETH with "
                           "anvil_setBalance (development chains only).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Deploy the settlement contract from this node's key; record it in <home>/config.toml."""
    from web3.types import RPCEndpoint

    from lilypad_p2p.chain import (
        ChainError,
        deploy_settlement,
        open_rpc_chain,
        record_chain_settings,
    )

    config = _chain_target(home, rpc, None)
    account = _node_account(config)
    stake = _amount(min_mediator_stake)
    try:
        chain = open_rpc_chain(rpc)
        if dev_fund:
            chain.rpc(lambda: chain.w3.provider.make_request(
                RPCEndpoint("anvil_setBalance"), [account.address, hex(1000 * 10**18)]))
        address = deploy_settlement(
            chain, account, withdraw_notice_s=withdraw_notice, min_mediator_stake=stake
        )
    except ChainError as exc:
        _fail(str(exc))
    config_path = config.home / "config.toml"
    record_chain_settings(config_path, {"rpc_url": rpc, "contract": address})
    if as_json:
        typer.echo(json.dumps({"contract": address, "chain_id": chain.chain_id,
                               "config": str(config_path)}, indent=2))
    else:
        typer.echo(f"deployed LilypadSettlement at {address} on chain {chain.chain_id}; "
                   f"recorded in {config_path}")



@chain_app.command("deploy-requests")
def chain_deploy_requests(
    home: HomeOption = None,
    rpc: RpcOption = None,
    contract: ContractOption = None,
    example: Annotated[
        bool, typer.Option("--example", help="Also deploy the example client StringJobClient "
                           "(contracts/examples/), which asks for a job and stores the answer.")
    ] = False,
    dev_fund: Annotated[
        bool, typer.Option("--dev-fund", help="First give the node's address 1000 ETH with "
                           "anvil_setBalance (development chains only).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Deploy LilypadRequests, through which smart contracts ask for jobs.

    It serves one settlement contract (--contract, default chain.contract);
    its address is recorded as `requests` in the chain table of config.toml.

    A contract calls requestJob(module, inputs, deadline, callbackGasLimit,
    policy) with the most it pays as msg.value (inputs: the module's
    parameters as a JSON object, public) and implements
    onLilypadResult(requestId, resultHash, output, outputIsCid). The policy
    names whom it trusts (k of n mediator addresses) and the mode: attested
    (k of them re-run the job and vote the result) or optimistic (a posted
    result is final after a challenge window unless challenged and overturned).

    A node started with --chain-bridge claims each request it can serve,
    runs it on the network and posts and delivers the result (outputs over
    1 KiB as their CID); mediator nodes with `requests` configured vote on
    requests that name them and challenge wrong optimistic results. The
    bridge waits `bridge_confirmations` blocks (default 12) before acting;
    set 0 on a chain that mines on demand.

    Example (anvil):

      lilypad-p2p chain deploy --rpc http://127.0.0.1:8545 --dev-fund

      lilypad-p2p chain deploy-requests --example

      lilypad-p2p node --chain-bridge
    """
    import tomllib

    from web3.types import RPCEndpoint

    from lilypad_p2p.chain import (
        EXAMPLE_CLIENT,
        ChainError,
        deploy_contract,
        deploy_requests,
        open_rpc_chain,
        record_chain_settings,
    )

    config = _chain_target(home, rpc, contract)
    if config.rpc_url is None:
        _fail("no chain: give --rpc URL (or set chain.rpc_url)")
    if config.contract is None:
        _fail("no settlement contract: give --contract ADDRESS, set chain.contract, or run "
              "`lilypad-p2p chain deploy` first")
    account = _node_account(config)
    try:
        chain = open_rpc_chain(config.rpc_url)
        if dev_fund:
            chain.rpc(lambda: chain.w3.provider.make_request(
                RPCEndpoint("anvil_setBalance"), [account.address, hex(1000 * 10**18)]))
        requests = deploy_requests(chain, account, config.contract)
        client = deploy_contract(chain, account, EXAMPLE_CLIENT, requests) if example else None
    except ChainError as exc:
        _fail(str(exc))
    config_path = config.home / "config.toml"
    text = config_path.read_text() if config_path.exists() else ""
    recorded = "chains" not in tomllib.loads(text)  # [[chains]]: the operator picks the entry
    if recorded:
        record_chain_settings(config_path, {"requests": requests})
    if as_json:
        typer.echo(json.dumps({"requests": requests, "example_client": client,
                               "settlement": config.contract, "chain_id": chain.chain_id,
                               "config": str(config_path) if recorded else None}, indent=2))
        return
    typer.echo(f"deployed LilypadRequests at {requests} on chain {chain.chain_id} "
               f"(settlement {config.contract})")
    if client is not None:
        typer.echo(f"deployed the example client StringJobClient at {client}")
    if recorded:
        typer.echo(f"recorded as [chain] requests in {config_path}")
    else:
        typer.echo(f"{config_path} lists [[chains]]: add requests = \"{requests}\" to this "
                   f"chain's entry")

# --- run, deals (market) ---------------------------------------------------------------------

# How often `run` asks the node about its deal, and how long it waits in all by default.
RUN_POLL_INTERVAL_S = 0.2
RUN_DEFAULT_WAIT_S = 900.0


def _parse_inputs(pairs: list[str]) -> dict[str, object]:
    params: dict[str, object] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            _fail(f"-i {pair!r}: expected key=value")
        params[name] = int(value) if value.lstrip("-").isdigit() else value
    return params


@app.command()
def run(
    module: Annotated[str, typer.Argument(help="Module to run (see `lilypad-p2p modules list`).")],
    inputs: Annotated[
        list[str] | None, typer.Option("-i", "--input", help="Parameter key=value; repeatable.")
    ] = None,
    files: Annotated[
        list[Path] | None, typer.Option("--file", help="Input file for the job; repeatable.")
    ] = None,
    max_price: Annotated[
        str, typer.Option(help="Most you pay for the job, e.g. 0.01eth or wei.")
    ] = "0.01eth",
    target: Annotated[
        str | None, typer.Option(help="Provider (address or peer ID) to run on; skips the solvers.")
    ] = None,
    deadline: Annotated[int | None, typer.Option(
        help="Seconds until the result is due (default: the module's max_run_time_s + 240). "
             "It must leave the module's whole max_run_time_s + 47 s: providers refuse deals "
             "that could cut a run short.")] = None,
    output: Annotated[
        Path, typer.Option(help="Directory for the decrypted outputs.")
    ] = Path("outputs"),
    market: Annotated[str, typer.Option(help="Market to post the job in.")] = "cpu",
    chain_id: Annotated[
        int | None, typer.Option(help="Settlement chain to pay on (default: the node's first).")
    ] = None,
    wait: Annotated[float, typer.Option(help="Give up waiting after this many seconds.")] = (
        RUN_DEFAULT_WAIT_S
    ),
    min_provider_deals: Annotated[int | None, typer.Option(
        min=0, help="Only providers with at least this many completed deals on the chain "
                    "(default: the node's require_provider_deals; 0 admits newcomers).")] = None,
    slash_free_blocks: Annotated[int | None, typer.Option(
        min=0, help="Only providers not slashed within this many blocks (default: the "
                    "node's require_slash_free_blocks).")] = None,
    home: HomeOption = None,
) -> None:
    """Run a job on the market through the local node (started with --client).

    Shows the deal's progress and writes the decrypted outputs to --output.

    Example: lilypad-p2p run hash -i text=hello --output out/
    """
    import time

    from lilypad_p2p.cli_run import Next, extract_outputs, input_file_paths, judge
    from lilypad_p2p.errors import LilypadError

    params = _parse_inputs(inputs or [])
    try:
        file_paths = input_file_paths(files or [])
    except LilypadError as exc:
        _fail(str(exc))
    submitted = _control(home, "submit", {
        "module": module, "params": params, "file_paths": file_paths,
        "max_price_wei": _amount(max_price), "target": target, "deadline_s": deadline,
        "market": market, "chain_id": chain_id, "min_completed_deals": min_provider_deals,
        "slash_free_blocks": slash_free_blocks,
    })
    key = submitted["key"]
    typer.echo(f"job offer {key} posted")
    shown: set[str] = set()
    give_up = time.monotonic() + wait
    while True:
        deal = _control(home, "deal", {"key": key})
        for step in deal["transitions"]:
            label = f"{step['to']}"
            if label not in shown:
                shown.add(label)
                extra = f" (provider {deal['provider']})" if step["to"] == "matched" else ""
                typer.echo(f"  {label}{extra}")
        verdict = judge(deal)
        if verdict.next is Next.FAIL:
            _fail(verdict.message)
        if verdict.next is Next.OUTPUTS:
            break
        if time.monotonic() > give_up:
            _fail(f"still {deal['phase']} after {wait} s; the node keeps driving it "
                  f"(`lilypad-p2p deals`)")
        time.sleep(RUN_POLL_INTERVAL_S)
    names = extract_outputs(Path(deal["result_path"]), output)
    typer.echo(f"result {deal['result_cid']} verified; outputs in {output}/: {', '.join(names)}")


@app.command()
def deals(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """List this node's deals (as client and as provider) and their states."""
    listed = _control(home, "deals")
    if as_json:
        typer.echo(json.dumps(listed, indent=2))
        return
    if not listed:
        typer.echo("no deals")
        return
    typer.echo(f"{'side':<9}{'phase':<17}{'module':<10}{'payment (wei)':>20}  key")
    for deal in listed:
        payment = "" if deal["payment_wei"] is None else str(deal["payment_wei"])
        typer.echo(f"{deal['side']:<9}{deal['phase']:<17}{deal['module'] or '':<10}"
                   f"{payment:>20}  {deal['key']}")


# --- dispute (mediation) ---------------------------------------------------------------------


@app.command()
def dispute(
    key: Annotated[str, typer.Argument(help="The deal's key (see `lilypad-p2p deals`).")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send a deal whose result you doubt to its mediators (before it settles).

    The job creator's node records the result on chain if needed, disputes it, and the deal's
    consortium re-runs the job; `lilypad-p2p deals` shows it disputed, then resolved.
    """
    deal = _control(home, "dispute", {"key": key})
    if as_json:
        typer.echo(json.dumps(deal, indent=2))
        return
    typer.echo(f"deal {key} is {deal['phase']}: its mediators are re-running the job")


# Registered last: cli_keys and cli_market import this module's shared options and helpers. Run
# as a script (`python -m lilypad_p2p.cli`), this file is `__main__`, a second copy of the
# module: it runs the app of `lilypad_p2p.cli` instead, so cli_keys never imports a half-built
# `__main__`.
if __name__ == "__main__":
    from lilypad_p2p.cli import app as package_app

    package_app()
else:
    from lilypad_p2p.cli_keys import keys_app, payout_app
    from lilypad_p2p.cli_market import market

    app.command("market")(market)
    app.add_typer(keys_app, name="keys")
    app.add_typer(payout_app, name="payout")
