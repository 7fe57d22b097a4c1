"""`lilypad-p2p keys ...` and `lilypad-p2p payout ...`: the keystore, the payout address and key
rotation. Registered on the main app by `cli.py`; shares the chain commands' options.
"""

from __future__ import annotations

import json
import shutil
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
    _json_shown,
)
from lilypad_p2p.cli_chain import (
    AccountArgument,
    ChainOptions,
    chain_command,
    chain_reader_command,
    checked_address,
)

keys_app = typer.Typer(help="Create, encrypt, show and rotate this node's keys (never prints a "
                            "secret).")
payout_app = typer.Typer(help="The payout address: the only place withdrawals are paid to.")

RETIRED_DIR = "retired"
STAGING_DIR = "next"


def _keystore(home: Path | None) -> Path:
    from lilypad_p2p.config import NodeConfig

    return NodeConfig(home=_home(home)).keystore_dir


def _print_identity(identity: Any, keystore: Path, as_json: bool, **extra: object) -> None:
    public = {
        "peer_id": str(identity.peer_id),
        "address": identity.address,
        "sealing_public_key": identity.sealing_public_key.hex(),
        "keystore": str(keystore),
        **extra,
    }
    if as_json:
        typer.echo(json.dumps(public, indent=2))
    else:
        for name, value in public.items():
            typer.echo(f"{name:<20}{value}")


def unlock_identity(keystore: Path, password_file: Path | None = None) -> Any:
    """The node's identity, asking for a password only if the keystore is encrypted; a
    plaintext keystore gets one plain warning (instead of the node's structured log event)."""
    from lilypad_p2p.keystore import password_source

    return _unlock(keystore, password_source(password_file))


def _unlock(keystore: Path, password: Any) -> Any:
    """`unlock_identity` with the password (or its source) already chosen."""
    import logging

    from lilypad_p2p.keystore import KeystoreError, is_encrypted

    with _fail_on(KeystoreError):
        plaintext = is_encrypted(keystore) is False
        identity = _load_quietly(keystore, password)
    if plaintext:
        # A log record, not a print: on a terminal Python's last-resort handler shows it on
        # stderr; under a log setup (the node, pytest) it goes where the logs go, never into
        # the command's output.
        logging.getLogger(__name__).warning(
            "warning: the keys in %s are stored unencrypted; run `lilypad-p2p keys encrypt`",
            keystore)
    return identity


def _load_quietly(keystore: Path, password: Any) -> Any:
    """Identity.load without its structured plaintext log event: with no log setup, Python
    prints only the event's name. The caller warns in words where it matters.

    Raises:
        KeystoreError: as Identity.load.
    """
    import logging

    from lilypad_p2p.identity import Identity

    identity_log = logging.getLogger("lilypad_p2p.identity")
    was_disabled, identity_log.disabled = identity_log.disabled, True
    try:
        return Identity.load(keystore, password)
    finally:
        identity_log.disabled = was_disabled


def _new_password(password_file: Path | None, alternative: str = "") -> Any:
    """A new password, asked twice on a terminal; `alternative` is the command's own way out
    when there is none."""
    from lilypad_p2p.keystore import HOW_TO_UNLOCK, KeystoreError, password_source

    with _fail_on(KeystoreError):
        password = password_source(password_file, confirm=True)()
    if password is None:
        _fail(f"a password is needed to encrypt the keys: {HOW_TO_UNLOCK}{alternative}")
    return password


