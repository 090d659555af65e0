"""Structured logs: one ``key=value`` line per event. Never payload bytes, only sizes and ids."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

__all__ = ["configure", "fmt_id", "log_event", "logger"]

logger = logging.getLogger("groupchat.relay")


def fmt_id(value: bytes) -> str:
    """A room or member id for the log: hex of at most its first 16 bytes."""
    return value[:16].hex() + ("…" if len(value) > 16 else "")


def _quote(value: object) -> str:
    s = str(value)
    if s and all(c.isalnum() or c in "._:-/…" for c in s):
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def log_event(level: int, event: str, **fields: object) -> None:
    """Log one event as ``event=NAME k=v …``; cheap when the level is disabled."""
    if not logger.isEnabledFor(level):
        return
    parts = [f"event={event}"]
    parts += [f"{k}={_quote(v)}" for k, v in fields.items()]
    logger.log(level, " ".join(parts))


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = f"ts={ts}.{int(record.msecs):03d}Z level={record.levelname.lower()} "
        line += record.getMessage()
        if record.exc_info:
            line += " exc=" + _quote(self.formatException(record.exc_info))
        return line


def configure(level: str = "info", stream: TextIO | None = None) -> None:
    """Send relay logs to ``stream`` (stderr by default) at ``level``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_Formatter())
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
    # websockets logs each handshake failure at INFO; keep only its warnings, same format.
    ws_logger = logging.getLogger("websockets")
    ws_logger.handlers[:] = [handler]
    ws_logger.setLevel(logging.WARNING)
    ws_logger.propagate = False
