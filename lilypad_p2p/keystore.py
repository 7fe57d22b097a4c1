"""Key files on disk: the encrypted (Web3 Secret Storage V3) and legacy plaintext formats, the
0600 checks, and where an unlocking password comes from.

Encrypted keystore, in `<keystore_dir>`, mode 0700:
    node-key.json     V3 keystore of the secp256k1 key (scrypt, aes-128-ctr, keccak MAC), the
                      file geth, Foundry and eth-account's `Account.decrypt` read;
    sealing-key.json  V3 keystore of the X25519 sealing key under the same password (no
                      "address": the key is not an Ethereum account).
Both files are written by eth-keyfile, so this module holds no cryptography of its own.
The plaintext format (`{"version": 1, "secp256k1_private_key": ..., "x25519_private_key": ...}`
in node-key.json) is still read, with a warning, and written only when asked for.

A password comes from, first to last: a password file (`--password-file`, or the file named by
LILYPAD_KEY_PASSWORD_FILE), the LILYPAD_KEY_PASSWORD variable, an interactive prompt when the
standard input is a terminal. A password file obeys the key file's rules (regular, ours, 0600);
one trailing newline is not part of the password.
"""

from __future__ import annotations

import errno
import getpass
import json
import os
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from eth_keyfile import create_keyfile_json, decode_keyfile_json

from lilypad_p2p.errors import LilypadError

KEY_FILE_NAME = "node-key.json"
SEALING_KEY_FILE_NAME = "sealing-key.json"
PLAINTEXT_FORMAT_VERSION = 1
KEY_FILE_MODE = 0o600
KEYSTORE_DIR_MODE = 0o700
# A V3 key file is ~500 bytes, a plaintext one ~170; anything much larger is not one.
MAX_KEY_FILE_BYTES = 4096
MAX_PASSWORD_FILE_BYTES = 4096
# scrypt N of geth's "standard" and eth-account's default: ~1 s and 256 MiB per unlock, paid
# once at start. The reader follows whatever N a file records, within the bounds below.
DEFAULT_SCRYPT_N = 1 << 18
# What a key file may ask the KDF to do, checked before deriving, so that a damaged file cannot
# stall the start for minutes or exhaust memory. Wallets write far less: geth at most scrypt
# n=2^18, r=8, p=1 (n*r*p = 2^21), ethers and Foundry less, eth-account pbkdf2 10^6 rounds. The
# caps allow 4x geth's scrypt work (128*n*r bytes: at most 1 GiB) and 10x eth-account's pbkdf2.
MAX_SCRYPT_WORK = 1 << 23
MAX_PBKDF2_ROUNDS = 10**7
# V3 splits the derived key into the AES key and the MAC key: every wallet derives 32 bytes.
DERIVED_KEY_BYTES = 32
PASSWORD_ENV = "LILYPAD_KEY_PASSWORD"
PASSWORD_FILE_ENV = "LILYPAD_KEY_PASSWORD_FILE"
HOW_TO_UNLOCK = (
    f"give --password-file FILE (or set {PASSWORD_FILE_ENV}), set {PASSWORD_ENV}, "
    "or run in a terminal to be asked"
)


class KeystoreError(LilypadError):
    """The keystore is missing, unsafe (permissions, owner), corrupt, or the password is wrong;
    the message says which, and never quotes key material or a password."""


class Password:
    """A keystore password. Its repr and str hide it; it cannot be pickled."""

    __slots__ = ("_value",)

    def __init__(self, value: str | bytes) -> None:
        self._value = value.encode() if isinstance(value, str) else bytes(value)

    def reveal(self) -> bytes:
        return self._value

    def __repr__(self) -> str:
        return "Password(***)"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Password is not picklable")


PasswordSource = Callable[[], Password | None]


