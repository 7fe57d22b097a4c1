"""Pins on the library methods our levers re-state or stand in for."""

import hashlib
import inspect


def source_digest(method) -> str:
    """The first 12 hex digits of sha256 over `method`'s source: a py-libp2p release that
    changes the method changes this, and someone reads it again."""
    return hashlib.sha256(inspect.getsource(method).encode()).hexdigest()[:12]
