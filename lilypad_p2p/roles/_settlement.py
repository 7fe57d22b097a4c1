"""The chain side of the market roles: one settlement client per node, and its idempotent moves.

A node's chain is the embedded py-evm chain when `NodeConfig.rpc_url` is None (the contract is
deployed at start and the node's own account funded: useful for one process and tests only),
otherwise a JSON-RPC chain with `contract` set. Every write here is safe to repeat after a
crash: each first asks the contract for the deal's status and treats "already done" (the deal
is open, settled, or timed out) as success, returning the status it found.

Who sends which transaction, and why:
- the job creator opens the deal (it holds both signatures first, and it is the one paying: a
  provider cannot be made to lock collateral for a deal the job creator abandons);
- the provider settles accepted deals, batched (`settleBatch`), since it is the one being paid;
  the job creator settles itself only if the provider does not within the settlement timeout;
- whoever is owed money after a timeout claims it (`claimTimeout`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import trio

from lilypad_p2p.chain import (
    Acceptance,
    AlreadySettled,
    AsyncSettlementClient,
    Deal,
    DealAlreadyOpened,
    DealStatus,
    ResultCommitment,
    SettlementClient,
    SettlementItem,
    deploy_settlement,
    open_embedded_chain,
    open_rpc_chain,
    require_signer,
)
from lilypad_p2p.config import NodeConfig
from lilypad_p2p.errors import ConfigError
from lilypad_p2p.identity import Identity

log = logging.getLogger("lilypad_p2p.settlement")

# What the embedded chain gives this node's account at genesis (it is a private dev chain).
EMBEDDED_FUNDING_WEI = 10**24
# Gas for claimTimeout (it costs ~44k). Given explicitly because a dev chain that mines only on
# demand estimates gas against its latest block's timestamp, which may predate the deadline
# the claim waits for; the transaction itself is mined with a fresh timestamp.
CLAIM_TIMEOUT_GAS = 150_000
# Chain statuses that end a deal; a deal found in one of these needs no more transactions.
_FINAL = frozenset(s for s in DealStatus if s.is_final)


@dataclass(frozen=True, slots=True)
class ChainMove:
    """What an idempotent write found or did: the deal's status after it."""

    status: DealStatus
    sent: bool


class DealChain:
    """This node's view of the settlement contract, as its own account."""

    def __init__(self, client: SettlementClient, identity: Identity) -> None:
        self.client = AsyncSettlementClient(client)
        self.sync = client
        self.address = identity.address

    # --- typed data (pure) --------------------------------------------------------------

    def deal_id(self, deal: Deal) -> bytes:
        return self.sync.deal_id(deal)

    def sign_deal(self, deal: Deal) -> bytes:
        return self.sync.sign(deal)

    def sign_commitment(self, deal: Deal, result_hash: bytes) -> bytes:
        return self.sync.sign(ResultCommitment(self.deal_id(deal), result_hash))

    def sign_acceptance(self, deal: Deal, result_hash: bytes) -> bytes:
        return self.sync.sign(Acceptance(self.deal_id(deal), result_hash))

    def check_deal_signature(self, deal: Deal, signature: bytes, signer: str) -> None:
        """Raises SignatureInvalid (a PeerMisbehaved) unless `signer` signed `deal`."""
        require_signer(deal, self.sync.domain, signature, signer)

    def check_commitment(self, deal: Deal, result_hash: bytes, signature: bytes) -> None:
        require_signer(ResultCommitment(self.deal_id(deal), result_hash), self.sync.domain,
                       signature, deal.provider)

    def check_acceptance(self, deal: Deal, result_hash: bytes, signature: bytes) -> None:
        require_signer(Acceptance(self.deal_id(deal), result_hash), self.sync.domain,
                       signature, deal.job_creator)

    # --- reads --------------------------------------------------------------------------

    async def status(self, deal: Deal) -> DealStatus:
        return (await self.client.deal_state(self.deal_id(deal))).status

    async def free_balance(self) -> int:
        return (await self.client.balance(self.address)).free

    async def now_s(self) -> int:
        return await self.client.now()

    # --- idempotent writes --------------------------------------------------------------

    async def open_deal(self, deal: Deal, job_creator_sig: bytes, provider_sig: bytes) -> ChainMove:
        """Open the deal unless it is already open (or past open).

        Raises:
            InsufficientFunds, DeadlineError, InvalidDealTerms: the deal cannot be opened.
        """
        status = await self.status(deal)
        if status is not DealStatus.NONE:
            return ChainMove(status, False)
        try:
            await self.client.open_deal(deal, job_creator_sig, provider_sig)
        except DealAlreadyOpened:
            return ChainMove(await self.status(deal), False)
        return ChainMove(DealStatus.OPEN, True)

    async def submit_result(self, deal: Deal, result_hash: bytes, provider_sig: bytes) -> ChainMove:
        status = await self.status(deal)
        if status is not DealStatus.OPEN:
            return ChainMove(status, False)
        await self.client.submit_result(deal, result_hash, provider_sig)
        return ChainMove(DealStatus.RESULT_SUBMITTED, True)

    async def settle(self, deal: Deal, result_hash: bytes, job_creator_sig: bytes) -> ChainMove:
        status = await self.status(deal)
        if status in _FINAL:
            return ChainMove(status, False)
        try:
            await self.client.settle(deal, result_hash, job_creator_sig)
        except AlreadySettled:
            return ChainMove(await self.status(deal), False)
        return ChainMove(DealStatus.SETTLED, True)

    async def settle_batch(self, items: Sequence[SettlementItem]) -> int:
        """Settle every accepted deal in one transaction (final ones are skipped); how many
        transactions were sent (0 or 1)."""
        receipt = await self.client.settle_batch(items)
        return 0 if receipt is None else 1

    async def claim_timeout(self, deal: Deal) -> ChainMove:
        """Claim the deal's timeout; DeadlineError (TooEarly) if the chain's clock is not there."""
        status = await self.status(deal)
        if status in _FINAL:
            return ChainMove(status, False)
        send = partial(self.sync.send, "claimTimeout", deal.terms_abi(), gas=CLAIM_TIMEOUT_GAS)
        try:
            await trio.to_thread.run_sync(send)
        except AlreadySettled:
            return ChainMove(await self.status(deal), False)
        return ChainMove(await self.status(deal), True)


async def open_deal_chain(config: NodeConfig, identity: Identity) -> DealChain:
    """The settlement contract this node's market roles use (see the module docstring).

    Raises:
        ConfigError: a JSON-RPC chain without a contract address.
        ChainError: the chain does not answer.
    """
    def connect() -> SettlementClient:
        account = identity.eth_account()
        if config.rpc_url is None:
            chain = open_embedded_chain([(identity.address, EMBEDDED_FUNDING_WEI)])
            contract = config.contract or deploy_settlement(chain, account)
            return SettlementClient(chain, contract, account)
        if config.contract is None:
            raise ConfigError(
                "chain.contract is not set: a node on a JSON-RPC chain needs the settlement "
                "contract's address (`lilypad-p2p chain deploy` records it)"
            )
        return SettlementClient(open_rpc_chain(config.rpc_url), config.contract, account)

    return DealChain(await trio.to_thread.run_sync(connect), identity)