def read_private_file(path: Path, what: str, limit: int) -> bytes:
    """Read a regular 0600 file we own, refusing symlinks and files larger than `limit`.

    Raises:
        KeystoreError: missing, a symlink, unreadable, not regular, another user's, group/others
            can access it, or too large.
    """
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat refuses it next.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise KeystoreError(f"{what} {path} does not exist") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP and os.path.islink(path):
            raise KeystoreError(
                f"{what} {path} is a symbolic link; give the file itself, not a link to it"
            ) from None
        raise KeystoreError(f"cannot open {what} {path}: {exc.strerror}") from None
    try:
        _check_private(path, os.fstat(fd), what)
    except KeystoreError:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        content = handle.read(limit + 1)
    if len(content) > limit:
        raise KeystoreError(f"{what} {path} is larger than {limit} bytes: not a {what}")
    return content


def _check_private(path: Path, info: os.stat_result, what: str) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise KeystoreError(f"{what} {path} is a directory, not a regular file")
    if not stat.S_ISREG(info.st_mode):
        raise KeystoreError(f"{what} {path} is not a regular file")
    if info.st_uid != os.getuid():
        raise KeystoreError(f"{what} {path} belongs to another user (uid {info.st_uid})")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise KeystoreError(
            f"{what} {path} has mode {mode:04o}: group or others can read it. "
            f"Fix it with `chmod 600 {path}` (and check nobody copied it)."
        )


def read_password_file(path: Path) -> Password:
    """The password in `path` (one trailing newline dropped).

    Raises:
        KeystoreError: the file is missing, unsafe or empty.
    """
    content = read_private_file(Path(path), "password file", MAX_PASSWORD_FILE_BYTES)
    if content.endswith(b"\n"):
        content = content[:-1]
        if content.endswith(b"\r"):
            content = content[:-1]
    if not content:
        raise KeystoreError(f"password file {path} is empty")
    return Password(content)


def password_source(
    password_file: Path | None = None, *, confirm: bool = False
) -> PasswordSource:
    """Where the password comes from: the file given, else LILYPAD_KEY_PASSWORD_FILE, else
    LILYPAD_KEY_PASSWORD, else a prompt (twice with `confirm`) when stdin is a terminal.
    Called only when a password is needed, so a plaintext keystore never prompts."""

    def resolve() -> Password | None:
        chosen = password_file or os.environ.get(PASSWORD_FILE_ENV)
        if chosen:
            return read_password_file(Path(chosen))
        from_env = os.environ.get(PASSWORD_ENV)
        if from_env:
            return Password(from_env)
        if not sys.stdin.isatty():
            return None
        first = getpass.getpass("keystore password: ")
        if confirm and getpass.getpass("repeat the password: ") != first:
            raise KeystoreError("the two passwords differ; nothing was written")
        if not first:
            raise KeystoreError("an empty password protects nothing; choose one")
        return Password(first)

    return resolve


def is_encrypted(keystore_dir: Path) -> bool | None:
    """True for a V3 keystore, False for a plaintext one, None when there is no key file.

    Raises:
        KeystoreError: the key file is unsafe or not JSON.
    """
    path = Path(keystore_dir) / KEY_FILE_NAME
    if not path.exists() and not path.is_symlink():
        return None
    return "crypto" in _json_object(path, read_private_file(path, "key file", MAX_KEY_FILE_BYTES))


def _json_object(path: Path, content: bytes) -> dict[str, Any]:
    try:
        document = json.loads(content)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise KeystoreError(f"{path} is corrupt: not a lilypad-p2p key file (not a JSON object)")
    return document


def read_plaintext(path: Path) -> tuple[bytes, bytes]:
    """The two secrets of a plaintext key file.

    Raises:
        KeystoreError: unsafe or corrupt file (the message never quotes its content).
    """
    document = _json_object(path, read_private_file(path, "key file", MAX_KEY_FILE_BYTES))
    return _plaintext_secrets(path, document)


