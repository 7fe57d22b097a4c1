"""The GossipSub mesh we ask for: its degree and peer scoring (numbers and reasons in
`_params`)."""

from __future__ import annotations

from dataclasses import dataclass

from libp2p.pubsub.score import ScoreParams, TopicScoreParams

from lilypad_p2p.net import _params as params
from lilypad_p2p.net._errors import NetError


def score_params() -> ScoreParams:
    """GossipSub scoring with real thresholds (see `_params` for the numbers and why)."""
    return ScoreParams(
        p4_invalid_messages=TopicScoreParams(
            weight=params.P4_INVALID_MESSAGE_WEIGHT,
            cap=params.P4_INVALID_MESSAGE_CAP,
            decay=params.P4_INVALID_MESSAGE_DECAY,
        ),
        p5_behavior_penalty_weight=params.P5_BEHAVIOUR_PENALTY_WEIGHT,
        p5_behavior_penalty_threshold=params.P5_BEHAVIOUR_PENALTY_THRESHOLD,
        p5_behavior_penalty_decay=params.P5_BEHAVIOUR_PENALTY_DECAY,
        publish_threshold=params.PUBLISH_THRESHOLD,
        gossip_threshold=params.GOSSIP_THRESHOLD,
        graylist_threshold=params.GRAYLIST_THRESHOLD,
        accept_px_threshold=params.ACCEPT_PX_THRESHOLD,
    )


@dataclass(frozen=True, slots=True)
class MeshDegree:
    """GossipSub's mesh degree: the target D and the bounds that trigger grafting/pruning."""

    target: int = params.MESH_DEGREE
    low: int = params.MESH_DEGREE_LOW
    high: int = params.MESH_DEGREE_HIGH

    def __post_init__(self) -> None:
        if not 1 <= self.low <= self.target <= self.high:
            raise NetError(f"mesh degree needs 1 <= low <= target <= high, got {self}")


DEFAULT_MESH_DEGREE = MeshDegree()
