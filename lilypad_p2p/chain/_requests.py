"""On-chain job requests (LilypadRequests): request, deliver a settled deal's result (inline or
by CID), refund (after the deadline, or at once after a ProviderWrong/NonDeterministic verdict).

The contract checks everything itself (see contracts/src/LilypadRequests.sol); this client only
encodes calls, reads requests and decodes the contract's events and reverts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from lilypad_p2p.chain._artifacts import artifact
from lilypad_p2p.chain._backend import Chain, TxReceipt
from lilypad_p2p.chain._errors import ChainError, ContractRevert, TransactionReverted
from lilypad_p2p.chain._typed import Deal

REQUESTS = "LilypadRequests"
EXAMPLE_CLIENT = "StringJobClient"
_UNDECODABLE = "undecodable revert data 0x"
# Binary CIDv1 prefix (version 1, raw codec, sha2-256 of 32 bytes), as the contract writes it.
CID_PREFIX = bytes.fromhex("01551220")
# The largest output file the contract hands to the callback itself (MAX_OUTPUT_BYTES).
MAX_INLINE_OUTPUT_BYTES = 1024


def result_cid_bytes(result_hash: bytes) -> bytes:
    """The binary CIDv1 a callback receives for an output delivered by CID.

    Its base32 text form is what `lilypad_p2p.exec.result_cid(tarball)` prints.
    """
    if len(result_hash) != 32:
        raise ValueError("a result hash is 32 bytes")
    return CID_PREFIX + result_hash


class RequestStatus(enum.IntEnum):
    NONE = 0
    PENDING = 1
    DELIVERED = 2
    REFUNDED = 3


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A request as the contract stores it (plus its id)."""

    request_id: bytes
    requester: str
    deadline: int
    callback_gas_limit: int
    status: RequestStatus
    escrow: int
    module_hash: bytes

    def __post_init__(self) -> None:
        if len(self.request_id) != 32 or len(self.module_hash) != 32:
            raise ValueError("request id and module hash are 32 bytes")


@dataclass(frozen=True, slots=True)
class RequestedJob:
    """A `JobRequested` event: what a bridge needs to serve the request."""

    request_id: bytes
    requester: str
    module: str
    inputs: bytes
    max_price: int
    deadline: int
    callback_gas_limit: int
    block_number: int


def deploy_contract(chain: Chain, account: LocalAccount, name: str, *args: Any) -> str:
    """Deploy any compiled contract of contracts/ by name; returns its checksum address."""
    built = artifact(name)
    factory = chain.w3.eth.contract(abi=built["abi"], bytecode=built["bytecode"])
    data = bytes.fromhex(factory.constructor(*args).data_in_transaction[2:])
    receipt = chain.transact(account, None, data)
    if receipt.contract_address is None:
        raise ChainError("deployment receipt carries no contract address")
    return to_checksum_address(receipt.contract_address)


def deploy_requests(chain: Chain, account: LocalAccount, settlement: str) -> str:
    return deploy_contract(chain, account, REQUESTS, to_checksum_address(settlement))


class ContractClient:
    """Any compiled contract of contracts/ at `address`, acting as `account`; reverts typed."""

    def __init__(
        self, chain: Chain, name: str, address: str, account: LocalAccount | None = None
    ) -> None:
        self.chain = chain
        self.name = name
        self.address = to_checksum_address(address)
        self.account = account
        self.contract = chain.w3.eth.contract(address=self.address, abi=artifact(name)["abi"])

    def read(self, function: str, *args: Any) -> Any:
        try:
            return self.chain.rpc(lambda: getattr(self.contract.functions, function)(*args).call())
        except Exception as exc:
            raise self._typed_revert(exc) from exc

    def send(self, function: str, *args: Any, value: int = 0, gas: int | None = None) -> TxReceipt:
        if self.account is None:
            raise ChainError(f"{self.name} client has no account to send from")
        data = bytes.fromhex(self.contract.encode_abi(function, args=list(args))[2:])
        try:
            return self.chain.transact(self.account, self.address, data, value, gas=gas)
        except TransactionReverted as exc:
            raise self._typed_revert(exc) from exc

    def events(self, receipt: TxReceipt, name: str) -> list[dict[str, Any]]:
        event = getattr(self.contract.events, name)()
        found = []
        for log in receipt.logs:
            if to_checksum_address(log["address"]) != self.address:
                continue
            try:
                found.append(dict(event.process_log(log)["args"]))
            except Exception:
                continue
        return found

    def _typed_revert(self, exc: Exception) -> Exception:
        """Decode this contract's own custom errors (the chain only knows the settlement's)."""
        text = str(exc)
        if _UNDECODABLE not in text:
            return exc
        data = bytes.fromhex(text.split(_UNDECODABLE, 1)[1].split()[0].rstrip(")"))
        for entry in self.contract.abi:
            if entry["type"] != "error":
                continue
            types = [i["type"] for i in entry["inputs"]]
            if keccak(text=f"{entry['name']}({','.join(types)})")[:4] == data[:4]:
                values = self.chain.w3.codec.decode(types, data[4:])
                names = [i["name"] for i in entry["inputs"]]
                return ContractRevert(entry["name"], dict(zip(names, values, strict=True)))
        return exc


