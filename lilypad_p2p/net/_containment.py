"""Containment: no failure in one peer's task may reach the node's nursery.

py-libp2p runs every inbound stream handler inside the connection's nursery, which sits inside
the Swarm's, and every per-peer pubsub task (`push_msg`, `_teardown_if_connected`,
`handle_sending_messages`, ...) through the Pubsub service's manager, where one exception
cancels the whole service and with it the node. Two wrappers close those paths:

- `contain_stream_handlers(host, on_failure, admission)`: every handler registered on the host
  (ours and the library's, pubsub's included) runs under a guard that resets the stream and
  reports the peer instead of raising, and that holds one of the peer's stream slots for that
  protocol (`NetLimits.max_streams_per_protocol_per_peer`; over it, the stream is reset unread
  and the peer reported);
- `contain_service_tasks(manager, on_failure)`: every non-daemon task a service starts with
  `run_task` runs under the same guard. Daemon tasks (heartbeats, queues) are the service
  itself; they are left to fail loudly. A task the manager refuses because its parent already
  has 1,000 children (`TooManyChildrenException`, raised inside the daemon that starts it) is
  dropped and logged: 20 connections a second from churning peers piled up that many pubsub
  registrations and the refusal ended the Pubsub service and the node.

`on_failure(peer_id, where, error)` is the node's one reporting path (`report_peer`), which
closes that peer's connections. A task whose first argument is not a peer ID is logged only.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.tools.anyio_service.exceptions import TooManyChildrenException

from lilypad_p2p.net._admission import Admission

logger = logging.getLogger(__name__)

# A reset is one frame; a muxer that cannot send it within this is gone anyway.
RESET_TIMEOUT_S = 5.0

OnFailure = Callable[[ID, str, BaseException], None]


class StreamBudgetExceeded(Exception):
    """A peer opened more concurrent streams of one protocol than its budget."""


def contain_stream_handlers(host: IHost, on_failure: OnFailure, admission: Admission) -> None:
    """Make every stream handler registered on `host` from now on contain its failures and
    hold one of `admission`'s stream slots for its (peer, protocol) while it runs."""
    register = host.set_stream_handler

    def set_stream_handler(
        protocol_id: TProtocol, stream_handler: Callable[[INetStream], Awaitable[None]]
    ) -> None:
        guarded = _guarded_handler(str(protocol_id), stream_handler, on_failure, admission)
        register(protocol_id, guarded)

    host.set_stream_handler = set_stream_handler  # type: ignore[method-assign]  # on purpose


def _guarded_handler(
    where: str,
    handler: Callable[[INetStream], Awaitable[None]],
    on_failure: OnFailure,
    admission: Admission,
) -> Callable[[INetStream], Awaitable[None]]:
    @functools.wraps(handler)
    async def guarded(stream: INetStream) -> None:
        peer_id = _peer_of(stream)
        if peer_id is not None and not admission.open_stream(peer_id, where):
            # No honest peer holds that many streams of one protocol open at once.
            await reset_quietly(stream)
            on_failure(peer_id, where, StreamBudgetExceeded(f"too many {where} streams"))
            return
        try:
            await handler(stream)
        except Exception as error:  # boundary: what a peer's bytes provoke ends this stream only
            logger.warning("%s handler failed for %s: %r", where, peer_id, error)
            await reset_quietly(stream)
            if peer_id is not None:
                on_failure(peer_id, where, error)
        finally:
            if peer_id is not None:
                admission.close_stream(peer_id, where)

    return guarded


def contain_service_tasks(manager: Any, on_failure: OnFailure) -> None:
    """Make the non-daemon tasks `manager.run_task` starts from now on contain their failures."""
    run_task = manager.run_task

    def contained_run_task(
        async_fn: Callable[..., Awaitable[Any]], *args: Any, daemon: bool = False, **kwargs: Any
    ) -> None:
        if daemon:
            run_task(async_fn, *args, daemon=daemon, **kwargs)
            return
        where = getattr(async_fn, "__name__", repr(async_fn))

        async def contained() -> None:
            try:
                await async_fn(*args)
            except Exception as error:  # boundary: one peer's task; the service must go on
                peer_id = args[0] if args and isinstance(args[0], ID) else None
                logger.warning("%s failed (peer %s): %r", where, peer_id, error)
                if peer_id is not None:
                    on_failure(peer_id, where, error)

        contained.__name__ = where
        try:
            run_task(contained, daemon=False, **kwargs)
        except TooManyChildrenException as error:  # a task storm must not end the service
            logger.warning("%s not started: %s", where, error)

    manager.run_task = contained_run_task


def _peer_of(stream: INetStream) -> ID | None:
    try:
        return stream.muxed_conn.peer_id
    except AttributeError:  # a stream without a connection left
        return None


async def reset_quietly(stream: INetStream) -> None:
    """Reset `stream`, ignoring that it may already be gone (and bounding a stuck reset)."""
    with trio.move_on_after(RESET_TIMEOUT_S):
        try:
            await stream.reset()
        except Exception as error:  # boundary: already reset or closed by either side
            logger.debug("stream reset failed: %r", error)
