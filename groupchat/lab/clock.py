"""The one clock double: a monotonic and a wall clock that move when a test or a scene says so.

The core and the session read time only through injected callables (``GroupConfig.clock`` and
``wall_clock``, the session's ``clock``), so a simulation, a benchmark scene or a test can run a
whole group on :class:`ManualClock` and decide exactly when a deadline passes. Both views move
together: :meth:`ManualClock.advance` adds the same seconds to each. :meth:`ManualClock.following`
makes one that also runs with real time, for end-to-end tests over a real relay that still need to
jump past a grace period.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..core.errors import UsageError

__all__ = ["DEFAULT_WALL", "ManualClock"]

# A fixed, recent Unix time: join requests carry an expiry judged on the wall clock, so a wall clock
# at 0 would make every request look decades old to a member using the real one.
DEFAULT_WALL: float = 1_780_000_000.0


def _still() -> float:
    return 0.0


@dataclass(slots=True)
class ManualClock:
    """Monotonic seconds (``clock()`` or ``clock.monotonic()``) and Unix seconds (``clock.wall()``).

    Pass ``clock`` itself where a monotonic callable is wanted and ``clock.wall`` for a wall clock.
    """

    start: float = 1000.0
    wall_start: float = DEFAULT_WALL
    base: Callable[[], float] = _still  # real time to follow (time.monotonic), or none
    offset: float = 0.0

    @classmethod
    def following(cls, base: Callable[[], float] = time.monotonic) -> ManualClock:
        """A clock that runs with ``base`` and jumps ahead on :meth:`advance`."""
        return cls(start=0.0, wall_start=time.time() - base(), base=base)

    @property
    def now(self) -> float:
        return self.start + self.base() + self.offset

    @now.setter
    def now(self, value: float) -> None:
        """Jump to ``value`` (forward only); the wall clock moves by the same amount."""
        self.advance(value - self.now)

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.wall_start + self.base() + self.offset

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds`` (never back: a monotonic clock cannot)."""
        if seconds < 0:
            raise UsageError(f"a clock moves forward only; cannot advance by {seconds} s")
        self.offset += seconds
