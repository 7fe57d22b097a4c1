"""Transient RPC faults are retried with exponential backoff; a dead node is a typed error."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import requests

from lilypad_p2p.chain import Backend, Chain, RpcUnavailable, _backend
from lilypad_p2p.chain._backend import _revert_data


class FlakyEth:
    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    @property
    def chain_id(self) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return 31337


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(_backend.time, "sleep", slept.append)
    return slept


def test_transient_faults_are_retried_with_backoff(sleeps: list[float]) -> None:
    eth = FlakyEth(3, requests.ConnectionError("reset"))
    chain = Chain(SimpleNamespace(eth=eth), Backend.JSON_RPC)  # type: ignore[arg-type]
    assert chain.chain_id == 31337
    assert sleeps == [_backend.RPC_BACKOFF_S * 2**i for i in range(3)]


def test_persistent_faults_become_rpc_unavailable(sleeps: list[float]) -> None:
    eth = FlakyEth(100, requests.Timeout("slow"))
    with pytest.raises(RpcUnavailable, match=r"did not answer \(5 tries: slow\)"):
        Chain(SimpleNamespace(eth=eth), Backend.JSON_RPC)  # type: ignore[arg-type]
    assert eth.calls == _backend.RPC_ATTEMPTS
    assert len(sleeps) == _backend.RPC_ATTEMPTS - 1


def test_client_errors_are_not_retried(sleeps: list[float]) -> None:
    response = requests.Response()
    response.status_code = 401
    eth = FlakyEth(100, requests.HTTPError("denied", response=response))
    with pytest.raises(RpcUnavailable):
        Chain(SimpleNamespace(eth=eth), Backend.JSON_RPC)  # type: ignore[arg-type]
    assert (eth.calls, sleeps) == (1, [])


def test_revert_data_from_either_backend() -> None:
    from eth_tester.exceptions import TransactionFailed
    from web3.exceptions import ContractCustomError

    assert _revert_data(ContractCustomError("0xdeadbeef", data="0xdeadbeef")) == bytes.fromhex(
        "deadbeef"
    )
    try:
        try:
            raise TransactionFailed(b"\xab\xcd")
        except TransactionFailed:
            raise TransactionFailed("execution reverted: b'\\xab\\xcd'") from None
    except TransactionFailed as wrapped:
        # web3 re-raises eth-tester's bytes as a string; the bytes come back from the text
        assert _revert_data(wrapped) == b"\xab\xcd"
    assert _revert_data(ValueError("nothing")) is None


def test_revert_data_given_as_a_json_object_is_no_revert_bytes() -> None:
    from web3.exceptions import ContractLogicError

    reverted = ContractLogicError("execution reverted: no", data={"message": "no"})
    assert _revert_data(reverted) is None


def test_a_cause_chain_that_loops_still_has_a_root(sleeps: list[float]) -> None:
    looped = ConnectionError("refused")
    looped.__cause__ = looped
    eth = FlakyEth(100, looped)
    with pytest.raises(RpcUnavailable, match="refused"):
        Chain(SimpleNamespace(eth=eth), Backend.JSON_RPC)  # type: ignore[arg-type]
