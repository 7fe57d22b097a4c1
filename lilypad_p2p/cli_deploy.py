"""`lilypad-p2p chain deploy|deploy-requests`: put the contracts on a chain and record them in
the node's config.toml."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from lilypad_p2p._cli_common import HomeOption, JsonOption, PasswordFileOption, _fail
from lilypad_p2p.cli_chain import (
    ContractOption,
    RpcOption,
    _amount,
    _chain_target,
    _node_account,
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
    dev_fund: DevFundOption = False,
    password_file: PasswordFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deploy the settlement contract from this node's key; record it in <home>/config.toml."""
    from lilypad_p2p.chain import (
        deploy_settlement,
        record_chain_settings,
    )

    if not 0 <= withdraw_notice <= MAX_WITHDRAW_NOTICE_S:
        _fail(f"--withdraw-notice {withdraw_notice}: give 0 to {MAX_WITHDRAW_NOTICE_S} seconds "
              "(30 days); it is final for the contract's life")
    config = _chain_target(home, rpc, None)
    account = _node_account(config, password_file)
    stake = _amount(min_mediator_stake)
    with _chain_failures():
        chain = _open_chain(rpc, account, dev_fund)
        address = deploy_settlement(
            chain, account, withdraw_notice_s=withdraw_notice, min_mediator_stake=stake
        )
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
    dev_fund: DevFundOption = False,
    password_file: PasswordFileOption = None,
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

    from lilypad_p2p.chain import (
        EXAMPLE_CLIENT,
        SettlementClient,
        deploy_contract,
        deploy_requests,
        record_chain_settings,
    )

    config = _chain_target(home, rpc, contract)
    if config.rpc_url is None:
        _fail("no chain: give --rpc URL (or set chain.rpc_url)")
    if config.contract is None:
        _fail("no settlement contract: give --contract ADDRESS, set chain.contract, or run "
              "`lilypad-p2p chain deploy` first")
    account = _node_account(config, password_file)
    with _chain_failures():
        chain = _open_chain(config.rpc_url, account, dev_fund)
        SettlementClient(chain, config.contract).require_deployed()
        requests = deploy_requests(chain, account, config.contract)
        client = deploy_contract(chain, account, EXAMPLE_CLIENT, requests) if example else None
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
