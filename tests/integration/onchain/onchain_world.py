"""One anvil chain with settlement, requests and the example client deployed, and parties:
an honest bridge and its provider, the requester's consortium (three mediators, k = 2), a
stranger, and an attacker with its own accounts (bridge/job creator, provider, mediator)."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from eth_utils import keccak

from lilypad_p2p.chain import (
    EXAMPLE_CLIENT,
    Chain,
    ContractClient,
    Deal,
    RequestMode,
    RequestsClient,
    SettlementClient,
    TrustPolicy,
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
BOND = ETH // 2
DEPOSIT = 50 * ETH
MODULE = "upper"
REQUEST_WINDOW_S = 3_600
CHALLENGE_WINDOW_S = 300
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
    return hashlib.sha256(data).digest()


@dataclass
class OnchainWorld:
    chain: Chain
    settlement: SettlementClient  # deployer
    bridge: SettlementClient  # the honest bridge: job creator of its deals
    provider: SettlementClient  # the honest bridge's provider
    deal_mediator: SettlementClient  # registered on settlement; named in every honest deal
    requests: RequestsClient  # as a stranger: anyone may relay a delivery
    bridge_requests: RequestsClient
    example: ContractClient  # StringJobClient, owned by the requester account
    consortium: list[RequestsClient]  # the requester's mediators, ascending
    policy: TrustPolicy  # attested, 2 of the consortium
    optimistic: TrustPolicy  # optimistic, 2 of the consortium, BOND, CHALLENGE_WINDOW_S

    @classmethod
    def deploy(cls, chain: Chain) -> OnchainWorld:
        (deployer, bridge, provider, stranger, requester, m1, m2, m3, deal_mediator,
         *_) = chain_test_accounts()
        settlement_address = deploy_settlement(chain, deployer, withdraw_notice_s=60,
                                               min_mediator_stake=ETH)
        base = SettlementClient(chain, settlement_address, deployer)
        requests_address = deploy_requests(chain, deployer, settlement_address)
        example_address = deploy_contract(chain, requester, EXAMPLE_CLIENT, requests_address)
        requests = RequestsClient(chain, requests_address, stranger)
        consortium = sorted((requests.with_account(m) for m in (m1, m2, m3)),
                            key=lambda c: int(c.account.address, 16))  # type: ignore[union-attr]
        members = tuple(c.account.address for c in consortium)  # type: ignore[union-attr]
        world = cls(
            chain=chain,
            settlement=base,
            bridge=base.with_account(bridge),
            provider=base.with_account(provider),
            deal_mediator=base.with_account(deal_mediator),
            requests=requests,
            bridge_requests=requests.with_account(bridge),
            example=ContractClient(chain, EXAMPLE_CLIENT, example_address, requester),
            consortium=consortium,
            policy=TrustPolicy(members, 2, RequestMode.ATTESTED, BOND),
            optimistic=TrustPolicy(members, 2, RequestMode.OPTIMISTIC, BOND, CHALLENGE_WINDOW_S),
        )
        world.bridge.deposit(DEPOSIT)
        world.provider.deposit(DEPOSIT)
        world.deal_mediator.register_mediator(ETH)
        return world

    def ask(self, text: str, *, policy: TrustPolicy | None = None, value: int = MAX_PRICE,
            window_s: int = REQUEST_WINDOW_S) -> bytes:
        receipt = self.example.send("ask", MODULE, f'{{"text": "{text}"}}'.encode(),
                                    self.chain.now() + window_s,
                                    (policy or self.policy).as_abi(), value=value)
        (requested,) = self.requests.requested_in(receipt)
        return requested.request_id

    def deal_for(self, request_id: bytes, **overrides: object) -> Deal:
        terms: dict[str, object] = {
            "job_creator": self.bridge.account.address,  # type: ignore[union-attr]
            "provider": self.provider.account.address,  # type: ignore[union-attr]
            "payment": PAYMENT,
            "collateral": COLLATERAL,
            "mediation_fee": 0,
            "mediators": (self.deal_mediator.account.address,),  # type: ignore[union-attr]
            "threshold": 1,
            "result_deadline": self.chain.now() + RESULT_WINDOW_S,
            "acceptance_window": ACCEPTANCE_WINDOW_S,
            "mediation_window": MEDIATION_WINDOW_S,
            "job_spec_hash": keccak(b"job offer " + request_id),
            "module_hash": keccak(text=MODULE),
            "salt": request_id,
        }
        terms.update(overrides)
        return Deal(**terms)  # type: ignore[arg-type]

    def settle(self, deal: Deal, tarball: bytes) -> None:
        """The honest bridge runs the deal to Settled (the provider is paid)."""
        self.bridge.open_deal(deal, self.bridge.sign(deal), self.provider.sign(deal))
        result_hash = sha256(tarball)
        self.provider.submit_result(
            deal, result_hash,
            self.provider.sign(self.provider.result_commitment(deal, result_hash)))
        self.bridge.settle(deal, result_hash,
                           self.bridge.sign(self.bridge.acceptance(deal, result_hash)))

    def attest(self, request_id: bytes, tarball: bytes, voters: int = 2) -> None:
        """`voters` consortium members vote the tarball's hash."""
        for member in self.consortium[:voters]:
            member.vote(request_id, self.policy, sha256(tarball))

    def serve(self, request_id: bytes, text: str) -> tuple[Deal, bytes]:
        """The honest bridge claims, runs and settles a deal, and posts its result."""
        tarball = output_tarball(text)
        self.bridge_requests.claim(request_id, BOND)
        deal = self.deal_for(request_id)
        self.settle(deal, tarball)
        self.bridge_requests.post_result(request_id, deal, sha256(tarball))
        return deal, tarball

    def serve_attested(self, request_id: bytes, text: str) -> tuple[Deal, bytes]:
        """`serve`, then two of the consortium uphold the result."""
        deal, tarball = self.serve(request_id, text)
        self.attest(request_id, tarball)
        return deal, tarball
