"""When the enforcer sweeps: every second while someone may be banned or trimmed soon, else
every `ENFORCE_IDLE_INTERVAL_S`, and at once when a peer is reported (trio's MockClock)."""

import trio

from lilypad_p2p.net import NetLimits
from lilypad_p2p.net._admission import Admission
from lilypad_p2p.net._enforcer import (
    ENFORCE_IDLE_INTERVAL_S,
    ENFORCE_INTERVAL_S,
    Enforcer,
    sweep_pause_s,
)


def test_the_sweep_waits_long_only_when_nothing_can_be_acted_on_soon():
    quiet = {"suspects": False, "banned": 0, "connections": 10, "max_connections": 100}
    assert sweep_pause_s(**quiet) == ENFORCE_IDLE_INTERVAL_S
    assert sweep_pause_s(**{**quiet, "suspects": True}) == ENFORCE_INTERVAL_S
    assert sweep_pause_s(**{**quiet, "banned": 1}) == ENFORCE_INTERVAL_S
    assert sweep_pause_s(**{**quiet, "connections": 75}) == ENFORCE_INTERVAL_S
    assert sweep_pause_s(**{**quiet, "connections": 74}) == ENFORCE_IDLE_INTERVAL_S


class _Host:
    def __init__(self, peers: list[str]) -> None:
        self.peers = peers

    def get_network(self) -> "_Host":
        return self

    def get_connections_map(self) -> dict[str, list[object]]:
        return {peer: [object()] for peer in self.peers}

    async def disconnect(self, peer: str) -> None:
        self.peers.remove(peer)


class _Pubsub:
    def __init__(self) -> None:
        self.blacklist: set[str] = set()

    def add_to_blacklist(self, peer: str) -> None:
        self.blacklist.add(peer)

    def remove_from_blacklist(self, peer: str) -> None:
        self.blacklist.discard(peer)


async def test_a_report_is_judged_at_once_and_a_quiet_node_sweeps_rarely(autojump_clock):
    host = _Host(["honest", "rogue"])
    reported: set[str] = set()
    sweeps: list[float] = []
    enforcer = Enforcer(
        host,  # type: ignore[arg-type]
        _Pubsub(),  # type: ignore[arg-type]
        Admission(NetLimits(ban_s=30.0)),
        score=lambda peer: 0.0,
        is_graylisted=lambda peer: sweeps.append(trio.current_time()) or peer in reported,
        protected=lambda peer: False,
        may_be_graylisted=lambda peer: peer in reported,
        clock=trio.current_time,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(enforcer.run)
        await trio.sleep(3 * ENFORCE_IDLE_INTERVAL_S + 0.5)
        quiet_sweeps = len(sweeps) // 2  # is_graylisted runs once per connected peer
        assert quiet_sweeps == 3

        reported.add("rogue")
        reported_at = trio.current_time()
        enforcer.attend()
        await trio.sleep(0.1)
        assert host.peers == ["honest"], "the reported peer was not banned at once"
        assert sweeps[-1] == reported_at

        # A ban to lift: every second until it ends, then quiet again.
        sweeps.clear()
        await trio.sleep(30.0)
        assert len(sweeps) >= 30 / ENFORCE_INTERVAL_S - 2
        sweeps.clear()
        await trio.sleep(3 * ENFORCE_IDLE_INTERVAL_S)
        assert len(sweeps) <= 4
        nursery.cancel_scope.cancel()
