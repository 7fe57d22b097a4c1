"""`lilypad-p2p chain deploy|deploy-requests`: put the contracts on a chain and record them in
the node's config.toml."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from lilypad_p2p._cli_common import HomeOption, JsonOption, PasswordFileOption, _fail
from lilypad_p2p.cli_chain import (
    ChainIdOption,
    ContractOption,
    RpcOption,
    _amount,
    _chain_target,
    _chosen_chain,
    _node_account,
    _require_chain_id,
)

chain_app = typer.Typer(help="Settlement contract administration on a JSON-RPC chain.")
DevFundOption = Annotated[
    bool, typer.Option("--dev-fund", help="First give the node's address 1000 ETH with "
                       "anvil_setBalance (development chains only).")
]
# Withdrawals wait the notice, and a payout address change twice it: past a month nobody could
# use their deposit, and a notice too large for the contract's 64-bit ready time would make
# every withdrawal revert.
MAX_WITHDRAW_NOTICE_S = 30 * 24 * 3600
# The contract keeps a mediator's stake in 128 bits: above this minimum no stake could ever
# register, and the minimum is fixed for the contract's life.
MAX_MIN_MEDIATOR_STAKE_WEI = (1 << 128) - 1


@contextmanager
def _chain_failures() -> Iterator[None]:
    """End with the one line of a chain error; a key short of gas money hears of --dev-fund."""
    from lilypad_p2p.chain import ChainError, SenderUnfunded

    try:
        yield
    except SenderUnfunded as exc:
        _fail(f"{exc} (on a development chain, --dev-fund does it)")
    except ChainError as exc:
        _fail(str(exc))


def _open_chain(rpc_url: str, account: Any, dev_fund: bool) -> Any:
    """The chain at `rpc_url`; with `dev_fund`, `account` first gets 1000 ETH from anvil.

    Raises:
        ChainError: the chain does not answer.
    """
    from web3.types import RPCEndpoint

    from lilypad_p2p.chain import open_rpc_chain

    chain = open_rpc_chain(rpc_url)
    if dev_fund:
        chain.rpc(lambda: chain.w3.provider.make_request(
            RPCEndpoint("anvil_setBalance"), [account.address, hex(1000 * 10**18)]))
    return chain


def _deploy_config(home: Path | None, rpc: str) -> Any:
    """The node's config for a deployment to `rpc`. With the `[chain]` shorthand --rpc is the
    rpc_url setting, recorded after; with `[[chains]]` it only says where to deploy, as a
    setting it would make the list ambiguous."""
    config = _chain_target(home, None, None)
    return config if config.chain_list else _chain_target(home, rpc, None)


def _record(config: Any, deployed: str, chain_id: int, rpc_url: str,
            settings: dict[str, str]) -> Path | None:
    """Record `settings` in config.toml's `[chain]`, or with `[[chains]]` in the entry that is
    chain `chain_id` at `rpc_url`; the file, or None where no entry is that chain (the caller
    says what to add). A file that cannot be edited ends the command, naming what was deployed,
    whose address would be lost otherwise."""
    from lilypad_p2p.chain import record_chain_settings, record_chains_entry

    path = config.home / "config.toml"
    try:
        if not config.chain_list:
            record_chain_settings(path, settings)
            return path
        entry = {key: value for key, value in settings.items() if key != "rpc_url"}
        return path if record_chains_entry(path, chain_id, rpc_url, entry) is not None else None
    except (ValueError, OSError) as exc:
        keys = ", ".join(f"{key} = {json.dumps(value)}" for key, value in settings.items())
        table = "this chain's [[chains]] entry" if config.chain_list else "[chain]"
        _fail(f"deployed {deployed} on chain {chain_id}, but could not record it: {exc}; put "
              f"{keys} in {table} yourself")


@chain_app.command("deploy")
def chain_deploy(
    rpc: Annotated[str, typer.Option("--rpc", help="JSON-RPC URL of the chain (with "
                                     "\\[\\[chains]] in config.toml: which chain).")],
    home: HomeOption = None,
    withdraw_notice: Annotated[
        int, typer.Option(help="Seconds between announcing and completing a withdrawal.")
    ] = 24 * 3600,
    min_mediator_stake: Annotated[
        str, typer.Option(help="Smallest stake a mediator must lock, e.g. 1eth.")
    ] = "1eth",
    dev_fund: DevFundOption = False,
    password_file: PasswordFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deploy the settlement contract from this node's key; record it in <home>/config.toml.

    With \\[chain] (or no chain yet) it sets rpc_url and contract there; with \\[\\[chains]] it
    sets the contract of the entry that is this chain at --rpc, or says what entry to add.
    """
    from lilypad_p2p.chain import deploy_settlement

    if not 0 <= withdraw_notice <= MAX_WITHDRAW_NOTICE_S:
        _fail(f"--withdraw-notice {withdraw_notice}: give 0 to {MAX_WITHDRAW_NOTICE_S} seconds "
              "(30 days); it is final for the contract's life")
    stake = _amount(min_mediator_stake)
    if stake > MAX_MIN_MEDIATOR_STAKE_WEI:
        _fail(f"--min-mediator-stake {min_mediator_stake}: give at most "
              f"{MAX_MIN_MEDIATOR_STAKE_WEI} wei (2^128 − 1, the largest stake the contract "
              "holds: above it no mediator could ever register); it is final for the "
              "contract's life")
    config = _deploy_config(home, rpc)
    account = _node_account(config, password_file)
    with _chain_failures():
        chain = _open_chain(rpc, account, dev_fund)
        address = deploy_settlement(
            chain, account, withdraw_notice_s=withdraw_notice, min_mediator_stake=stake
        )
    recorded = _record(config, f"LilypadSettlement at {address}", chain.chain_id, rpc,
                       {"rpc_url": rpc, "contract": address})
    if as_json:
        typer.echo(json.dumps({"contract": address, "chain_id": chain.chain_id,
                               "config": None if recorded is None else str(recorded)},
                              indent=2))
        return
    deployed = f"deployed LilypadSettlement at {address} on chain {chain.chain_id}"
    if recorded is not None:
        where = (f"chain {chain.chain_id}'s [[chains]] entry in {recorded}" if config.chain_list
                 else str(recorded))
        typer.echo(f"{deployed}; recorded in {where}")
        return
    path = config.home / "config.toml"
    same_id = [c for c in config.chain_list if c.chain_id == chain.chain_id]
    if same_id:  # another URL, or "embedded": the operator knows whether it is this chain
        typer.echo(f"{deployed}; {path} has chain {chain.chain_id} at "
                   f"{same_id[0].rpc_url or 'embedded'}, not {rpc}: if that is this chain, set "
                   f"contract = {json.dumps(address)} in its [[chains]] entry")
        return
    typer.echo(f"{deployed}; {path} lists [[chains]], none of them chain {chain.chain_id}: "
               "add this entry to it")
    typer.echo(f"[[chains]]\nchain_id = {chain.chain_id}\nrpc_url = {json.dumps(rpc)}\n"
               f"contract = {json.dumps(address)}")


