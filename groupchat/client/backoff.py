"""Reconnect delays: exponential backoff with a little jitter, reset after a successful join.

Delay ``n`` doubles from ``minimum`` up to ``maximum`` and is drawn from the top quarter below that
cap, ``[0.75 cap, cap]``: the delays grow steadily (a user reading "retry 5 in 8 s" sees 0.2, 0.4,
0.8, 1.6 s..., never a long wait followed by a short one), while the jitter still spreads the
reconnects of many clients after a relay restart so that they do not all hit it in the same instant
(AWS Architecture Blog, "Exponential Backoff And Jitter": "equal jitter", with a narrower band).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final

__all__ = ["JITTER", "Backoff"]

#: The share of each delay that is random: delay ``n`` is in ``[(1 - JITTER) cap, cap]``.
JITTER: Final = 0.25


class Backoff:
    """Delay ``n`` is uniform in ``[(1 - JITTER) c, c]`` with ``c = min(maximum, minimum * 2**n)``;
    :attr:`attempts` counts the delays handed out since the last :meth:`reset`."""

    def __init__(self, minimum: float, maximum: float, rand: Callable[[int], bytes] = os.urandom) -> None:
        if not 0 < minimum <= maximum:
            raise ValueError("backoff needs 0 < minimum <= maximum")
        self.minimum, self.maximum = minimum, maximum
        self._rand = rand
        self.attempts = 0

    def next(self) -> float:
        cap = min(self.maximum, self.minimum * (2 ** min(self.attempts, 32)))
        self.attempts += 1
        return float(cap * (1.0 - JITTER * self._unit()))

    def reset(self) -> None:
        self.attempts = 0

    def _unit(self) -> float:
        return int.from_bytes(self._rand(4), "big") / 2**32
