"""`lilypad-p2p deposit|withdraw|balance|providers`: this node's settlement account and the
providers' track records, on a JSON-RPC chain; and the chain options and client that `keys`,
`payout` and `chain` share.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from lilypad_p2p._cli_common import (
    HomeOption,
    JsonOption,
    PasswordFileOption,
    _fail,
    _fail_on,
    _home,
)

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
ChainIdOption = Annotated[
    int | None,
    typer.Option("--chain-id", help="Which of the config's \\[\\[chains]] (default: the first); "
                 "with \\[chain], the chain ID its RPC must report.", show_default=False),
]

# A public figure's account: read without the node's key.
AccountArgument = Annotated[
    str | None,
    typer.Argument(help="Any account (default: this node's, whose address is read from its key "
                        "file without unlocking it).", show_default=False),
]

# The options every chain command takes, in the order `--help` lists them.
_CHAIN_OPTIONS = {
    "home": HomeOption, "rpc": RpcOption, "contract": ContractOption, "chain_id": ChainIdOption,
    "password_file": PasswordFileOption,
}


@dataclasses.dataclass(frozen=True)
class ChainOptions:
    """What a chain command was told: --home, --rpc, --contract, --chain-id and
    --password-file (which unlocks the node key)."""

    home: Path | None
    rpc: str | None
    contract: str | None
    chain_id: int | None
    password_file: Path | None

    def account(self, given: str | None) -> str:
        """The account a public figure is shown for: `given`, checked, or this node's, read
        from its key file without unlocking the key."""
        from lilypad_p2p.keystore import KeystoreError, stored_address

        if given is not None:
            return checked_address(given, "ACCOUNT")
        config = _chain_target(self.home, self.rpc, self.contract)
        with _fail_on(KeystoreError):
            return stored_address(config.keystore_dir)

    def settlement(self, **how: Any) -> Any:
        """The SettlementClient these options name (`how`: as `_settlement`'s keywords)."""
        return _settlement(self.home, self.rpc, self.contract, self.chain_id,
                           **{"password_file": self.password_file, **how})


def chain_command(command: Callable[..., None]) -> Callable[..., None]:
    """`command`, whose keyword-only `chain: ChainOptions` parameter typer shows as the shared
    options (in its place), so that each command declares them once, not five times.

    A command that declares its own `password_file` keeps it (one --password-file, also
    passed on in `chain`)."""
    return _with_chain_options(command, _CHAIN_OPTIONS)


def chain_reader_command(command: Callable[..., None]) -> Callable[..., None]:
    """`chain_command` for a command that only reads the chain: no --password-file, which it
    would never use (its `chain.password_file` is None)."""
    return _with_chain_options(
        command, {k: v for k, v in _CHAIN_OPTIONS.items() if k != "password_file"})


def _with_chain_options(command: Callable[..., None],
                        shown: dict[str, Any]) -> Callable[..., None]:
    """`command` with its `chain` parameter shown as the options in `shown`; a chain option
    not shown reaches `chain` as None."""
    signature = inspect.signature(command, eval_str=True)
    own = set(signature.parameters)
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        if parameter.name != "chain":
            parameters.append(parameter)
            continue
        parameters.extend(
            inspect.Parameter(name, parameter.kind, default=None, annotation=annotation)
            for name, annotation in shown.items() if name not in own
        )

    @functools.wraps(command)
    def run(**given: Any) -> None:
        chain = ChainOptions(*(given[name] if name in own else given.pop(name, None)
                               for name in _CHAIN_OPTIONS))
        command(chain=chain, **given)

    run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return run


def _chain_target(home: Path | None, rpc: str | None, contract: str | None) -> Any:
    """The node's config with --rpc/--contract applied (file < env < flags)."""
    from lilypad_p2p.config import load_config
    from lilypad_p2p.errors import ConfigError

    with _fail_on(ConfigError):
        # An error about --rpc names the option as these commands spell it (the node's is
        # --rpc-url).
        return load_config(home=_home(home), flags={"rpc_url": rpc, "contract": contract},
                           flag_names={"rpc_url": "--rpc"})


def _node_account(config: Any, password_file: Path | None = None) -> Any:
    """This node's account, its keystore unlocked (a password asked only if encrypted)."""
    from lilypad_p2p.cli_keys import unlock_identity

    return unlock_identity(config.keystore_dir, password_file).eth_account()


def _chosen_chain(config: Any, chain_id: int | None) -> Any:
    """The chain of `config` that `chain_id` names (None: the first), on JSON-RPC and with a
    settlement contract.

    With the `[chain]` shorthand the chain's ID is not in the config, only its RPC knows it:
    that one chain is returned, and `_require_chain_id` checks --chain-id once it is open."""
    if config.chain_list and chain_id is not None:
        listed = [c.chain_id for c in config.chain_list]
        if chain_id not in listed:
            _fail(f"--chain-id {chain_id}: config.toml's [[chains]] list chain "
                  f"{', '.join(map(str, listed))}: give one of those, or add an entry for "
                  f"chain {chain_id}")
    target = next(c for c in config.chains if chain_id is None or c.chain_id in (None, chain_id))
    if target.rpc_url is None:
        _fail("no chain: give --rpc URL (or set chain.rpc_url); the embedded chain lives "
              "inside a node process, so the CLI cannot use it")
    if target.contract is None:
        _fail("no settlement contract: give --contract ADDRESS, set chain.contract, or run "
              "`lilypad-p2p chain deploy`")
    return target


def _require_chain_id(chain: Any, target: Any, chain_id: int | None) -> None:
    """End the command unless the chain at `target.rpc_url` is the one asked for: --chain-id
    (the only check with `[chain]`, whose ID the config does not hold) and the `[[chains]]`
    entry's chain_id (a URL pointing at another chain would act there under this entry's
    name)."""
    wanted = chain_id if chain_id is not None else target.chain_id
    if wanted is None or chain.chain_id == wanted:
        return
    if target.chain_id is None:
        _fail(f"--chain-id {wanted}: the chain at {target.rpc_url} is chain "
              f"{chain.chain_id}: give --chain-id {chain.chain_id}, or --rpc the URL of chain "
              f"{wanted}")
    _fail(f"config.toml's [[chains]] entry for chain {wanted} has rpc_url {target.rpc_url}, "
          f"which is chain {chain.chain_id}: fix that entry's rpc_url or chain_id")


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
    target = _chosen_chain(config, chain_id)
    with _fail_on(ChainError):
        chain = open_rpc_chain(target.rpc_url)
    _require_chain_id(chain, target, chain_id)  # before a password is asked for that chain
    if account is None and as_node:
        account = _node_account(config, password_file)
    with _fail_on(ChainError):
        client = SettlementClient(chain, target.contract, account)
        client.require_deployed()
    return client


def _amount(text: str) -> int:
    from lilypad_p2p.chain import parse_amount

    if text.strip().startswith("-"):
        _fail(f"{text!r}: an amount cannot be negative (to take money out of the contract, "
              "use `lilypad-p2p withdraw AMOUNT`)")
    with _fail_on(ValueError):
        return parse_amount(text)


def checked_address(text: str, what: str) -> str:
    """`text` as a checksummed address, or the command ends with one line.

    A mixed-case address carries an EIP-55 checksum, which catches a mistyped character: it
    must match (eth_utils' is_address does not check it, and re-checksumming a typo would pay
    an address nobody holds). All one case after 0x has no checksum and is taken as written."""
    from eth_utils import is_checksum_address, to_checksum_address

    if not re.fullmatch(r"0x[0-9a-fA-F]{40}", text):
        _fail(f"{text!r} is not an address: give {what} as 0x followed by 40 hex digits")
    digits = text[2:]
    if digits not in (digits.lower(), digits.upper()) and not is_checksum_address(text):
        _fail(f"{what} {text}: its EIP-55 checksum (the mix of capital letters) does not "
              "match, so a character is wrong: copy the address again from its source")
    return str(to_checksum_address(text))


def _show_balance(client: Any, as_json: bool, address: str | None = None) -> None:
    """The settlement account of `address` (default: the client's own) as a table or JSON."""
    from lilypad_p2p.chain import format_wei

    address = address or client.account.address
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


def _positive_amount(text: str) -> int:
    wei = _amount(text)
    if wei == 0:
        _fail(f"{text!r} is 0, which moves nothing: give more than 0")
    return wei


def _note(message: str) -> None:
    """A line for the operator on stderr (stdout stays the balance, or its JSON)."""
    typer.secho(message, err=True, fg=typer.colors.YELLOW)


@chain_command
def deposit(
    amount: Annotated[str, typer.Argument(help="e.g. 1.5eth, 1000gwei, or wei.")],
    *,
    chain: ChainOptions,
    as_json: JsonOption = False,
) -> None:
    """Move native ETH from this node's wallet into its settlement account."""
    from lilypad_p2p.chain import ChainError

    wei = _positive_amount(amount)
    client = chain.settlement()
    with _fail_on(ChainError):
        client.deposit(wei)
        _show_balance(client, as_json)


@chain_command
def withdraw(
    amount: Annotated[
        str | None, typer.Argument(help="Amount to announce (starts the notice period).")
    ] = None,
    complete: Annotated[
        bool, typer.Option("--complete", help="Pay out the announced withdrawal after notice.")
    ] = False,
    *,
    chain: ChainOptions,
    as_json: JsonOption = False,
) -> None:
    """Withdraw in two steps: `withdraw AMOUNT` announces, `withdraw --complete` pays out.

    During the notice the announced funds stay usable by deals; completing pays at most what is
    still free then (locked funds are never withdrawn). The contract keeps the larger of two
    announcements: a smaller one changes nothing, a larger one replaces the pending one and
    restarts the notice.
    """
    from lilypad_p2p.chain import ChainError

    if amount is not None and complete:
        _fail(f"both AMOUNT ({amount}) and --complete given: give AMOUNT to announce a "
              "withdrawal, or --complete to pay out the announced one, not both")
    if amount is None and not complete:
        _fail("give an AMOUNT to announce a withdrawal, or --complete to finish one")
    wei = None if amount is None else _positive_amount(amount)
    client = chain.settlement()
    with _fail_on(ChainError):
        if wei is None:
            _complete_withdrawal(client)
        else:
            _announce_withdrawal(client, wei)
        _show_balance(client, as_json)


def _announce_withdrawal(client: Any, wei: int) -> None:
    """`requestWithdraw(wei)`, refused where the contract would ignore it (a request for no
    more than the pending one is a no-op that still costs gas), with what changed said."""
    from lilypad_p2p.chain import format_wei, utc

    before = client.balance()
    pending = before.withdraw_requested
    if pending and wei <= pending:
        _fail(f"a withdrawal of {format_wei(pending)} is already pending (ready at "
              f"{utc(before.withdraw_ready_at)}) and the contract keeps the larger request: to "
              f"take more, announce more than it; else run `withdraw --complete` then")
    client.request_withdraw(wei)
    if pending:
        _note(f"note: this replaces the pending withdrawal of {format_wei(pending)}; the "
              f"notice restarted: ready at {utc(client.balance().withdraw_ready_at)}")
    if wei > before.free:
        _note(f"note: only {format_wei(before.free)} is free now; completing pays at most what "
              "is free then (funds locked in deals stay)")


def _complete_withdrawal(client: Any) -> None:
    """`withdraw()`, refused before any gas is spent when it would revert or pay nothing; says
    what was paid when the free balance fell short of the request."""
    from lilypad_p2p.chain import format_wei, utc

    before = client.balance()
    requested = before.withdraw_requested
    if not requested:
        _fail("nothing to complete: request a withdrawal first with `withdraw AMOUNT`")
    wait = before.withdraw_ready_at - client.chain.now()
    if wait > 0:
        _fail(f"the withdrawal of {format_wei(requested)} is ready at "
              f"{utc(before.withdraw_ready_at)}, in {wait} s: run `withdraw --complete` then")
    if before.free == 0:
        _fail(f"nothing is free to pay out ({format_wei(before.locked)} is locked in deals); "
              "completing now would pay 0 and end the request: wait until deals settle")
    client.withdraw()
    paid = before.free - client.balance().free
    _note(f"paid out {format_wei(paid)} of the {format_wei(requested)} requested")


@chain_reader_command
def balance(account: AccountArgument = None, *, chain: ChainOptions,
            as_json: JsonOption = False) -> None:
    """Show a settlement account (default: this node's): free, locked in deals, pending
    withdrawal.

    Balances are public: no password is asked."""
    from lilypad_p2p.chain import ChainError

    who = chain.account(account)
    client = chain.settlement(as_node=False)
    with _fail_on(ChainError):
        _show_balance(client, as_json, who)


@chain_reader_command
def providers(
    *,
    chain: ChainOptions,
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

    client = chain.settlement(as_node=False)
    with _fail_on(ChainError):
        head = client.chain.block_number()
        # Past the head there is nothing to replay yet: "no deals up to block N-1" would read
        # as a verified empty history.
        if from_block > head:
            _fail(f"--from-block {from_block} is past the chain head ({head}): give at most "
                  f"{head}, or leave it out to replay from block 0")
        records, head = read_track_records(client.chain, client.address, from_block=from_block)
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
