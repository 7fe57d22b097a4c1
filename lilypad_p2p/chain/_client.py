"""The settlement client: one class, the same API over the embedded EVM and any JSON-RPC chain.

`SettlementClient` is a blocking core (web3.py is blocking); `AsyncSettlementClient` runs each
call in a trio worker thread so roles can await it. Writes check what can be checked before
sending (a gas estimate executes the contract and surfaces its revert; `settle` also reads the
deal's status first), so a second settle of a settled deal raises `AlreadySettled` without a
transaction, and the contract itself refuses it if two settles race.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import trio
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from lilypad_p2p.blocking import run_blocking
from lilypad_p2p.chain._abi import contract_abi
from lilypad_p2p.chain._artifacts import SETTLEMENT, artifact
from lilypad_p2p.chain._backend import Chain, TxReceipt
from lilypad_p2p.chain._errors import (
    AlreadySettled,
    ChainError,
    DealAlreadyOpened,
    RpcUnavailable,
)
from lilypad_p2p.chain._typed import (
    Acceptance,
    Deal,
    Domain,
    Outcome,
    ResultCommitment,
    TypedStruct,
    Verdict,
    recover_typed,
    sign_typed,
)

T = TypeVar("T")

DEFAULT_WITHDRAW_NOTICE_S = 24 * 3600
DEFAULT_MIN_MEDIATOR_STAKE_WEI = 10**18
# Worker threads one AsyncSettlementClient may occupy at once (the embedded EVM is serialised
# anyway; against JSON-RPC this bounds concurrent in-flight calls).
ASYNC_CONCURRENCY = 8


class DealStatus(enum.IntEnum):
    """The contract's `Status` enum."""

    NONE = 0
    OPEN = 1
    RESULT_SUBMITTED = 2
    DISPUTED = 3
    SETTLED = 4
    TIMED_OUT_NO_RESULT = 5
    TIMED_OUT_ACCEPTANCE = 6
    TIMED_OUT_MEDIATION = 7
    RESOLVED = 8

    @property
    def is_final(self) -> bool:
        return self >= DealStatus.SETTLED


@dataclass(frozen=True, slots=True)
class AccountBalance:
    """An account on the contract (wei): free, locked in deals, and a pending withdrawal."""

    free: int
    locked: int
    withdraw_requested: int
    withdraw_ready_at: int


@dataclass(frozen=True, slots=True)
class DealState:
    """A deal's on-chain record; `since` is when its current status began (unix seconds).

    `result_prefix` is the first 20 bytes of the provider's recorded result hash (the contract
    keeps only those; the full hash is in the ResultSubmitted event). `outcome` is the verdict
    applied to a Resolved deal (None otherwise).
    """

    deal_id: bytes
    status: DealStatus
    since: int
    unpaid_signers: int
    signer_count: int
    result_prefix: bytes
    outcome: Outcome | None = None


@dataclass(frozen=True, slots=True)
class SettlementItem:
    """One accepted deal for `settle_batch`: the deal, the accepted hash, the job creator's sig."""

    deal: Deal
    result_hash: bytes
    job_creator_signature: bytes


class SkipReason(enum.IntEnum):
    """Why `settleBatch` left a deal out (the contract's SKIP_* codes, in `DealSkipped`)."""

    NOT_OPEN = 1
    FINAL = 2
    BAD_SIGNATURE = 3


def skipped_deals(client: SettlementClient, receipt: TxReceipt) -> dict[bytes, SkipReason]:
    """The deals a `settleBatch` receipt reports as left out, with the reason of each."""
    return {
        bytes(args["dealId"]): SkipReason(args["reason"])
        for name, args in client.decode_events(receipt) if name == "DealSkipped"
    }


