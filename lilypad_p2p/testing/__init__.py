"""Helpers for lilypad-p2p's own tests (and for users testing against it).

Real parts started for a test (anvil and chains, a registry, node clusters, NAT labs in network
namespaces), an attacker's wire built from the spec rather than our codec, shared market
fixtures, and the test faults a node can be told to commit (the node imports it only for those).
May import from lilypad_p2p anything but: cli*, node*, observe.
"""

from lilypad_p2p.testing._chain import (
    TEST_BALANCE_WEI,
    advance_chain_time,
    anvil_binary,
    anvil_test_chain,
    chain_test_accounts,
    embedded_test_chain,
    fund_on_anvil,
    revert_chain,
    running_anvil,
    snapshot_chain,
)
from lilypad_p2p.testing._real_parts import require_anvil, require_docker, require_real
from lilypad_p2p.testing._registry import LocalRegistry, local_registry, require_registry
from lilypad_p2p.testing._spam import SpamKind, spam_gossip, spam_payload

__all__ = [
    "TEST_BALANCE_WEI",
    "LocalRegistry",
    "SpamKind",
    "advance_chain_time",
    "anvil_binary",
    "anvil_test_chain",
    "chain_test_accounts",
    "embedded_test_chain",
    "fund_on_anvil",
    "local_registry",
    "require_anvil",
    "require_docker",
    "require_real",
    "require_registry",
    "revert_chain",
    "running_anvil",
    "snapshot_chain",
    "spam_gossip",
    "spam_payload",
]
