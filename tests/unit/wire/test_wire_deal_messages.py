"""Deal stream messages: round trips, and decoding garbage raises only MalformedMessage."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lilypad_p2p import wire

DEAL_MAP = {name: 1 for name in wire.DEAL_FIELDS}
SAMPLES = [
    wire.DealProposal(chain_id=31337, job_offer=b"env", resource_offer_cid="bafk", deal=DEAL_MAP,
                      job_creator_signature=bytes(65)),
    wire.DealAccepted(),
    wire.DealRefused(reason="no capacity"),
    wire.JobRequest(chain_id=1, deal=DEAL_MAP, module="hash",
                    inputs_preamble=bytes(wire.PREAMBLE_BYTES), inputs_bytes=5 * 2**30,
                    inputs_nonce=bytes(32), output_recipient=bytes(32)),
    wire.JobResultMessage(deal_id=bytes(32), result_hash=bytes(32),
                          provider_signature=bytes(65),
                          output_preamble=bytes(wire.PREAMBLE_BYTES), output_bytes=0),
    wire.AcceptanceNotice(chain_id=wire.MAX_CHAIN_ID, deal_id=bytes(32), result_hash=bytes(32),
                          job_creator_signature=bytes(65)),
    wire.AcceptanceAck(deal_id=bytes(32)),
    wire.SendInputs(deal_id=bytes(32)),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: m.TYPE)
def test_round_trip_through_canonical_bytes(message):
    encoded = wire.encode(message.to_wire())
    assert wire.deal_message_from_wire(wire.decode(encoded)) == message


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: m.TYPE)
def test_any_missing_extra_or_retyped_field_is_malformed(message):
    raw = message.to_wire()
    for name in raw:
        with pytest.raises(wire.MalformedMessage):
            wire.deal_message_from_wire({k: v for k, v in raw.items() if k != name})
        with pytest.raises(wire.MalformedMessage):
            wire.deal_message_from_wire({**raw, name: 3.5})
    with pytest.raises(wire.MalformedMessage):
        wire.deal_message_from_wire({**raw, "extra": 1})


def test_wrong_lengths_are_refused_at_construction():
    with pytest.raises(wire.MalformedMessage):
        wire.DealRefused(reason="")
    with pytest.raises(wire.MalformedMessage):
        wire.JobRequest(chain_id=1, deal={"payment": 1}, module="hash",
                        inputs_preamble=bytes(wire.PREAMBLE_BYTES), inputs_bytes=0,
                        inputs_nonce=bytes(32), output_recipient=bytes(32))
    for preamble, size in ((bytes(103), 0), (bytes(wire.PREAMBLE_BYTES), -1),
                           (bytes(wire.PREAMBLE_BYTES), 2**63), (bytes(wire.PREAMBLE_BYTES), True)):
        with pytest.raises(wire.MalformedMessage):
            wire.JobRequest(chain_id=1, deal=DEAL_MAP, module="hash", inputs_preamble=preamble,
                            inputs_bytes=size, inputs_nonce=bytes(32),
                            output_recipient=bytes(32))
    for nonce in (b"", bytes(31), bytes(33), None):
        with pytest.raises(wire.MalformedMessage, match="inputs_nonce"):
            wire.JobRequest(chain_id=1, deal=DEAL_MAP, module="hash",
                            inputs_preamble=bytes(wire.PREAMBLE_BYTES), inputs_bytes=0,
                            inputs_nonce=nonce, output_recipient=bytes(32))


@pytest.mark.parametrize("chain_id", [0, -1, wire.MAX_CHAIN_ID + 1, True, "1", 1.0])
def test_a_deal_message_names_a_valid_chain(chain_id):
    for message in (SAMPLES[0], SAMPLES[3], SAMPLES[5]):
        with pytest.raises(wire.MalformedMessage, match="chain_id"):
            wire.deal_message_from_wire({**message.to_wire(), "chain_id": chain_id})


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.binary(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
))
def test_fuzzed_values_raise_only_malformed(value):
    with contextlib.suppress(wire.MalformedMessage):
        wire.deal_message_from_wire(value)
