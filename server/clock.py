"""The relay's clock, injected so that tests advance time instead of sleeping.

The relay reads time for idle timeouts, rate-limit refill and log-age expiry, and sleeps between
housekeeping sweeps; all of that goes through a :class:`Clock`. Production uses
:class:`MonotonicClock`; tests use :class:`ManualClock`, which only moves when told to (as trio's
``MockClock`` does). Socket-level timers (the websocket handshake, pings, close) stay on the event
loop's real clock: they are about real peers on real sockets.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "MonotonicClock"]


class Clock(Protocol):
    """Seconds on a monotonic scale, and a sleep measured on the same scale."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real clock: ``time.monotonic`` and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that stands still until :meth:`advance` moves it; sleepers wake when it passes them."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._ids = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + max(0.0, seconds), next(self._ids), fut))
        await fut

    async def advance(self, seconds: float) -> None:
        """Move time forward, wake every sleeper it passed, and let the woken tasks run."""
        if seconds < 0:
            raise ValueError("a monotonic clock never goes back")
        self._now += seconds
        woke = False
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)
                woke = True
        if woke:
            # Two loop turns: one to resume each woken task, one for what it scheduled in turn.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
