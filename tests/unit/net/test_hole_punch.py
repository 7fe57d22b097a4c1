"""One DCUtR driver per pair: the rule, and the py-libp2p members `OneSidedDCUtR` leans on."""

import inspect

import pytest
from libp2p.crypto.secp256k1 import create_new_key_pair
from libp2p.network.connection.swarm_connection import SwarmConn
from libp2p.network.swarm import Swarm
from libp2p.peer.id import ID
from libp2p.rcmgr import Direction
from libp2p.relay.circuit_v2.dcutr import DCUtRProtocol

from lilypad_p2p.net._hole_punch import OneSidedDCUtR, drives_hole_punch


def _peer() -> ID:
    return ID.from_pubkey(create_new_key_pair().public_key)


@pytest.fixture
def pair() -> tuple[ID, ID]:
    low, high = sorted((_peer(), _peer()), key=lambda peer: peer.to_bytes())
    return low, high


def test_the_end_that_accepted_the_relayed_connection_drives(pair):
    low, high = pair
    assert drives_hole_punch(high, low, [Direction.INBOUND])
    assert not drives_hole_punch(low, high, [Direction.OUTBOUND])
    assert drives_hole_punch(low, high, [Direction.INBOUND, Direction.INBOUND])


@pytest.mark.parametrize(
    "directions",
    [
        [Direction.INBOUND, Direction.OUTBOUND],
        [Direction.UNKNOWN],
        [Direction.UNKNOWN, Direction.INBOUND],
    ],
)
def test_where_the_direction_does_not_decide_exactly_one_end_drives(pair, directions):
    low, high = pair
    assert drives_hole_punch(low, high, directions)
    assert not drives_hole_punch(high, low, directions)


def test_no_relayed_connection_no_session(pair):
    low, high = pair
    assert not drives_hole_punch(low, high, [])


def test_the_library_members_the_override_relies_on_are_still_there():
    # The auto-drive loop starts every session through initiate_hole_punch.
    assert "self.initiate_hole_punch(peer_id)" in inspect.getsource(
        DCUtRProtocol._auto_drive_loop
    )
    assert list(inspect.signature(DCUtRProtocol.initiate_hole_punch).parameters) == [
        "self",
        "peer_id",
    ]
    assert OneSidedDCUtR.initiate_hole_punch is not DCUtRProtocol.initiate_hole_punch
    # Relayed connections are upgraded by these two, which record the direction.
    assert isinstance(inspect.getattr_static(SwarmConn, "direction"), property)
    assert 'direction="inbound"' in inspect.getsource(Swarm.upgrade_inbound_raw_conn)
    assert 'direction="outbound"' in inspect.getsource(Swarm.upgrade_outbound_raw_conn)
