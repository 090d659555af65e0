"""Self-updates (post-compromise security by habit): when we owe one, and when we may commit it.

We commit a self-Update when we just joined (the taint rule), ``update_interval`` seconds passed
since our last one, we sent ``update_every`` messages since, we reconnected, or the user asked
(``/rekey``); the reason we owe one is kept in :class:`~.phases.Duties` (``want_update``). After one
of our commits loses a race, the next waits a random pause whose range doubles with each loss in a
row (binary exponential backoff, 50 ms to 5 s), so that many members who owe an update at once
(say, after a mass join) spread out instead of colliding again. Pure: times and randomness given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["UpdateSchedule"]


@dataclass(slots=True)
class UpdateSchedule:
    """Our update history and the pause after lost races."""

    interval: float
    every: int
    last_update: float
    sent_since: int = 0
    not_before: float = 0.0
    losses: int = 0  # our commits superseded in a row

    def due(self, now: float, wanted: bool) -> bool:
        """An update is owed (for a reason, by age, or by count)."""
        return wanted or now - self.last_update >= self.interval or self.sent_since >= self.every

    def may_commit(self, now: float) -> bool:
        """Not inside the pause after a lost race."""
        return now >= self.not_before

    def hold_messages(self) -> bool:
        """The scheduled update goes before any more messages."""
        return self.sent_since >= self.every

    def asked(self) -> None:
        """``/rekey``: no pause."""
        self.not_before = 0.0

    def committed(self, now: float, update: bool) -> None:
        """One of our commits won its epoch (``update``: it carried our self-update)."""
        self.losses = 0
        if update:
            self.not_before = 0.0
            self.last_update = now
            self.sent_since = 0

    def lost(self, now: float, rand: Callable[[int], bytes]) -> None:
        """One of our commits was superseded: pause a random part of a doubling window."""
        self.losses += 1
        window = min(5.0, 0.05 * 2 ** min(self.losses, 7))
        jitter = int.from_bytes(rand(2), "big") / 65536
        self.not_before = now + jitter * window

    def wakeups(self, wanted: bool) -> list[float]:
        """When something here becomes due: the next update by age, the end of a pause."""
        times = [self.last_update + self.interval]
        if wanted:
            times.append(self.not_before)
        return times
