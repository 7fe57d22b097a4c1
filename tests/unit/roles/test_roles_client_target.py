"""`run --target` names a provider by address or by peer ID."""

import pytest

from lilypad_p2p.identity import Identity
from lilypad_p2p.roles import SubmissionError
from lilypad_p2p.roles._client_submission import provider_address


def test_address_or_peer_id_name_the_same_provider():
    provider = Identity.generate()
    assert provider_address(str(provider.peer_id)) == provider.address
    assert provider_address(provider.address.lower()) == provider.address


@pytest.mark.parametrize("target", ["nonsense", "0x1234", "16Uiu2HAmBroken"])
def test_anything_else_is_a_submission_error(target):
    with pytest.raises(SubmissionError):
        provider_address(target)
