"""When a LilypadRequests request can still change, by the contract's own rules (pure).

The bridge and the request checker forget a request once nothing they could send about it
would be accepted any more, so that a node running for months keeps tables, chain calls and a
scan cursor for the live requests only. `now` is the latest block's timestamp: every block
still to come, and so every transaction we could send, is later than it.
"""

from __future__ import annotations

from lilypad_p2p.chain import JobRequest, RequestMode, RequestStatus

# LilypadRequests.RULING_WINDOW: how long a consortium may leave a posted (attested) result or a
# challenge unruled before anyone may `refund` the request, bonds back to who put them up.
RULING_WINDOW_S = 86_400


def past_deadline(request: JobRequest, now: int) -> bool:
    """`claim` and `postResult` revert (DeadlinePassed) in any block later than the deadline:
    an open or claimed request can then only be refunded, and a ruled one that is overturned
    back to open can never be posted again."""
    return now > request.deadline


def challenge_closed(request: JobRequest, now: int) -> bool:
    """A posted optimistic result can no longer be challenged (WindowClosed): it is final."""
    return now > request.posted_at + request.challenge_window


def ruling_lapsed(request: JobRequest, now: int) -> bool:
    """`refund` may end a posted attested result or a challenge that the consortium left
    unruled (the claimant's bond, and a challenger's, go back to them)."""
    if request.status is RequestStatus.CHALLENGED:
        return now > request.posted_at + RULING_WINDOW_S
    if request.status is RequestStatus.POSTED and request.mode is RequestMode.ATTESTED:
        return now > max(request.deadline, request.posted_at + RULING_WINDOW_S)
    return False
