"""The operator's listener: /metrics, /healthz, /readyz and the status page.

It reads the node only through its control handlers (the same snapshot `lilypad-p2p status`
shows), so it can neither change the node nor slow its hot paths: each request takes one
snapshot. Off unless `metrics_listen` is set. /metrics accepts chain figures (head, deposits)
up to `METRICS_CHAIN_MAX_AGE_S` old, since each fresh read costs three chain calls; /readyz, the
page and /api/status read them afresh.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import trio

from lilypad_p2p.observe._http import ObserveServer, Response
from lilypad_p2p.observe._metrics import CONTENT_TYPE, degraded_states, exposition
from lilypad_p2p.observe._page import render

Handler = Callable[[dict[str, Any]], Awaitable[Any]]

# A fresh chain section cost a scrape about 10 ms of node CPU on the embedded chain (3 ms on
# anvil), most of a scrape's cost; deposits move with deals, seconds to minutes apart, and a
# chain the watchdog finds unreachable is read afresh anyway.
METRICS_CHAIN_MAX_AGE_S = 60.0
# The page shows the deals that changed last, chosen from the open ones and this many newest.
PAGE_DEALS = 100

# Roles that only make sense with peers in a market mesh.
_NETWORKED_ROLES = frozenset({"client", "provider", "solver", "mediator"})


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_or_create_token(path: Path) -> str:
    """The listener's token: read from `path`, or made and written there (0600) once.

    Raises:
        ValueError: the file is not a regular file, too short, not text, or others may read
            it.
        OSError: it cannot be read (a directory, unreadable).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if not path.is_file():
            raise ValueError(f"{path} is not a regular file") from None
        if os.stat(path).st_mode & 0o077:
            raise ValueError(f"{path}: others may read the token; chmod 600 {path}") from None
        token = path.read_text().strip()
        if len(token) < 16:
            raise ValueError(f"{path}: a token of at least 16 characters is needed") from None
        return token
    token = secrets.token_urlsafe(24)
    with os.fdopen(fd, "w") as file:
        file.write(token + "\n")
    return token


def readiness(status: Mapping[str, Any], peers: Sequence[Mapping[str, Any]]) -> dict[str, bool]:
    """Each readiness check by name: what a supervisor needs before sending work here."""
    checks = {"listening": bool(status.get("listen_addrs"))}
    if _NETWORKED_ROLES & set(status.get("roles", ())):
        checks["meshed"] = any(peer.get("mesh_topics") for peer in peers)
    for chain in status.get("chains", ()):
        checks[f"chain_{chain['chain_id']}"] = bool(chain.get("connected"))
    for state in degraded_states(status):
        checks[f"not_{state}"] = False
    return checks


class ObserveService:
    """Serves the node's snapshot over HTTP (see the module docstring)."""

    def __init__(self, handlers: Mapping[str, Handler], *, token: str | None = None) -> None:
        self._handlers = handlers
        self.server = ObserveServer(
            {
                "/metrics": self._metrics,
                "/healthz": self._healthz,
                "/readyz": self._readyz,
                "/": self._page,
                "/api/status": self._api_status,
            },
            token=token,
        )

    async def run(
        self, host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        await self.server.run(host, port, task_status=task_status)

    async def _snapshot(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        status = await self._handlers["status"]({})
        peers = await self._handlers["peers"]({})
        return status, peers

    async def _recent_deals(self) -> tuple[list[dict[str, Any]], int]:
        """The deals the page may show (the open ones and the PAGE_DEALS newest: a node that
        has run for months holds thousands), and how many the node holds."""
        newest = await self._handlers["deals"]({"limit": PAGE_DEALS})
        unfinished = await self._handlers["deals"]({"open_only": True})
        tallies = await self._handlers["tallies"]({})
        held = sum(count for _, _, count in tallies["deal_phases"])
        return list({d["key"]: d for d in (*newest, *unfinished)}.values()), held

    async def _metrics(self, query: dict[str, list[str]]) -> Response:
        status = await self._handlers["status"]({"chain_max_age_s": METRICS_CHAIN_MAX_AGE_S})
        peers = await self._handlers["peers"]({})
        tallies = await self._handlers["tallies"]({})
        body = exposition(status, peers, tallies, readiness(status, peers))
        return Response(200, body, CONTENT_TYPE)

    async def _healthz(self, query: dict[str, list[str]]) -> Response:
        return Response(200, b"ok\n")

    async def _readyz(self, query: dict[str, list[str]]) -> Response:
        status = await self._handlers["status"]({})
        checks = readiness(status, await self._handlers["peers"]({}))
        failing = sorted(name for name, passing in checks.items() if not passing)
        if failing:
            return Response(503, f"not ready: {', '.join(failing)}\n".encode())
        return Response(200, b"ready\n")

    async def _page(self, query: dict[str, list[str]]) -> Response:
        status, peers = await self._snapshot()
        deals, held = await self._recent_deals()
        offers = {
            market: await self._handlers["offers"]({"market": market})
            for market in status.get("markets", ())
        }
        page = render(status, peers, deals, held, offers, readiness(status, peers))
        return Response(200, page.encode(), "text/html; charset=utf-8")

    async def _api_status(self, query: dict[str, list[str]]) -> Response:
        status, peers = await self._snapshot()
        body = json.dumps({**status, "ready": readiness(status, peers)}, default=str)
        return Response(200, body.encode(), "application/json")
