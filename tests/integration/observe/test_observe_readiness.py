"""/readyz on a real provider whose Docker engine and chain RPC go away and come back (reached
through forwarders the test cuts; the shared dockerd and anvil keep running): not ready with
the failing check named while either is away, ready again once it returns; /healthz stays up.
/metrics reuses a recent chain read, but shows the chain down once the watchdog finds it so."""

from __future__ import annotations

import re
import time
from urllib.parse import urlparse

import pytest
from scrape_kit import free_port, get

from lilypad_p2p.localnet import market_world
from lilypad_p2p.testing import require_anvil, require_docker
from lilypad_p2p.testing._proxy import Forwarder

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]
WAIT_S = 90.0


def _chain_gauge(metrics: str, name: str) -> float:
    found = re.search(rf"^{name}{{chain_id=\"\d+\"}} (\S+)$", metrics, re.MULTILINE)
    assert found is not None, f"{name} missing from /metrics"
    return float(found.group(1))


def test_readyz_follows_docker_and_the_chain(tmp_path):
    require_anvil()
    require_docker("the provider's readiness includes its Docker engine")
    port = free_port()
    readyz, healthz = f"http://127.0.0.1:{port}/readyz", f"http://127.0.0.1:{port}/healthz"
    metrics = f"http://127.0.0.1:{port}/metrics"
    with market_world(tmp_path / "m") as world:
        anvil = Forwarder.tcp(urlparse(world.rpc_url).port)
        docker = Forwarder.unix(tmp_path / "docker.sock", "/var/run/docker.sock")
        anvil.start()
        docker.start()
        try:
            peer = world.start("peer", roles=["solver"])
            world.prepare_home("provider")
            config = tmp_path / "m" / "provider" / "config.toml"
            config.write_text(
                f'metrics_listen = "127.0.0.1:{port}"\n'
                + config.read_text().replace(world.rpc_url, f"http://127.0.0.1:{anvil.port}")
            )
            provider = world.start(
                "provider", roles=["provider"], bootstrap=[peer.dial_addr],
                env={"DOCKER_HOST": f"unix://{tmp_path / 'docker.sock'}"},
            )
            chain_check = f"chain_{provider.status['chains'][0]['chain_id']}"

            def wait_for(wanted_status: int, text: str, what: str) -> None:
                world.cluster.wait_until(
                    lambda: (lambda got: got[0] == wanted_status and text in got[1])(
                        get(readyz)),
                    timeout_s=WAIT_S, what=what,
                )

            wait_for(200, "ready", "the provider ready (listening, meshed, chain, Docker)")

            docker.stop()
            wait_for(503, "not_docker_unreachable", "/readyz to name Docker")
            assert get(healthz) == (200, "ok\n")
            docker.start()
            wait_for(200, "ready", "/readyz ready again with Docker back")

            first = get(metrics)[1]
            time.sleep(0.5)
            second = get(metrics)[1]
            assert _chain_gauge(first, "lilypad_chain_up") == 1
            assert _chain_gauge(second, "lilypad_chain_read_age_seconds") >= 0.4  # reused

            anvil.stop()
            wait_for(503, chain_check, "/readyz to name the chain")
            assert get(healthz) == (200, "ok\n")
            world.cluster.wait_until(
                lambda: _chain_gauge(get(metrics)[1], "lilypad_chain_up") == 0,
                timeout_s=WAIT_S, what="/metrics to show the chain down")
            anvil.start()
            wait_for(200, "ready", "/readyz ready again with the chain back")
            assert provider.process.poll() is None
        finally:
            anvil.stop()
            docker.stop()
