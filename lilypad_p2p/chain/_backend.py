"""A connection to one chain: embedded py-evm or any JSON-RPC URL, behind one interface.

`Chain` owns the Web3 object, serialises access to the embedded EVM (py-evm is not thread-safe),
retries transient RPC faults with backoff, hands out nonces per sending account (so concurrent
transactions from one account never collide), and turns reverts from either backend into the
typed errors of `_errors`.
"""

from __future__ import annotations

import ast
import enum
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import requests
from eth_account.signers.local import LocalAccount
from eth_typing import Hash32
from eth_utils import keccak, to_canonical_address, to_checksum_address
from hexbytes import HexBytes
from web3 import EthereumTesterProvider, Web3
from web3._utils.method_formatters import get_error_formatters
from web3._utils.rpc_abi import RPC
from web3.exceptions import ContractCustomError, ContractLogicError, TimeExhausted
from web3.types import RPCEndpoint, TxParams

from lilypad_p2p.chain._artifacts import settlement_abi
from lilypad_p2p.chain._errors import (
    ContractRevert,
    RpcUnavailable,
    SenderUnfunded,
    TransactionReverted,
    revert_error,
)
from lilypad_p2p.chain._http import KeptAliveHTTPProvider
from lilypad_p2p.tally import Tally

T = TypeVar("T")

# Attempts and first backoff for transient RPC faults (connection refused/reset, timeouts, 5xx).
RPC_ATTEMPTS = 5
RPC_BACKOFF_S = 0.1
# HTTP request timeout for one JSON-RPC call.
RPC_REQUEST_TIMEOUT_S = 10.0
# How long to wait for a transaction's receipt, and how often to ask.
RECEIPT_TIMEOUT_S = 60.0
RECEIPT_POLL_S = 0.01
# Gas estimate headroom: estimates are exact on dev chains but state may move before mining.
GAS_HEADROOM_NUM, GAS_HEADROOM_DEN = 6, 5
# Priority fee offered per gas (wei); max fee = 2 x base fee + this.
PRIORITY_FEE_WEI = 1_000_000_000

_TRANSIENT = (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)


class Backend(enum.Enum):
    EMBEDDED = "embedded"
    JSON_RPC = "json-rpc"


@dataclass(frozen=True, slots=True)
class TxReceipt:
    """What a mined transaction did: its hash, block, gas used and raw logs."""

    tx_hash: bytes
    block_number: int
    gas_used: int
    logs: tuple[Any, ...]
    contract_address: str | None = None


