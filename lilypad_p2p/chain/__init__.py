"""Settlement on chain: EIP-712 structs, the settlement client, the event watcher.

Two backends behind one `Chain`: the embedded py-evm chain (`open_embedded_chain`, default, in
process) and any JSON-RPC URL (`open_rpc_chain`, e.g. anvil). Money is native ETH.
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
    deploy_settlement,
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
    SignatureInvalid,
    SignatureRejected,
    TransactionReverted,
    WrongDealStatus,
)
from lilypad_p2p.chain._settings_file import record_chain_settings
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
    "SETTLEMENT",
    "Acceptance",
    "AccountBalance",
    "AlreadySettled",
    "AsyncSettlementClient",
    "Backend",
    "Chain",
    "ChainError",
    "ChainEvent",
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
    "Outcome",
    "ResultCommitment",
    "RpcUnavailable",
    "SettlementClient",
    "SettlementItem",
    "SignatureInvalid",
    "SignatureRejected",
    "TransactionReverted",
    "TxReceipt",
    "Verdict",
    "WrongDealStatus",
    "artifact",
    "default_threshold",
    "deploy_settlement",
    "format_wei",
    "open_embedded_chain",
    "open_rpc_chain",
    "parse_amount",
    "record_chain_settings",
    "recover_typed",
    "require_signer",
    "settlement_abi",
    "sign_typed",
    "typed_data_types",
]
