"""The node's local control interface: JSON lines over a Unix socket, authenticated by a token.

The socket (`<home>/control.sock`) and the token file (`<home>/control.token`) are both 0600, so
only the node's user can reach the node; the token also guards against a socket path that was
swapped or shared by mistake. One request per connection keeps the protocol stateless.

It carries handlers, and knows nothing of what they do (the node and the roles register them).
May import from lilypad_p2p: config, errors.
"""

from lilypad_p2p.control._client import ControlError, NodeNotRunning, call
from lilypad_p2p.control._protocol import (
    ControlRequest,
    MalformedControlMessage,
    decode_request,
    encode_error,
    encode_result,
)
from lilypad_p2p.control._server import Handler, serve_control

__all__ = [
    "ControlError",
    "ControlRequest",
    "Handler",
    "MalformedControlMessage",
    "NodeNotRunning",
    "call",
    "decode_request",
    "encode_error",
    "encode_result",
    "serve_control",
]
