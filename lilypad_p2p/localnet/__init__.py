"""A local network on this machine, for a `with` block: anvil with funded test accounts, the
settlement contract, real node processes in their own homes (`market_world`; spawned, or forked
from one zygote that has imported the node: `LocalCluster(forked=True)`), a local OCI
registry, module images, and network-namespace plumbing. The simnet, the demo, `lilypad-p2p
devnet` (the one that stays up), tests and benchmarks build on it.

No node code imports it. Test-only helpers (skips when a real part is missing, hostile peers,
embedded chains) are in `lilypad_p2p.testing`.
May import from lilypad_p2p: chain, control, exec, identity.
"""

from lilypad_p2p.localnet._anvil import (
    TEST_ACCOUNT_COUNT,
    TEST_BALANCE_WEI,
    anvil_binary,
    await_listening,
    chain_test_accounts,
    dev_rpc,
    fund_on_anvil,
    running_anvil,
    stop_anvil,
)
from lilypad_p2p.localnet._cluster import (
    POLL_INTERVAL_S,
    ClusterError,
    LocalCluster,
    NodeProcess,
    cluster_processes_under,
)
from lilypad_p2p.localnet._homes import node_identity, prepare_trusting_home, start_trusting_node
from lilypad_p2p.localnet._market import (
    NODE_DEPOSIT_WEI,
    NODE_WALLET_WEI,
    TEST_WITHDRAW_NOTICE_S,
    MarketWorld,
    market_world,
)
from lilypad_p2p.localnet._module_images import module_image
from lilypad_p2p.localnet._netns import (
    COMMAND_TIMEOUT_S,
    free_octet,
    namespaces_missing,
    run_command,
)
from lilypad_p2p.localnet._registry import LocalRegistry, local_registry, registry_missing

__all__ = [
    "COMMAND_TIMEOUT_S",
    "NODE_DEPOSIT_WEI",
    "NODE_WALLET_WEI",
    "POLL_INTERVAL_S",
    "TEST_ACCOUNT_COUNT",
    "TEST_BALANCE_WEI",
    "TEST_WITHDRAW_NOTICE_S",
    "ClusterError",
    "LocalCluster",
    "LocalRegistry",
    "MarketWorld",
    "NodeProcess",
    "anvil_binary",
    "await_listening",
    "chain_test_accounts",
    "cluster_processes_under",
    "dev_rpc",
    "free_octet",
    "fund_on_anvil",
    "local_registry",
    "market_world",
    "module_image",
    "namespaces_missing",
    "node_identity",
    "prepare_trusting_home",
    "registry_missing",
    "run_command",
    "running_anvil",
    "start_trusting_node",
    "stop_anvil",
]
