"""A contract's function calls and events, encoded and decoded with eth_abi from tables built
once.

web3's contract layer looks the ABI element up on every call (a search of the whole ABI, then
its argument normalisers): 1.36 ms of CPU to encode `openDeal` against 0.06 ms here, and a view
1.50 ms against 0.54 ms over the same transport (RESULTS.md "Chain requests: fewer, and each
cheaper"). Nodes read deal states and balances several times per deal, so the settlement and
requests clients encode their calls here and send them through `Chain`. Its event decoding
(`process_log`) cost 0.3-0.4 ms a log, and every node with a market role replays every
settlement event into track records: events are decoded here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from eth_abi.grammar import ABIType, TupleType, parse
from eth_utils import function_signature_to_4byte_selector, keccak, to_checksum_address

from lilypad_p2p.chain._artifacts import artifact
from lilypad_p2p.chain._errors import ChainError


@dataclass(frozen=True, slots=True)
class _Function:
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[ABIType, ...]


@dataclass(frozen=True, slots=True)
class _Event:
    name: str
    indexed: tuple[tuple[str, ABIType], ...]  # (name, type) of each topic after the first
    data_names: tuple[str, ...]
    data_types: tuple[ABIType, ...]


class ContractAbi:
    """Encodes calls to a contract's functions by name and decodes what views return and the
    events it emits, as web3 does (one output: the value; several: a tuple; addresses
    checksummed; an indexed dynamic value: its 32-byte hash)."""

    def __init__(self, abi: Iterable[Mapping[str, Any]]) -> None:
        self._functions: dict[str, _Function] = {}
        self._overloaded: set[str] = set()
        self._events: dict[bytes, _Event] = {}
        for entry in abi:
            if entry.get("type") == "event" and not entry.get("anonymous"):
                self._add_event(entry)
            if entry.get("type") != "function":
                continue
            name = str(entry["name"])
            if name in self._functions:
                self._overloaded.add(name)
            inputs = tuple(_type_string(arg) for arg in entry["inputs"])
            self._functions[name] = _Function(
                function_signature_to_4byte_selector(f"{name}({','.join(inputs)})"),
                inputs,
                tuple(parse(_type_string(arg)) for arg in entry.get("outputs", ())),
            )

    def encode(self, name: str, args: Sequence[Any]) -> bytes:
        """The calldata of `name(*args)`."""
        function = self._function(name)
        return function.selector + abi_encode(function.inputs, list(args))

    def decode(self, name: str, data: bytes, address: str) -> Any:
        """What `name` returned as `data`, from the contract at `address`.

        Raises:
            ChainError: `data` is not such an answer (nothing, or no such contract, there).
        """
        function = self._function(name)
        try:
            values = abi_decode([t.to_type_str() for t in function.outputs], data)
        except DecodingError as exc:
            raise ChainError(
                f"the contract at {address} gave {len(data)} bytes for {name}, not its answer: "
                "check the contract address in the chain settings"
            ) from exc
        checked = tuple(_checksummed(t, v) for t, v in zip(function.outputs, values, strict=True))
        return checked[0] if len(checked) == 1 else checked

    def event_topic(self, name: str) -> bytes:
        """The first topic of event `name`'s logs (the hash of its signature)."""
        for topic, event in self._events.items():
            if event.name == name:
                return topic
        raise ValueError(f"the contract has no event {name}")

    def decode_event(self, topics: Sequence[bytes], data: bytes) -> tuple[str, dict[str, Any]]:
        """(name, arguments) of the event logged with `topics` and `data`.

        Raises:
            ValueError: no event of this contract has these topics, or the data is not its.
        """
        event = self._events.get(bytes(topics[0])) if topics else None
        if event is None or len(topics) != len(event.indexed) + 1:
            raise ValueError("not an event of this contract")
        try:
            args = {
                name: _checksummed(kind, abi_decode([kind.to_type_str()], bytes(topic))[0])
                for (name, kind), topic in zip(event.indexed, topics[1:], strict=True)
            }
            values = abi_decode([kind.to_type_str() for kind in event.data_types], bytes(data))
        except DecodingError as exc:
            raise ValueError(f"{event.name}'s data does not decode: {exc}") from exc
        for name, kind, value in zip(event.data_names, event.data_types, values, strict=True):
            args[name] = _checksummed(kind, value)
        return event.name, args

    def _add_event(self, entry: Mapping[str, Any]) -> None:
        inputs = entry["inputs"]
        signature = f"{entry['name']}({','.join(_type_string(arg) for arg in inputs)})"
        indexed = tuple((str(arg["name"]), _topic_type(arg)) for arg in inputs if arg["indexed"])
        data = [arg for arg in inputs if not arg["indexed"]]
        self._events[keccak(text=signature)] = _Event(
            str(entry["name"]), indexed, tuple(str(arg["name"]) for arg in data),
            tuple(parse(_type_string(arg)) for arg in data),
        )

    def _function(self, name: str) -> _Function:
        if name in self._overloaded:
            raise ValueError(f"{name} is overloaded: a name does not say which to call")
        try:
            return self._functions[name]
        except KeyError:
            raise ValueError(f"the contract has no function {name}") from None


@cache
def contract_abi(name: str) -> ContractAbi:
    """The call table of compiled contract `name` (contracts/, built once per process)."""
    return ContractAbi(artifact(name)["abi"])


def _type_string(arg: Mapping[str, Any]) -> str:
    """An ABI argument's canonical type, tuples spelled out (`(address,uint256)[]`)."""
    kind = str(arg["type"])
    if not kind.startswith("tuple"):
        return kind
    inner = ",".join(_type_string(component) for component in arg["components"])
    return f"({inner}){kind[len('tuple'):]}"


def _topic_type(arg: Mapping[str, Any]) -> ABIType:
    """How an indexed argument's topic decodes: strings, bytes, arrays and structs are logged
    as their hash."""
    kind = parse(_type_string(arg))
    hashed = kind.is_dynamic or kind.is_array or isinstance(kind, TupleType)
    return parse("bytes32") if hashed else kind


def _checksummed(kind: ABIType, value: Any) -> Any:
    if kind.is_array:
        item = kind.item_type
        return [_checksummed(item, v) for v in value]
    if isinstance(kind, TupleType):
        return tuple(_checksummed(t, v) for t, v in zip(kind.components, value, strict=True))
    if kind.to_type_str() == "address":
        return to_checksum_address(value)
    return value
