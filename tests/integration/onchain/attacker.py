"""An attacker's own toolkit against the deployed contracts: its own keys, its own EIP-712
signatures built from the contracts' type strings (not the node's signing helpers), and a
ledger that checks funds are conserved over both contracts.

The ledger values each party as wallet + gas it spent + settlement account (free, locked,
mediator stake) + what LilypadRequests owes it, so a party's change in value
is what it gained or lost, gas aside. `check` also requires that LilypadRequests holds exactly
what it owes plus what its live requests hold, and that no wei left the parties and the two
contracts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from lilypad_p2p.chain import Chain, ContractClient, RequestsClient

DOMAIN_FIELDS = [
    {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"},
]
JOB_FIELDS = [{"name": "jobSpecHash", "type": "bytes32"}, {"name": "moduleHash", "type": "bytes32"},
              {"name": "salt", "type": "bytes32"}]
DEAL_FIELDS = [
    {"name": "jobCreator", "type": "address"}, {"name": "provider", "type": "address"},
    {"name": "payment", "type": "uint128"}, {"name": "collateral", "type": "uint128"},
    {"name": "mediationFee", "type": "uint128"}, {"name": "mediators", "type": "address[]"},
    {"name": "threshold", "type": "uint8"}, {"name": "resultDeadline", "type": "uint64"},
    {"name": "acceptanceWindow", "type": "uint64"}, {"name": "mediationWindow", "type": "uint64"},
    {"name": "job", "type": "Job"},
]
RESULT_FIELDS = [{"name": "dealId", "type": "bytes32"}, {"name": "resultHash", "type": "bytes32"}]
VERDICT_FIELDS = [{"name": "dealId", "type": "bytes32"}, {"name": "outcome", "type": "uint8"},
                  {"name": "resultHash", "type": "bytes32"}]
JOB_TYPEHASH = keccak(text="Job(bytes32 jobSpecHash,bytes32 moduleHash,bytes32 salt)")


@dataclass
class SelfDeal:
    """A deal the attacker makes with itself: its message as signed and its calldata terms."""

    message: dict[str, Any]
    terms: tuple[Any, ...]
    deal_id: bytes
    job_spec_hash: bytes


class Attacker:
    """One attacker with three accounts: job creator (and would-be bridge), provider, mediator."""

    def __init__(self, chain: Chain, settlement: str, requests: str,
                 job_creator: LocalAccount, provider: LocalAccount,
                 mediator: LocalAccount) -> None:
        self.chain = chain
        self.job_creator, self.provider, self.mediator = job_creator, provider, mediator
        self.domain = {"name": "LilypadSettlement", "version": "1",
                       "chainId": chain.chain_id, "verifyingContract": settlement}
        self.settlement_address = settlement
        self.requests_address = requests

    def settlement(self, account: LocalAccount) -> ContractClient:
        return ContractClient(self.chain, "LilypadSettlement", self.settlement_address, account)

    def requests(self, account: LocalAccount) -> RequestsClient:
        return RequestsClient(self.chain, self.requests_address, account)

    def sign(self, account: LocalAccount, primary: str, fields: list[dict[str, str]],
             message: dict[str, Any], extra: dict[str, Any] | None = None) -> bytes:
        typed = {"types": {"EIP712Domain": DOMAIN_FIELDS, primary: fields, **(extra or {})},
                 "primaryType": primary, "domain": self.domain, "message": message}
        signed = Account.sign_message(encode_typed_data(full_message=typed), account.key)
        return bytes(signed.signature)

    def self_deal(self, salt: bytes, module: str, *, payment: int, now: int) -> SelfDeal:
        """A deal between its own job creator and provider, naming its own mediator."""
        spec = keccak(b"whatever job spec " + salt)
        mediators = [self.mediator.address]
        message = {
            "jobCreator": self.job_creator.address, "provider": self.provider.address,
            "payment": payment, "collateral": 0, "mediationFee": 0, "mediators": mediators,
            "threshold": 1, "resultDeadline": now + 3_000, "acceptanceWindow": 600,
            "mediationWindow": 600,
            "job": {"jobSpecHash": spec, "moduleHash": keccak(text=module), "salt": salt},
        }
        job_hash = keccak(encode(["bytes32", "bytes32", "bytes32", "bytes32"],
                                 [JOB_TYPEHASH, spec, keccak(text=module), salt]))
        mediators_hash = keccak(b"".join(bytes(12) + bytes.fromhex(m[2:]) for m in mediators))
        terms = (self.job_creator.address, self.provider.address, payment, 0, 0, mediators_hash,
                 1, message["resultDeadline"], 600, 600, job_hash)
        digest = encode_typed_data(full_message={
            "types": {"EIP712Domain": DOMAIN_FIELDS, "Deal": DEAL_FIELDS, "Job": JOB_FIELDS},
            "primaryType": "Deal", "domain": self.domain, "message": message})
        deal_id = keccak(b"\x19\x01" + digest.header + digest.body)
        return SelfDeal(message, terms, deal_id, spec)

    def open_and_commit(self, deal: SelfDeal, result_hash: bytes) -> None:
        def sig(account: LocalAccount) -> bytes:
            return self.sign(account, "Deal", DEAL_FIELDS, deal.message, {"Job": JOB_FIELDS})

        settlement = self.settlement(self.job_creator)
        settlement.send("openDeal", deal.terms, deal.message["mediators"],
                        sig(self.job_creator), sig(self.provider))
        commitment = self.sign(self.provider, "ResultCommitment", RESULT_FIELDS,
                               {"dealId": deal.deal_id, "resultHash": result_hash})
        settlement.send("submitResult", deal.terms, result_hash, commitment)

    def settle(self, deal: SelfDeal, result_hash: bytes) -> None:
        acceptance = self.sign(self.job_creator, "Acceptance", RESULT_FIELDS,
                               {"dealId": deal.deal_id, "resultHash": result_hash})
        self.settlement(self.job_creator).send("settle", deal.terms, result_hash, acceptance)

    def rule_own_deal(self, deal: SelfDeal, outcome: int, result_hash: bytes) -> None:
        """Dispute its own deal and resolve it with its own registered mediator's verdict."""
        self.settlement(self.job_creator).send("dispute", deal.terms)
        verdict = self.sign(self.mediator, "Verdict", VERDICT_FIELDS,
                            {"dealId": deal.deal_id, "outcome": outcome,
                             "resultHash": result_hash})
        self.settlement(self.mediator).send("resolve", deal.terms, deal.message["mediators"],
                                            outcome, result_hash, verdict)


