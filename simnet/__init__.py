"""The simnet: N real nodes on one machine, a workload, faults, and a report.

A user of the package: it imports only public names of `lilypad_p2p` (the local network from
`lilypad_p2p.localnet`), never `lilypad_p2p.testing` (tests/unit/simnet/test_simnet_public_api.py).
"""

from simnet._runner import run_scenario
from simnet._scenario import (
    Faults,
    Network,
    RoleMix,
    Scenario,
    ScenarioError,
    Workload,
    load_scenario,
)

__all__ = ["Faults", "Network", "RoleMix", "Scenario", "ScenarioError", "Workload", "load_scenario",
           "run_scenario"]
