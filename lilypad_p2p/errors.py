"""The root of every error lilypad-p2p raises on purpose.

Each package hangs its own subtree under `LilypadError` (wire: `WireError`, chain: `ChainError`,
exec: `ExecError`, net: `NetError`). `PeerMisbehaved` marks errors caused by a remote peer's bytes
or actions, as opposed to our own misuse or a local fault: callers report the former against the
peer's score and never crash on it.
"""


class LilypadError(Exception):
    """Root of all deliberate lilypad-p2p errors."""


class PeerMisbehaved(LilypadError):
    """A remote peer sent something invalid; never a local bug."""


class ConfigError(LilypadError):
    """The node's configuration is invalid; the message says which setting and why."""
