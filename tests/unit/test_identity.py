import json
import os
import stat

import nacl.public
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from libp2p.crypto.ed25519 import create_new_key_pair as create_ed25519_key_pair
from libp2p.peer.id import ID

from lilypad_p2p.errors import LilypadError
from lilypad_p2p.identity import KEY_FILE_NAME, Identity, KeystoreError, address_from_peer_id
from lilypad_p2p.testing.offers import make_resource_offer
from lilypad_p2p.wire import open_envelope


@pytest.fixture
def keystore(tmp_path):
    return tmp_path / "home" / "keys"


def _secrets(identity):
    return identity._secp256k1_secret, identity._x25519_secret


def test_generate_save_load_round_trip(keystore):
    identity = Identity.generate()
    identity.save(keystore)
    loaded = Identity.load(keystore)
    assert loaded.address == identity.address
    assert loaded.peer_id == identity.peer_id
    assert loaded.sealing_public_key == identity.sealing_public_key
    assert _secrets(loaded) == _secrets(identity)


def test_keystore_modes(keystore):
    Identity.generate().save(keystore)
    assert stat.S_IMODE(os.stat(keystore).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(keystore / KEY_FILE_NAME).st_mode) == 0o600
    assert os.listdir(keystore) == [KEY_FILE_NAME]  # no temporary file left behind


def test_save_tightens_an_existing_loose_directory(keystore):
    keystore.mkdir(parents=True, mode=0o755)
    os.chmod(keystore, 0o755)
    Identity.generate().save(keystore)
    assert stat.S_IMODE(os.stat(keystore).st_mode) == 0o700


def test_save_never_overwrites(keystore):
    first = Identity.generate()
    first.save(keystore)
    with pytest.raises(KeystoreError, match="refusing to overwrite"):
        Identity.generate().save(keystore)
    assert Identity.load(keystore).address == first.address


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o601])
def test_load_refuses_key_files_others_can_access(keystore, mode):
    Identity.generate().save(keystore)
    os.chmod(keystore / KEY_FILE_NAME, mode)
    with pytest.raises(KeystoreError, match="chmod 600"):
        Identity.load(keystore)


def test_load_missing_key_says_how_to_create_one(keystore):
    with pytest.raises(KeystoreError, match="keys new"):
        Identity.load(keystore)


def test_load_refuses_a_symlink(keystore, tmp_path):
    Identity.generate().save(tmp_path / "elsewhere")
    keystore.mkdir(parents=True)
    os.symlink(tmp_path / "elsewhere" / KEY_FILE_NAME, keystore / KEY_FILE_NAME)
    with pytest.raises(KeystoreError):
        Identity.load(keystore)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not json", id="not json"),
        pytest.param(b"[]", id="json list"),
        pytest.param(b'{"version": 1}', id="missing keys"),
        pytest.param(b'{"version": 1, "secp256k1_private_key": "zz", "x25519_private_key": "00"}',
                     id="bad hex"),
        pytest.param(json.dumps({"version": 1, "secp256k1_private_key": "00" * 32,
                                 "x25519_private_key": "11" * 32}).encode(), id="zero scalar"),
        pytest.param(json.dumps({"version": 1, "secp256k1_private_key": "11" * 31,
                                 "x25519_private_key": "11" * 32}).encode(), id="short key"),
        pytest.param(json.dumps({"version": 2, "secp256k1_private_key": "11" * 32,
                                 "x25519_private_key": "11" * 32}).encode(), id="version 2"),
        pytest.param(b" " * 5000, id="too large"),
    ],
)
def test_load_reports_corrupt_files_without_quoting_them(keystore, content):
    keystore.mkdir(parents=True)
    path = keystore / KEY_FILE_NAME
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(KeystoreError) as caught:
        Identity.load(keystore)
    assert "11" * 16 not in str(caught.value)
    assert isinstance(caught.value, LilypadError)


def test_load_or_create_creates_once_then_loads(keystore):
    created = Identity.load_or_create(keystore)
    assert Identity.load_or_create(keystore).address == created.address


def test_peer_id_and_address_come_from_one_key():
    identity = Identity.generate()
    assert str(identity.peer_id).startswith("16Uiu2")
    assert address_from_peer_id(identity.peer_id) == identity.address
    assert ID.from_pubkey(identity.libp2p_key_pair().public_key) == identity.peer_id
    assert identity.eth_account().address == identity.address


def test_address_from_peer_id_refuses_other_key_types():
    ed25519_peer = ID.from_pubkey(create_ed25519_key_pair().public_key)
    with pytest.raises(ValueError):
        address_from_peer_id(ed25519_peer)
    with pytest.raises(ValueError):
        address_from_peer_id(ID(b"\x12\x20" + b"\x00" * 32))


def test_sealing_key_pair_works():
    identity = Identity.generate()
    private = identity.sealing_private_key()
    assert bytes(private.public_key) == identity.sealing_public_key
    sealed = nacl.public.SealedBox(nacl.public.PublicKey(identity.sealing_public_key)).encrypt(b"x")
    assert nacl.public.SealedBox(private).decrypt(sealed) == b"x"


def test_sign_envelope_uses_the_node_key():
    identity = Identity.generate()
    body = make_resource_offer(provider=identity.address, created_at=1_000, expires_at=2_000)
    envelope = identity.sign_envelope(body, 1_000)
    assert open_envelope(envelope.encode(), now_ms=1_500).signer == identity.address


def test_eth_account_signs_eip712():
    identity = Identity.generate()
    typed = {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}],
            "Ping": [{"name": "n", "type": "uint256"}],
        },
        "primaryType": "Ping",
        "domain": {"name": "lilypad"},
        "message": {"n": 1},
    }
    account = identity.eth_account()
    signed = account.sign_message(encode_typed_data(full_message=typed))
    recovered = Account.recover_message(
        encode_typed_data(full_message=typed), signature=signed.signature
    )
    assert recovered == identity.address


def test_repr_and_str_show_no_secret():
    identity = Identity.generate()
    secp256k1_secret, x25519_secret = _secrets(identity)
    for text in (repr(identity), str(identity), f"{identity}"):
        assert identity.address in text
        for secret in (secp256k1_secret, x25519_secret):
            assert secret.hex() not in text.lower()
            assert str(secret) not in text


def test_identity_is_not_picklable():
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(Identity.generate())