@keys_app.command("new")
def keys_new(
    home: HomeOption = None,
    password_file: PasswordFileOption = None,
    insecure_plaintext: Annotated[
        bool, typer.Option("--insecure-plaintext",
                           help="Store the keys unencrypted (tests and simnets only).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Create this node's keys in <home>/keys, encrypted under a password.

    Never replaces existing keys: the sealing key opens what was sealed to this node."""
    from lilypad_p2p.identity import Identity, KeystoreError
    from lilypad_p2p.keystore import refuse_existing_keys

    keystore = _keystore(home)
    with _fail_on(KeystoreError):
        refuse_existing_keys(keystore)  # before asking for a password it would not use
    password = None if insecure_plaintext else _new_password(
        password_file, " (or --insecure-plaintext, for tests only)")
    identity = Identity.generate()
    with _fail_on(KeystoreError):
        identity.save(keystore, password)
    _print_identity(identity, keystore, as_json, encrypted=password is not None)


@keys_app.command("show")
def keys_show(
    home: HomeOption = None,
    password_file: PasswordFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the peer ID, address and sealing public key (never a secret)."""
    from lilypad_p2p.keystore import is_encrypted

    keystore = _keystore(home)
    identity = unlock_identity(keystore, password_file)
    _print_identity(identity, keystore, as_json, encrypted=bool(is_encrypted(keystore)))


@keys_app.command("encrypt")
def keys_encrypt(
    home: HomeOption = None,
    password_file: PasswordFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Encrypt a plaintext keystore in place under a new password (same keys).

    The old plaintext may survive in backups and on disk: if it was ever copied, rotate the key.
    """
    from lilypad_p2p.identity import Identity, KeystoreError

    keystore = _keystore(home)
    password = _new_password(password_file)
    with _fail_on(KeystoreError):
        identity = Identity.encrypt_keystore(keystore, password)
    _print_identity(identity, keystore, as_json, encrypted=True)


@keys_app.command("rotate")
@chain_command
def keys_rotate(
    *,
    chain: ChainOptions,
    password_file: PasswordFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move this node to a new key (stop the node first: refused while it runs).

    A new key pair is made (same password); the old key sends `rotateKey` with the new key's
    signed consent, which moves the free balance and payout address on the settlement
    contract; then the new keys become <home>/keys and the old ones move to keys/retired/.
    Refused while funds are locked in deals. Fund the new address's wallet for gas afterwards.
    """
    from lilypad_p2p.home import HomeError, HomeLock

    keystore = _keystore(chain.home)
    # The node's own lock, held until the keys are swapped: a running node refuses the
    # rotation, and a node started during it is refused.
    with _fail_on(HomeError):
        lock = HomeLock.acquire(keystore.parent)
    try:
        # The chain first: without one there is nothing to rotate, so no key is made.
        reader = chain.settlement(as_node=False)
        _rotate(reader, keystore, password_file, as_json)
    finally:
        lock.release()


def _rotate(reader: Any, keystore: Path, password_file: Path | None, as_json: bool) -> None:
    from lilypad_p2p.chain import ChainError, SenderUnfunded
    from lilypad_p2p.chain._keys import payout_state, rotate_key
    from lilypad_p2p.identity import KEY_FILE_NAME, KeystoreError, save_handover
    from lilypad_p2p.keystore import is_encrypted, password_source

    staging = keystore / STAGING_DIR
    with _fail_on(KeystoreError):
        password = password_source(password_file)() if is_encrypted(keystore) else None
    old = _unlock(keystore, password)
    new = _staged_key(staging, password)
    client = reader.with_account(old.eth_account())
    transaction = None
    try:
        successor = payout_state(client, old.address).successor
        if successor is None:
            receipt = rotate_key(client, new.eth_account())
            transaction = "0x" + bytes(receipt.tx_hash).hex()
    except SenderUnfunded:
        # Refused before it was sent: the rotation surely did not happen.
        _fail(f"{old.address} has no ETH for the rotation's gas: send some to it, then run "
              f"`keys rotate` again (keys unchanged; the new key waits in {staging})")
    except ChainError as exc:
        _fail(f"the rotation did not happen or its outcome is unknown; keys unchanged, the new "
              f"key waits in {staging} and the next `keys rotate` reuses it: {exc}")
    if successor not in (None, new.address):
        _fail(f"{old.address} was already rotated to {successor}, not to the key in {staging}")
    retired = keystore / RETIRED_DIR / old.address
    for directory in (retired.parent, retired):
        directory.mkdir(exist_ok=True, mode=0o700)
    for path in keystore.iterdir():
        if path.is_file():
            path.rename(retired / path.name)
    for path in staging.iterdir():
        path.rename(keystore / path.name)
    staging.rmdir()
    if not (keystore / KEY_FILE_NAME).exists():
        _fail(f"rotation done on chain but {keystore / KEY_FILE_NAME} is missing: restore "
              f"it from {retired}")
    # Peers learn the new identity from the node's record: the retired key names its successor.
    save_handover(keystore, old.address, old.sign_handover(new.address))
    _print_identity(new, keystore, as_json, rotated_from=old.address, transaction=transaction)


def _staged_key(staging: Path, password: Any) -> Any:
    """The new key in keys/next: the one an earlier attempt left there (its rotation may have
    gone through unseen, so that key may already own the account), else a fresh one."""
    from lilypad_p2p.identity import KEY_FILE_NAME, Identity, KeystoreError

    if staging.is_symlink() or (staging.exists() and not staging.is_dir()):
        _fail(f"{staging} is not a directory; `keys rotate` keeps the new key there: move it "
              "away, then run again")
    key_file = staging / KEY_FILE_NAME
    if key_file.exists() or key_file.is_symlink():
        try:
            return _load_quietly(staging, password)
        except KeystoreError as exc:
            _fail(f"the staged next key in {staging} does not load ({exc}); if `lilypad-p2p "
                  f"payout show` shows no rotated_to, delete {staging} to start over, else "
                  "that key owns the account: restore it from your backup")
    if staging.exists():
        shutil.rmtree(staging)  # no key file there: a save cut short, nothing to lose
    new = Identity.generate()
    with _fail_on(KeystoreError):
        new.save(staging, password)
    return new


def _payout_view(state: Any, as_json: bool, *, ours: bool = True) -> None:
    """`state` as a table or JSON; `ours`: it is this node's account, which gets a warning
    without a payout address."""
    shown = {
        "account": state.account,
        "withdrawals_paid_to": state.payout,
        "payout_address": state.configured,
        "pending_change": state.pending,
        "pending_ready_at": state.pending_ready_at or None,
        "change_delay_s": state.change_delay_s,
        "rotated_to": state.successor,
    }
    if _json_shown(shown, as_json):
        return
    for name, value in shown.items():
        typer.echo(f"{name:<20}{'-' if value is None else value}")
    if ours and state.configured is None:
        typer.secho("warning: no payout address: withdrawals go to the node key itself; name a "
                    "cold wallet with `lilypad-p2p payout set ADDRESS`", err=True,
                    fg=typer.colors.YELLOW)


def _note(message: str) -> None:
    """A line for the operator on stderr (stdout stays the table, or its JSON)."""
    typer.secho(message, err=True, fg=typer.colors.YELLOW)


@payout_app.command("show")
@chain_reader_command
def payout_show(account: AccountArgument = None, *, chain: ChainOptions,
                as_json: JsonOption = False) -> None:
    """Where an account's withdrawals are paid (default: this node's), and any announced change.

    Payout addresses are public: no password is asked."""
    from lilypad_p2p.chain import ChainError
    from lilypad_p2p.chain._keys import payout_state

    who = chain.account(account)
    reader = chain.settlement(as_node=False)
    with _fail_on(ChainError):
        _payout_view(payout_state(reader, who), as_json, ours=account is None)


@payout_app.command("set")
@chain_command
def payout_set(
    address: Annotated[str, typer.Argument(
        help="The payout address (a cold wallet): 0x and 40 hex digits, its EIP-55 checksum "
             "checked when in mixed case.")],
    *,
    chain: ChainOptions,
    allow_contract: Annotated[
        bool, typer.Option("--allow-contract", help="Accept an address that holds contract "
                           "code (a multisig or other contract wallet).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Name the payout address: at once the first time, later after a notice.

    A change is announced and lands after twice the withdrawal notice; the current payout
    address can cancel it meanwhile. A new change replaces a pending one and restarts the
    delay. Refused: this node's own key, an address holding contract code (unless
    --allow-contract), and a repeat of the pending change."""
    from lilypad_p2p.chain import ChainError, utc
    from lilypad_p2p.chain._keys import holds_code, payout_state, set_payout_address

    payout = checked_address(address, "ADDRESS")
    if int(payout, 16) == 0:
        _fail("the address 0x0…0 is nobody's: give a nonzero one (your cold wallet's)")
    client = chain.settlement()
    with _fail_on(ChainError):
        _refuse_payout(client, payout, allow_contract, holds_code(client, payout))
        before = payout_state(client)
        now = client.chain.now()
        pending = before.pending if before.pending_ready_at > now else None
        if pending == payout:
            _fail(f"a change to {payout} is already pending, lands at "
                  f"{utc(before.pending_ready_at)}: nothing to do (setting it again would "
                  "restart the delay)")
        if pending is None and before.payout == payout:
            _fail(f"{payout} is already the payout address: nothing to change")
        set_payout_address(client, payout)
        after = payout_state(client)
        if after.pending is not None:
            replaced = "" if pending is None else f"; it replaces the change to {pending}"
            _note(f"note: the change to {payout} is announced and lands at "
                  f"{utc(after.pending_ready_at)}{replaced}; until then withdrawals go to "
                  f"{after.payout}, which can cancel it with `lilypad-p2p payout cancel "
                  f"{after.account} --key-file ...`")
        _payout_view(after, as_json)


def _refuse_payout(client: Any, payout: str, allow_contract: bool, has_code: bool) -> None:
    """End the command before anything is sent if `payout` cannot be the node's cold wallet."""
    if payout == client.account.address:
        _fail(f"{payout} is this node's own (hot) key, where withdrawals go without a payout "
              "address: give a cold wallet's address, whose key is not on this machine")
    if payout == client.address:
        _fail(f"{payout} is the settlement contract itself: withdrawals paid to it would be "
              "lost; give your cold wallet's address")
    if has_code and not allow_contract:
        _fail(f"{payout} holds contract code, not a wallet's key: ETH paid there moves only as "
              "that contract allows; if it is your multisig (or another contract wallet that "
              "can pay ETH on), run again with --allow-contract")


@payout_app.command("cancel")
@chain_command
def payout_cancel(
    account: Annotated[str, typer.Argument(help="The node account whose change to cancel.")],
    key_file: Annotated[
        Path, typer.Option("--key-file", help="V3 keystore file of the current payout address "
                                              "(geth, Foundry, eth-account).")
    ],
    *,
    chain: ChainOptions,
    password_file: PasswordFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a pending payout change, signed by the current payout address (the cold key)."""
    from eth_account import Account

    from lilypad_p2p.chain import ChainError, utc
    from lilypad_p2p.chain._keys import cancel_payout_change, payout_state
    from lilypad_p2p.keystore import HOW_TO_UNLOCK, KeystoreError, decrypt_file, password_source

    who = checked_address(account, "ACCOUNT")
    _require_v3_file(key_file)
    reader = chain.settlement(as_node=False)
    with _fail_on(ChainError):
        state = payout_state(reader, who)
        now = reader.chain.now()
    if state.pending is None:
        _fail(f"no payout address change is pending for {who}: nothing to cancel")
    if state.pending_ready_at <= now:
        _fail(f"the change to {state.pending} landed at {utc(state.pending_ready_at)}: it is "
              f"{who}'s payout address now, too late to cancel")
    with _fail_on(KeystoreError):
        password = password_source(password_file)()
        if password is None:
            _fail(f"{key_file} is encrypted: {HOW_TO_UNLOCK}")
        cold = Account.from_key(decrypt_file(key_file, password))
    if cold.address != state.configured:
        _fail(f"{key_file} is the key of {cold.address}, but only {who}'s payout address "
              f"{state.configured} can cancel its change: give that address's key file")
    client = reader.with_account(cold)
    with _fail_on(ChainError):
        cancel_payout_change(client, who)
        _payout_view(payout_state(client, who), as_json, ours=False)


def _require_v3_file(path: Path) -> None:
    """End the command unless `path` is a V3 keystore file, before a password is asked for
    (decrypting checks the rest)."""
    from lilypad_p2p.keystore import MAX_KEY_FILE_BYTES, KeystoreError, read_private_file

    with _fail_on(KeystoreError):
        content = read_private_file(path, "key file", MAX_KEY_FILE_BYTES)
    try:
        document = json.loads(content)
    except ValueError:
        document = None
    if (not isinstance(document, dict) or document.get("version") != 3
            or not isinstance(document.get("crypto"), dict)):
        _fail(f"--key-file {path} is not a V3 keystore (the JSON key file geth, Foundry or "
              "eth-account write, with a \"crypto\" section): give the payout address's key file")
