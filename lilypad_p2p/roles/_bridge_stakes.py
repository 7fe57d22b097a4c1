"""What a chain bridge puts at stake (pure): which requests it claims, and how much of its
free deposit each may count on.

A claim hands the request's bond to the request's consortium to rule on (`claim_refusal`).
The job the claim submits locks its payment only when its deal opens on chain, maybe minutes
later; until then the chain's free balance still counts that money. A bridge that compared
each request with the free balance alone would claim, in one poll, every request its deposit
covers one at a time: the jobs would then open one by one, and those still waiting at their
deadline would forfeit their bonds. So each claimed request whose deal has not locked its
payment yet holds its max price back from the deposit another claim may count on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lilypad_p2p.chain import JobRequest, RequestedJob
from lilypad_p2p.market import Phase
from lilypad_p2p.store import ClientDeal

# A request whose deals are all in these phases (or that has none) has locked nothing yet:
# not matched or opened, or ended with the payment back in the free balance.
UNFUNDED_PHASES = frozenset(
    {Phase.OFFERED, Phase.MATCHED, Phase.AGREED, Phase.CANCELLED, Phase.TIMED_OUT}
)


class ClaimedRequests:
    """Our claimed requests (by id) and their max prices."""

    def __init__(self) -> None:
        self._max_prices: dict[bytes, int] = {}

    def claimed(self, request_id: bytes, max_price: int) -> None:
        self._max_prices[request_id] = max_price

    def forget(self, request_id: bytes) -> None:
        self._max_prices.pop(request_id, None)

    def available_wei(self, free_wei: int,
                      deals_by_request: Mapping[bytes, Sequence[ClientDeal]],
                      request_id: bytes) -> int:
        """The free deposit that `request_id`'s job may count on: what the other claimed
        requests' unfunded jobs will lock is taken off."""
        held = sum(price for other, price in self._max_prices.items()
                   if other != request_id and all(d.record.phase in UNFUNDED_PHASES
                                                  for d in deals_by_request.get(other, ())))
        return free_wei - held


def claim_refusal(requested: RequestedJob, request: JobRequest,
                  trusted: frozenset[str]) -> str | None:
    """Why the bridge will not put its bond at stake on the request, or None.

    The request's consortium rules on our result: k of its mediators could overturn an honest
    one and hand our bond to the requester. So we claim only where at least k of them are
    mediators we trust (our `mediators` config), and never for a bond above the escrow.
    """
    policy = requested.policy
    known = sum(1 for m in policy.mediators if m.lower() in trusted)
    if known < policy.threshold:
        return (f"only {known} of the request's mediators are ones this node trusts; its "
                f"consortium needs {policy.threshold} to rule (add them to `mediators`)")
    if request.bond > request.escrow:
        return f"bond {request.bond} wei exceeds the escrow {request.escrow} wei"
    return None
