"""What a chain bridge puts at stake (pure): which requests it claims, and how much of its
free deposit each may count on.

A claim hands the request's bond to the request's consortium to rule on (`claim_refusal`).
The job the claim submits locks its payment only when its deal opens on chain, maybe minutes
later; until then the chain's free balance still counts that money. A bridge that compared
each request with the free balance alone would claim, in one poll, every request its deposit
covers one at a time: the jobs would then open one by one, and those still waiting at their
deadline would forfeit their bonds. So what each claimed request's job will lock is held back
from the deposit another claim may count on: by the client role while its deal is not open
(`ClientRole.promised_wei`), and here while it has no deal or its deals ended unopened (it
will be submitted again).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lilypad_p2p.chain import JobRequest, RequestedJob
from lilypad_p2p.market import Phase
from lilypad_p2p.store import ClientDeal

# A claimed request whose deals all ended in these phases (or that has none) is submitted
# again: nothing of it is locked on chain, nor counted by the client role.
RESUBMITTED_PHASES = frozenset({Phase.CANCELLED, Phase.TIMED_OUT})


class ClaimedRequests:
    """Our claimed requests (by id) and their max prices."""

    def __init__(self) -> None:
        self._max_prices: dict[bytes, int] = {}

    def claimed(self, request_id: bytes, max_price: int) -> None:
        self._max_prices[request_id] = max_price

    def forget(self, request_id: bytes) -> None:
        self._max_prices.pop(request_id, None)

    def available_wei(self, unpromised_wei: int,
                      deals_by_request: Mapping[bytes, Sequence[ClientDeal]],
                      request_id: bytes, fee_wei: int) -> int:
        """The deposit that `request_id`'s job may count on, from what the client role has not
        promised: the max price and fee of each other claimed request still to be submitted is
        taken off."""
        held = sum(price + fee_wei for other, price in self._max_prices.items()
                   if other != request_id and all(d.record.phase in RESUBMITTED_PHASES
                                                  for d in deals_by_request.get(other, ())))
        return unpromised_wei - held


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
