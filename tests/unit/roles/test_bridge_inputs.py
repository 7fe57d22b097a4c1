"""The bridge reads a request's inputs as a JSON object of module parameters, and refuses a
request it cannot run before claiming it (a claim puts the bond at stake)."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from lilypad_p2p.chain import JobRequest, RequestedJob, RequestMode, RequestStatus, TrustPolicy
from lilypad_p2p.roles._bridge import BridgeRole
from lilypad_p2p.roles._bridge_stakes import claim_refusal
from lilypad_p2p.roles._request_polling import request_params


def test_json_object_becomes_module_params() -> None:
    given = b'{"text": "hi", "algorithm": "md5"}'
    assert request_params(given) == {"text": "hi", "algorithm": "md5"}


@pytest.mark.parametrize("inputs", [b'["text"]', b'"hi"', b"not json", b"\xff\xfe"])
def test_anything_else_is_refused(inputs: bytes) -> None:
    with pytest.raises(ValueError):
        request_params(inputs)


def _bridge(tmp_path: Path) -> BridgeRole:
    chain = SimpleNamespace(chain_id=31_337)
    requests = SimpleNamespace(account=SimpleNamespace(address="0x" + "11" * 20), chain=chain)
    return BridgeRole(requests=requests, client=None, store=None,  # type: ignore[arg-type]
                      state_path=tmp_path / "bridge.json")


def _requested(module: str, inputs: bytes) -> RequestedJob:
    return RequestedJob(b"r" * 32, "0x" + "22" * 20, module, inputs, 10**16, 10_000, 100_000,
                        TrustPolicy(("0x" + "33" * 20,), 1), 1)


@pytest.mark.parametrize(("module", "inputs"), [
    ("hash", b'{"nonsense": 1}'), ("hash", b"[1]"), ("no-such-module", b"{}"),
])
def test_a_request_it_cannot_run_is_refused_before_the_bond_is_at_stake(
    tmp_path: Path, module: str, inputs: bytes
) -> None:
    bridge = _bridge(tmp_path)
    assert bridge._job_for(_requested(module, inputs), now=1_000) is None
    assert bridge.statistics().failed_submissions == 1
    assert bridge._dropped.blocks == {b"r" * 32: 1}  # not taken up when its block is reread


def test_a_runnable_request_becomes_a_job_salted_with_its_id(tmp_path: Path) -> None:
    job = _bridge(tmp_path)._job_for(_requested("hash", b'{"text": "hi"}'), now=1_000)
    assert job is not None and job.salt == b"r" * 32 and job.max_price_wei == 10**16


def test_claims_only_where_it_trusts_k_of_the_consortium_and_the_bond_fits() -> None:
    a, b, c = ("0x" + d * 40 for d in "abc")
    requested = RequestedJob(b"r" * 32, a, "hash", b"{}", 100, 10_000, 0,
                             TrustPolicy((a, b, c), 2), 1)

    def request(bond: int) -> JobRequest:
        return JobRequest(b"r" * 32, a, 10_000, 0, RequestStatus.OPEN, RequestMode.ATTESTED, 2,
                          0, 0, 0, 100, bond, 0, b"m" * 32, b"c" * 32, "0x" + "00" * 20,
                          "0x" + "00" * 20, bytes(32))

    assert claim_refusal(requested, request(100), frozenset({a, b})) is None
    assert "only 1 of" in (claim_refusal(requested, request(100), frozenset({c})) or "")
    assert "exceeds the escrow" in (claim_refusal(requested, request(101),
                                                  frozenset({a, b, c})) or "")
