"""A local network on this machine: anvil with funded test accounts, the settlement contract,
real node processes in their own homes, a local OCI registry, module images, and network
namespace plumbing. `market_world` is one such network for the length of a `with` block (the
simnet, the demo, tests and benchmarks); `up`/`status`/`down` keep one running in the
background (`lilypad-p2p devnet`).

May import chain/, control/, exec/ and identity; no node code imports it. Test-only helpers
(skips when a real part is missing, hostile peers, embedded chains) are in `lilypad_p2p.testing`.
"""

from lilypad_p2p.devnet._anvil import (
    TEST_ACCOUNT_COUNT,
    TEST_BALANCE_WEI,
    anvil_binary,
    chain_test_accounts,
    dev_rpc,
    fund_on_anvil,
    running_anvil,
    stop_anvil,
)
from lilypad_p2p.devnet._background import (
    DevnetError,
    DevnetState,
    default_directory,
    down,
    read_state,
    status,
    up,
)
from lilypad_p2p.devnet._cluster import (
    POLL_INTERVAL_S,
    ClusterError,
    LocalCluster,
    NodeProcess,
)
from lilypad_p2p.devnet._homes import node_identity, prepare_trusting_home, start_trusting_node
from lilypad_p2p.devnet._market import (
    NODE_DEPOSIT_WEI,
    NODE_WALLET_WEI,
    TEST_WITHDRAW_NOTICE_S,
    MarketWorld,
    market_world,
)
from lilypad_p2p.devnet._module_images import module_image
from lilypad_p2p.devnet._netns import (
    COMMAND_TIMEOUT_S,
    free_octet,
    namespaces_missing,
    run_command,
)
from lilypad_p2p.devnet._registry import LocalRegistry, local_registry, registry_missing

__all__ = [
    "COMMAND_TIMEOUT_S",
    "NODE_DEPOSIT_WEI",
    "NODE_WALLET_WEI",
    "POLL_INTERVAL_S",
    "TEST_ACCOUNT_COUNT",
    "TEST_BALANCE_WEI",
    "TEST_WITHDRAW_NOTICE_S",
    "ClusterError",
    "DevnetError",
    "DevnetState",
    "LocalCluster",
    "LocalRegistry",
    "MarketWorld",
    "NodeProcess",
    "anvil_binary",
    "chain_test_accounts",
    "default_directory",
    "dev_rpc",
    "down",
    "free_octet",
    "fund_on_anvil",
    "local_registry",
    "market_world",
    "module_image",
    "namespaces_missing",
    "node_identity",
    "prepare_trusting_home",
    "read_state",
    "registry_missing",
    "run_command",
    "running_anvil",
    "start_trusting_node",
    "status",
    "stop_anvil",
    "up",
]
