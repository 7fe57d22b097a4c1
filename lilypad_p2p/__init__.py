"""lilypad-p2p: a peer-to-peer compute marketplace node."""

__version__ = "0.1.0"