class SettlementClient:
    """Talks to one deployed settlement contract as one account (or read-only without one)."""

    def __init__(self, chain: Chain, address: str, account: LocalAccount | None = None) -> None:
        self.chain = chain
        self.address = to_checksum_address(address)
        self.account = account
        self.domain = Domain(chain.chain_id, self.address)
        self._calls = contract_abi(SETTLEMENT)

    def with_account(self, account: LocalAccount) -> SettlementClient:
        """The same contract and chain connection, acting as `account`."""
        return SettlementClient(self.chain, self.address, account)

    # ------------------------------------------------------------------ typed data

    def deal_id(self, deal: Deal) -> bytes:
        return deal.deal_id(self.domain)

    def sign(self, struct: TypedStruct) -> bytes:
        """Sign an EIP-712 struct under this contract's domain with this client's account."""
        return sign_typed(struct, self.domain, self._require_account())

    def acceptance(self, deal: Deal, result_hash: bytes) -> Acceptance:
        return Acceptance(self.deal_id(deal), result_hash)

    def result_commitment(self, deal: Deal, result_hash: bytes) -> ResultCommitment:
        return ResultCommitment(self.deal_id(deal), result_hash)

    # ------------------------------------------------------------------ reads

    def balance(self, address: str | None = None) -> AccountBalance:
        who = to_checksum_address(address or self._require_account().address)
        free, locked = self._view("accounts", who)
        requested, ready_at = self._view("withdrawRequests", who)
        return AccountBalance(free, locked, requested, ready_at)

    def free_balance(self, address: str | None = None) -> int:
        """`balance(address).free` in one read (what a node checks before each deal)."""
        free, _ = self._view("accounts", to_checksum_address(
            address or self._require_account().address))
        return int(free)

    def deal_state(self, deal_or_id: Deal | bytes) -> DealState:
        deal_id = deal_or_id if isinstance(deal_or_id, bytes) else self.deal_id(deal_or_id)
        status, since, unpaid, count, prefix, outcome = self._view("deals", deal_id)
        return DealState(deal_id, DealStatus(status), since, unpaid, count, bytes(prefix),
                         Outcome(outcome) if outcome else None)

    def recorded_result_hash(self, deal_id: bytes, recorded_at: int) -> bytes:
        """The whole result hash recorded for `deal_id` (the contract keeps a prefix; its
        ResultSubmitted event has all 32 bytes), looked for from the head back, MAX_BLOCK_RANGE
        blocks at a time, down to the block of `recorded_at` (the deal's `since`).

        Raises:
            ChainError: no such event in that range (nothing recorded, or logs pruned).
        """
        from lilypad_p2p.chain._watcher import MAX_BLOCK_RANGE, decode_log

        topics = ["0x" + self._calls.event_topic("ResultSubmitted").hex(), "0x" + deal_id.hex()]
        last = self.chain.block_number()
        while last >= 0:
            first = max(0, last - MAX_BLOCK_RANGE + 1)
            query = {"address": self.address, "fromBlock": first, "toBlock": last,
                     "topics": topics}
            with self.chain.timed("eth_getLogs"):
                logs = self.chain.rpc(lambda q=query: self.chain.w3.eth.get_logs(q))  # type: ignore[misc]
            for raw in reversed(logs):
                found = decode_log(self.address, raw)
                if found is not None and found.deal_id == deal_id:
                    return bytes(found.args["resultHash"])
            if first == 0 or self.chain.block_time(first) < recorded_at:
                break
            last = first - 1
        raise ChainError(f"no ResultSubmitted event for deal 0x{deal_id.hex()} on chain "
                         f"{self.chain.chain_id} (an RPC node that prunes logs cannot show it)")

    def mediator(self, address: str) -> tuple[int, int]:
        """(stake, exit_ready_at) of a mediator; exit_ready_at is 0 while active."""
        stake, exit_ready_at = self._view("mediators", to_checksum_address(address))
        return int(stake), int(exit_ready_at)

    def is_registered_mediator(self, address: str) -> bool:
        return bool(self._view("isRegisteredMediator", to_checksum_address(address)))

    def burned(self) -> int:
        """Slashed stake burned so far (held by the contract, owned by no account)."""
        return int(self._view("burned"))

    def withdraw_notice(self) -> int:
        return int(self._view("withdrawNotice"))

    def require_deployed(self) -> None:
        """Check that `address` holds a settlement contract, before any money is sent there
        (ETH sent to an address without it is gone).

        Raises:
            ChainError: no code there, or code that does not answer as this contract does.
            RpcUnavailable: the chain did not answer.
        """
        code = self.chain.rpc(lambda: self.chain.w3.eth.get_code(self.address))
        try:
            # A two-word answer: a precompile or a stray contract's fallback rarely fits it.
            answers = bool(code) and len(self._view("accounts", self.address)) == 2
        except RpcUnavailable:
            raise
        except ChainError:
            answers = False
        if not answers:
            raise ChainError(f"{self.address} holds no LilypadSettlement contract on chain "
                             f"{self.chain.chain_id}: check the [chain] contract setting or "
                             "--contract")

    def _view(self, name: str, *args: Any) -> Any:
        call = {"to": self.address, "data": self._calls.encode(name, args)}
        with self.chain.timed(name):
            return self._calls.decode(name, self.chain.call(call), self.address)

    # ------------------------------------------------------------------ writes: accounts

    def deposit(self, amount: int) -> TxReceipt:
        return self.send("deposit", value=amount)

    def request_withdraw(self, amount: int) -> TxReceipt:
        return self.send("requestWithdraw", amount)

    def withdraw(self) -> TxReceipt:
        return self.send("withdraw")

    def register_mediator(self, stake: int) -> TxReceipt:
        return self.send("registerMediator", value=stake)

    def request_mediator_exit(self) -> TxReceipt:
        return self.send("requestMediatorExit")

    def complete_mediator_exit(self) -> TxReceipt:
        return self.send("completeMediatorExit")

    # ------------------------------------------------------------------ writes: deals

    def open_deal(self, deal: Deal, job_creator_sig: bytes, provider_sig: bytes) -> bytes:
        """Open a co-signed deal (locks both parties' funds); returns its dealId."""
        deal_id = self.deal_id(deal)
        if self.deal_state(deal_id).status is not DealStatus.NONE:
            raise DealAlreadyOpened("DealAlreadyOpened", {"dealId": deal_id})
        self.send("openDeal", deal.terms_abi(), list(deal.mediators), job_creator_sig, provider_sig)
        return deal_id

    def submit_result(self, deal: Deal, result_hash: bytes, provider_sig: bytes) -> TxReceipt:
        """Record the provider's signed ResultCommitment on chain (starts the acceptance window)."""
        return self.send("submitResult", deal.terms_abi(), result_hash, provider_sig)

    def settle(self, deal: Deal, result_hash: bytes, job_creator_sig: bytes) -> TxReceipt:
        """Settle with the job creator's signed Acceptance; AlreadySettled if it is final."""
        self._refuse_if_final(self.deal_id(deal))
        return self.send("settle", deal.terms_abi(), result_hash, job_creator_sig)

    def settle_batch(self, items: Sequence[SettlementItem]) -> TxReceipt | None:
        """Settle many accepted deals in one transaction; final deals are left out.

        Returns None when every deal was already final (nothing to send). The contract settles
        what it can and reports each deal it left out in a `DealSkipped` event
        (`skipped_deals`). Group items by provider: consecutive deals of one provider share a
        balance write.
        """
        pending = [
            item for item in items if not self.deal_state(item.deal).status.is_final
        ]
        if not pending:
            return None
        return self.send(
            "settleBatch",
            [item.deal.terms_abi() for item in pending],
            [item.result_hash for item in pending],
            [item.job_creator_signature for item in pending],
        )

    def dispute(self, deal: Deal) -> TxReceipt:
        self._refuse_if_final(self.deal_id(deal))
        return self.send("dispute", deal.terms_abi())

    def resolve(
        self, deal: Deal, verdict: Verdict, signatures: Sequence[bytes] | Mapping[str, bytes]
    ) -> TxReceipt:
        """Apply a k-of-n verdict. Signatures may come in any order: they are sorted by signer.

        Raises SignatureInvalid (a mediator's fault) if one does not recover to a signer.
        """
        self._refuse_if_final(self.deal_id(deal))
        sigs = list(signatures.values()) if isinstance(signatures, Mapping) else list(signatures)
        ordered = sorted(sigs, key=lambda sig: int(recover_typed(verdict, self.domain, sig), 16))
        return self.send(
            "resolve",
            deal.terms_abi(),
            list(deal.mediators),
            int(verdict.outcome),
            verdict.result_hash,
            b"".join(ordered),
        )

    def claim_timeout(self, deal: Deal) -> TxReceipt:
        self._refuse_if_final(self.deal_id(deal))
        return self.send("claimTimeout", deal.terms_abi())

    def claim_mediation_fee(self, deal: Deal) -> TxReceipt:
        """Pay every signer of the applied verdict its share (after the late-signature window)."""
        return self.send("claimMediationFee", deal.terms_abi(), list(deal.mediators))

    def add_verdict_signature(
        self, deal: Deal, verdict: Verdict, signature: bytes
    ) -> TxReceipt:
        """Add a left-out member's signature over the applied verdict (shares the fee)."""
        return self.send(
            "addVerdictSignature", deal.terms_abi(), list(deal.mediators), verdict.result_hash,
            signature,
        )

    def pay_fees(self, fees: Mapping[str, int]) -> TxReceipt:
        """Move `fees[address]` wei of our free balance to each address (`payFees`: the
        batched fees of spot checks that agreed off chain)."""
        payees = sorted(fees)
        return self.send("payFees", payees, [fees[a] for a in payees])

    def slash_equivocation(
        self, first: Verdict, first_sig: bytes, second: Verdict, second_sig: bytes
    ) -> TxReceipt:
        """Present two different verdicts for one deal signed by one mediator: its stake is
        slashed, half credited to this client's account."""
        if first.deal_id != second.deal_id:
            raise ValueError("an equivocation is two verdicts for the same deal")
        return self.send(
            "slashEquivocation", first.deal_id,
            int(first.outcome), first.result_hash, first_sig,
            int(second.outcome), second.result_hash, second_sig,
        )

    # ------------------------------------------------------------------ low level

    def send(self, function: str, *args: Any, value: int = 0, gas: int | None = None) -> TxReceipt:
        """Call any contract function in a transaction from this client's account.

        `gas` skips the pre-flight estimate (so a revert happens on chain); tests use it.
        """
        data = self._calls.encode(function, args)
        with self.chain.timed(function):
            return self.chain.transact(self._require_account(), self.address, data, value,
                                       gas=gas)

    def decode_events(self, receipt: TxReceipt) -> list[tuple[str, Mapping[str, Any]]]:
        """(event name, arguments) for each of this contract's events in a receipt."""
        from lilypad_p2p.chain._watcher import decode_log

        decoded = (decode_log(self.address, log) for log in receipt.logs)
        return [(event.name, event.args) for event in decoded if event is not None]

    def _refuse_if_final(self, deal_id: bytes) -> None:
        state = self.deal_state(deal_id)
        if state.status.is_final:
            raise AlreadySettled(
                "AlreadySettled", {"dealId": deal_id, "status": state.status.name}
            )

    def _require_account(self) -> LocalAccount:
        if self.account is None:
            raise ChainError("this SettlementClient is read-only: it was built without an account")
        return self.account