@dataclass
class Ledger:
    """Funds of named parties over both contracts (see the module docstring)."""

    chain: Chain
    settlement: ContractClient
    requests: RequestsClient
    parties: dict[str, str]
    request_ids: list[bytes] = field(default_factory=list)
    start_block: int = 0
    start: dict[str, int] = field(default_factory=dict)
    start_total: int = 0

    def __post_init__(self) -> None:
        self.parties = {k: to_checksum_address(v) for k, v in self.parties.items()}
        self.start_block = self.chain.block_number() + 1
        self.start = self.values()
        self.start_total = self._total(self.start)

    def values(self) -> dict[str, int]:
        gas = self._gas_spent()
        return {name: self._value(address) + gas.get(address, 0)
                for name, address in self.parties.items()}

    def change(self, name: str) -> int:
        return self.values()[name] - self.start[name]

    def check(self) -> dict[str, int]:
        """Conservation over both contracts; returns each party's change in value."""
        now = self.values()
        assert self._total(now) == self.start_total, "wei left the parties and both contracts"
        owed = sum(self.requests.owed(a) for a in self.parties.values())
        held = sum(self.requests.held(r) for r in self.request_ids)
        assert self.chain.balance_of(self.requests.address) == owed + held, \
            "LilypadRequests holds other than what it owes plus its live requests"
        return {name: now[name] - self.start[name] for name in now}

    def _total(self, values: dict[str, int]) -> int:
        # Party values count their settlement accounts and what LilypadRequests owes them; the
        # rest of each contract's balance (other parties' money, live requests) is added once.
        settled = sum(self._in_settlement(a) for a in self.parties.values())
        owed = sum(self.requests.owed(a) for a in self.parties.values())
        return (sum(values.values()) - settled - owed
                + self.chain.balance_of(self.settlement.address)
                + self.chain.balance_of(self.requests.address))

    def _value(self, address: str) -> int:
        return (self.chain.balance_of(address) + self._in_settlement(address)
                + self.requests.owed(address))

    def _in_settlement(self, address: str) -> int:
        free, locked = self.settlement.read("accounts", address)
        stake, _ = self.settlement.read("mediators", address)
        return int(free) + int(locked) + int(stake)

    def _gas_spent(self) -> dict[str, int]:
        spent: dict[str, int] = {}
        w3 = self.chain.w3
        for number in range(self.start_block, self.chain.block_number() + 1):
            block = self.chain.rpc(lambda n=number: w3.eth.get_block(n, full_transactions=True))
            for tx in block["transactions"]:
                sender = to_checksum_address(tx["from"])
                receipt = self.chain.rpc(lambda h=tx["hash"]: w3.eth.get_transaction_receipt(h))
                cost = int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
                spent[sender] = spent.get(sender, 0) + cost
        return spent
