"""The node's one clock: wall-clock milliseconds that move with trio's clock."""

import time

import trio

from lilypad_p2p.clock import Clock, wall_clock_ms

START_MS = 1_700_000_000_123
HOURS_S = 5 * 3600


async def test_a_clock_reads_its_start_then_follows_trios_clock(autojump_clock):
    clock = Clock(START_MS)
    assert clock() == clock.now_ms() == START_MS
    await trio.sleep(0.29)  # a float that is not a whole number of milliseconds times 1000
    assert clock() == START_MS + 290
    autojump_clock.jump(HOURS_S)
    assert clock() == START_MS + 290 + HOURS_S * 1000


async def test_hours_on_a_mock_clock_pass_in_no_real_time(mock_clock):
    clock = Clock()
    wall_before = wall_clock_ms()
    first = clock()
    assert wall_before <= first <= wall_clock_ms()
    real_started = time.monotonic()
    mock_clock.jump(HOURS_S)
    assert clock() - first == HOURS_S * 1000
    assert time.monotonic() - real_started < 1.0


async def test_on_trios_real_clock_it_reads_the_wall_clock():
    clock = Clock()
    for _ in range(3):
        before = wall_clock_ms()
        now = clock()
        # Rounded against the wall clock's floor: within a millisecond either side.
        assert before - 1 <= now <= wall_clock_ms() + 1
        await trio.sleep(0.01)
