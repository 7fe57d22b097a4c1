"""Graded peer misbehaviour (lighthouse `peer_manager/peerdb/score.rs` style), pure.

Every drop has a `DropReason`; `action_for` grades it into a `PeerAction` (or none, when an honest
peer could have sent it); `invalid_message_weight` turns the action into GossipSub P4 counts.
The service's one `report_peer` path applies them, so the grading is the whole policy and is
tested without sockets.
"""

from __future__ import annotations

import enum


class PeerAction(enum.Enum):
    """How bad a peer's action was, from "ban now" to "honest peers do this occasionally"."""

    FATAL = "fatal"
    LOW_TOLERANCE = "low_tolerance"
    MID_TOLERANCE = "mid_tolerance"
    HIGH_TOLERANCE = "high_tolerance"


class DropReason(enum.Enum):
    """Why a gossip message (or a whole RPC) was dropped before delivery and forwarding."""

    OVERSIZED = "oversized"
    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    SIGNER_NOT_SOURCE = "signer_not_source"
    SIGNER_NOT_OWNER = "signer_not_owner"
    STALE = "stale"
    EXPIRED = "expired"
    FUTURE_DATED = "future_dated"
    REPLAYED = "replayed"
    WRONG_TOPIC = "wrong_topic"
    MALFORMED_RPC = "malformed_rpc"
    VALIDATOR_FAILED = "validator_failed"


# An honest peer validates before forwarding, so anything only a liar or a broken build could
# produce costs a lot; what clock skew can produce costs little; a replay may come from an
# honest peer whose replay window is shorter than ours (it joined recently). A message that
# went stale or expired in flight costs nothing (GossipSub's "ignore"): an honest forwarder
# sends those whenever the network is slow, and in the 50-node simnet under load, penalising
# them (20,000 reports) graylisted honest peers, broke meshes and delayed gossip further. The
# clock checks run before the signature check, so such messages are cheap to drop.
_ACTIONS: dict[DropReason, PeerAction | None] = {
    DropReason.OVERSIZED: PeerAction.LOW_TOLERANCE,
    DropReason.MALFORMED: PeerAction.LOW_TOLERANCE,
    DropReason.BAD_SIGNATURE: PeerAction.LOW_TOLERANCE,
    DropReason.SIGNER_NOT_SOURCE: PeerAction.LOW_TOLERANCE,
    DropReason.SIGNER_NOT_OWNER: PeerAction.LOW_TOLERANCE,
    DropReason.STALE: None,
    DropReason.WRONG_TOPIC: PeerAction.LOW_TOLERANCE,
    DropReason.EXPIRED: None,
    DropReason.FUTURE_DATED: PeerAction.HIGH_TOLERANCE,
    DropReason.REPLAYED: PeerAction.MID_TOLERANCE,
    DropReason.MALFORMED_RPC: PeerAction.FATAL,
    # Our own validator raised: our bug, not the peer's fault.
    DropReason.VALIDATOR_FAILED: None,
}

# GossipSub P4 counts per action (see _params: P4 weight 10, graylist at -80): one fatal action
# saturates the counter, three low-tolerance ones graylist a peer, high-tolerance ones need dozens.
_INVALID_MESSAGE_WEIGHTS: dict[PeerAction, float] = {
    PeerAction.FATAL: 100.0,
    PeerAction.LOW_TOLERANCE: 4.0,
    PeerAction.MID_TOLERANCE: 1.0,
    PeerAction.HIGH_TOLERANCE: 0.25,
}


def action_for(reason: DropReason) -> PeerAction | None:
    """The action to report against the forwarder of a message dropped for `reason`."""
    return _ACTIONS[reason]


def invalid_message_weight(action: PeerAction) -> float:
    """How many GossipSub P4 invalid-message counts `action` adds to the peer's score."""
    return _INVALID_MESSAGE_WEIGHTS[action]


def disconnects(action: PeerAction) -> bool:
    """Whether `action` ends the connection and blacklists the peer at once."""
    return action is PeerAction.FATAL
