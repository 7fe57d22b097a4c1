"""Metrics follow a deal on real nodes (anvil, Docker): the provider's and the client's
/metrics show each phase the deal passes through, the job's run and outcome, the contract calls
each side made, and the provider's balance growing by the price."""

from __future__ import annotations

import base64
import contextlib
import time

import pytest
from scrape_kit import free_port, get, samples

from lilypad_p2p.localnet import market_world
from lilypad_p2p.testing import require_anvil, require_docker

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]

WAIT_S = 180.0
FINAL = {"settled", "rejected", "cancelled", "timed_out", "resolved"}


def scrape(port: int) -> dict:
    status, text = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200, text
    return samples(text)


def value(metrics: dict, name: str, **labels: str) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_change_as_a_deal_goes_through_its_phases(tmp_path):
    require_anvil()
    require_docker("the provider runs the job in Docker")
    provider_port, client_port = free_port(), free_port()
    with market_world(tmp_path) as world:
        provider = world.start(
            "provider", roles=["provider", "solver"],
            config_lines=f'metrics_listen = "127.0.0.1:{provider_port}"\n',
        )
        client = world.start(
            "client", roles=["client"], bootstrap=[provider.dial_addr],
            config_lines=f'metrics_listen = "127.0.0.1:{client_port}"\n',
        )
        world.wait_until_known(client, [provider])
        chain_id = str(provider.status["chains"][0]["chain_id"])
        before = scrape(provider_port)
        assert value(before, "lilypad_job_run_duration_seconds_count",
                     role="provider", outcome="ok") == 0
        assert not [k for k in before if k[0] == "lilypad_deals"]
        free_before = value(before, "lilypad_balance_wei", chain_id=chain_id, state="free")

        key = client.call("submit", {"module": "hash", "params": {"text": "metrics"}})["key"]
        # Scrape the provider while the deal runs: each phase it reports is one the deal is in.
        seen: list[str] = []
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            phases = [dict(labels)["phase"] for (name, labels), count in scrape(provider_port)
                      .items() if name == "lilypad_deals" and count > 0]
            for phase in phases:
                if phase not in seen:
                    seen.append(phase)
            with contextlib.suppress(Exception):
                if client.call("deal", {"key": key})["phase"] in FINAL:
                    break
            time.sleep(0.2)
        deal = world.wait_for_phase(client, key, FINAL, timeout_s=WAIT_S)
        assert deal["phase"] == "settled", deal
        world.cluster.wait_until(
            lambda: value(scrape(provider_port), "lilypad_deals", side="provider",
                          phase="settled") == 1,
            timeout_s=60, what="the provider's metrics to show the deal settled",
        )
        after = scrape(provider_port)

        # Every phase the provider's deal left was timed, and the one it ended in is counted.
        for phase in ("agreed", "running"):
            assert value(after, "lilypad_deal_phase_duration_seconds_count",
                         side="provider", phase=phase) >= 1, (phase, seen)
        assert value(after, "lilypad_deal_phase_duration_seconds_sum",
                     side="provider", phase="running") > 0
        assert value(after, "lilypad_job_run_duration_seconds_count",
                     role="provider", outcome="ok") == 1
        assert value(after, "lilypad_chain_call_duration_seconds_count", chain_id=chain_id,
                     function="accounts", outcome="ok") >= 1
        assert value(after, "lilypad_chain_call_duration_seconds_count", chain_id=chain_id,
                     function="openDeal", outcome="ok") == 1  # the provider opens the deal
        free_after = value(after, "lilypad_balance_wei", chain_id=chain_id, state="free")
        assert free_after - free_before == deal["payment_wei"]
        assert len(seen) >= 2, seen  # the scrapes saw the deal in more than one phase

        mine = scrape(client_port)
        assert value(mine, "lilypad_deals", side="client", phase="settled") == 1
        assert value(mine, "lilypad_deal_phase_duration_seconds_count",
                     side="client", phase="offered") == 1
        assert value(mine, "lilypad_chain_call_duration_seconds_count", chain_id=chain_id,
                     function="openDeal", outcome="ok") == 0

        # A job that fails inside the container is counted by its outcome class.
        script = base64.b64encode(b"import sys\nsys.exit(3)\n").decode()
        client.call("submit", {"module": "python", "params": {"script": "main.py"},
                               "files": {"main.py": script}})
        world.cluster.wait_until(
            lambda: value(scrape(provider_port), "lilypad_job_run_duration_seconds_count",
                          role="provider", outcome="exit_status") == 1,
            timeout_s=WAIT_S, what="the provider's metrics to count the failed run",
        )
