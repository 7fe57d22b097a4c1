"""The seam for blocking work: a worker thread in a node, inline on the trio thread under the
test double, so an autojumping `MockClock` never moves while the work is in flight."""

import threading

import pytest
import trio

from lilypad_p2p.blocking import run_blocking
from lilypad_p2p.testing import inline_blocking

HOUR_S = 3600.0


def _fails(text: str) -> None:
    raise ValueError(text)


async def test_by_default_the_work_runs_in_a_worker_thread_while_trio_runs_on():
    trio_thread = threading.get_ident()

    def work() -> tuple[int, int]:
        # Trio answers the thread while the work is in flight: the call does not hold it up.
        return threading.get_ident(), trio.from_thread.run_sync(threading.get_ident)

    worker, answered_from = await run_blocking(work)
    assert worker != trio_thread and answered_from == trio_thread
    with pytest.raises(ValueError, match="bad"):
        await run_blocking(_fails, "bad")


async def test_on_an_autojumping_clock_a_worker_thread_lets_the_clock_jump(autojump_clock):
    """Why tests need the double: while a thread works, trio sees every task blocked."""
    timer_fired = threading.Event()

    async def timer() -> None:
        await trio.sleep(HOUR_S)
        timer_fired.set()

    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(timer)
        # The work waits for the hour-long timer, which fires at once in real time.
        assert await run_blocking(timer_fired.wait, 30)
    assert trio.current_time() - started == HOUR_S


async def test_under_the_double_the_work_runs_inline_and_the_clock_stands(autojump_clock):
    trio_thread = threading.get_ident()
    threads: list[int] = []
    started = trio.current_time()
    with inline_blocking():
        async with trio.open_nursery() as timers:
            timers.start_soon(trio.sleep, HOUR_S)  # a deadline the clock could jump to
            async with trio.open_nursery() as nursery:
                # A task spawned inside the block inherits the double.
                nursery.start_soon(run_blocking, lambda: threads.append(threading.get_ident()))
                await run_blocking(lambda: threads.append(threading.get_ident()))
            assert trio.current_time() == started
            with pytest.raises(ValueError, match="bad"):
                await run_blocking(_fails, "bad")
            timers.cancel_scope.cancel()
    assert threads == [trio_thread, trio_thread]
    # Outside the block, a worker thread again.
    assert await run_blocking(threading.get_ident) != trio_thread


async def test_the_double_is_a_checkpoint(autojump_clock):
    ran: list[str] = []
    with inline_blocking(), trio.CancelScope() as scope:
        scope.cancel()
        await run_blocking(ran.append, "work")
    assert scope.cancelled_caught and ran == []