class _NonceBook:
    """Next nonce per sending address.

    Callers hold `sending(address)` from allocation until the node has accepted the signed
    transaction, so one account's transactions reach the node in nonce order (the embedded EVM
    rejects any gap; a JSON-RPC node would park it). Waiting for receipts happens outside the
    lock, so transactions still pipeline.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._next: dict[str, int] = {}

    def sending(self, address: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(address, threading.Lock())

    def allocate(self, address: str, chain_count: Callable[[], int]) -> int:
        nonce = max(self._next.get(address, 0), chain_count())
        self._next[address] = nonce + 1
        return nonce

    def forget(self, address: str) -> None:
        """Resynchronise from the chain on the next allocation (after a failed broadcast)."""
        self._next.pop(address, None)

    def forget_all(self) -> None:
        with self._guard:
            self._next.clear()


class Chain:
    """One chain connection, shared by every client and watcher in the process."""

    def __init__(self, w3: Web3, backend: Backend) -> None:
        self.w3 = w3
        self.backend = backend
        self._embedded_lock = threading.RLock()
        self._nonces = _NonceBook()
        # Contract calls and transactions by function and outcome, for the node's metrics.
        self.calls = Tally(("function", "outcome"))
        self.chain_id: int = self.rpc(lambda: w3.eth.chain_id)
        self._error_by_selector = _error_selectors()

    # ------------------------------------------------------------------ plumbing

    def _endpoint(self) -> str:
        provider = getattr(self.w3, "provider", None)
        return str(getattr(provider, "endpoint_uri", None) or "endpoint")

    def timed(self, function: str) -> AbstractContextManager[None]:
        """Count the block in `calls` as one call of `function` (a contract function's name)."""
        return self.calls.timed(lambda exc: (function, _call_outcome(exc)), time.monotonic)

    def rpc(self, call: Callable[[], T]) -> T:
        """Run one blocking web3 call: serialised on the embedded EVM, retried on RPC faults."""
        if self.backend is Backend.EMBEDDED:
            with self._embedded_lock:
                return call()
        delay = RPC_BACKOFF_S
        for attempt in range(RPC_ATTEMPTS):
            try:
                return call()
            except _TRANSIENT as exc:
                if attempt == RPC_ATTEMPTS - 1:
                    raise RpcUnavailable(
                        f"chain RPC {self._endpoint()} did not answer ({RPC_ATTEMPTS} tries: "
                        f"{_root_cause(exc)}); check that the chain runs and rpc_url is right"
                    ) from exc
            except requests.HTTPError as exc:
                status = exc.response.status_code if exc.response is not None else 0
                if status < 500 or attempt == RPC_ATTEMPTS - 1:
                    raise RpcUnavailable(f"chain RPC HTTP error: {exc}") from exc
            time.sleep(delay)  # runs in a worker thread (see AsyncSettlementClient)
            delay *= 2
        raise AssertionError("unreachable")

    def resync_nonces(self) -> None:
        """Forget cached nonces (after the chain was rewound, e.g. a dev-chain snapshot revert)."""
        self._nonces.forget_all()

    def now(self) -> int:
        """The latest block's timestamp (the contract's clock), unix seconds."""
        return self.block_time("latest")

    def block_time(self, block: int | str) -> int:
        """A block's timestamp (a number, or a tag such as "latest"), unix seconds."""
        return int(self.rpc(lambda: self.w3.eth.get_block(block))["timestamp"])  # type: ignore[arg-type]

    def block_number(self) -> int:
        return int(self.rpc(lambda: self.w3.eth.block_number))

    def balance_of(self, address: str) -> int:
        return int(self.rpc(lambda: self.w3.eth.get_balance(to_checksum_address(address))))

    # ------------------------------------------------------------------ calls and transactions

    def call(self, tx: dict[str, Any]) -> bytes:
        """eth_call of `tx` (`to`, `data` as bytes) at the latest block; a revert raises the
        contract's typed error.

        Sent as the JSON-RPC request itself (`_request`).
        """
        try:
            return bytes(HexBytes(self._request(RPC.eth_call, [_rpc_tx(tx), "latest"])))
        except (ContractRevert, RpcUnavailable):
            raise
        except Exception as exc:
            raise self._as_revert(exc) from exc

    def transact(
        self,
        account: LocalAccount,
        to: str | None,
        data: bytes,
        value: int = 0,
        *,
        gas: int | None = None,
    ) -> TxReceipt:
        """Estimate (surfacing reverts before spending gas), sign, send, wait for the receipt.

        With an explicit `gas` the estimate is skipped, so a reverting transaction is mined and
        its revert is decoded by replaying it (tests use this to prove on-chain reverts).
        """
        tx: dict[str, Any] = {"from": account.address, "data": data, "value": value}
        if to is not None:
            tx["to"] = to
        if gas is None:
            try:
                estimate = _quantity(self._request(RPC.eth_estimateGas, [_rpc_tx(tx)]))
            except (ContractRevert, RpcUnavailable):
                raise
            except Exception as exc:
                raise self._as_revert(exc, account.address) from exc
            gas = estimate * GAS_HEADROOM_NUM // GAS_HEADROOM_DEN
        base_fee = int(self.rpc(lambda: self.w3.eth.get_block("latest")).get("baseFeePerGas", 0))
        tx.update(
            gas=gas,
            maxFeePerGas=2 * base_fee + PRIORITY_FEE_WEI,
            maxPriorityFeePerGas=PRIORITY_FEE_WEI,
            chainId=self.chain_id,
            type=2,
        )
        del tx["from"]
        tx_hash = self._broadcast(account, tx)
        receipt = self._wait_receipt(tx_hash)
        if receipt["status"] != 1:
            raise self._explain_failure(account.address, tx, receipt)
        return TxReceipt(
            tx_hash=bytes(tx_hash),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            logs=tuple(receipt["logs"]),
            contract_address=receipt.get("contractAddress"),
        )

    def _request(self, method: RPCEndpoint, params: list[Any]) -> Any:
        """`method` sent as the raw JSON-RPC request, its errors handled as web3 handles them
        (a revert: ContractLogicError or ContractCustomError). web3's `eth.call` and
        `eth.estimate_gas` first ran the transaction through their ABI normalisers (and the
        call through an offchain-lookup wrapper), which cost more CPU than the request itself
        (RESULTS.md "A 50-node market at 4 jobs/s")."""
        return self.rpc(lambda: self.w3.manager.request_blocking(
            method, params, error_formatters=get_error_formatters(method)))

    def _broadcast(self, account: LocalAccount, tx: dict[str, Any]) -> bytes:
        address = account.address
        with self._nonces.sending(address):
            nonce = self._nonces.allocate(
                address,
                lambda: self.rpc(lambda: self.w3.eth.get_transaction_count(address, "pending")),
            )
            raw = account.sign_transaction({**tx, "nonce": nonce}).raw_transaction
            tx_hash = keccak(raw)
            try:
                self.rpc(lambda: self.w3.eth.send_raw_transaction(raw))
            except Exception as exc:
                # A retried send whose first attempt got through reports "already known": that
                # is success. Anything else leaves the nonce unused: resync it from the chain.
                if "already known" in str(exc).lower():
                    return tx_hash
                self._nonces.forget(address)
                if isinstance(exc, RpcUnavailable | ContractRevert):
                    raise
                raise self._as_revert(exc, address) from exc
        return tx_hash

    def _wait_receipt(self, tx_hash: bytes) -> Any:
        try:
            return self.rpc(
                lambda: self.w3.eth.wait_for_transaction_receipt(
                    Hash32(tx_hash), timeout=RECEIPT_TIMEOUT_S, poll_latency=RECEIPT_POLL_S
                )
            )
        except TimeExhausted as exc:
            raise RpcUnavailable(f"no receipt for 0x{tx_hash.hex()} after {RECEIPT_TIMEOUT_S} s")\
                from exc

    def _explain_failure(self, sender: str, tx: dict[str, Any], receipt: Any) -> Exception:
        """Replay a reverted transaction on the state before its block to learn why."""
        replay = {k: tx[k] for k in ("to", "data", "value") if k in tx}
        replay["from"] = sender
        parent = int(receipt["blockNumber"]) - 1
        try:
            self.rpc(lambda: self.w3.eth.call(cast(TxParams, replay), parent))
        except Exception as exc:
            return self._as_revert(exc)
        return TransactionReverted(f"transaction 0x{bytes(receipt['transactionHash']).hex()} "
                                   "reverted (replay did not reproduce it)")

    # ------------------------------------------------------------------ revert decoding

    def _as_revert(self, exc: Exception, sender: str | None = None) -> Exception:
        data = _revert_data(exc)
        # Nodes word it alike ("insufficient funds for gas * price + value") but give no code
        # of their own; the sender is who must act.
        if data is None and sender is not None and "insufficient funds" in str(exc).lower():
            return SenderUnfunded(f"address {sender} has insufficient funds for this "
                                  "transaction's gas and value: fund it")
        if data is None:
            return TransactionReverted(f"{type(exc).__name__}: {exc}")
        return self.decode_revert(data)

    def decode_revert(self, data: bytes) -> Exception:
        entry = self._error_by_selector.get(data[:4])
        if entry is None:
            return TransactionReverted(f"undecodable revert data 0x{data.hex()}")
        name, types, names = entry
        values = self.w3.codec.decode(types, data[4:]) if types else ()
        return revert_error(name, dict(zip(names, values, strict=True)))


def _rpc_tx(tx: dict[str, Any]) -> dict[str, Any]:
    """A transaction as JSON-RPC spells it: bytes and numbers in 0x-hex."""
    return {key: "0x" + value.hex() if isinstance(value, bytes)
            else hex(value) if isinstance(value, int) else value
            for key, value in tx.items()}


def _quantity(answer: Any) -> int:
    """A JSON-RPC quantity: 0x-hex from a node, already an int from the embedded chain."""
    return answer if isinstance(answer, int) else int(answer, 16)


def _error_selectors() -> dict[bytes, tuple[str, list[str], list[str]]]:
    table = {}
    for entry in settlement_abi():
        if entry["type"] != "error":
            continue
        types = [i["type"] for i in entry["inputs"]]
        selector = keccak(text=f"{entry['name']}({','.join(types)})")[:4]
        table[selector] = (entry["name"], types, [i["name"] for i in entry["inputs"]])
    return table


def _revert_data(exc: BaseException) -> bytes | None:
    """Raw revert bytes from either backend's exception (None if it was no revert)."""
    for link in _chain_of(exc):
        # Some nodes answer a revert with a JSON object instead of hex: no bytes to decode.
        if isinstance(link, ContractCustomError | ContractLogicError) and link.data:
            if isinstance(link.data, str):
                return bytes.fromhex(link.data[2:])
            continue
        # eth-tester raises TransactionFailed(raw bytes); web3 re-raises it as a string
        # "execution reverted: b'...'" with the original as __context__.
        if type(link).__name__ == "TransactionFailed" and link.args:
            first = link.args[0]
            if isinstance(first, Exception) and first.args:
                first = first.args[0]
            if isinstance(first, bytes):
                return first
            prefix = "execution reverted: "
            if isinstance(first, str) and first.startswith(prefix + "b"):
                try:
                    return bytes(ast.literal_eval(first[len(prefix):]))
                except (ValueError, SyntaxError):
                    return None
    return None


def _chain_of(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def open_embedded_chain(funded: Iterable[tuple[str, int]] = ()) -> Chain:
    """An in-process py-evm chain (auto-mining) with `funded` (address, wei) in its genesis."""
    from eth_tester import EthereumTester, PyEVMBackend

    genesis = PyEVMBackend.generate_genesis_state(num_accounts=1)
    for address, wei in funded:
        genesis[to_canonical_address(address)] = {
            "balance": wei, "nonce": 0, "code": b"", "storage": {},
        }
    tester = EthereumTester(PyEVMBackend(genesis_state=genesis))
    return Chain(Web3(EthereumTesterProvider(tester), middleware=[]), Backend.EMBEDDED)


def open_rpc_chain(url: str) -> Chain:
    """A chain behind a JSON-RPC URL (anvil, a testnet, ...)."""
    try:
        provider = KeptAliveHTTPProvider(url, RPC_REQUEST_TIMEOUT_S)
    except ValueError as exc:
        raise RpcUnavailable(str(exc)) from exc
    # web3's validation middleware asks eth_chainId before every call; the chain id is fixed
    # per Chain, so drop it (it more than halves eth_call latency against anvil).
    return Chain(Web3(provider, middleware=[]), Backend.JSON_RPC)


def _call_outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    if isinstance(exc, ContractRevert):
        return "revert"
    return "unavailable" if isinstance(exc, RpcUnavailable) else "error"


def _root_cause(exc: BaseException) -> str:
    """The innermost cause in a few words (requests nests several layers of messages)."""
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    text = str(exc)
    errno_text = text.rsplit("] ", 1)[-1] if "[Errno" in text else text
    return errno_text.strip(" )\"'")[:120] or type(exc).__name__
