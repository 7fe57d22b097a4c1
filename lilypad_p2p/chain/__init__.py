"""Settlement on chain: EIP-712 structs, the settlement client, the event watcher.

Two backends behind one `Chain`: the embedded py-evm chain (`open_embedded_chain`, default, in
process) and any JSON-RPC URL (`open_rpc_chain`, e.g. anvil). Money is native ETH.

The only package that talks to web3; it reads the market's pure rules (track records) and
knows nothing of the network or the roles. Its blocking calls reach trio through
`lilypad_p2p.blocking.run_blocking`, the one seam a test can run inline.
May import from lilypad_p2p: blocking, errors, health, logs, market, tally, wire.
"""

from lilypad_p2p.chain._amounts import format_wei, parse_amount
from lilypad_p2p.chain._artifacts import SETTLEMENT, artifact, settlement_abi
from lilypad_p2p.chain._backend import (
    Backend,
    Chain,
    TxReceipt,
    open_embedded_chain,
    open_rpc_chain,
)
from lilypad_p2p.chain._client import (
    DEFAULT_MIN_MEDIATOR_STAKE_WEI,
    DEFAULT_WITHDRAW_NOTICE_S,
    AccountBalance,
    AsyncSettlementClient,
    DealState,
    DealStatus,
    SettlementClient,
    SettlementItem,
    SkipReason,
    deploy_settlement,
    skipped_deals,
)
from lilypad_p2p.chain._errors import (
    AlreadySettled,
    ChainError,
    ContractRevert,
    DeadlineError,
    DealAlreadyOpened,
    DealNotOpen,
    InsufficientFunds,
    InvalidDealTerms,
    RpcUnavailable,
    SenderUnfunded,
    SignatureInvalid,
    SignatureRejected,
    TransactionReverted,
    WrongDealStatus,
    utc,
)
from lilypad_p2p.chain._record_feed import RecordFeed
from lilypad_p2p.chain._records import deployment_block, read_track_records, settlement_events
from lilypad_p2p.chain._requests import (
    EXAMPLE_CLIENT,
    MAX_INLINE_OUTPUT_BYTES,
    REQUESTS,
    ContractClient,
    JobRequest,
    RequestedJob,
    RequestMode,
    RequestsClient,
    RequestStatus,
    TrustPolicy,
    deploy_contract,
    deploy_requests,
    result_cid_bytes,
)
from lilypad_p2p.chain._settings_file import record_chain_settings, record_chains_entry
from lilypad_p2p.chain._typed import (
    Acceptance,
    Deal,
    Domain,
    Outcome,
    ResultCommitment,
    Verdict,
    default_threshold,
    recover_typed,
    require_signer,
    sign_typed,
    typed_data_types,
)
from lilypad_p2p.chain._watcher import ChainEvent, EventWatcher

__all__ = [
    "DEFAULT_MIN_MEDIATOR_STAKE_WEI",
    "DEFAULT_WITHDRAW_NOTICE_S",
    "EXAMPLE_CLIENT",
    "MAX_INLINE_OUTPUT_BYTES",
    "REQUESTS",
    "SETTLEMENT",
    "Acceptance",
    "AccountBalance",
    "AlreadySettled",
    "AsyncSettlementClient",
    "Backend",
    "Chain",
    "ChainError",
    "ChainEvent",
    "ContractClient",
    "ContractRevert",
    "DeadlineError",
    "Deal",
    "DealAlreadyOpened",
    "DealNotOpen",
    "DealState",
    "DealStatus",
    "Domain",
    "EventWatcher",
    "InsufficientFunds",
    "InvalidDealTerms",
    "JobRequest",
    "Outcome",
    "RecordFeed",
    "RequestMode",
    "RequestStatus",
    "RequestedJob",
    "RequestsClient",
    "ResultCommitment",
    "RpcUnavailable",
    "SenderUnfunded",
    "SettlementClient",
    "SettlementItem",
    "SignatureInvalid",
    "SignatureRejected",
    "SkipReason",
    "TransactionReverted",
    "TrustPolicy",
    "TxReceipt",
    "Verdict",
    "WrongDealStatus",
    "artifact",
    "default_threshold",
    "deploy_contract",
    "deploy_requests",
    "deploy_settlement",
    "deployment_block",
    "format_wei",
    "open_embedded_chain",
    "open_rpc_chain",
    "parse_amount",
    "read_track_records",
    "record_chain_settings",
    "record_chains_entry",
    "recover_typed",
    "require_signer",
    "result_cid_bytes",
    "settlement_abi",
    "settlement_events",
    "sign_typed",
    "skipped_deals",
    "typed_data_types",
    "utc",
]