def _plaintext_secrets(path: Path, document: dict[str, Any]) -> tuple[bytes, bytes]:
    """`read_plaintext` of a key file already read as `document`."""
    try:
        version = document["version"]
        secp256k1_secret = bytes.fromhex(document["secp256k1_private_key"])
        x25519_secret = bytes.fromhex(document["x25519_private_key"])
    except (ValueError, KeyError, TypeError) as exc:
        raise KeystoreError(
            f"{path} is corrupt: not a lilypad-p2p key file ({type(exc).__name__})"
        ) from None
    if version != PLAINTEXT_FORMAT_VERSION:
        raise KeystoreError(f"{path} has keystore version {version!r}; expected 1")
    return secp256k1_secret, x25519_secret


def stored_address(keystore_dir: Path) -> str:
    """The account address of the keystore's node key, read without a password: a V3 file's
    "address" field (public, as geth and Foundry write it), or derived from a plaintext file's
    key. For showing public figures only: nothing vouches for a V3 file's address until the
    file is unlocked.

    Raises:
        KeystoreError: no key file, or an unsafe or corrupt one.
    """
    from eth_keys import keys
    from eth_keys.exceptions import ValidationError
    from eth_utils import to_checksum_address

    path = Path(keystore_dir) / KEY_FILE_NAME
    if not path.exists() and not path.is_symlink():
        raise KeystoreError(f"no key file at {path}: run `lilypad-p2p keys new`, or give the "
                            "account")
    document = _json_object(path, read_private_file(path, "key file", MAX_KEY_FILE_BYTES))
    if "crypto" not in document:
        secp256k1_secret, _ = _plaintext_secrets(path, document)
        try:
            return str(keys.PrivateKey(secp256k1_secret).public_key.to_checksum_address())
        except ValidationError:
            raise KeystoreError(f"{path} is corrupt: its key is not a secp256k1 key") from None
    address = document.get("address")
    digits = address.removeprefix("0x") if isinstance(address, str) else ""
    if len(digits) != 40 or not _is_hex(digits):
        raise KeystoreError(f"{path} names no address (its \"address\" is not 40 hex digits): "
                            "give the account, or unlock the key")
    return str(to_checksum_address("0x" + digits))


def plaintext_content(secp256k1_secret: bytes, x25519_secret: bytes) -> bytes:
    return json.dumps(
        {
            "version": PLAINTEXT_FORMAT_VERSION,
            "secp256k1_private_key": secp256k1_secret.hex(),
            "x25519_private_key": x25519_secret.hex(),
        },
        sort_keys=True,
    ).encode()


def encrypt_secret(
    secret: bytes, password: Password, *, scrypt_n: int, account: bool
) -> bytes:
    """A V3 key file for `secret`; `account=False` drops the address (the sealing key)."""
    document = create_keyfile_json(secret, password.reveal(), kdf="scrypt", iterations=scrypt_n)
    if not account:
        del document["address"]
    return json.dumps(document, sort_keys=True).encode()


def decrypt_file(path: Path, password: Password) -> bytes:
    """The secret in the V3 key file `path`.

    Raises:
        KeystoreError: unsafe, corrupt, or the password does not open it.
    """
    document = _json_object(path, read_private_file(path, "key file", MAX_KEY_FILE_BYTES))
    if document.get("version") != 3 or not isinstance(document.get("crypto"), dict):
        raise KeystoreError(f"{path} is corrupt: not a version 3 keystore")
    _check_crypto(path, document["crypto"])
    try:
        secret = decode_keyfile_json(document, password.reveal())
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise KeystoreError(
                f"wrong password for {path} (or the file was altered): the MAC does not match"
            ) from None
        raise KeystoreError(f"{path} is corrupt: {type(exc).__name__}") from None
    except (KeyError, TypeError, AttributeError, NotImplementedError) as exc:
        raise KeystoreError(f"{path} is corrupt: {type(exc).__name__}") from None
    if len(secret) != 32:
        raise KeystoreError(f"{path} is corrupt: the secret is not 32 bytes")
    return bytes(secret)


