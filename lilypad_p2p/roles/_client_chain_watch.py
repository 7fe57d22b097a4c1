"""What a job creator watches on chain while the provider holds its deal.

The provider holds both signatures of an agreed deal, so it can open the deal at any time
before its result deadline (the contract refuses after), and once the deal is open it can record
a result on chain that it never delivers: when the acceptance window closes, `claimTimeout`
then pays it. So the client follows an agreed deal until it is opened or the deadline rules that
out, and disputes a recorded result that has not reached it by the middle of the acceptance
window, once it has asked the provider for it again (an honest provider records a result only
while the client is silent, and hands it over when asked). The consortium re-runs the job and
rules on the recorded hash.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import trio

from lilypad_p2p.chain import ChainError, Deal, DealStatus
from lilypad_p2p.deal_detail import required
from lilypad_p2p.market import Phase
from lilypad_p2p.roles._settlement import DealChain
from lilypad_p2p.store import ClientDeal, StoreUnavailable

# How often an agreed deal whose inputs are on their way is looked up until the provider has
# opened it (a second or so after our inputs reach it): its `running` is shown as it begins.
OPEN_POLL_INTERVAL_S = 0.25
# How often a running deal's record is read for a result we were not given, and an agreed deal
# that got no inputs for its opening (at least four times in its acceptance window).
RESULT_WATCH_INTERVAL_S = 5.0
WITHHELD = ("the provider recorded a result on chain that it did not deliver: disputed, the "
            "mediators re-run the job")


@dataclass(frozen=True, slots=True)
class RecordedResult:
    """A result the provider recorded on chain (chain seconds): when, when we dispute it if it
    has not reached us, and when the contract would pay it as accepted."""

    recorded_at: int
    dispute_at: int
    window_ends: int


async def recorded_result(chain: DealChain, deal: Deal) -> RecordedResult | None:
    """The result recorded for `deal` and not yet settled or disputed; None without one."""
    state = await chain.client.deal_state(deal)
    if state.status is not DealStatus.RESULT_SUBMITTED:
        return None
    return RecordedResult(state.since, state.since + deal.acceptance_window // 2,
                          state.since + deal.acceptance_window)


def watch_interval_s(deal: Deal) -> float:
    return min(RESULT_WATCH_INTERVAL_S, deal.acceptance_window / 4)


async def watch_job_stream(current: Callable[[], ClientDeal | None], chain: DealChain,
                           opened: Callable[[ClientDeal], object], stream: trio.CancelScope,
                           *, agreement_ends: float) -> None:
    """While the job stream runs: `opened` once the chain shows the agreed deal the provider
    opened on receiving our inputs (it answers only with the result), looked up often until
    `agreement_ends` (trio time), then as a running deal is; running, `stream` is cancelled
    once a result the provider recorded instead of sending it is due a dispute."""
    while (stored := current()) is not None:
        deal = required(stored.detail.deal, "deal")
        if stored.record.phase is Phase.AGREED:
            with contextlib.suppress(ChainError, StoreUnavailable):  # the stream goes on
                if await chain.status(deal) is not DealStatus.NONE:
                    opened(stored)
                    continue
            await trio.sleep(OPEN_POLL_INTERVAL_S if trio.current_time() < agreement_ends
                             else watch_interval_s(deal))
        elif stored.record.phase is Phase.RUNNING:
            # First after a pause: most results come before one, at no chain read.
            await trio.sleep(watch_interval_s(deal))
            with contextlib.suppress(ChainError):
                if await dispute_due(chain, deal):
                    stream.cancel()
                    return
        else:
            return


async def dispute_due(chain: DealChain, deal: Deal) -> bool:
    """Whether a result recorded for `deal` has waited for us past the middle of its window."""
    recorded = await recorded_result(chain, deal)
    return recorded is not None and await chain.now_s() >= recorded.dispute_at


class WithheldResults:
    """The client's running deals whose provider recorded a result on chain that it did not
    send: each is asked for once more before it is disputed."""

    def __init__(self) -> None:
        self._asked_again: set[str] = set()

    def forget(self, key: str) -> None:
        """The deal's result came, or the deal ended."""
        self._asked_again.discard(key)

    async def next_step(self, chain: DealChain, key: str, deal: Deal, *,
                        can_dispute: bool) -> float | bytes:
        """How long to ask the provider (again) for the result it recorded; or, once asked in
        vain past the middle of the acceptance window, the whole recorded hash to dispute."""
        recorded = await recorded_result(chain, deal)
        if recorded is None:  # settled or disputed meanwhile: the next step sees which
            return 0.0
        now_s = await chain.now_s()
        if now_s < recorded.dispute_at:
            return float(recorded.dispute_at - now_s)
        if key not in self._asked_again or not can_dispute:
            self._asked_again.add(key)
            return max(1.0, (recorded.window_ends - now_s) / 2)
        self._asked_again.discard(key)
        return await chain.client.recorded_result_hash(chain.deal_id(deal), recorded.recorded_at)
