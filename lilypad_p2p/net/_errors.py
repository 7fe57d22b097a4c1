"""The net package's error subtree; libp2p's own exceptions are mapped to these at the boundary."""

from lilypad_p2p.errors import LilypadError


class NetError(LilypadError):
    """Root of every error the gossip network raises on purpose."""


class TopicError(NetError, ValueError):
    """A topic string or market name is malformed."""


class NotListening(NetError):
    """The network service is not running (yet, or any more)."""


class PublishError(NetError):
    """An envelope could not be published (wrong size or topic, or the host failed)."""


class DialError(NetError):
    """A peer could not be dialled (bad multiaddr, unreachable, or the handshake failed)."""
