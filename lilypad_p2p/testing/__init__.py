"""Helpers for lilypad-p2p's own tests (and for users testing against it).

Chains to test on (the embedded EVM, a fresh anvil, time travel and reorgs), an in-memory
deal network (`MemoryNetwork`: role tests without sockets) and a client and provider on it
(`role_pair`), blocking work run inline for an autojumping `MockClock` (`inline_blocking`),
skips for missing real parts, NAT labs in network namespaces, an attacker's wire built from the
spec rather than our codec, shared market fixtures, and the test faults a node can be told to
commit (the node imports it only for those). The local network itself (anvil, funded accounts,
node processes, market worlds, a registry) is `lilypad_p2p.localnet`; the names of it tests use
most are re-exported here.
May import from lilypad_p2p anything but: cli*, node*, observe.
"""

from lilypad_p2p.localnet import (
    TEST_BALANCE_WEI,
    LocalRegistry,
    anvil_binary,
    chain_test_accounts,
    fund_on_anvil,
    running_anvil,
)
from lilypad_p2p.testing._blocking import inline_blocking
from lilypad_p2p.testing._chain import (
    advance_chain_time,
    anvil_test_chain,
    chain_follows_clock,
    embedded_test_chain,
    revert_chain,
    snapshot_chain,
)
from lilypad_p2p.testing._files import random_file
from lilypad_p2p.testing._memory_net import MemoryNetwork, MemoryTransport, Report
from lilypad_p2p.testing._real_parts import require_anvil, require_docker, require_real
from lilypad_p2p.testing._registry import local_registry, require_registry
from lilypad_p2p.testing._role_pair import (
    RolePair,
    funded_deal_chains,
    provider_listing,
    role_pair,
)
from lilypad_p2p.testing._spam import SpamKind, spam_gossip, spam_payload
from lilypad_p2p.testing._watched_store import WatchedStore

__all__ = [
    "TEST_BALANCE_WEI",
    "LocalRegistry",
    "MemoryNetwork",
    "MemoryTransport",
    "Report",
    "RolePair",
    "SpamKind",
    "WatchedStore",
    "advance_chain_time",
    "anvil_binary",
    "anvil_test_chain",
    "chain_follows_clock",
    "chain_test_accounts",
    "embedded_test_chain",
    "fund_on_anvil",
    "funded_deal_chains",
    "inline_blocking",
    "local_registry",
    "provider_listing",
    "random_file",
    "require_anvil",
    "require_docker",
    "require_real",
    "require_registry",
    "revert_chain",
    "role_pair",
    "running_anvil",
    "snapshot_chain",
    "spam_gossip",
    "spam_payload",
]
