"""A node's identity: one secp256k1 key and one X25519 sealing key, kept in a keystore.

The secp256k1 key is at once the libp2p host key (peer ID `16Uiu2...`) and the Ethereum account
(address, chain transactions, EIP-712), so a gossip message's libp2p source *is* the market
participant. The X25519 key (pynacl) receives sealed job inputs and outputs; its public half is
published in the node record, signed by the secp256k1 key.

The keystore (`keystore.py`: formats, file modes, password sources) holds both keys, encrypted
under one password (Web3 Secret Storage V3), or in the legacy plaintext file, which still loads
with a warning until `lilypad-p2p keys encrypt` converts it. Like ssh, loading refuses a key file
that group or others can access, or that another user owns; saving never replaces a key.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import NoReturn, Self

import coincurve
import nacl.public
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_keys.datatypes import PrivateKey as EthPrivateKey
from eth_keys.exceptions import ValidationError as EthKeysValidationError
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.secp256k1 import create_new_key_pair
from libp2p.peer.id import ID

from lilypad_p2p.keystore import (
    DEFAULT_SCRYPT_N,
    HOW_TO_UNLOCK,
    KEY_FILE_MODE,
    KEY_FILE_NAME,
    KEYSTORE_DIR_MODE,
    MAX_KEY_FILE_BYTES,
    SEALING_KEY_FILE_NAME,
    KeystoreError,
    Password,
    PasswordSource,
    decrypt_file,
    encrypt_secret,
    is_encrypted,
    plaintext_content,
    prepare_directory,
    read_plaintext,
    refuse_existing_keys,
    write_private_file,
)
from lilypad_p2p.logs import event
from lilypad_p2p.wire import (
    BadSignature,
    Message,
    SignedEnvelope,
    address_from_peer_id_bytes,
    sign_envelope,
    sign_handover,
    verify_handover,
)

__all__ = [
    "HANDOVER_FILE_NAME",
    "KEYSTORE_DIR_MODE",
    "KEY_FILE_MODE",
    "KEY_FILE_NAME",
    "MAX_KEY_FILE_BYTES",
    "SEALING_KEY_FILE_NAME",
    "Identity",
    "KeystoreError",
    "Password",
    "address_from_peer_id",
    "load_handover",
    "save_handover",
]

log = logging.getLogger(__name__)
_SECRET_BYTES = 32
# After `keys rotate`: the retired key's signature naming this key, which the node puts in its
# NodeRecord so that peers learn the new identity (wire/_handover.py).
HANDOVER_FILE_NAME = "handover.json"


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
    def load(
        cls, keystore_dir: Path, password: Password | PasswordSource | None = None, *,
        plaintext_expected: bool = False,
    ) -> Self:
        """Load the identity stored in `keystore_dir`, unlocking an encrypted keystore with
        `password` (or what the source gives; asked only if the keystore is encrypted).
        A plaintext keystore is logged as a warning unless `plaintext_expected` (the homes
        the local networks make for themselves).

        Raises:
            KeystoreError: no key file, an unsafe or corrupt one, no password for an encrypted
                keystore, or a wrong password.
        """
        directory = Path(keystore_dir)
        path = directory / KEY_FILE_NAME
        encrypted = is_encrypted(directory)
        if encrypted is None:
            raise KeystoreError(f"no node key at {path}: create one with `lilypad-p2p keys new`")
        if not encrypted:
            if not plaintext_expected:
                event(log, "keys.plaintext", logging.WARNING, path=str(path),
                      fix="lilypad-p2p keys encrypt")
            return cls._from_plaintext(path)
        given = password() if callable(password) else password
        if given is None:
            raise KeystoreError(f"the keystore {directory} is encrypted: {HOW_TO_UNLOCK}")
        secrets = (
            decrypt_file(path, given),
            decrypt_file(directory / SEALING_KEY_FILE_NAME, given),
        )
        try:
            return cls(*secrets)
        except ValueError:
            raise KeystoreError(f"{path} is corrupt: the keys are not valid") from None

    @classmethod
    def _from_plaintext(cls, path: Path) -> Self:
        try:
            return cls(*read_plaintext(path))
        except ValueError:
            raise KeystoreError(f"{path} is corrupt: the keys are not valid") from None

    @classmethod
    def load_or_create(
        cls, keystore_dir: Path, password: Password | PasswordSource | None = None, *,
        plaintext_expected: bool = False,
    ) -> Self:
        """Load the identity in `keystore_dir`, creating and saving a new one if there is none:
        encrypted when `password` gives one, else plaintext (`plaintext_expected`: as `load`)."""
        path = Path(keystore_dir) / KEY_FILE_NAME
        if not path.exists():
            identity = cls.generate()
            given = password() if callable(password) else password
            try:
                identity.save(keystore_dir, given)
                return identity
            except KeystoreError:
                if not path.exists():
                    raise
                # Another process created it between our check and our save: use theirs.
        return cls.load(keystore_dir, password, plaintext_expected=plaintext_expected)

    def save(
        self,
        keystore_dir: Path,
        password: Password | None = None,
        *,
        scrypt_n: int = DEFAULT_SCRYPT_N,
    ) -> None:
        """Write this identity to `keystore_dir` (made 0700) as 0600 files: encrypted under
        `password`, or plaintext without one (tests, simnets: `keys new --insecure-plaintext`).

        Raises:
            KeystoreError: either key file already exists there (a key is never overwritten),
                or the directory cannot be written.
        """
        directory = Path(keystore_dir)
        path = directory / KEY_FILE_NAME
        refuse_existing_keys(directory)
        prepare_directory(directory)
        if password is None:
            write_private_file(path, self._plaintext(), replace=False)
            return
        # The sealing key first: node-key.json appearing is what makes the keystore exist.
        write_private_file(
            directory / SEALING_KEY_FILE_NAME,
            encrypt_secret(self._x25519_secret, password, scrypt_n=scrypt_n, account=False),
            replace=False,
        )
        write_private_file(
            path,
            encrypt_secret(self._secp256k1_secret, password, scrypt_n=scrypt_n, account=True),
            replace=False,
        )

    @classmethod
    def encrypt_keystore(
        cls, keystore_dir: Path, password: Password, *, scrypt_n: int = DEFAULT_SCRYPT_N
    ) -> Self:
        """Convert the plaintext keystore in `keystore_dir` to an encrypted one in place (same
        keys), then check it opens with `password`.

        Raises:
            KeystoreError: no key, already encrypted, unsafe or corrupt files.
        """
        directory = Path(keystore_dir)
        encrypted = is_encrypted(directory)
        if encrypted is None:
            raise KeystoreError(f"no node key at {directory / KEY_FILE_NAME}")
        if encrypted:
            raise KeystoreError(f"the keystore {directory} is already encrypted")
        # Not `load`: its plaintext warning is noise while the plaintext is being replaced.
        identity = cls._from_plaintext(directory / KEY_FILE_NAME)
        write_private_file(
            directory / SEALING_KEY_FILE_NAME,
            encrypt_secret(identity._x25519_secret, password, scrypt_n=scrypt_n, account=False),
            replace=True,
        )
        write_private_file(
            directory / KEY_FILE_NAME,
            encrypt_secret(identity._secp256k1_secret, password, scrypt_n=scrypt_n, account=True),
            replace=True,
        )
        reopened = cls.load(directory, password)
        if reopened.address != identity.address:
            raise KeystoreError(f"the keystore {directory} did not reopen with the same key")
        return reopened

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

    def sign_handover(self, successor: str) -> bytes:
        """This (retiring) key's signature naming `successor` as the key that replaces it."""
        return sign_handover(EthPrivateKey(self._secp256k1_secret), successor)

    def __repr__(self) -> str:
        return f"Identity(address={self.address}, peer_id={self.peer_id})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("an Identity holds secrets and is not picklable")

    def _plaintext(self) -> bytes:
        return plaintext_content(self._secp256k1_secret, self._x25519_secret)


