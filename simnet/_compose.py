"""A scenario as a docker compose project: one service per node, anvil and a setup step.

    out/
      docker-compose.yml   services: anvil, setup (deploys, funds, writes configs), one per node
      .env                 SIMNET_DIR=<absolute path of out/> (compose substitutes it)
      build-image.sh       builds `lilypad-simnet/node` from the local package (offline)
      nodes/<name>/        keys (made here), config.toml.in (the setup fills in the contract)

The node image is the bootstrap image (`bootstrap/build-image.sh`: Debian's python3.11 and the
venv's packages, from this host) plus anvil and the `simnet` package. Every node home is mounted
at the same absolute path inside its container as on the host: providers and mediators run jobs
as sibling containers on the host's engine (through its socket), which bind-mounts job
directories by host path, and the host can drive every node through its control socket. The
nodes sit on their own bridge network with static addresses, so bootstrap multiaddrs (which
name peer IDs made here) are known in advance. Network faults (partitions, NATs) stay with the
one-machine runner; node faults (cheaters, spammers) travel in the configs.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import shlex
import stat
import time
from pathlib import Path
from typing import Any

from lilypad_p2p.identity import Identity
from simnet._outdir import claim_export_dir, drop_unplanned_homes
from simnet._plan import BOOTSTRAP_NODES, plan_nodes
from simnet._scenario import Scenario, ScenarioError

IMAGE = "lilypad-simnet/node"
ANVIL_IN_IMAGE = "/usr/local/bin/anvil"  # the image's PATH is /usr/bin:/bin
NODE_PORT = 4001
ANVIL_PORT = 8545
DEFAULT_SUBNET = "172.29.0.0/24"
CONTRACT_PLACEHOLDER = "@CONTRACT@"
CONFIG_TEMPLATE = "config.toml.in"
# The setup step waits this long at most for anvil to answer.
SETUP_RPC_TIMEOUT_S = 60.0
SETUP_POLL_S = 0.5
# First host address given to a node (.1 is the bridge's gateway, .2 anvil, .3 the setup).
FIRST_NODE_HOST = 10
NODE_ROLES_NEEDING_DOCKER = ("provider", "mediator")

BUILD_SCRIPT = """#!/usr/bin/env bash
# Build {image}: the bootstrap image from the local package, plus anvil and the simnet package.
set -euo pipefail
repo={repo}
bash "$repo/bootstrap/build-image.sh"
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp -L "$repo/contracts/node_modules/.bin/anvil" "$context/anvil"
cp -a "$repo/simnet" "$context/simnet"
find "$context" -name __pycache__ -prune -exec rm -rf {{}} +
cat > "$context/Dockerfile" <<'DOCKERFILE'
FROM lilypad-p2p/relay
COPY anvil /usr/local/bin/anvil
COPY simnet /opt/lilypad/site-packages/simnet
ENTRYPOINT []
DOCKERFILE
previous=$(docker image inspect -f '{{{{.Id}}}}' {image} 2>/dev/null || true)
docker build -q -t {image} "$context"
# A rebuild leaves the image it replaces untagged (430 MB); remove it, unless a container uses it.
if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect -f '{{{{.Id}}}}' {image})" ]; then
  docker image rm "$previous" >/dev/null 2>&1 || true
