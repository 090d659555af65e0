"""Client logging: one file under the platform's log directory, never the terminal.

The chat owns the terminal, so a stray log line or warning would corrupt the screen; and logs may
be shared in bug reports, so nothing here ever formats key material (callers log names, epochs,
sizes and timings only). Log lines quote the relay and peers (error reasons, exception texts), so
every record is sanitised as it is formatted: a ``less`` or ``tail -f`` of the file runs no escape
sequence, and no message forges a second log line (issue 13 item 7).
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from typing import Final

from ..core.text import sanitise
from .config import LOG_LEVELS, ConfigFileError

__all__ = ["SanitisingFormatter", "configure_logging"]

_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_MAX_BYTES: Final = 5 << 20
_BACKUPS: Final = 3


class SanitisingFormatter(logging.Formatter):
    """A formatter whose message is one sanitised line and whose traceback keeps only its newlines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = sanitise(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: logging._SysExcInfoType) -> str:
        return sanitise(super().formatException(ei), multiline=True)

    def formatStack(self, stack_info: str) -> str:
        return sanitise(super().formatStack(stack_info), multiline=True)


def configure_logging(path: Path, level: str = "info") -> Path:
    """Send every log record (and Python warnings) to ``path``, rotating at 5 MiB, and nowhere else.

    Handlers that write to the terminal are removed from the root logger, and ``logging.lastResort``
    (which prints to stderr when no handler matches) is disabled. Returns ``path``.
    """
    if level not in LOG_LEVELS:
        raise ConfigFileError(f"log level must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=_MAX_BYTES, backupCount=_BACKUPS, encoding="utf-8"
        )
    except OSError as e:
        raise ConfigFileError(f"cannot open log file {path}: {e.strerror}") from None
    handler.setFormatter(SanitisingFormatter(_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        stream = getattr(old, "stream", None)
        if isinstance(old, logging.handlers.RotatingFileHandler) or stream in (sys.stderr, sys.stdout):
            root.removeHandler(old)
            old.close()
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.lastResort = None
    logging.captureWarnings(True)
    return path
