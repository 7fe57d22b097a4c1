"""The NAT lab's layout, without building it: names, addresses and refused combinations."""

import pytest

from lilypad_p2p.testing._nat_lab import NODE_PORT, LabError, NatLab


def test_default_lab_has_one_relay_on_a_private_wan():
    lab = NatLab(prefix="lpnt", octet=150)
    assert lab.relay_roles == ["relay"]
    assert lab.namespaces == ["lpntwan", "lpntrelay", "lpntnata", "lpntnatb", "lpnthosta",
                              "lpnthostb"]
    assert lab.relay_ip() == "10.150.0.1" and lab.router_a_ip() == "10.150.0.2"
    assert lab.relay_multiaddr("16Uiu2HAm") == f"/ip4/10.150.0.1/tcp/{NODE_PORT}/p2p/16Uiu2HAm"
    with pytest.raises(LabError, match="uplink"):
        lab.uplink_ip()


def test_second_relay_and_uplink_addresses():
    lab = NatLab(prefix="lpnt", octet=150, relays=2, uplink=True)
    assert lab.relay_roles == ["relay", "relay2"] and "lpntrelay2" in lab.namespaces
    assert lab.relay_ip(1) == "10.150.0.4" and lab.uplink_ip() == "10.150.0.254"


def test_upnp_lab_uses_a_public_wan_because_upnp_refuses_private_gateways():
    lab = NatLab(prefix="lpnt", octet=150, upnp=True)
    assert lab.relay_ip() == "11.150.0.1" and lab.router_a_ip() == "11.150.0.2"


@pytest.mark.parametrize("kwargs", [{"relays": 0}, {"relays": 3},
                                    {"upnp": True, "uplink": True}])
def test_impossible_labs_are_refused(kwargs):
    with pytest.raises(LabError):
        NatLab(**kwargs)
