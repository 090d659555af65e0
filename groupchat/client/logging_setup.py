"""Client logging: one file under the platform's log directory, never the terminal.

The chat owns the terminal, so a stray log line or warning would corrupt the screen; and logs may
be shared in bug reports, so nothing here ever formats key material (callers log names, epochs,
sizes and timings only).
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from typing import Final

from .config import LOG_LEVELS, ConfigFileError

__all__ = ["configure_logging"]

_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_MAX_BYTES: Final = 5 << 20
_BACKUPS: Final = 3


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
    handler.setFormatter(logging.Formatter(_FORMAT))
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
