"""Reconnect delays: exponential backoff with full jitter, reset after a successful join.

Jitter spreads the reconnects of many clients after a relay restart, so they do not all hit the
relay in the same instant (AWS Architecture Blog, "Exponential Backoff And Jitter").
"""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["Backoff"]


class Backoff:
    """Delay ``n`` is uniform in ``[minimum/2, min(maximum, minimum * 2**n)]``."""

    def __init__(self, minimum: float, maximum: float, rand: Callable[[int], bytes] = os.urandom) -> None:
        if not 0 < minimum <= maximum:
            raise ValueError("backoff needs 0 < minimum <= maximum")
        self.minimum, self.maximum = minimum, maximum
        self._rand = rand
        self.attempts = 0

    def next(self) -> float:
        cap = min(self.maximum, self.minimum * (2 ** min(self.attempts, 32)))
        self.attempts += 1
        low = self.minimum / 2
        return float(low + (cap - low) * self._unit())

    def reset(self) -> None:
        self.attempts = 0

    def _unit(self) -> float:
        return int.from_bytes(self._rand(4), "big") / 2**32
