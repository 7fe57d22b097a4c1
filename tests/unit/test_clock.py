"""The node's one clock: wall-clock milliseconds that move with trio's clock."""

import time

import trio

from lilypad_p2p.clock import WALL_STEP_MS, Clock, wall_clock_ms

START_MS = 1_700_000_000_123
HOURS_S = 5 * 3600


async def test_a_clock_reads_its_start_then_follows_trios_clock(autojump_clock):
    clock = Clock(START_MS)
    assert clock() == clock.now_ms() == START_MS
    await trio.sleep(0.29)  # a float that is not a whole number of milliseconds times 1000
    assert clock() == START_MS + 290
    real_started = time.monotonic()
    autojump_clock.jump(HOURS_S)
    assert clock() == START_MS + 290 + HOURS_S * 1000
    assert time.monotonic() - real_started < 1.0  # hours, in no real time


async def test_a_nodes_clock_follows_trios_clock_between_readings_of_the_wall(mock_clock):
    wall = [START_MS]
    clock = Clock(wall=lambda: wall[0])
    assert clock() == START_MS
    # The system clock drifts a little from trio's (slewed by NTP): the node keeps trio's.
    mock_clock.jump(10)
    wall[0] = START_MS + 10_000 + WALL_STEP_MS
    assert clock() == START_MS + 10_000
    # It steps (set by hand, or a resumed VM whose monotonic clock stood still): the node
    # follows, and moves on with trio's clock from there.
    wall[0] = START_MS + 3_600_000
    assert clock() == START_MS + 3_600_000
    mock_clock.jump(1)
    assert clock() == START_MS + 3_601_000


async def test_on_trios_real_clock_it_reads_the_wall_clock():
    clock = Clock()
    for _ in range(3):
        before = wall_clock_ms()
        now = clock()
        # Rounded against the wall clock's floor: within a millisecond either side.
        assert before - 1 <= now <= wall_clock_ms() + 1
        await trio.sleep(0.01)
