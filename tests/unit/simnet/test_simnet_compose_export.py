"""The compose project `export_compose` writes (files only; tests/integration runs one)."""

import json
import stat
from pathlib import Path

import pytest

from simnet import ScenarioError, load_scenario
from simnet._compose import CONTRACT_PLACEHOLDER, export_compose

SCENARIOS = Path(__file__).parents[3] / "simnet" / "scenarios"
REPO = Path(__file__).parents[3]


def _services(out: Path) -> dict:
    return json.loads((out / "docker-compose.yml").read_text().split("\n", 1)[1])["services"]


def test_export_writes_a_service_per_node_with_static_addresses_and_bootstrap_peers(tmp_path):
    scenario = load_scenario(SCENARIOS / "smoke.toml").with_nodes(5)
    export_compose(scenario, tmp_path, repo=REPO)
    services = _services(tmp_path)
    nodes = {name: s for name, s in services.items() if name not in ("anvil", "setup")}
    assert len(nodes) == 5
    ips = [s["networks"]["simnet"]["ipv4_address"] for s in services.values()]
    assert len(set(ips)) == len(ips)
    first, second = nodes["provider-1"]["command"], nodes["provider-2"]["command"]
    assert "--bootstrap" not in first and second.count("--bootstrap") == 1
    assert nodes["client-1"]["command"].count("--bootstrap") == 2
    assert all(s["depends_on"]["setup"]["condition"] == "service_completed_successfully"
               for s in nodes.values())
    assert any("docker.sock" in v for v in nodes["provider-1"]["volumes"])
    assert not any("docker.sock" in v for v in nodes["client-1"]["volumes"])
    assert (tmp_path / ".env").read_text() == f"SIMNET_DIR={tmp_path.resolve()}\n"
    home = tmp_path / "nodes" / "client-1"
    template = (home / "config.toml.in").read_text()
    assert CONTRACT_PLACEHOLDER in template and "check_rate" in template
    key_files = list((home / "keys").iterdir())
    assert key_files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in key_files)


def test_export_refuses_network_scenarios(tmp_path):
    with pytest.raises(ScenarioError, match="one machine"):
        export_compose(load_scenario(SCENARIOS / "partition.toml"), tmp_path, repo=REPO)


def test_a_smaller_re_export_keeps_its_nodes_keys_and_drops_the_other_homes(tmp_path):
    smoke = load_scenario(SCENARIOS / "smoke.toml")
    export_compose(smoke.with_nodes(8), tmp_path, repo=REPO)
    before = {home.name: (home / "keys" / "node-key.json").read_bytes()
              for home in (tmp_path / "nodes").iterdir()}
    user_file = tmp_path / "nodes" / "notes.txt"
    user_file.write_text("kept")
    export_compose(smoke.with_nodes(5), tmp_path, repo=REPO)
    kept = {home.name for home in (tmp_path / "nodes").iterdir() if home.is_dir()}
    assert kept == set(_services(tmp_path)) - {"anvil", "setup"} and len(kept) == 5
    assert len(before) == 8 and kept < set(before)
    assert all((tmp_path / "nodes" / name / "keys" / "node-key.json").read_bytes()
               == before[name] for name in kept)
    assert user_file.read_text() == "kept"  # only what is named as a node home goes
