"""Structured log lines: one JSON object per line on stderr.

Callers log an event name plus fields (`log.info("offer.published", extra={"fields": {...}})`
or the `event()` helper). Secrets never reach a log call: keys, tokens and decrypted inputs are
not fields of anything we log.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

# Attributes every LogRecord has; anything else on a record came from `extra=` and is a field.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and key != "fields":
                line[key] = value
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


def configure_logging(level: str, *, node: str | None = None) -> None:
    """Send lilypad_p2p's and libp2p's records to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    if node is not None:
        handler.addFilter(_NodeTag(node))
    numeric = getattr(logging, level.upper())
    for name in ("lilypad_p2p", "libp2p"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(numeric if name == "lilypad_p2p" else max(numeric, logging.WARNING))
        logger.propagate = False
    # Some libp2p modules pin their own logger to INFO at import; let them inherit ours.
    for name, entry in logging.Logger.manager.loggerDict.items():
        if name.startswith("libp2p.") and isinstance(entry, logging.Logger):
            entry.setLevel(logging.NOTSET)
    logging.Formatter.converter = time.gmtime


class _NodeTag(logging.Filter):
    def __init__(self, node: str) -> None:
        super().__init__()
        self._node = node

    def filter(self, record: logging.LogRecord) -> bool:
        fields = getattr(record, "fields", None)
        record.fields = {"node": self._node, **(fields if isinstance(fields, dict) else {})}
        return True


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log event `name` with structured `fields`."""
    logger.log(level, name, extra={"fields": fields})
