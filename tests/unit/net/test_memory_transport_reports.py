"""A report's reason is bounded by the transport, whatever a role hands it (it goes into logs
and may quote the peer), on the in-memory network as on `net.DealStreams`."""

from lilypad_p2p.net import PeerAction
from lilypad_p2p.net._deal_transport import REPORT_REASON_CHARS
from lilypad_p2p.testing import MemoryNetwork


def test_a_long_reason_is_cut_to_the_bound():
    network = MemoryNetwork()
    network.transport("me").report("them", PeerAction.LOW_TOLERANCE, "x" * 10_000)
    [report] = network.reports_of("them")
    assert report.reason == "x" * REPORT_REASON_CHARS
    assert (report.reporter, report.action) == ("me", PeerAction.LOW_TOLERANCE)
