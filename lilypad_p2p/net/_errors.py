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


class CannotListen(NetError):
    """The host could not listen on an address (in use, or not this machine's)."""


class DialError(NetError):
    """A peer could not be dialled (bad multiaddr, unreachable, or the handshake failed)."""


def sole_leaf(
    group: BaseExceptionGroup, types: type[BaseException] | tuple[type[BaseException], ...]
) -> BaseException | None:
    """The first leaf exception of `group` if every leaf is one of `types`, else None: a
    library's nurseries wrap what it raises, and the boundary maps what the group holds."""
    matching, rest = group.split(types)
    if matching is None or rest is not None:
        return None
    leaf: BaseException = matching
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf
