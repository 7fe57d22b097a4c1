"""A node's identity: one secp256k1 key and one X25519 sealing key, kept in a keystore.

The secp256k1 key is at once the libp2p host key (peer ID `16Uiu2...`) and the Ethereum account
(address, chain transactions, EIP-712), so a gossip message's libp2p source *is* the market
participant. The X25519 key (pynacl) receives sealed job inputs and outputs; its public half is
published in the node record, signed by the secp256k1 key.

Keystore: `<keystore_dir>/node-key.json`, mode 0600, in a directory of mode 0700:
    {"version": 1, "secp256k1_private_key": "<64 hex>", "x25519_private_key": "<64 hex>"}
Like ssh, `load` refuses a key file that group or others can access, or that another user owns.
`save` never replaces an existing key file (it links a fully written temporary file into place,
which fails if the name exists).
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Self

import coincurve
import nacl.public
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_keys.datatypes import PrivateKey as EthPrivateKey
from eth_keys.exceptions import ValidationError as EthKeysValidationError
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.secp256k1 import create_new_key_pair
from libp2p.peer.id import ID

from lilypad_p2p.errors import LilypadError
from lilypad_p2p.wire import Message, SignedEnvelope, address_from_peer_id_bytes, sign_envelope

KEY_FILE_NAME = "node-key.json"
KEYSTORE_FORMAT_VERSION = 1
KEY_FILE_MODE = 0o600
KEYSTORE_DIR_MODE = 0o700
# A key file is ~170 bytes; anything much larger is not one (and is not read into memory).
MAX_KEY_FILE_BYTES = 4096
_SECRET_BYTES = 32


class KeystoreError(LilypadError):
    """The keystore is missing, unsafe (permissions, owner) or corrupt; the message says which."""


class Identity:
    """This node's keys. Public attributes are safe to show; secrets stay private.

    Attributes:
        address: EIP-55 address of the secp256k1 key.
        peer_id: libp2p peer ID of the same key.
        sealing_public_key: 32-byte X25519 public key.
    """

    __slots__ = ("_secp256k1_secret", "_x25519_secret", "address", "peer_id", "sealing_public_key")

    address: str
    peer_id: ID
    sealing_public_key: bytes

    def __init__(self, secp256k1_secret: bytes, x25519_secret: bytes) -> None:
        """Build an identity from raw secrets (use `generate`, `load` or `load_or_create`).

        Raises:
            ValueError: a secret is not 32 bytes or not a valid secp256k1 scalar.
        """
        if len(secp256k1_secret) != _SECRET_BYTES or len(x25519_secret) != _SECRET_BYTES:
            raise ValueError("secrets must be 32 bytes each")
        try:
            eth_key = EthPrivateKey(secp256k1_secret)
        except EthKeysValidationError:
            # eth_keys' message quotes the scalar: never let it reach a log.
            raise ValueError("the secp256k1 secret is not a valid private key") from None
        self._secp256k1_secret = secp256k1_secret
        self._x25519_secret = x25519_secret
        self.address = eth_key.public_key.to_checksum_address()
        self.peer_id = ID.from_pubkey(self.libp2p_key_pair().public_key)
        self.sealing_public_key = bytes(nacl.public.PrivateKey(x25519_secret).public_key)

    @classmethod
    def generate(cls) -> Self:
        """A fresh identity from the operating system's randomness."""
        return cls(coincurve.PrivateKey().secret, bytes(nacl.public.PrivateKey.generate()))

    @classmethod
    def load(cls, keystore_dir: Path) -> Self:
        """Load the identity stored in `keystore_dir`.

        Raises:
            KeystoreError: no key file, a key file group/others can access or another user
                owns, or a corrupt key file.
        """
        path = Path(keystore_dir) / KEY_FILE_NAME
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise KeystoreError(
                f"no node key at {path}: create one with `lilypad-p2p keys new`"
            ) from None
        except OSError as exc:
            raise KeystoreError(f"cannot open {path}: {exc.strerror}") from exc
        with os.fdopen(fd, "rb") as key_file:
            info = os.fstat(key_file.fileno())
            _check_key_file(path, info)
            content = key_file.read(MAX_KEY_FILE_BYTES + 1)
        return cls._from_key_file(path, content)

    @classmethod
    def load_or_create(cls, keystore_dir: Path) -> Self:
        """Load the identity in `keystore_dir`, creating and saving a new one if there is none."""
        path = Path(keystore_dir) / KEY_FILE_NAME
        if not path.exists():
            identity = cls.generate()
            try:
                identity.save(keystore_dir)
                return identity
            except KeystoreError:
                if not path.exists():
                    raise
                # Another process created it between our check and our save: use theirs.
        return cls.load(keystore_dir)

    def save(self, keystore_dir: Path) -> None:
        """Write this identity to `keystore_dir` (made 0700) as a 0600 file.

        Raises:
            KeystoreError: a key already exists there (it is never overwritten), or the
                directory cannot be written.
        """
        directory = Path(keystore_dir)
        path = directory / KEY_FILE_NAME
        if path.exists():
            raise KeystoreError(f"a node key already exists at {path}; refusing to overwrite it")
        content = json.dumps(
            {
                "version": KEYSTORE_FORMAT_VERSION,
                "secp256k1_private_key": self._secp256k1_secret.hex(),
                "x25519_private_key": self._x25519_secret.hex(),
            },
            sort_keys=True,
        ).encode()
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=KEYSTORE_DIR_MODE)
            os.chmod(directory, KEYSTORE_DIR_MODE)
            # mkstemp creates the file 0600 from the start: the secret is never world-readable.
            fd, temp_name = tempfile.mkstemp(dir=directory, prefix=".node-key-", suffix=".tmp")
        except OSError as exc:
            raise KeystoreError(f"cannot write the keystore {directory}: {exc}") from exc
        try:
            with os.fdopen(fd, "wb") as temp_file:
                temp_file.write(content)
                temp_file.flush()
                os.fsync(temp_file.fileno())
            os.chmod(temp_name, KEY_FILE_MODE)
            try:
                os.link(temp_name, path)  # fails if the name exists: never overwrites
            except FileExistsError:
                raise KeystoreError(
                    f"a node key already exists at {path}; refusing to overwrite it"
                ) from None
            except OSError as exc:
                raise KeystoreError(f"cannot write {path}: {exc}") from exc
        finally:
            os.unlink(temp_name)
        _fsync_directory(directory)

    def libp2p_key_pair(self) -> KeyPair:
        """The secp256k1 key pair for `new_host(key_pair=...)` and Noise."""
        return create_new_key_pair(self._secp256k1_secret)

    def eth_account(self) -> LocalAccount:
        """The Ethereum account of the same key: chain transactions and EIP-712 signatures."""
        return Account.from_key(self._secp256k1_secret)

    def sealing_private_key(self) -> nacl.public.PrivateKey:
        """The X25519 key that opens inputs and outputs sealed to this node."""
        return nacl.public.PrivateKey(self._x25519_secret)

    def sign_envelope(self, body: Message, published_at_ms: int) -> SignedEnvelope:
        """Sign `body` (which this node must own) as published at `published_at_ms`."""
        return sign_envelope(body, EthPrivateKey(self._secp256k1_secret), published_at_ms)

    def __repr__(self) -> str:
        return f"Identity(address={self.address}, peer_id={self.peer_id})"

    def __reduce__(self) -> object:
        raise TypeError("an Identity holds secrets and is not picklable")

    @classmethod
    def _from_key_file(cls, path: Path, content: bytes) -> Self:
        if len(content) > MAX_KEY_FILE_BYTES:
            raise KeystoreError(f"{path} is corrupt: larger than {MAX_KEY_FILE_BYTES} bytes")
        try:
            document = json.loads(content)
            version = document["version"]
            secp256k1_secret = bytes.fromhex(document["secp256k1_private_key"])
            x25519_secret = bytes.fromhex(document["x25519_private_key"])
        except (ValueError, KeyError, TypeError) as exc:
            # The exception text could quote key material: name the defect, not the content.
            raise KeystoreError(
                f"{path} is corrupt: not a lilypad-p2p key file ({type(exc).__name__})"
            ) from None
        if version != KEYSTORE_FORMAT_VERSION:
            raise KeystoreError(f"{path} has keystore version {version!r}; expected 1")
        try:
            return cls(secp256k1_secret, x25519_secret)
        except ValueError:
            raise KeystoreError(f"{path} is corrupt: the keys are not valid") from None


def _check_key_file(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise KeystoreError(f"{path} is not a regular file")
    if info.st_uid != os.getuid():
        raise KeystoreError(f"{path} belongs to another user (uid {info.st_uid}); refusing it")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise KeystoreError(
            f"{path} has mode {mode:04o}: group or others can access the node key. "
            f"Fix it with `chmod 600 {path}` (and check nobody copied it)."
        )


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def address_from_peer_id(peer_id: ID) -> str:
    """EIP-55 address of the secp256k1 key in an identity-multihash peer ID.

    Raises:
        ValueError: the peer ID is not a secp256k1 identity-multihash peer ID.
    """
    return address_from_peer_id_bytes(peer_id.to_bytes())
