"""The simnet: N real nodes on one machine, a workload, faults, and a report."""

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
