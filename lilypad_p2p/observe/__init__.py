"""The operator's view of a node: Prometheus metrics, health checks and a live status page.

Reads the node only through the control handlers the node passes it, so it stays as it is
whatever the roles, the network or the chain become.
May import nothing from lilypad_p2p.
"""

from lilypad_p2p.observe._http import MAX_REQUEST_BYTES, ObserveServer, Response
from lilypad_p2p.observe._metrics import exposition
from lilypad_p2p.observe._page import render
from lilypad_p2p.observe._service import (
    ObserveService,
    is_loopback,
    load_or_create_token,
    readiness,
)

__all__ = [
    "MAX_REQUEST_BYTES",
    "ObserveServer",
    "ObserveService",
    "Response",
    "exposition",
    "is_loopback",
    "load_or_create_token",
    "readiness",
    "render",
]
