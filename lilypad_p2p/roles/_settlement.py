"""The chain side of the market roles: a settlement client per chain, and its idempotent moves.

A node serves one or more settlement chains (`NodeConfig.chains`), gathered in a `DealChains`
registry keyed by chain ID; every deal lives on one of them, named by its job offer's
`chain_id`, and the roles look its chain up per deal (money stays on each deal's own chain).
A chain is the embedded py-evm chain when its `rpc_url` is None (the contract is deployed at
start and the node's own account funded: useful for one process and tests only), otherwise a
JSON-RPC chain with `contract` set. Every write here is safe to repeat after a
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
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from lilypad_p2p.blocking import run_blocking
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
    skipped_deals,
)
from lilypad_p2p.config import ChainSettings, NodeConfig
from lilypad_p2p.errors import ConfigError, LilypadError
from lilypad_p2p.identity import Identity
from lilypad_p2p.logs import event

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

    @property
    def chain_id(self) -> int:
        return self.sync.domain.chain_id

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
        return await self.client.free_balance(self.address)

    async def now_s(self) -> int:
        return await self.client.now()

    async def head_block(self) -> int:
        return await self.client.head_block()

    # --- idempotent writes --------------------------------------------------------------

    async def open_deal(self, deal: Deal, job_creator_sig: bytes, provider_sig: bytes) -> ChainMove:
        """Open the deal unless it is already open (or past open).

        Raises:
            InsufficientFunds, DeadlineError, InvalidDealTerms: the deal cannot be opened.
        """
        status = await self.status(deal)
        if status is not DealStatus.NONE:
            return ChainMove(status, False)
        return await self._unless_raced(
            deal, self.client.open_deal(deal, job_creator_sig, provider_sig), DealAlreadyOpened,
            DealStatus.OPEN)

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
        return await self._unless_raced(
            deal, self.client.settle(deal, result_hash, job_creator_sig), AlreadySettled,
            DealStatus.SETTLED)

    async def _unless_raced(
        self, deal: Deal, write: Awaitable[object], raced: type[Exception], done: DealStatus,
    ) -> ChainMove:
        """Send `write`, which moves the deal to `done`; when another party's transaction moved
        it first (`raced`), the move is theirs and the deal's status is read back."""
        try:
            await write
        except raced:
            return ChainMove(await self.status(deal), False)
        return ChainMove(done, True)

    async def settle_batch(self, items: Sequence[SettlementItem]) -> tuple[int, frozenset[bytes]]:
        """Settle every accepted deal in one transaction (final ones are skipped); how many
        transactions were sent (0 or 1), and the IDs of the deals it settled (its receipt's
        `DealSettled` events: the caller reads the status of the others only). Deals the
        contract left out are logged with the reason."""
        receipt = await self.client.settle_batch(items)
        if receipt is None:
            return 0, frozenset()
        for deal_id, reason in skipped_deals(self.sync, receipt).items():
            event(log, "settlement.deal_skipped", logging.WARNING, deal_id="0x" + deal_id.hex(),
                  reason=reason.name)
        settled = frozenset(bytes(args["dealId"]) for name, args in
                            self.sync.decode_events(receipt) if name == "DealSettled")
        return 1, settled

    async def claim_timeout(self, deal: Deal) -> ChainMove:
        """Claim the deal's timeout; DeadlineError (TooEarly) if the chain's clock is not there."""
        status = await self.status(deal)
        if status in _FINAL:
            return ChainMove(status, False)
        send = partial(self.sync.send, "claimTimeout", deal.terms_abi(), gas=CLAIM_TIMEOUT_GAS)
        try:
            await run_blocking(send)
        except AlreadySettled:
            return ChainMove(await self.status(deal), False)
        return ChainMove(await self.status(deal), True)


class UnknownChain(LilypadError):
    """A deal or message names a chain this node does not serve."""


class DealChains(Mapping[int, DealChain]):
    """A node's settlement chains by chain ID, in configured order; the first is the default
    (a job submitted without a chain, and deals stored before chains were recorded)."""

    def __init__(self, chains: Sequence[DealChain]) -> None:
        if not chains:
            raise ValueError("a node serves at least one chain")
        self._chains = {chain.chain_id: chain for chain in chains}
        if len(self._chains) != len(chains):
            raise ConfigError("two configured chains report the same chain ID")
        self.default = chains[0]

    def __getitem__(self, chain_id: int) -> DealChain:
        return self._chains[chain_id]

    def __iter__(self) -> Iterator[int]:
        return iter(self._chains)

    def __len__(self) -> int:
        return len(self._chains)

    @property
    def ids(self) -> tuple[int, ...]:
        """The chain IDs, sorted (as a resource offer lists them)."""
        return tuple(sorted(self._chains))

    def require(self, chain_id: int | None) -> DealChain:
        """The chain `chain_id` names (None: the default chain).

        Raises:
            UnknownChain: this node does not serve that chain.
        """
        if chain_id is None:
            return self.default
        chain = self._chains.get(chain_id)
        if chain is None:
            raise UnknownChain(f"chain {chain_id} is not one of this node's chains {self.ids}")
        return chain


def _connect(settings: ChainSettings, identity: Identity) -> SettlementClient:
    account = identity.eth_account()
    if settings.rpc_url is None:
        chain = open_embedded_chain([(identity.address, EMBEDDED_FUNDING_WEI)])
        contract = settings.contract or deploy_settlement(chain, account)
        client = SettlementClient(chain, contract, account)
    else:
        if settings.contract is None:
            raise ConfigError(
                "chain.contract is not set: a node on a JSON-RPC chain needs the settlement "
                "contract's address (`lilypad-p2p chain deploy` records it)"
            )
        client = SettlementClient(open_rpc_chain(settings.rpc_url), settings.contract, account)
    if settings.chain_id is not None and client.chain.chain_id != settings.chain_id:
        where = settings.rpc_url or "the embedded chain"
        raise ConfigError(f"[[chains]] chain_id {settings.chain_id}: {where} reports chain ID "
                          f"{client.chain.chain_id} (eth_chainId); fix chain_id or rpc_url")
    return client


async def open_deal_chains(config: NodeConfig, identity: Identity) -> DealChains:
    """Every settlement contract this node's market roles use (see the module docstring).

    Raises:
        ConfigError: a JSON-RPC chain without a contract address, or a chain whose
            eth_chainId is not its configured chain_id.
        ChainError: a chain does not answer.
    """
    chains = []
    for settings in config.chains:
        client = await run_blocking(_connect, settings, identity)
        chains.append(DealChain(client, identity))
    return DealChains(chains)
