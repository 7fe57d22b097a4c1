"""`lilypad-p2p chain deploy-requests` against a real anvil: deploys LilypadRequests (and the
example client) bound to the node's settlement contract, records it, and the result works."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from typer.testing import CliRunner

from lilypad_p2p.chain import (
    EXAMPLE_CLIENT,
    Chain,
    ContractClient,
    RequestMode,
    RequestsClient,
    RequestStatus,
    TrustPolicy,
)
from lilypad_p2p.cli import app
from lilypad_p2p.identity import Identity
from lilypad_p2p.testing import chain_test_accounts, fund_on_anvil

ESCROW_WEI = 10**15


def run(*args: str, ok: bool = True) -> str:
    clean_env = {"LILYPAD_RPC_URL": None, "LILYPAD_CONTRACT": None}  # None: unset
    result = CliRunner().invoke(app, list(args), env=clean_env)
    assert (result.exit_code == 0) == ok, result.output
    return result.output


def test_deploy_requests_records_it_and_the_example_client_can_ask(
    anvil_a: Chain, tmp_path: Path
) -> None:
    url = anvil_a.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    home = tmp_path / "node"
    owner = Identity.generate()
    owner.save(home / "keys")
    assert "no settlement contract" in run("chain", "deploy-requests", "--rpc", url,
                                           "--home", str(home), ok=False)
    settlement = json.loads(run("chain", "deploy", "--rpc", url, "--home", str(home),
                                "--dev-fund", "--json"))["contract"]

    out = json.loads(run("chain", "deploy-requests", "--example", "--home", str(home),
                         "--json"))

    assert (out["settlement"], out["chain_id"]) == (settlement, anvil_a.chain_id)
    config = tomllib.loads((home / "config.toml").read_text())
    assert config["chain"] == {"rpc_url": url, "contract": settlement,
                               "requests": out["requests"]}
    requests = RequestsClient(anvil_a, out["requests"])
    assert requests.settlement_address() == settlement
    # The example client is the deploying node's: only its account may ask.
    fund_on_anvil(anvil_a, [owner.eth_account()])
    example = ContractClient(anvil_a, EXAMPLE_CLIENT, out["example_client"], owner.eth_account())
    policy = TrustPolicy((chain_test_accounts()[5].address,), 1, RequestMode.OPTIMISTIC,
                         ESCROW_WEI // 10, 60)
    receipt = example.send("ask", "hash", b'{"text": "hi"}', anvil_a.now() + 600,
                           policy.as_abi(), value=ESCROW_WEI)
    (requested,) = requests.requested_in(receipt)
    assert requested.requester == example.address
    assert requests.request(requested.request_id).status is RequestStatus.OPEN

    # Without --example only the requests contract; the recorded address is replaced.
    again = run("chain", "deploy-requests", "--home", str(home))
    assert "example client" not in again
    recorded = tomllib.loads((home / "config.toml").read_text())["chain"]["requests"]
    assert recorded != out["requests"] and recorded in again
