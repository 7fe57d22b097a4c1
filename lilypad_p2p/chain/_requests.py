"""On-chain job requests (LilypadRequests): request under a trust policy, claim, vote (consortium
members), post and challenge (optimistic mode), deliver a backed result (inline or by CID),
refund.

The contract checks everything itself (see contracts/src/LilypadRequests.sol); this client only
encodes calls, reads requests and decodes the contract's events and reverts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from lilypad_p2p.chain._abi import contract_abi
from lilypad_p2p.chain._artifacts import artifact
from lilypad_p2p.chain._backend import Chain, TxReceipt
from lilypad_p2p.chain._errors import ChainError, ContractRevert, TransactionReverted
from lilypad_p2p.chain._typed import Deal
from lilypad_p2p.chain._watcher import MAX_BLOCK_RANGE

REQUESTS = "LilypadRequests"
EXAMPLE_CLIENT = "StringJobClient"
_UNDECODABLE = "undecodable revert data 0x"
# Binary CIDv1 prefix (version 1, raw codec, sha2-256 of 32 bytes), as the contract writes it.
CID_PREFIX = bytes.fromhex("01551220")
# The largest output file the contract hands to the callback itself (MAX_OUTPUT_BYTES).
MAX_INLINE_OUTPUT_BYTES = 1024
# The most mediators a request's consortium may name (MAX_MEDIATORS).
MAX_REQUEST_MEDIATORS = 16


def result_cid_bytes(result_hash: bytes) -> bytes:
    """The binary CIDv1 a callback receives for an output delivered by CID.

    Its base32 text form is what `lilypad_p2p.exec.result_cid(tarball)` prints.
    """
    if len(result_hash) != 32:
        raise ValueError("a result hash is 32 bytes")
    return CID_PREFIX + result_hash


class RequestStatus(enum.IntEnum):
    NONE = 0
    OPEN = 1
    CLAIMED = 2
    POSTED = 3
    CHALLENGED = 4
    UPHELD = 5
    DELIVERED = 6
    REFUNDED = 7

    @property
    def is_final(self) -> bool:
        return self in (RequestStatus.DELIVERED, RequestStatus.REFUNDED)


class RequestMode(enum.IntEnum):
    """How a result earns the consortium's backing (LilypadRequests.Mode)."""

    ATTESTED = 0  # k mediators re-run the request and vote on every posted result
    OPTIMISTIC = 1  # a posted result is final after its challenge window unless challenged


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    """Whose word a request accepts (`k` of `mediators`) and how their backing is earned."""

    mediators: tuple[str, ...]
    threshold: int
    mode: RequestMode = RequestMode.ATTESTED
    bond: int = 0  # wei a claimant (and a challenger) puts up
    challenge_window: int = 0  # seconds; optimistic only

    def __post_init__(self) -> None:
        checksummed = tuple(to_checksum_address(m) for m in self.mediators)
        ordered = tuple(sorted(set(checksummed), key=lambda a: int(a, 16)))
        object.__setattr__(self, "mediators", ordered)
        if not 1 <= self.threshold <= len(ordered) <= MAX_REQUEST_MEDIATORS:
            raise ValueError(f"a trust policy needs 1 to {MAX_REQUEST_MEDIATORS} distinct "
                             f"mediators and 1 <= threshold <= their number")
        if self.bond < 0:
            raise ValueError("a bond is never negative")
        optimistic = self.mode is RequestMode.OPTIMISTIC
        if optimistic != (self.challenge_window > 0) or (optimistic and self.bond == 0):
            raise ValueError("optimistic requests need a challenge window and a bond; "
                             "attested ones have no challenge window")

    def as_abi(self) -> tuple[list[str], int, int, int, int]:
        return (list(self.mediators), self.threshold, int(self.mode), self.bond,
                self.challenge_window)

    @classmethod
    def from_abi(cls, value: Any) -> TrustPolicy:
        mediators, threshold, mode, bond, window = value
        return cls(tuple(mediators), int(threshold), RequestMode(mode), int(bond), int(window))


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A request as the contract stores it (plus its id)."""

    request_id: bytes
    requester: str
    deadline: int
    callback_gas_limit: int
    status: RequestStatus
    mode: RequestMode
    threshold: int
    round: int
    challenge_window: int
    posted_at: int
    escrow: int
    bond: int
    payment: int
    module_hash: bytes
    consortium_hash: bytes
    claimant: str
    challenger: str
    result_hash: bytes

    def final_at(self) -> int | None:
        """When the posted result can be delivered: at once when upheld; an unchallenged
        optimistic one after its window (strictly later than this); otherwise not (None)."""
        if self.status is RequestStatus.UPHELD:
            return 0
        if self.status is RequestStatus.POSTED and self.mode is RequestMode.OPTIMISTIC:
            return self.posted_at + self.challenge_window
        return None


@dataclass(frozen=True, slots=True)
class RequestedJob:
    """A `JobRequested` event: what a bridge or a mediator needs to serve the request."""

    request_id: bytes
    requester: str
    module: str
    inputs: bytes
    max_price: int
    deadline: int
    callback_gas_limit: int
    policy: TrustPolicy
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
        self._calls = contract_abi(name)

    def read(self, function: str, *args: Any) -> Any:
        call = {"to": self.address, "data": self._calls.encode(function, args)}
        try:
            with self.chain.timed(function):
                return self._calls.decode(function, self.chain.call(call), self.address)
        except TransactionReverted as exc:
            raise self._typed_revert(exc) from exc

    def send(self, function: str, *args: Any, value: int = 0, gas: int | None = None) -> TxReceipt:
        if self.account is None:
            raise ChainError(f"{self.name} client has no account to send from")
        data = self._calls.encode(function, args)
        try:
            with self.chain.timed(function):
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
        self, module: str, inputs: bytes, *, max_price: int, deadline: int, callback_gas: int,
        policy: TrustPolicy,
    ) -> RequestedJob:
        receipt = self.send("requestJob", module, inputs, deadline, callback_gas,
                            policy.as_abi(), value=max_price)
        return self.requested_in(receipt)[0]

    def requested_in(self, receipt: TxReceipt) -> list[RequestedJob]:
        return [_requested(args, receipt.block_number)
                for args in self.events(receipt, "JobRequested")]

    def requested_between(self, from_block: int, to_block: int) -> list[RequestedJob]:
        """Every JobRequested event in the block range (inclusive)."""
        return [_requested(dict(log["args"]), int(log["blockNumber"]))
                for log in self.logs_between("JobRequested", from_block, to_block)]

    def overturned_between(self, from_block: int, to_block: int) -> list[bytes]:
        """The requests whose posted result the consortium overturned in the block range
        (inclusive): open again, for any bridge to claim."""
        return [bytes(log["args"]["requestId"])
                for log in self.logs_between("Ruled", from_block, to_block)
                if not log["args"]["upheld"]]

    def logs_between(self, name: str, from_block: int, to_block: int) -> list[Any]:
        """Every `name` event of this contract in the block range (inclusive), asked for
        MAX_BLOCK_RANGE blocks at a time (public nodes refuse wider ranges)."""
        logs: list[Any] = []
        for start in range(from_block, to_block + 1, MAX_BLOCK_RANGE):
            end = min(to_block, start + MAX_BLOCK_RANGE - 1)
            with self.chain.timed("eth_getLogs"):
                logs += self.chain.rpc(lambda a=start, b=end: getattr(  # type: ignore[misc]
                    self.contract.events, name)().get_logs(from_block=a, to_block=b))
        return logs

    def request(self, request_id: bytes) -> JobRequest:
        fields = self.read("requests", request_id)
        (requester, deadline, gas, status, mode, threshold, round_, window, posted_at, escrow,
         bond, payment, module_hash, consortium_hash, claimant, challenger, result) = fields
        return JobRequest(request_id, requester, deadline, gas, RequestStatus(status),
                          RequestMode(mode), threshold, round_, window, posted_at, escrow, bond,
                          payment, bytes(module_hash), bytes(consortium_hash), claimant,
                          challenger, bytes(result))

    def claim(self, request_id: bytes, bond: int) -> TxReceipt:
        """Become the request's one paid bridge (before funding a deal for it)."""
        return self.send("claim", request_id, value=bond)

    def vote(self, request_id: bytes, policy: TrustPolicy, result_hash: bytes) -> TxReceipt:
        """A consortium member's vote: the result hash its own run of the request gave."""
        return self.send("vote", request_id, list(policy.mediators), result_hash)

    def post_result(self, request_id: bytes, deal: Deal, result_hash: bytes) -> TxReceipt:
        """The claimant commits to the result of its paid deal for the request."""
        return self.send("postResult", request_id, deal.terms_abi(), deal.job_spec_hash,
                         result_hash)

    def challenge(self, request_id: bytes, bond: int) -> TxReceipt:
        return self.send("challenge", request_id, value=bond)

    def deliver(self, request_id: bytes, tarball: bytes, *, gas: int | None = None) -> TxReceipt:
        """Deliver a final result; an empty tarball delivers its CID (claimant only)."""
        return self.send("deliver", request_id, tarball, gas=gas)

    def settlement_address(self) -> str:
        return to_checksum_address(self.read("settlement"))

    def delivered(self, receipt: TxReceipt) -> dict[str, Any]:
        (event,) = self.events(receipt, "ResultDelivered")
        return event

    def refund(self, request_id: bytes) -> TxReceipt:
        return self.send("refund", request_id)

    def owed(self, address: str) -> int:
        return int(self.read("owed", to_checksum_address(address)))

    def held(self, request_id: bytes) -> int:
        """Wei the contract holds for the request (escrow plus bonds) until it ends."""
        return int(self.read("held", request_id))

    def votes(self, request_id: bytes, round_: int, result_hash: bytes) -> int:
        return int(self.read("votes", _vote_key(request_id, round_), result_hash))

    def has_voted(self, request_id: bytes, round_: int, mediator: str) -> bool:
        return bool(self.read("voted", _vote_key(request_id, round_),
                              to_checksum_address(mediator)))

    def withdraw(self) -> TxReceipt:
        return self.send("withdraw")


def _vote_key(request_id: bytes, round_: int) -> bytes:
    return keccak(request_id + round_.to_bytes(32, "big"))


def _requested(args: dict[str, Any], block_number: int) -> RequestedJob:
    return RequestedJob(
        request_id=bytes(args["requestId"]),
        requester=to_checksum_address(args["requester"]),
        module=args["module"],
        inputs=bytes(args["inputs"]),
        max_price=int(args["maxPrice"]),
        deadline=int(args["deadline"]),
        callback_gas_limit=int(args["callbackGasLimit"]),
        policy=TrustPolicy.from_abi(_policy_tuple(args["policy"])),
        block_number=block_number,
    )


def _policy_tuple(value: Any) -> tuple[Any, ...]:
    """web3 decodes an event's struct as a dict (by field name) or a tuple, by version."""
    if isinstance(value, dict):
        return (value["mediators"], value["threshold"], value["mode"], value["bond"],
                value["challengeWindow"])
    return tuple(value)