class RequestsClient(ContractClient):
    """One deployed LilypadRequests contract."""

    def __init__(self, chain: Chain, address: str, account: LocalAccount | None = None) -> None:
        super().__init__(chain, REQUESTS, address, account)

    def with_account(self, account: LocalAccount) -> RequestsClient:
        return RequestsClient(self.chain, self.address, account)

    def request_job(
        self, module: str, inputs: bytes, *, max_price: int, deadline: int, callback_gas: int
    ) -> RequestedJob:
        receipt = self.send("requestJob", module, inputs, deadline, callback_gas, value=max_price)
        return self.requested_in(receipt)[0]

    def requested_in(self, receipt: TxReceipt) -> list[RequestedJob]:
        return [_requested(args, receipt.block_number)
                for args in self.events(receipt, "JobRequested")]

    def requested_between(self, from_block: int, to_block: int) -> list[RequestedJob]:
        """Every JobRequested event in the block range (inclusive)."""
        logs = self.chain.rpc(lambda: self.contract.events.JobRequested().get_logs(
            from_block=from_block, to_block=to_block))
        return [_requested(dict(log["args"]), int(log["blockNumber"])) for log in logs]

    def request(self, request_id: bytes) -> JobRequest:
        requester, deadline, gas, status, escrow, module_hash = self.read("requests", request_id)
        return JobRequest(request_id, requester, deadline, gas, RequestStatus(status), escrow,
                          bytes(module_hash))

    def deliver(
        self,
        request_id: bytes,
        deal: Deal,
        tarball: bytes,
        provider_sig: bytes,
        job_creator_sig: bytes,
        *,
        gas: int | None = None,
    ) -> TxReceipt:
        return self.send("deliver", request_id, deal.terms_abi(), deal.job_spec_hash, tarball,
                         provider_sig, job_creator_sig, gas=gas)

    def deliver_cid(
        self,
        request_id: bytes,
        deal: Deal,
        result_hash: bytes,
        provider_sig: bytes,
        job_creator_sig: bytes,
    ) -> TxReceipt:
        """Deliver by CID without the tarball; only the deal's job creator may."""
        return self.send("deliverCid", request_id, deal.terms_abi(), deal.job_spec_hash,
                         result_hash, provider_sig, job_creator_sig)

    def refund_failed(self, request_id: bytes, deal: Deal) -> TxReceipt:
        """Close a request whose deal was resolved ProviderWrong or NonDeterministic."""
        return self.send("refundFailed", request_id, deal.terms_abi(), deal.job_spec_hash)

    def settlement_address(self) -> str:
        return to_checksum_address(self.read("settlement"))

    def delivered(self, receipt: TxReceipt) -> dict[str, Any]:
        (event,) = self.events(receipt, "ResultDelivered")
        return event

    def refund(self, request_id: bytes) -> TxReceipt:
        return self.send("refund", request_id)

    def owed(self, address: str) -> int:
        return int(self.read("owed", to_checksum_address(address)))

    def withdraw(self) -> TxReceipt:
        return self.send("withdraw")


def _requested(args: dict[str, Any], block_number: int) -> RequestedJob:
    return RequestedJob(
        request_id=bytes(args["requestId"]),
        requester=to_checksum_address(args["requester"]),
        module=args["module"],
        inputs=bytes(args["inputs"]),
        max_price=int(args["maxPrice"]),
        deadline=int(args["deadline"]),
        callback_gas_limit=int(args["callbackGasLimit"]),
        block_number=block_number,
    )
