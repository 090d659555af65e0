"""The sentences about reaching the relay: why a connection attempt failed, when the next one is,
and a relay URL that cannot work. Part of :mod:`.wording` (every sentence a user reads), kept in
its own module for size; the same rules: pure functions of plain values, relay text as a claim.
"""

from __future__ import annotations

import math
from typing import Final

from .wording import relay_text

__all__ = [
    "CONNECTION_CLOSED",
    "CONNECTION_REFUSED",
    "HOST_NOT_FOUND",
    "NO_ANSWER",
    "NO_WEBSOCKET",
    "bad_hello",
    "bad_relay_port",
    "http_status",
    "not_a_relay",
    "relay_url_without_host",
    "retrying",
    "tls_failed",
    "unreachable",
]

# Why a connection attempt failed (asyncio_session._failure): short, in the user's terms, shown on
# screen in the status bar as "cannot reach the relay (connection refused); retry 5 in 8 s".
CONNECTION_REFUSED: Final = "connection refused"
HOST_NOT_FOUND: Final = "no such host"
NO_ANSWER: Final = "no answer"
CONNECTION_CLOSED: Final = "connection closed"


def unreachable(detail: str) -> str:
    """A connection attempt failed before the relay said hello (nothing listening, no such host)."""
    return f"cannot reach the relay ({relay_text(detail)})"


def not_a_relay(detail: str) -> str:
    """Something answered at the address, but not as a relay (an HTTP server, another service)."""
    return f"that address is not a groupchat relay ({relay_text(detail)})"


def http_status(code: int) -> str:
    return f"it answered HTTP {code}"


NO_WEBSOCKET: Final = "no websocket handshake"


def tls_failed(detail: str) -> str:
    return f"cannot reach the relay (TLS failed: {relay_text(detail)})"


def bad_hello(what: str) -> str:
    return f"it answered Hello with {what}"


def retrying(problem: str, attempt: int, retry_in: float | None) -> str:
    """The one status line of a session that is not connected: the last reason, the next retry."""
    if retry_in is None:
        return relay_text(problem)
    # Rounded up, so that a short delay never reads "in 0.0 s".
    seconds = f"{math.ceil(retry_in * 10) / 10:.1f}" if retry_in < 10 else f"{math.ceil(retry_in)}"
    return f"{relay_text(problem)}; retry {attempt} in {seconds} s"


def relay_url_without_host(url: str) -> str:
    return f"relay URL {url!r} names no host (e.g. ws://127.0.0.1:8765)"


def bad_relay_port(url: str) -> str:
    return f"relay URL {url!r} has a port outside 0..65535"
