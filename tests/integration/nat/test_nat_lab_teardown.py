"""A NAT lab torn down after an error inside it leaves nothing: namespaces, veths, daemons."""

from __future__ import annotations

import pytest

from lilypad_p2p.testing import require_real
from lilypad_p2p.testing._nat_lab import NatLab, lab_missing, upnp_missing

pytestmark = pytest.mark.net


class _Boom(Exception):
    pass


@pytest.mark.parametrize("options", [
    {"relays": 2, "symmetric": True, "uplink": True},
    {"upnp": True},
], ids=["relays-symmetric-uplink", "upnp"])
def test_a_failing_test_body_leaves_no_trace(options):
    missing = lab_missing() or (upnp_missing() if options.get("upnp") else None)
    if missing:
        require_real("netns", missing)
    lab = NatLab(**options)
    with pytest.raises(_Boom), lab.running():
        assert len(lab.leftovers()) >= len(lab.namespaces)  # it was really built
        raise _Boom
    assert lab.leftovers() == []
