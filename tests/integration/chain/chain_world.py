"""Shared world for the settlement tests: constants, the World helper, conservation."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from eth_account.signers.local import LocalAccount

from lilypad_p2p.chain import (
    Chain,
    Deal,
    EventWatcher,
    Outcome,
    SettlementClient,
    Verdict,
)

ETH = 10**18
WITHDRAW_NOTICE_S = 600
MIN_STAKE = ETH
PAYMENT = 3 * ETH // 2
COLLATERAL = 2 * ETH
FEE = ETH // 10 + 1  # not divisible by 3: exercises the fee remainder
RESULT_WINDOW_S = 3_600
ACCEPTANCE_WINDOW_S = 1_800
MEDIATION_WINDOW_S = 7_200
DEPOSIT = 100 * ETH


@dataclass
class World:
    chain: Chain
    deployer: SettlementClient
    job_creator: SettlementClient
    provider: SettlementClient
    stranger: SettlementClient
    mediators: list[SettlementClient]  # registered, ascending by address
    spare: list[LocalAccount]  # funded, unused accounts
    deployed_at: int  # block of the deployment: the watcher starts there
    salt_counter: int = 0
    extra_contracts: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.deployer.address

    def deal(self, **overrides: object) -> Deal:
        self.salt_counter += 1
        now = self.chain.now()
        terms: dict[str, object] = {
            "job_creator": self.job_creator.account.address,
            "provider": self.provider.account.address,
            "payment": PAYMENT,
            "collateral": COLLATERAL,
            "mediation_fee": FEE,
            "mediators": tuple(m.account.address for m in self.mediators),
            "threshold": 3,
            "result_deadline": now + RESULT_WINDOW_S,
            "acceptance_window": ACCEPTANCE_WINDOW_S,
            "mediation_window": MEDIATION_WINDOW_S,
            "job_spec_hash": os.urandom(32),
            "module_hash": os.urandom(32),
            "salt": self.salt_counter.to_bytes(32, "big"),
        }
        terms.update(overrides)
        return Deal(**terms)  # type: ignore[arg-type]

    def open(self, deal: Deal) -> bytes:
        return self.job_creator.open_deal(
            deal, self.job_creator.sign(deal), self.provider.sign(deal)
        )

    def submit_result(self, deal: Deal, result_hash: bytes) -> None:
        commitment = self.provider.result_commitment(deal, result_hash)
        self.provider.submit_result(deal, result_hash, self.provider.sign(commitment))

    def verdict_signatures(
        self, deal: Deal, outcome: Outcome, result_hash: bytes, signers: list[SettlementClient]
    ) -> tuple[Verdict, list[bytes]]:
        verdict = Verdict(self.deployer.deal_id(deal), outcome, result_hash)
        return verdict, [m.sign(verdict) for m in signers]

    def accounted_total(self) -> int:
        """Free + locked of every account the contract's events mention, stakes, unpaid fees,
        burned stake."""
        events = EventWatcher(self.chain, self.address, from_block=self.deployed_at).poll()
        addresses = {
            value for event in events for key, value in event.args.items()
            if key in ("account", "mediator", "jobCreator", "provider", "presenter", "successor",
                       "payer", "payee")
        }
        total = self.deployer.burned()
        for address in addresses:
            balance = self.deployer.balance(address)
            total += balance.free + balance.locked + self.deployer.mediator(address)[0]
        for event in events:
            if event.name == "DealResolved":
                total += event.args["fee"]
            elif event.name == "MediationFeeClaimed":
                total -= event.args["amount"]
        return total
