"""The Docker executor of a role that runs jobs, connected when first needed."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from lilypad_p2p.exec import ExecError, Executor
from lilypad_p2p.logs import event


async def connect_executor(
    factory: Callable[[], Awaitable[Executor]], log: logging.Logger
) -> Executor | None:
    """The executor `factory` connects, or None while Docker does not answer (logged to
    `log`): a node without Docker still starts, and what needs Docker fails until it answers."""
    try:
        return await factory()
    except ExecError as exc:
        event(log, "executor.unavailable", logging.WARNING, error=str(exc))
        return None
