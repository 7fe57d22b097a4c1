"""One anvil chain with settlement, requests and the example client deployed, and parties."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from eth_utils import keccak

from lilypad_p2p.chain import (
    EXAMPLE_CLIENT,
    Chain,
    ContractClient,
    Deal,
    Outcome,
    RequestsClient,
    SettlementClient,
    Verdict,
    deploy_contract,
    deploy_requests,
    deploy_settlement,
)
from lilypad_p2p.exec._tarball import tar_directory
from lilypad_p2p.testing import chain_test_accounts

ETH = 10**18
MAX_PRICE = 2 * ETH
PAYMENT = 3 * ETH // 2
COLLATERAL = ETH
FEE = ETH // 10
DEPOSIT = 50 * ETH
MODULE = "upper"
REQUEST_WINDOW_S = 3_600
RESULT_WINDOW_S = 1_800
ACCEPTANCE_WINDOW_S = 600
MEDIATION_WINDOW_S = 600
CALLBACK_GAS = 200_000


def output_tarball(text: str, name: str = "answer.txt") -> bytes:
    """The node's canonical output tarball of one file holding `text`."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / name).write_text(text)
        return tar_directory(Path(tmp), max_bytes=1 << 20)


def sha256(data: bytes) -> bytes:
    import hashlib

    return hashlib.sha256(data).digest()


@dataclass
class OnchainWorld:
    chain: Chain
    settlement: SettlementClient  # deployer
    bridge: SettlementClient  # the job creator of every deal
    provider: SettlementClient
    requests: RequestsClient  # as a stranger: anyone may deliver
    example: ContractClient  # StringJobClient, called by the requester account
    salt_counter: int = 0

    @classmethod
    def deploy(cls, chain: Chain) -> OnchainWorld:
        deployer, bridge, provider, stranger, requester, *mediators = chain_test_accounts()
        settlement_address = deploy_settlement(chain, deployer, withdraw_notice_s=60,
                                               min_mediator_stake=ETH)
        base = SettlementClient(chain, settlement_address, deployer)
        requests_address = deploy_requests(chain, deployer, settlement_address)
        example_address = deploy_contract(chain, deployer, EXAMPLE_CLIENT, requests_address)
        world = cls(
            chain=chain,
            settlement=base,
            bridge=base.with_account(bridge),
            provider=base.with_account(provider),
            requests=RequestsClient(chain, requests_address, stranger),
            example=ContractClient(chain, EXAMPLE_CLIENT, example_address, requester),
        )
        world.bridge.deposit(DEPOSIT)
        world.provider.deposit(DEPOSIT)
        world.mediators = sorted((base.with_account(m) for m in mediators[:3]),
                                 key=lambda m: int(m.account.address, 16))
        for mediator in world.mediators:
            mediator.register_mediator(ETH)
        world.mediator_addresses = tuple(m.account.address for m in world.mediators)
        return world

    mediator_addresses: tuple[str, ...] = ()
    mediators: list[SettlementClient] = field(default_factory=list)

    def ask(self, text: str, *, value: int = MAX_PRICE, window_s: int = REQUEST_WINDOW_S) -> bytes:
        receipt = self.example.send("ask", MODULE, f'{{"text": "{text}"}}'.encode(),
                                    self.chain.now() + window_s, value=value)
        (requested,) = self.requests.requested_in(receipt)
        return requested.request_id

    def deal_for(self, request_id: bytes, **overrides: object) -> Deal:
        terms: dict[str, object] = {
            "job_creator": self.bridge.account.address,
            "provider": self.provider.account.address,
            "payment": PAYMENT,
            "collateral": COLLATERAL,
            "mediation_fee": FEE,
            "mediators": self.mediator_addresses,
            "threshold": 2,
            "result_deadline": self.chain.now() + RESULT_WINDOW_S,
            "acceptance_window": ACCEPTANCE_WINDOW_S,
            "mediation_window": MEDIATION_WINDOW_S,
            "job_spec_hash": keccak(b"job offer " + request_id),
            "module_hash": keccak(text=MODULE),
            "salt": request_id,
        }
        terms.update(overrides)
        return Deal(**terms)  # type: ignore[arg-type]

    def open_and_commit(self, deal: Deal, tarball: bytes) -> bytes:
        """Open the deal and post the provider's commitment; returns the commitment signature."""
        self.bridge.open_deal(deal, self.bridge.sign(deal), self.provider.sign(deal))
        result_hash = sha256(tarball)
        commitment = self.provider.sign(self.provider.result_commitment(deal, result_hash))
        self.provider.submit_result(deal, result_hash, commitment)
        return commitment

    def resolve_disputed(self, deal: Deal, outcome: Outcome, verdict_hash: bytes) -> None:
        """Apply a 2-of-3 `outcome` verdict over `verdict_hash` to the disputed deal."""
        verdict = Verdict(self.settlement.deal_id(deal), outcome, verdict_hash)
        self.settlement.resolve(deal, verdict, [m.sign(verdict) for m in self.mediators[:2]])

    def settle(self, deal: Deal, tarball: bytes) -> tuple[bytes, bytes]:
        """Run the deal to Settled; returns (provider commitment sig, job creator acceptance)."""
        commitment = self.open_and_commit(deal, tarball)
        acceptance = self.bridge.sign(self.bridge.acceptance(deal, sha256(tarball)))
        self.bridge.settle(deal, sha256(tarball), acceptance)
        return commitment, acceptance
