"""Calls encoded from our ABI tables equal web3's, and views decode as web3 decodes them."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_account import Account
from web3 import Web3

from lilypad_p2p.chain import ChainError
from lilypad_p2p.chain._abi import ContractAbi, contract_abi
from lilypad_p2p.chain._artifacts import SETTLEMENT, artifact

ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
JC = Account.from_key(b"\x01" * 32).address
RP = Account.from_key(b"\x02" * 32).address
TERMS = (JC, RP, 10**18, 2 * 10**18, 10**17, b"\x05" * 32, 3, 1_800_000_000, 600, 3600,
         b"\x0a" * 32)


def web3_calldata(name: str, function: str, args: list[object]) -> bytes:
    contract = Web3().eth.contract(address=ADDRESS, abi=artifact(name)["abi"])
    return bytes.fromhex(contract.encode_abi(function, args=args)[2:])


@pytest.mark.parametrize(("function", "args"), [
    ("deposit", []),
    ("deals", [b"\x01" * 32]),
    ("accounts", [JC]),
    ("openDeal", [TERMS, [JC, RP], b"\x11" * 65, b"\x22" * 65]),
    ("settleBatch", [[TERMS, TERMS], [b"\x33" * 32] * 2, [b"\x44" * 65] * 2]),
])
def test_settlement_calls_encode_as_web3_encodes_them(function: str, args: list[object]) -> None:
    assert contract_abi(SETTLEMENT).encode(function, args) == web3_calldata(
        SETTLEMENT, function, args)


def test_a_view_answer_decodes_to_a_value_or_a_tuple_with_checksummed_addresses() -> None:
    abi = ContractAbi([
        {"type": "function", "name": "owner", "inputs": [],
         "outputs": [{"name": "", "type": "address"}]},
        {"type": "function", "name": "pair", "inputs": [],
         "outputs": [{"name": "who", "type": "tuple", "components": [
             {"name": "a", "type": "address"}, {"name": "n", "type": "uint8"}]},
             {"name": "all", "type": "address[]"}]},
    ])
    assert abi.decode("owner", encode(["address"], [JC.lower()]), ADDRESS) == JC
    answer = encode(["(address,uint8)", "address[]"], [(RP.lower(), 7), [JC.lower()]])
    assert abi.decode("pair", answer, ADDRESS) == ((RP, 7), [JC])


def test_an_empty_answer_says_to_check_the_contract_address() -> None:
    with pytest.raises(ChainError, match="check the contract address"):
        contract_abi(SETTLEMENT).decode("deals", b"", ADDRESS)


def test_a_name_that_is_overloaded_or_missing_is_refused() -> None:
    function = {"type": "function", "name": "f", "outputs": []}
    abi = ContractAbi([{**function, "inputs": []},
                       {**function, "inputs": [{"name": "x", "type": "uint256"}]}])
    with pytest.raises(ValueError, match="overloaded"):
        abi.encode("f", [])
    with pytest.raises(ValueError, match="no function g"):
        abi.encode("g", [])
