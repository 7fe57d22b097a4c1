"""The simnet's metrics ports: distinct, free when picked, and below the kernel's ephemeral
range, where no outbound connection or `tcp/0` listener of the nodes can take them before
the node binds its port (real sockets on loopback)."""

import random
import socket

import pytest

from simnet import ScenarioError
from simnet._scrape import ephemeral_low, free_loopback_ports


def test_fifty_ports_are_distinct_free_and_below_the_ephemeral_range():
    low = ephemeral_low()
    ports = free_loopback_ports(50)
    assert len(set(ports)) == 50
    assert all(10000 <= port < low for port in ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_in_use_is_passed_over():
    taken, spare = socket.socket(), socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    spare.bind(("127.0.0.1", 0))
    ports = [taken.getsockname()[1], spare.getsockname()[1]]
    spare.close()  # free again: the one port to hand out
    try:
        picked = {free_loopback_ports(1, rng=random.Random(seed), candidates=ports)[0]
                  for seed in range(8)}
        with pytest.raises(ScenarioError, match=r"only 1 of 2 .* run fewer nodes"):
            free_loopback_ports(2, candidates=ports)
    finally:
        taken.close()
    assert picked == {ports[1]}