fi
"""


def _addresses(subnet: str, count: int) -> tuple[str, str, list[str]]:
    try:
        network = ipaddress.ip_network(subnet)
    except ValueError as exc:
        raise ScenarioError(f"subnet {subnet}: {exc}") from None
    if network.version != 4:
        raise ScenarioError(f"subnet {subnet} is not IPv4: the services get IPv4 addresses")
    # Only as many hosts as are needed are made: a /8 holds 16 million.
    room = max(0, network.num_addresses - 2 - (FIRST_NODE_HOST - 1))
    if room < count:
        raise ScenarioError(f"subnet {subnet} has room for {room} nodes, not {count}: pass a "
                            f"larger --subnet (a /24 holds {256 - 2 - (FIRST_NODE_HOST - 1)})")
    hosts = itertools.islice(network.hosts(), FIRST_NODE_HOST - 1 + count)
    listed = [str(h) for h in hosts]
    return listed[1], listed[2], listed[FIRST_NODE_HOST - 1:]


def check_exportable(scenario: Scenario, subnet: str = DEFAULT_SUBNET) -> None:
    """Raise ScenarioError, before anything is written, if `scenario` cannot be exported."""
    if scenario.network.namespaced:
        raise ScenarioError(f"scenario {scenario.name} puts its nodes in network namespaces "
                            "(a partition, NATs), which only `lilypad-simnet up` runs, on one "
                            "machine: export a scenario without [network]")
    _addresses(subnet, len(plan_nodes(scenario)))


def export_compose(scenario: Scenario, out_dir: Path, *, repo: Path,
                   subnet: str = DEFAULT_SUBNET) -> Path:
    """Write the compose project for `scenario` into `out_dir`; the compose file's path.

    `out_dir` must be new, empty or a previous export's (`claim_export_dir`; else
    OutDirError): a previous export's node keys are kept, its files rewritten, and the homes of
    nodes it had beyond this scenario's removed."""
    check_exportable(scenario, subnet)
    claim_export_dir(out_dir)
    out_dir = out_dir.resolve()
    plans = plan_nodes(scenario)
    # The setup step funds every home it finds: a larger earlier export's extra ones go.
    drop_unplanned_homes(out_dir, {p.name for p in plans})
    anvil_ip, setup_ip, node_ips = _addresses(subnet, len(plans))
    rpc_url = f"http://{anvil_ip}:{ANVIL_PORT}"
    # A re-export loads the keys it made: as in a run, their plaintext is on purpose.
    identities = {p.name: Identity.load_or_create(out_dir / "nodes" / p.name / "keys",
                                                  plaintext_expected=True)
                  for p in plans}
    trusted = ", ".join(f'"{identities[p.name].address}"' for p in plans if p.role == "mediator")
    dial = {p.name: f"/ip4/{ip}/tcp/{NODE_PORT}/p2p/{identities[p.name].peer_id}"
            for p, ip in zip(plans, node_ips, strict=True)}
    services: dict[str, Any] = {
        "anvil": {"image": IMAGE, "networks": {"simnet": {"ipv4_address": anvil_ip}},
                  "command": [ANVIL_IN_IMAGE, "--host", "0.0.0.0", "--port", str(ANVIL_PORT),
                              "--hardfork", "prague", "--accounts", "1"]},
        "setup": {"image": IMAGE, "networks": {"simnet": {"ipv4_address": setup_ip}},
                  "depends_on": ["anvil"],
                  "volumes": ["${SIMNET_DIR}/nodes:${SIMNET_DIR}/nodes"],
                  "command": ["python3.11", "-m", "simnet.cli", "compose-setup", "--rpc-url",
                              rpc_url, "--nodes-dir", "${SIMNET_DIR}/nodes"]},
    }
    for index, (plan, ip) in enumerate(zip(plans, node_ips, strict=True)):
        home = out_dir / "nodes" / plan.name
        (home / CONFIG_TEMPLATE).write_text(
            f"mediators = [{trusted}]\n{plan.config_lines}\n[chain]\n"
            f'rpc_url = "{rpc_url}"\ncontract = "{CONTRACT_PLACEHOLDER}"\n')
        bootstrap = [dial[p.name] for p in plans[:min(index, BOOTSTRAP_NODES)]]
        home_in = f"${{SIMNET_DIR}}/nodes/{plan.name}"
        command = ["python3.11", "-m", "lilypad_p2p.cli", "node", "--home", home_in,
                   "--listen", f"/ip4/{ip}/tcp/{NODE_PORT}", "--market", "cpu",
                   *[f"--{role}" for role in plan.roles]]
        for addr in bootstrap:
            command += ["--bootstrap", addr]
        volumes = [f"{home_in}:{home_in}"]
        if plan.role in NODE_ROLES_NEEDING_DOCKER:
            volumes.append("/var/run/docker.sock:/var/run/docker.sock")
        services[plan.name] = {
            "image": IMAGE, "networks": {"simnet": {"ipv4_address": ip}},
            "depends_on": {"setup": {"condition": "service_completed_successfully"}},
            "volumes": volumes, "command": command, "stop_signal": "SIGINT",
            "stop_grace_period": "20s"}
    project = {"version": "3.9", "services": services,
               "networks": {"simnet": {"ipam": {"config": [{"subnet": subnet}]}}}}
    compose_file = out_dir / "docker-compose.yml"
    # JSON is YAML: the file stays readable without a YAML library.
    compose_file.write_text("# lilypad-simnet export-compose: scenario "
                            f"{scenario.name}, {len(plans)} nodes\n"
                            + json.dumps(project, indent=2) + "\n")
    (out_dir / ".env").write_text(f"SIMNET_DIR={out_dir}\n")
    script = out_dir / "build-image.sh"
    script.write_text(BUILD_SCRIPT.format(image=IMAGE, repo=shlex.quote(str(repo.resolve()))))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return compose_file


def setup_chain(rpc_url: str, nodes_dir: Path) -> str:
    """The compose project's setup step: deploy the settlement contract on anvil, fund every
    node's account and deposit for it, write each node's config.toml; the contract address."""
    from lilypad_p2p.chain import SettlementClient, deploy_settlement, open_rpc_chain
    from lilypad_p2p.localnet import (
        NODE_DEPOSIT_WEI,
        NODE_WALLET_WEI,
        TEST_WITHDRAW_NOTICE_S,
        chain_test_accounts,
        fund_on_anvil,
    )

    chain = open_rpc_chain(rpc_url)
    deadline = time.monotonic() + SETUP_RPC_TIMEOUT_S
    while True:
        try:
            chain.block_number()
            break
        except Exception:  # connection refused, timeouts: anvil is still starting
            if time.monotonic() > deadline:
                raise
            time.sleep(SETUP_POLL_S)
    (deployer,) = chain_test_accounts(1)
    fund_on_anvil(chain, [deployer])
    contract = deploy_settlement(chain, deployer, withdraw_notice_s=TEST_WITHDRAW_NOTICE_S)
    for template in sorted(nodes_dir.glob(f"*/{CONFIG_TEMPLATE}")):
        home = template.parent
        identity = Identity.load_or_create(home / "keys", plaintext_expected=True)
        fund_on_anvil(chain, [identity.eth_account()], NODE_WALLET_WEI)
        SettlementClient(chain, contract, identity.eth_account()).deposit(NODE_DEPOSIT_WEI)
        (home / "config.toml").write_text(
            template.read_text().replace(CONTRACT_PLACEHOLDER, contract))
    return contract
