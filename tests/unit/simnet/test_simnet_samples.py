"""The simnet's process samples: RSS every sample, PSS (costly to read) at most every
`PSS_EVERY_S` and in the last sample; this test process stands in for a node."""

import os
from types import SimpleNamespace

from simnet._measure import PSS_EVERY_S, Samples


def _this_process_as_a_node() -> SimpleNamespace:
    return SimpleNamespace(name="node", process=SimpleNamespace(pid=os.getpid()))


def test_pss_is_read_at_most_every_interval_and_in_the_last_sample():
    samples, node = Samples(), _this_process_as_a_node()
    samples.take([node], None, now=100.0)
    first = samples.total_pss_max_mb
    assert first > 0 and samples.pss_max_mb["node"] == first
    assert samples.pss_due_at == 100.0 + PSS_EVERY_S

    samples.total_pss_max_mb = 0.0  # so a read of PSS would show
    samples.take([node], None, now=100.0 + PSS_EVERY_S / 2)
    assert samples.total_pss_max_mb == 0.0 and samples.rss_max_mb["node"] > 0

    samples.take([node], os.getpid(), now=None)  # the last sample, the zygote too
    assert samples.total_pss_max_mb > first  # this process counted twice, as node and zygote
    assert samples.zygote_pss_max_mb is not None
    assert samples.pss_due_at == 100.0 + PSS_EVERY_S

    samples.take([node], None, now=100.0 + PSS_EVERY_S)
    assert samples.pss_due_at == 100.0 + 2 * PSS_EVERY_S
