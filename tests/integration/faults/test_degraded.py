"""Degraded states instead of deaths, with real node processes, real anvil and the real Docker
engine, reached through forwarders the test cuts (the shared anvil and dockerd keep running):

- a provider whose chain RPC does not answer at start waits, says so in `status`, and starts
  its market work once the RPC answers;
- a provider whose Docker engine goes away withdraws its offer and takes no deal, then offers
  again when the engine is back, and the job waiting for it settles, funds conserved;
- the same when the chain goes away later, and a mediator watching the contract's events
  waits the outage out; a provider started without Docker never offers.
"""

import contextlib
import time
from urllib.parse import urlparse

import pytest

from lilypad_p2p.control import ControlError
from lilypad_p2p.localnet import market_world
from lilypad_p2p.testing import require_anvil, require_docker
from lilypad_p2p.testing._proxy import Forwarder

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]
WAIT_S = 90.0


def _status(node):
    with contextlib.suppress(ControlError, OSError):
        return node.call("status")
    return {}


def _faults(node) -> set[str]:
    return {f["fault"] for f in _status(node).get("faults", [])}


def _owners(node) -> set[str]:
    with contextlib.suppress(ControlError, OSError):
        return {o["owner"] for o in node.call("offers", {"market": "cpu"})}
    return set()


def test_provider_survives_chain_and_docker_outages(tmp_path):
    require_anvil()
    require_docker("the provider runs the job in Docker")
    with market_world(tmp_path / "m") as world:
        anvil = Forwarder.tcp(urlparse(world.rpc_url).port)
        docker = Forwarder.unix(tmp_path / "docker.sock", "/var/run/docker.sock")
        docker.start()
        try:
            # The RPC the provider is configured with does not answer when it starts.
            anvil.start()
            rpc = f"http://127.0.0.1:{anvil.port}"
            anvil.stop()
            world.prepare_home("provider")
            config = tmp_path / "m" / "provider" / "config.toml"
            config.write_text(config.read_text().replace(world.rpc_url, rpc))
            provider = world.start("provider", roles=["provider"], wait_ready=False,
                                   env={"DOCKER_HOST": f"unix://{tmp_path / 'docker.sock'}"})
            world.cluster.wait_until(lambda: "chain_unreachable" in _faults(provider),
                                     timeout_s=WAIT_S, what="the provider to report the chain")
            shown = _status(provider)
            assert shown["state"] == "degraded"
            assert "retrying" in shown["faults"][0]["meaning"]
            time.sleep(3)
            assert provider.process.poll() is None, provider.log_tail()
            assert "node.degraded" in provider.log_path.read_text()

            anvil.start()  # the RPC answers again: the provider starts its market work
            provider.wait_ready(WAIT_S)
            world.cluster.wait_until(lambda: _status(provider).get("state") == "ok",
                                     timeout_s=WAIT_S, what="the provider to recover")

            # A mediator on the same RPC, watching the contract's events.
            world.prepare_home("mediator")
            config = tmp_path / "m" / "mediator" / "config.toml"
            config.write_text(config.read_text().replace(world.rpc_url, rpc))
            mediator = world.start("mediator", roles=["mediator"],
                                   bootstrap=[provider.dial_addr])

            client = world.start("client", roles=["client"], bootstrap=[provider.dial_addr])
            world.wait_until_known(client, [provider])
            target = provider.status["address"]
            client_address = client.status["address"]
            before = world.balance(target) + world.balance(client_address)

            # Docker goes away: the provider withdraws its offer; a job for it waits.
            docker.stop()
            world.cluster.wait_until(lambda: "docker_unreachable" in _faults(provider),
                                     timeout_s=WAIT_S, what="the provider to report Docker")
            world.cluster.wait_until(lambda: target not in _owners(client), timeout_s=WAIT_S,
                                     what="the client to see the offer withdrawn")
            key = client.call("submit", {"module": "hash", "params": {"text": "later"},
                                         "target": target})["key"]
            time.sleep(3)
            assert client.call("deal", {"key": key})["phase"] == "offered"
            assert provider.call("deals") == []

            # Docker is back: the provider offers again and the waiting job settles.
            docker.start()
            world.cluster.wait_until(lambda: _status(provider).get("state") == "ok",
                                     timeout_s=WAIT_S, what="the provider to see Docker back")
            settled = world.wait_for_phase(client, key, {"settled", "cancelled", "timed_out"},
                                           timeout_s=WAIT_S)
            assert settled["phase"] == "settled", settled
            assert world.balance(target) + world.balance(client_address) == before
            log = provider.log_path.read_text()
            assert "offers.withdrawn" in log and "node.recovered" in log

            # The chain goes away later: reported, offer withdrawn; back: offered again. The
            # mediator's event watcher waits it out.
            anvil.stop()
            world.cluster.wait_until(lambda: "chain_unreachable" in _faults(provider),
                                     timeout_s=WAIT_S, what="the provider to report the chain")
            world.cluster.wait_until(lambda: target not in _owners(client), timeout_s=WAIT_S,
                                     what="the offer withdrawn while the chain is away")
            world.cluster.wait_until(
                lambda: "chain.watch_failed" in mediator.log_path.read_text(),
                timeout_s=WAIT_S, what="the mediator's watcher to lose the chain")
            anvil.start()
            world.cluster.wait_until(lambda: target in _owners(client), timeout_s=WAIT_S,
                                     what="the provider to offer again")
            world.cluster.wait_until(
                lambda: "chain.watch_resumed" in mediator.log_path.read_text(),
                timeout_s=WAIT_S, what="the mediator's watcher to have the chain again")
            assert provider.process.poll() is None
            assert mediator.process.poll() is None, mediator.log_tail()

            # A provider started while its Docker engine is down never offers.
            dockerless = world.start("dockerless", roles=["provider"],
                                     bootstrap=[provider.dial_addr],
                                     env={"DOCKER_HOST": f"unix://{tmp_path / 'none.sock'}"})
            world.cluster.wait_until(lambda: "docker_unreachable" in _faults(dockerless),
                                     timeout_s=WAIT_S, what="the Docker fault at start")
            time.sleep(5)
            assert dockerless.status["address"] not in _owners(client)
            assert dockerless.process.poll() is None
        finally:
            anvil.stop()
            docker.stop()