def deploy_settlement(
    chain: Chain,
    account: LocalAccount,
    *,
    withdraw_notice_s: int = DEFAULT_WITHDRAW_NOTICE_S,
    min_mediator_stake: int = DEFAULT_MIN_MEDIATOR_STAKE_WEI,
) -> str:
    """Deploy the settlement contract; returns its checksum address."""
    built = artifact(SETTLEMENT)
    factory = chain.w3.eth.contract(abi=built["abi"], bytecode=built["bytecode"])
    data = bytes.fromhex(
        factory.constructor(withdraw_notice_s, min_mediator_stake).data_in_transaction[2:]
    )
    receipt = chain.transact(account, None, data)
    if receipt.contract_address is None:
        raise ChainError("deployment receipt carries no contract address")
    return to_checksum_address(receipt.contract_address)


class AsyncSettlementClient:
    """Trio front of a `SettlementClient`: each call runs in a worker thread (`run_blocking`).

    Build it inside `trio.run` (it owns a CapacityLimiter). Reads and writes mirror the sync
    client; `sync` exposes the core for typed-data helpers, which are pure and fast.
    """

    def __init__(self, sync: SettlementClient, concurrency: int = ASYNC_CONCURRENCY) -> None:
        self.sync = sync
        self._limiter = trio.CapacityLimiter(concurrency)

    async def _run(self, call: Callable[[], T]) -> T:
        return await run_blocking(call, limiter=self._limiter)

    async def balance(self, address: str | None = None) -> AccountBalance:
        return await self._run(partial(self.sync.balance, address))

    async def free_balance(self, address: str | None = None) -> int:
        return await self._run(partial(self.sync.free_balance, address))

    async def deal_state(self, deal_or_id: Deal | bytes) -> DealState:
        return await self._run(partial(self.sync.deal_state, deal_or_id))

    async def now(self) -> int:
        return await self._run(self.sync.chain.now)

    async def recorded_result_hash(self, deal_id: bytes, recorded_at: int) -> bytes:
        return await self._run(partial(self.sync.recorded_result_hash, deal_id, recorded_at))

    async def head_block(self) -> int:
        return await self._run(self.sync.chain.block_number)

    async def deposit(self, amount: int) -> TxReceipt:
        return await self._run(partial(self.sync.deposit, amount))

    async def request_withdraw(self, amount: int) -> TxReceipt:
        return await self._run(partial(self.sync.request_withdraw, amount))

    async def withdraw(self) -> TxReceipt:
        return await self._run(self.sync.withdraw)

    async def register_mediator(self, stake: int) -> TxReceipt:
        return await self._run(partial(self.sync.register_mediator, stake))

    async def request_mediator_exit(self) -> TxReceipt:
        return await self._run(self.sync.request_mediator_exit)

    async def complete_mediator_exit(self) -> TxReceipt:
        return await self._run(self.sync.complete_mediator_exit)

    async def is_registered_mediator(self, address: str) -> bool:
        return await self._run(partial(self.sync.is_registered_mediator, address))

    async def open_deal(self, deal: Deal, job_creator_sig: bytes, provider_sig: bytes) -> bytes:
        return await self._run(partial(self.sync.open_deal, deal, job_creator_sig, provider_sig))

    async def submit_result(
        self, deal: Deal, result_hash: bytes, provider_sig: bytes
    ) -> TxReceipt:
        return await self._run(partial(self.sync.submit_result, deal, result_hash, provider_sig))

    async def settle(self, deal: Deal, result_hash: bytes, job_creator_sig: bytes) -> TxReceipt:
        return await self._run(partial(self.sync.settle, deal, result_hash, job_creator_sig))

    async def settle_batch(self, items: Sequence[SettlementItem]) -> TxReceipt | None:
        return await self._run(partial(self.sync.settle_batch, items))

    async def dispute(self, deal: Deal) -> TxReceipt:
        return await self._run(partial(self.sync.dispute, deal))

    async def resolve(
        self, deal: Deal, verdict: Verdict, signatures: Sequence[bytes] | Mapping[str, bytes]
    ) -> TxReceipt:
        return await self._run(partial(self.sync.resolve, deal, verdict, signatures))

    async def claim_timeout(self, deal: Deal) -> TxReceipt:
        return await self._run(partial(self.sync.claim_timeout, deal))

    async def claim_mediation_fee(self, deal: Deal) -> TxReceipt:
        return await self._run(partial(self.sync.claim_mediation_fee, deal))

    async def add_verdict_signature(
        self, deal: Deal, verdict: Verdict, signature: bytes
    ) -> TxReceipt:
        return await self._run(partial(self.sync.add_verdict_signature, deal, verdict, signature))

    async def pay_fees(self, fees: Mapping[str, int]) -> TxReceipt:
        return await self._run(partial(self.sync.pay_fees, fees))

    async def slash_equivocation(
        self, first: Verdict, first_sig: bytes, second: Verdict, second_sig: bytes
    ) -> TxReceipt:
        return await self._run(
            partial(self.sync.slash_equivocation, first, first_sig, second, second_sig)
        )
