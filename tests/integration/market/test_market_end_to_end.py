"""A real market on loopback and anvil: 2 clients, 3 providers, 2 solvers, 20 jobs.

Every job is matched by the solvers (not targeted), runs in Docker, and settles on chain; the
chain's balances move by exactly the agreed prices, and two solvers proposing the same
matching never make two deals for one job.
"""

import hashlib
import tarfile

import pytest

from lilypad_p2p.control import ControlError
from lilypad_p2p.localnet import market_world
from lilypad_p2p.testing import require_anvil, require_docker

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]

JOBS = 20
SETTLED_WITHIN_S = 240.0


def _require_parts() -> None:
    require_anvil()
    require_docker("the providers run jobs in Docker")


def _digest_in(result_path: str) -> str:
    with tarfile.open(result_path) as archive:
        member = archive.extractfile("digest.txt")
        assert member is not None
        return member.read().decode().strip()


def test_twenty_solver_matched_jobs_settle_and_pay_exactly(tmp_path):
    _require_parts()
    with market_world(tmp_path) as world:
        boot = world.start("provider-1", roles=["provider"])
        providers = [boot] + [
            world.start(f"provider-{i}", roles=["provider"], bootstrap=[boot.dial_addr])
            for i in (2, 3)
        ]
        solvers = [world.start(f"solver-{i}", roles=["solver"], bootstrap=[boot.dial_addr])
                   for i in (1, 2)]
        clients = [world.start(f"client-{i}", roles=["client"], bootstrap=[boot.dial_addr])
                   for i in (1, 2)]
        for client in clients:
            world.wait_until_known(client, providers)
        addresses = {n.name: n.status["address"] for n in [*providers, *clients]}
        before = {name: world.balance(address) for name, address in addresses.items()}

        submitted = []  # (client, key, text)
        for i in range(JOBS):
            client = clients[i % len(clients)]
            text = f"job {i} of the market test"
            key = client.call("submit", {"module": "hash", "params": {"text": text}})["key"]
            submitted.append((client, key, text))

        paid = 0
        deal_ids = set()
        for client, key, text in submitted:
            deal = world.wait_for_phase(client, key, {"settled", "rejected", "cancelled",
                                                      "timed_out"}, timeout_s=SETTLED_WITHIN_S)
            assert deal["phase"] == "settled", deal
            assert _digest_in(deal["result_path"]) == hashlib.sha256(text.encode()).hexdigest()
            paid += deal["payment_wei"]
            deal_ids.add(deal["deal_id"])
        assert len(deal_ids) == JOBS

        # No double deal: across all providers, one deal per job offer, each settled.
        provider_deals = [d for p in providers for d in p.call("deals")]
        assert sorted(d["deal_id"] for d in provider_deals) == sorted(deal_ids)
        world.cluster.wait_until(
            lambda: all(d["phase"] == "settled" for p in providers for d in p.call("deals")),
            timeout_s=30.0, what="every provider to record its deals settled",
        )
        # Both solvers proposed (they serve the same market).
        assert all(s.call("status") for s in solvers)

        after = {name: world.balance(address) for name, address in addresses.items()}
        client_paid = sum(before[c.name] - after[c.name] for c in clients)
        provider_earned = sum(after[p.name] - before[p.name] for p in providers)
        assert client_paid == paid
        assert provider_earned == paid
        for provider in providers:
            earned = sum(d["payment_wei"] for d in provider.call("deals"))
            assert after[provider.name] - before[provider.name] == earned
        _deals_by_limit_and_key(clients[0])


def _deals_by_limit_and_key(client) -> None:
    """The `deals` control method answers a long-lived node's callers without describing every
    deal: the newest few, the open ones, or those a key or deal ID names; a bad parameter is
    one line, and the node answers on."""
    every = client.call("deals")
    assert every and client.call("deals", {"limit": 1}) == every[-1:]
    assert client.call("deals", {"open_only": True}) == []  # all settled
    newest = every[-1]
    assert client.call("deals", {"key": newest["key"][:-3].upper()}) == [newest]
    assert client.call("deals", {"key": newest["deal_id"]}) == [newest]
    assert client.call("deals", {"key": "bafk"}) == every[:10]  # ambiguous, bounded
    for params, said in (({"limit": 0}, "limit must be"), ({"limit": True}, "limit must be"),
                         ({"key": 7}, "key must be text"), ({"open_only": "yes"}, "open_only")):
        with pytest.raises(ControlError, match=said):
            client.call("deals", params)
    assert client.call("status")["address"]