def address_from_peer_id(peer_id: ID) -> str:
    """EIP-55 address of the secp256k1 key in an identity-multihash peer ID.

    Raises:
        ValueError: the peer ID is not a secp256k1 identity-multihash peer ID.
    """
    return address_from_peer_id_bytes(peer_id.to_bytes())


def save_handover(keystore_dir: Path, predecessor: str, signature: bytes) -> Path:
    """Keep the retired key's hand-over beside the new keys (0600)."""
    path = Path(keystore_dir) / HANDOVER_FILE_NAME
    text = json.dumps({"predecessor": predecessor, "signature": signature.hex()})
    write_private_file(path, text.encode(), replace=True)
    return path


def load_handover(keystore_dir: Path, address: str) -> tuple[str, bytes] | None:
    """The (predecessor, signature) naming `address`, or None when this key replaced none.

    Raises:
        KeystoreError: the file is unreadable, malformed, or not a valid hand-over to `address`.
    """
    path = Path(keystore_dir) / HANDOVER_FILE_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KeystoreError(f"{path}: cannot read it ({exc.strerror})") from exc
    try:
        data = json.loads(raw[:MAX_KEY_FILE_BYTES])
        predecessor, signature = data["predecessor"], bytes.fromhex(data["signature"])
        verify_handover(predecessor, address, signature)
    except (ValueError, KeyError, TypeError, BadSignature) as exc:
        raise KeystoreError(
            f"{path}: not a hand-over from a retired key to {address} ({exc}); restore it from "
            "your backup or delete it (peers then learn the new key from the chain only)"
        ) from None
    return predecessor, signature
