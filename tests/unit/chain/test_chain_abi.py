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


def sample_value(kind: str, index: int) -> object:
    if kind == "address":
        return [JC, RP][index % 2]
    if kind == "bytes32":
        return bytes([index + 1]) * 32
    if kind.startswith("uint"):
        return 2 ** (int(kind[4:] or 256) - 1) + index
    raise AssertionError(f"no sample for {kind}")


def settlement_events() -> list[dict[str, object]]:
    return [entry for entry in artifact(SETTLEMENT)["abi"] if entry["type"] == "event"]


@pytest.mark.parametrize("entry", settlement_events(), ids=lambda entry: entry["name"])
def test_every_settlement_event_decodes_as_web3_decodes_it(entry: dict) -> None:
    inputs = entry["inputs"]
    values = [sample_value(arg["type"], i) for i, arg in enumerate(inputs)]
    indexed = [(arg, v) for arg, v in zip(inputs, values, strict=True) if arg["indexed"]]
    data = [(arg, v) for arg, v in zip(inputs, values, strict=True) if not arg["indexed"]]
    signature = f"{entry['name']}({','.join(arg['type'] for arg in inputs)})"
    log = {
        "address": ADDRESS, "blockNumber": 7, "logIndex": 0, "transactionIndex": 0,
        "transactionHash": b"\x09" * 32, "blockHash": b"\x08" * 32, "removed": False,
        "topics": [Web3.keccak(text=signature)]
        + [encode([arg["type"]], [v]) for arg, v in indexed],
        "data": encode([arg["type"] for arg, _ in data], [v for _, v in data]),
    }
    contract = Web3().eth.contract(address=ADDRESS, abi=artifact(SETTLEMENT)["abi"])
    theirs = contract.events[entry["name"]]().process_log(log)
    name, ours = contract_abi(SETTLEMENT).decode_event(log["topics"], log["data"])
    assert (name, ours) == (theirs["event"], dict(theirs["args"]))
    assert contract_abi(SETTLEMENT).event_topic(name) == bytes(log["topics"][0])


def test_a_log_that_is_no_event_of_the_contract_is_refused() -> None:
    abi = contract_abi(SETTLEMENT)
    settled = abi.event_topic("DealSettled")
    with pytest.raises(ValueError, match="not an event"):
        abi.decode_event([b"\x01" * 32], b"")
    with pytest.raises(ValueError, match="not an event"):
        abi.decode_event([settled], b"\x00" * 32)  # its deal ID topic is missing
    with pytest.raises(ValueError, match="does not decode"):
        abi.decode_event([settled, b"\x01" * 32], b"\x00" * 7)


def test_an_indexed_string_is_its_hash() -> None:
    abi = ContractAbi([{"type": "event", "name": "Named", "anonymous": False, "inputs": [
        {"name": "name", "type": "string", "indexed": True},
        {"name": "n", "type": "uint8", "indexed": False}]}])
    digest = Web3.keccak(text="alice")
    assert abi.decode_event([Web3.keccak(text="Named(string,uint8)"), digest],
                            encode(["uint8"], [3])) == ("Named", {"name": bytes(digest), "n": 3})
