"""Falling behind: what unverifiable hints may do (prompt a check), and what they may not (reset us).

A message whose public header claims a later epoch, a commit at our epoch whose confirmation tag
does not match, a ring confirmation that does not match our secret: none of these is signed in a
way we can check, so the relay can make every one of them up. Each is only a *hint*. Hints never
drop our group. They count only while nothing readable comes from any other member (any
authenticated traffic at our epoch clears them), and only once they have kept coming for
``after`` seconds do we ask to be re-added with a fresh, signed join request, **keeping our group**
until a welcome for it opens. One forged frame, or a burst of them, changes nothing; a relay that
withholds every readable message and forges for ``after`` seconds costs one re-add (liveness),
never our membership. Pure: times are given.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Behind", "note_hint", "should_reenter"]


@dataclass(slots=True)
class Behind:
    """Hints since the last readable traffic from another member: first and last, highest epoch."""

    first: float
    last: float
    epoch: int
    hints: int = 1
    asked: bool = False  # we asked to be re-added for these hints


def note_hint(behind: Behind | None, now: float, epoch: int) -> Behind:
    """Count one more hint (claiming ``epoch``)."""
    if behind is None:
        return Behind(now, now, epoch)
    behind.last = max(behind.last, now)
    behind.epoch = max(behind.epoch, epoch)
    behind.hints += 1
    return behind


def should_reenter(behind: Behind | None, after: float) -> bool:
    """Whether hints have kept coming for ``after`` seconds with nothing readable in between."""
    return behind is not None and not behind.asked and behind.last - behind.first >= after
