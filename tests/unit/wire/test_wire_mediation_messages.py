"""The mediation protocol's messages (wire/_mediation_messages.py)."""

import pytest

from lilypad_p2p import wire

DEAL = {name: 0 for name in wire.DEAL_FIELDS}


def _request(**overrides):
    values = {"chain_id": 31337, "deal": DEAL, "module": "hash",
              "inputs_preamble": bytes(wire.PREAMBLE_BYTES), "inputs_bytes": 80 * 2**20,
              "inputs_nonce": b"\x06" * 32, "job_offer": b"envelope",
              "result_hash": b"\x01" * 32, "provider_signature": b"\x02" * 65,
              "output_recipient": b""}
    return wire.MediationRequest(**{**values, **overrides})


VERDICT = {"deal_id": b"\x03" * 32, "outcome": 1, "result_hash": b"\x04" * 32,
           "mediator_signature": b"\x05" * 65}


def test_round_trip_through_the_deal_message_codec():
    for message in (_request(), _request(output_recipient=b"\x07" * 32),
                    wire.VerdictNotice(**VERDICT),
                    wire.VerdictWithOutput(**VERDICT, output_preamble=bytes(wire.PREAMBLE_BYTES),
                                           output_bytes=5 * 2**30)):
        decoded = wire.deal_message_from_wire(wire.decode(wire.encode(message.to_wire())))
        assert decoded == message and type(decoded) is type(message)


@pytest.mark.parametrize("overrides", [
    {"output_preamble": b"short"}, {"output_bytes": -1}, {"output_bytes": True}, {"outcome": 0},
    {"outcome": 2}, {"outcome": 3},
])
def test_malformed_verdicts_with_output_are_refused(overrides):
    values = {**VERDICT, "output_preamble": bytes(wire.PREAMBLE_BYTES), "output_bytes": 1}
    with pytest.raises(wire.MalformedMessage):
        wire.VerdictWithOutput(**{**values, **overrides})


@pytest.mark.parametrize("overrides", [
    {"result_hash": b"short"}, {"provider_signature": b"\x00" * 64}, {"module": ""},
    {"deal": {"job_creator": 1}}, {"inputs_preamble": b"short"}, {"inputs_bytes": -1},
    {"inputs_bytes": True}, {"chain_id": 0}, {"inputs_nonce": bytes(31)},
    {"job_offer": "envelope"}, {"output_recipient": bytes(31)}, {"output_recipient": None},
])
def test_malformed_requests_are_refused(overrides):
    with pytest.raises(wire.MalformedMessage):
        _request(**overrides)


@pytest.mark.parametrize("outcome", [0, 4, True, "1"])
def test_verdict_outcome_must_be_a_contract_outcome(outcome):
    with pytest.raises(wire.MalformedMessage):
        wire.VerdictNotice(deal_id=b"\x03" * 32, outcome=outcome, result_hash=b"\x04" * 32,
                           mediator_signature=b"\x05" * 65)