def _check_crypto(path: Path, crypto: dict[str, Any]) -> None:
    """Refuse, before deriving anything, a V3 "crypto" section that no wallet writes: an
    unknown KDF, KDF work beyond MAX_SCRYPT_WORK or MAX_PBKDF2_ROUNDS, or a field not in hex.

    Raises:
        KeystoreError: naming the file and the field that is wrong.
    """

    def damaged(reason: str) -> KeystoreError:
        return KeystoreError(f"{path} is corrupt: {reason}; restore it from your backup")

    kdf, params = crypto.get("kdf"), crypto.get("kdfparams")
    if kdf not in ("scrypt", "pbkdf2") or not isinstance(params, dict):
        raise damaged("its KDF is not scrypt or pbkdf2 with kdfparams")

    def positive(name: str) -> int:
        value = params.get(name)
        if type(value) is not int or value < 1:
            raise damaged(f"its {kdf} {name} is not a positive integer")
        return value

    cipherparams = crypto.get("cipherparams")
    hex_fields = {
        "kdfparams salt": params.get("salt"),
        "cipherparams iv": cipherparams.get("iv") if isinstance(cipherparams, dict) else None,
        "ciphertext": crypto.get("ciphertext"),
        "mac": crypto.get("mac"),
    }
    for name, value in hex_fields.items():
        if not _is_hex(value):
            raise damaged(f"its {name} is not hex")
    if positive("dklen") != DERIVED_KEY_BYTES:
        raise damaged(f"its {kdf} dklen is {params['dklen']}, not {DERIVED_KEY_BYTES}")
    if kdf == "scrypt":
        n, r, p = positive("n"), positive("r"), positive("p")
        if n < 2 or n & (n - 1):
            raise damaged(f"its scrypt n = {n} is not a power of two")
        if n * r * p > MAX_SCRYPT_WORK:
            raise damaged(f"its scrypt n*r*p = {n}*{r}*{p} is over {MAX_SCRYPT_WORK}, more work "
                          "than any wallet asks for")
    else:
        if params.get("prf") != "hmac-sha256":
            raise damaged("its pbkdf2 prf is not hmac-sha256")
        if positive("c") > MAX_PBKDF2_ROUNDS:
            raise damaged(f"its pbkdf2 c = {params['c']} is over {MAX_PBKDF2_ROUNDS}, more work "
                          "than any wallet asks for")


def _is_hex(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        return False
    return True


def refuse_existing_keys(keystore_dir: Path) -> None:
    """Refuse to create keys where either key file is, even as a dangling symlink: a sealing
    key alone still opens the inputs and results sealed to this node.

    Raises:
        KeystoreError: naming the file found.
    """
    for name in (KEY_FILE_NAME, SEALING_KEY_FILE_NAME):
        path = Path(keystore_dir) / name
        if path.exists() or path.is_symlink():
            raise KeystoreError(f"{path} already exists; refusing to overwrite a key (move it "
                                "away first, only if you are sure it is no longer needed)")


def prepare_directory(directory: Path) -> None:
    """Create `directory` 0700 (tightening an existing one)."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=KEYSTORE_DIR_MODE)
        os.chmod(directory, KEYSTORE_DIR_MODE)
    except OSError as exc:
        raise KeystoreError(f"cannot write the keystore {directory}: {exc.strerror}") from None


def write_private_file(path: Path, content: bytes, *, replace: bool) -> None:
    """Write `content` to `path` as a fully written 0600 file: linked into place (never
    overwriting) unless `replace`, then renamed over the old one.

    Raises:
        KeystoreError: `path` exists and not `replace`, or the directory cannot be written.
    """
    directory = path.parent
    try:
        # mkstemp creates the file 0600 from the start: the secret is never world-readable.
        fd, temp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.stem}-", suffix=".tmp")
    except OSError as exc:
        raise KeystoreError(f"cannot write the keystore {directory}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as temp_file:
            temp_file.write(content)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.chmod(temp_name, KEY_FILE_MODE)
        try:
            if replace:
                os.replace(temp_name, path)
            else:
                os.link(temp_name, path)  # fails if the name exists: never overwrites
        except FileExistsError:
            raise KeystoreError(f"{path} already exists; refusing to overwrite a key") from None
        except OSError as exc:
            raise KeystoreError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