@chain_app.command("deploy-requests")
def chain_deploy_requests(
    home: HomeOption = None,
    rpc: RpcOption = None,
    contract: ContractOption = None,
    chain_id: ChainIdOption = None,
    example: Annotated[
        bool, typer.Option("--example", help="Also deploy the example client StringJobClient "
                           "(contracts/examples/), which asks for a job and stores the answer.")
    ] = False,
    dev_fund: DevFundOption = False,
    password_file: PasswordFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deploy LilypadRequests, through which smart contracts ask for jobs.

    It serves one settlement contract (--contract, default chain.contract);
    its address is recorded as `requests` in the chain table of config.toml
    (with \\[\\[chains]]: in the entry --chain-id names, default the first).

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
    from lilypad_p2p.chain import (
        EXAMPLE_CLIENT,
        SettlementClient,
        deploy_contract,
        deploy_requests,
    )

    config = _chain_target(home, rpc, contract)
    target = _chosen_chain(config, chain_id)
    account = _node_account(config, password_file)
    with _chain_failures():
        chain = _open_chain(target.rpc_url, account, dev_fund)
        _require_chain_id(chain, target, chain_id)
        SettlementClient(chain, target.contract).require_deployed()
        requests = deploy_requests(chain, account, target.contract)
        client = deploy_contract(chain, account, EXAMPLE_CLIENT, requests) if example else None
    deployed = f"LilypadRequests at {requests}" + (
        f" and StringJobClient at {client}" if client is not None else "")
    recorded = _record(config, deployed, chain.chain_id, target.rpc_url, {"requests": requests})
    if as_json:
        typer.echo(json.dumps({"requests": requests, "example_client": client,
                               "settlement": target.contract, "chain_id": chain.chain_id,
                               "config": None if recorded is None else str(recorded)}, indent=2))
        return
    typer.echo(f"deployed LilypadRequests at {requests} on chain {chain.chain_id} "
               f"(settlement {target.contract})")
    if client is not None:
        typer.echo(f"deployed the example client StringJobClient at {client}")
    if recorded is None:
        typer.echo(f"{config.home / 'config.toml'} lists [[chains]], none of them chain "
                   f"{chain.chain_id} at {target.rpc_url}: add requests = \"{requests}\" to "
                   "this chain's entry")
    elif config.chain_list:
        typer.echo(f"recorded as requests of chain {chain.chain_id}'s [[chains]] entry in "
                   f"{recorded}")
    else:
        typer.echo(f"recorded as [chain] requests in {recorded}")
