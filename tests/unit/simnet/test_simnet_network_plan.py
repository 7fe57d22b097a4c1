"""How partition and NAT scenarios place their nodes in namespace groups (no namespaces made)."""

from pathlib import Path

import pytest

from simnet import Network, Scenario, ScenarioError, load_scenario
from simnet._netns import Group, NetnsError, NetnsLab
from simnet._plan import BOOTSTRAP_NODES, plan_nodes

SCENARIOS = Path(__file__).parents[3] / "simnet" / "scenarios"


def test_a_partition_splits_every_role_and_each_side_has_a_bootstrap_node_and_a_late_joiner():
    plans = plan_nodes(load_scenario(SCENARIOS / "partition.toml"))
    for role in ("provider", "client"):
        sides = [p.group for p in plans if p.role == role]
        assert sides.count("a") == sides.count("b") > 0
    assert {p.group for p in plans[:BOOTSTRAP_NODES]} == {"a", "b"}
    late = [p for p in plans if p.late]
    assert sorted(p.group for p in late) == ["a", "b"]
    assert all(p.role == "provider" and p not in plans[:BOOTSTRAP_NODES] for p in late)


def test_nat_puts_a_share_of_providers_each_behind_its_own_nat_and_bootstrap_nodes_relay():
    scenario = Scenario("nat", nodes=10, network=Network(nat_share=0.5))
    plans = plan_nodes(scenario)
    natted = [p for p in plans if p.group.startswith("nat")]
    assert natted and all(p.role == "provider" for p in natted)
    assert len({p.group for p in natted}) == len(natted)
    assert all(p.relay and p.group == "pub" and "relay" in p.roles
               for p in plans[:BOOTSTRAP_NODES])
    assert not any(p.relay for p in plans[BOOTSTRAP_NODES:])


def test_loopback_scenarios_use_no_groups():
    plans = plan_nodes(load_scenario(SCENARIOS / "smoke.toml"))
    assert {p.group for p in plans} == {""} and not any(p.late or p.relay for p in plans)


def test_partition_and_nat_are_not_combined():
    with pytest.raises(ScenarioError, match="not both"):
        Network(partition_after_s=5, nat_share=0.5)


def test_lab_addresses_follow_the_groups():
    lab = NetnsLab((Group("a", 1), Group("nat2", 2, natted=True)), prefix="snx", octet=42)
    assert lab.rpc_url == "http://10.42.0.2:8545"
    assert lab.node_ip("a") == "10.42.1.2" and lab.node_ns("a") == "snxa"
    assert lab.node_ip("nat2") == "10.42.102.2" and lab.node_ns("nat2") == "snxnat2h"
    assert lab.namespaces == ["snxcore", "snxa", "snxnat2", "snxnat2h"]
    assert lab.command("a", ["true"]) == ["ip", "netns", "exec", "snxa", "true"]
    with pytest.raises(NetnsError):
        Group("bad-name", 1)
