"""The node's budgets (`net/_admission.py`): pure logic, time as an argument."""

import pytest

from lilypad_p2p.net._admission import (
    Admission,
    ConnectionTicket,
    NetLimits,
    Refusal,
    peers_to_trim,
    subnet_of,
)


def test_per_ip_and_per_subnet_budgets_refuse_and_release_returns_the_slot():
    admission = Admission(NetLimits(max_per_ip=2, max_per_subnet=3))
    first, second = (admission.admit_connection(inbound=True, ip="203.0.113.7") for _ in range(2))
    assert admission.admit_connection(inbound=True, ip="203.0.113.7") is Refusal.PER_IP
    assert isinstance(admission.admit_connection(inbound=True, ip="203.0.113.8"), ConnectionTicket)
    assert admission.admit_connection(inbound=True, ip="203.0.113.9") is Refusal.PER_SUBNET
    assert isinstance(admission.admit_connection(inbound=True, ip="198.51.100.1"), ConnectionTicket)
    assert isinstance(first, ConnectionTicket)
    admission.release(first)
    admission.release(first)  # a second release of one ticket returns nothing more
    assert isinstance(admission.admit_connection(inbound=True, ip="203.0.113.7"), ConnectionTicket)
    assert admission.refused == {"per_ip": 1, "per_subnet": 1}
    assert admission.connections == 4
    del second


def test_allowlisted_addresses_skip_the_ip_budgets_but_not_the_totals():
    admission = Admission(NetLimits(max_per_ip=1, max_connections=3, max_inbound=3, max_outbound=3))
    tickets = [admission.admit_connection(inbound=True, ip="127.0.0.1") for _ in range(3)]
    assert all(isinstance(t, ConnectionTicket) for t in tickets)
    assert admission.admit_connection(inbound=True, ip="127.0.0.1") is Refusal.CONNECTIONS


def test_5000_sequential_connections_never_exhaust_the_budget():
    admission = Admission(NetLimits())
    for n in range(5000):
        ticket = admission.admit_connection(inbound=True, ip="198.51.100.1")
        assert isinstance(ticket, ConnectionTicket), n
        assert admission.attach_peer(ticket, f"peer{n}") is None
        admission.release(ticket)
    assert admission.connections == 0 and admission.accepted == 5000


def test_inbound_and_outbound_budgets_are_separate():
    admission = Admission(NetLimits(max_connections=3, max_inbound=2, max_outbound=1))
    assert isinstance(admission.admit_connection(inbound=False, ip=None), ConnectionTicket)
    assert admission.admit_connection(inbound=False, ip=None) is Refusal.OUTBOUND
    for _ in range(2):
        assert isinstance(admission.admit_connection(inbound=True, ip=None), ConnectionTicket)
    assert admission.admit_connection(inbound=True, ip=None) is Refusal.CONNECTIONS


def test_a_ban_refuses_the_peer_until_it_expires():
    admission = Admission(NetLimits(ban_s=60))
    admission.ban("bad", now=100.0)
    ticket = admission.admit_connection(inbound=True, ip="198.51.100.1")
    assert isinstance(ticket, ConnectionTicket)
    assert admission.attach_peer(ticket, "bad") is Refusal.BANNED
    assert admission.expire_bans(now=159.0) == []
    # Past its end the ban holds until it is expired: the enforcer lifts the pubsub blacklist
    # in that same step, so a peer is never let back in while pubsub still refuses it.
    assert admission.attach_peer(ticket, "bad") is Refusal.BANNED
    assert admission.expire_bans(now=160.0) == ["bad"]
    assert admission.attach_peer(ticket, "bad") is None


def test_per_peer_connections_streams_and_bytes():
    admission = Admission(
        NetLimits(max_per_peer=1, max_streams_per_protocol_per_peer=2,
                  max_inflight_bytes_per_peer=100, max_inflight_bytes=150)
    )
    first = admission.admit_connection(inbound=True, ip=None)
    second = admission.admit_connection(inbound=True, ip=None)
    assert admission.attach_peer(first, "p") is None
    assert admission.attach_peer(second, "p") is Refusal.PER_PEER
    assert admission.open_stream("p", "/x") and admission.open_stream("p", "/x")
    assert not admission.open_stream("p", "/x")
    assert admission.open_stream("p", "/y") and admission.open_stream("q", "/x")
    admission.close_stream("p", "/x")
    assert admission.open_stream("p", "/x")
    assert admission.reserve_bytes("p", 80) is None
    assert admission.reserve_bytes("p", 30) is Refusal.BYTES_PEER
    assert admission.reserve_bytes("q", 80) is Refusal.BYTES_NODE
    admission.release_bytes("p", 80)
    assert admission.reserve_bytes("q", 80) is None
    assert admission.bytes_in_flight == 80


def test_trimming_drops_the_lowest_scores_first_and_never_a_deal_partner():
    scores = {"a": -50.0, "b": 0.0, "c": -10.0, "deal": -70.0, "d": 5.0}
    chosen = peers_to_trim(scores, excess=3, score=scores.__getitem__,
                           protected=lambda peer: peer == "deal")
    assert chosen == ["a", "c", "b"]
    assert not peers_to_trim(scores, excess=0, score=scores.__getitem__, protected=bool)


def test_subnets_are_slash_24_and_slash_48():
    assert subnet_of("203.0.113.77") == "203.0.113.0/24"
    assert subnet_of("2001:db8:1:2::5") == "2001:db8:1::/48"


@pytest.mark.parametrize("field", ["max_connections", "max_per_ip", "ban_s"])
def test_limits_must_be_positive(field):
    with pytest.raises(ValueError, match=field):
        NetLimits(**{field: 0})


def test_inbound_cannot_exceed_the_total():
    with pytest.raises(ValueError, match="max_inbound"):
        NetLimits(max_connections=10, max_inbound=11)
