"""Trio's clock for the role tests: it jumps to the next timer whenever every task waits."""

from collections.abc import Iterator

import pytest
from trio.testing import MockClock

from lilypad_p2p.testing import inline_blocking


@pytest.fixture
def autojump() -> Iterator[MockClock]:
    """A `MockClock(autojump_threshold=0)` (pytest-trio runs the test on it), with the roles'
    blocking work (the embedded chain, files) run inline on the trio thread: the clock jumps
    only when every task waits on trio, never while a chain call is in flight, so a
    `trio.fail_after` in the test bounds it in virtual time.

    Set up before `trio.run`, whose tasks inherit the context: the double reaches every task.
    """
    with inline_blocking():
        yield MockClock(autojump_threshold=0)
