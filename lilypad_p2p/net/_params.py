"""Every GossipSub number and network timeout we chose, with the reason (DESIGN.md §4).

Measured background: /work/shared/notes/libp2p.md and benchmarks/RESULTS.md "Gossip network".
"""

from __future__ import annotations

from typing import Final

# Mesh degree (D, D_low, D_high). The spec default is 6/4/12; every extra mesh link costs a
# full copy of every message (a Noise frame written, read and decrypted), which dominates our
# CPU per delivery. The benchmark (RESULTS.md "Gossip network") measured 4/3/6 at about a third
# less CPU with the same 100 % delivery, and the bootstrap-loss test shows the mesh repairing
# itself at D_low = 3; heartbeat mesh repair plus IHAVE gossip recover what a thin mesh misses.
MESH_DEGREE: Final = 4
MESH_DEGREE_LOW: Final = 3
MESH_DEGREE_HIGH: Final = 6
# py-libp2p's default heartbeat is 120 s: mesh repair and IHAVE gossip every two minutes.
HEARTBEAT_INTERVAL_S: Final = 1
HEARTBEAT_INITIAL_DELAY_S: Final = 0.1
# Rate cap per forwarder per topic (our own publishes included). Our whole network is sized for
# a few offers per second (gossip CPU, §4), so 50/s only stops floods, never honest bursts.
MAX_MESSAGES_PER_TOPIC_PER_SECOND: Final = 50.0
# How long message IDs stay in the seen cache: longer than any propagation path, shorter than
# the ReplayGuard window, which catches older replays.
SEEN_TTL_S: Final = 120
# Outbound RPCs queued per peer before drops (library: 32, which loses bursts).
OUTBOUND_QUEUE_SIZE: Final = 256
# GossipSub keeps a copy of each message it sends for every connected peer not (yet) known to
# subscribe to the topic, to flush should the peer's subscription arrive: a race of a few
# milliseconds after connecting. Publish-only peers never subscribe, so under the library's
# 100 messages and 30 s a follower re-filtered up to 100 queued messages per publisher on every
# message it sent: 12 % of a solver's samples at 50 nodes (RESULTS.md "Publish-only providers").
PENDING_MESSAGES_TTL_S: Final = 2.0
MAX_PENDING_MESSAGES_PER_PEER: Final = 64
# Largest inbound pubsub RPC frame; envelopes are capped at 64 KiB, an RPC may batch a few.
MAX_INBOUND_RPC_BYTES: Final = 1024 * 1024
# Gossip message-cache window and history, in heartbeats.
GOSSIP_WINDOW: Final = 3
GOSSIP_HISTORY: Final = 5
# Backoff after a PRUNE before the peer may GRAFT again.
PRUNE_BACKOFF_S: Final = 60

# Peer scoring. Only P4 (invalid messages, fed by report_peer) and P5 (the library's own
# behaviour penalties: rate cap, GRAFT flood, IHAVE/IWANT spam) are weighted; the simplified
# py-libp2p P1-P3 are left at zero because their delivery-rate penalties misfire on small
# meshes. Thresholds follow the spec's ordering: 0 >= gossip >= publish > graylist.
P4_INVALID_MESSAGE_WEIGHT: Final = 10.0
P4_INVALID_MESSAGE_CAP: Final = 100.0
P4_INVALID_MESSAGE_DECAY: Final = 0.95  # per heartbeat: a -80 score recovers in about a minute
P5_BEHAVIOUR_PENALTY_WEIGHT: Final = 1.0
P5_BEHAVIOUR_PENALTY_THRESHOLD: Final = 20.0  # an honest mesh flap (GRAFT flood: 10) is free
P5_BEHAVIOUR_PENALTY_DECAY: Final = 0.9
GOSSIP_THRESHOLD: Final = -40.0
PUBLISH_THRESHOLD: Final = -60.0
GRAYLIST_THRESHOLD: Final = -80.0
ACCEPT_PX_THRESHOLD: Final = 0.0

# Events buffered between the network and the node before drops are counted (trio: small and
# explicit; the node drains it continuously).
EVENT_BUFFER: Final = 256

# Discovery: connections we try to keep, and how often we check.
TARGET_CONNECTIONS: Final = 8
# Connections a node that only publishes into its markets (a provider) keeps to their
# followers, so its offers reach the market through either.
PUBLISHER_FOLLOWER_PEERS: Final = 2
MAX_PEERS_PER_EXCHANGE: Final = 32
DISCOVERY_INTERVAL_S: Final = 2.0
# Once both targets are met, until a peer leaves (which wakes discovery at once) or this long.
DISCOVERY_SATISFIED_INTERVAL_S: Final = 10.0
# Offer sync with one random peer this often: how fast an offer that gossip missed (a partition,
# a lost copy) spreads, epidemically, and what an idle node spends on it (one small request
# when nothing is missing).
ANTI_ENTROPY_INTERVAL_S: Final = 10.0
# Each pull that answers with nothing new doubles the pause, up to this: a pull is a new stream
# (multistream negotiation, request, answer, two FINs), some 80 task steps on the two nodes, the
# largest share of an idle node's wake-ups. A pull that learns something, or that gets no answer,
# brings the pause back to ANTI_ENTROPY_INTERVAL_S. A peer whose request names envelopes we
# lack is pulled from at once (at most once per ANTI_ENTROPY_INTERVAL_S a peer, remembering up
# to PULL_BACK_MEMORY peers), so a pull in either direction reconciles both.
ANTI_ENTROPY_MAX_INTERVAL_S: Final = 40.0
PULL_BACK_MEMORY: Final = 256
# A peer exchange request/response must finish within this.
PEER_EXCHANGE_TIMEOUT_S: Final = 5.0
# A dial must finish (TCP + Noise + muxer) within this.
DIAL_TIMEOUT_S: Final = 10.0
# Cap on the peer exchange response frame.
MAX_PEER_EXCHANGE_BYTES: Final = 64 * 1024
# Don't redial a peer that just failed before this many seconds.
REDIAL_BACKOFF_S: Final = 5.0
