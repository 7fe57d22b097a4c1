"""Gossip network: libp2p host (TCP, Noise, Yamux or Mplex), tuned GossipSub, validators, discovery.

`GossipNet` is the service a node runs; it emits typed events carrying only validated
envelopes. Topics, peer grading and the validator's decision are pure and importable on their
own. libp2p's exceptions are mapped to the `NetError` subtree at this package's boundary.

The only package that talks to libp2p; it knows nothing of the roles or the chain.
May import from lilypad_p2p: clock, errors, identity, market, wire.
"""

from lilypad_p2p.net._admission import NetLimits
from lilypad_p2p.net._deal_transport import (
    DEAL_PROTOCOL,
    DEAL_STREAM,
    JOB_PROTOCOL,
    JOB_STREAM,
    MEDIATION_PROTOCOL,
    MEDIATION_STREAM,
    MODULE_PROTOCOL,
    MODULE_STREAM,
    PROTOCOLS,
    RESULT_PROTOCOL,
    RESULT_STREAM,
    DealTransport,
    RequestHandler,
    StreamProtocol,
    TransferHandler,
)
from lilypad_p2p.net._discovery import PEER_EXCHANGE_PROTOCOL, Discovery, KnownPeer
from lilypad_p2p.net._errors import (
    CannotListen,
    DialError,
    NetError,
    NotListening,
    PublishError,
    TopicError,
)
from lilypad_p2p.net._events import (
    CancelReceived,
    EnvelopeEvent,
    NetEvent,
    NodeRecordReceived,
    OfferReceived,
    PeerJoined,
    PeerLeft,
    ProposalReceived,
    event_for,
)
from lilypad_p2p.net._host import DEFAULT_MUXER, DEFAULT_MUXERS, Muxer, preferring
from lilypad_p2p.net._levers import message_id
from lilypad_p2p.net._mesh import MeshDegree
from lilypad_p2p.net._nat import (
    DIALBACK_PROTOCOL,
    PING_PROTOCOL,
    NatService,
    NatSettings,
    PingResult,
)
from lilypad_p2p.net._params import GRAYLIST_THRESHOLD
from lilypad_p2p.net._peer_actions import (
    DropReason,
    PeerAction,
    action_for,
    disconnects,
    invalid_message_weight,
)
from lilypad_p2p.net._reachability import (
    DialbackError,
    DialbackRequest,
    DialbackResponse,
    Reachability,
    ReachabilityTracker,
    RelayPlan,
    Reservation,
)
from lilypad_p2p.net._service import (
    GossipNet,
    NetStatistics,
    PeerState,
    wall_clock_ms,
)
from lilypad_p2p.net._streams import DealStreams, StreamRequestFailed
from lilypad_p2p.net._topics import (
    NODES_TOPIC,
    JobsTopic,
    MarketTopic,
    NodesTopic,
    Topic,
    check_market_name,
    parse_topic,
)
from lilypad_p2p.net._transfer import (
    BodyGate,
    ChunkSource,
    Reply,
    TransferRefused,
    answer_only,
)
from lilypad_p2p.net._validation import Accepted, Rejected, Verdict, topic_for, validate_gossip

__all__ = [
    "DEAL_PROTOCOL",
    "DEAL_STREAM",
    "DEFAULT_MUXER",
    "DEFAULT_MUXERS",
    "DIALBACK_PROTOCOL",
    "GRAYLIST_THRESHOLD",
    "JOB_PROTOCOL",
    "JOB_STREAM",
    "MEDIATION_PROTOCOL",
    "MEDIATION_STREAM",
    "MODULE_PROTOCOL",
    "MODULE_STREAM",
    "NODES_TOPIC",
    "PEER_EXCHANGE_PROTOCOL",
    "PING_PROTOCOL",
    "PROTOCOLS",
    "RESULT_PROTOCOL",
    "RESULT_STREAM",
    "Accepted",
    "BodyGate",
    "CancelReceived",
    "CannotListen",
    "ChunkSource",
    "DealStreams",
    "DealTransport",
    "DialError",
    "DialbackError",
    "DialbackRequest",
    "DialbackResponse",
    "Discovery",
    "DropReason",
    "EnvelopeEvent",
    "GossipNet",
    "JobsTopic",
    "KnownPeer",
    "MarketTopic",
    "MeshDegree",
    "Muxer",
    "NatService",
    "NatSettings",
    "NetError",
    "NetEvent",
    "NetLimits",
    "NetStatistics",
    "NodeRecordReceived",
    "NodesTopic",
    "NotListening",
    "OfferReceived",
    "PeerAction",
    "PeerJoined",
    "PeerLeft",
    "PeerState",
    "PingResult",
    "ProposalReceived",
    "PublishError",
    "Reachability",
    "ReachabilityTracker",
    "Rejected",
    "RelayPlan",
    "Reply",
    "RequestHandler",
    "Reservation",
    "StreamProtocol",
    "StreamRequestFailed",
    "Topic",
    "TopicError",
    "TransferHandler",
    "TransferRefused",
    "Verdict",
    "action_for",
    "answer_only",
    "check_market_name",
    "disconnects",
    "event_for",
    "invalid_message_weight",
    "message_id",
    "parse_topic",
    "preferring",
    "topic_for",
    "validate_gossip",
    "wall_clock_ms",
]
