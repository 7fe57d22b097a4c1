import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.public import PrivateKey

from lilypad_p2p.errors import PeerMisbehaved
from lilypad_p2p.exec import UnsealFailed, as_private_key, as_public_key, seal_for, unseal

RECIPIENT = PrivateKey.generate()


def test_round_trip_with_key_objects_and_raw_bytes():
    sealed = seal_for(RECIPIENT.public_key, b"inputs")
    assert unseal(RECIPIENT, sealed) == b"inputs"
    sealed_raw = seal_for(bytes(RECIPIENT.public_key), b"inputs")
    assert unseal(bytes(RECIPIENT), sealed_raw) == b"inputs"


def test_sealing_is_randomised_so_ciphertexts_do_not_link_jobs():
    assert seal_for(RECIPIENT.public_key, b"same") != seal_for(RECIPIENT.public_key, b"same")


@given(st.binary(min_size=0, max_size=256), st.data())
def test_any_single_byte_change_is_rejected(plaintext, data):
    sealed = bytearray(seal_for(RECIPIENT.public_key, plaintext))
    index = data.draw(st.integers(0, len(sealed) - 1))
    sealed[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(UnsealFailed):
        unseal(RECIPIENT, bytes(sealed))


def test_truncated_and_wrong_key_are_rejected_as_peer_misbehaviour():
    sealed = seal_for(RECIPIENT.public_key, b"secret")
    with pytest.raises(UnsealFailed) as truncated:
        unseal(RECIPIENT, sealed[:-1])
    assert isinstance(truncated.value, PeerMisbehaved)
    with pytest.raises(UnsealFailed):
        unseal(PrivateKey.generate(), sealed)
    with pytest.raises(UnsealFailed):
        unseal(RECIPIENT, b"")


@pytest.mark.parametrize("bad", [b"short", "not bytes" * 4, 42])
def test_keys_of_the_wrong_shape_are_a_type_error(bad):
    with pytest.raises(TypeError):
        as_public_key(bad)
    with pytest.raises(TypeError):
        as_private_key(bad)


def test_ten_mib_round_trip():
    plaintext = bytes(range(256)) * (10 * 1024 * 4)
    assert unseal(RECIPIENT, seal_for(RECIPIENT.public_key, plaintext)) == plaintext
