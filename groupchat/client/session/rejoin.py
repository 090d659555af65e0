"""Coming in and coming back: create or join, re-asking to join, and what a removal means.

* **Create** only in a room with no group traffic in its whole log. If others are present but
  none has a group either (they arrived at the same moment), the present members take turns by
  member id, ``add_timeout`` apart, so exactly one usually creates; if two do, the relay's order
  of their creation markers decides (the first wins, the other joins it).
* **Re-ask** to join with backoff (``add_timeout``, doubling, at most 30 s) until a welcome comes:
  the member in line may have been offline.
* **Removed** while away (the Remove is in our backlog): ask to rejoin. Removed while connected
  (kicked), or after our own ``/leave``: the session ends.

Presence is the relay's claim: it only decides whose turn it is to create, never who is in.
Pure: times are given.
"""

from __future__ import annotations

import enum
from typing import Final

from .bounds import RoomPresence

__all__ = [
    "JOIN_REPUBLISH_MAX",
    "AfterRemoval",
    "after_removal",
    "creation_turn",
    "join_republish_delay",
    "should_create",
]

JOIN_REPUBLISH_MAX: Final = 30.0


def creation_turn(present: RoomPresence, since: float, step: float) -> float:
    """When it is our turn to create the group, counting from ``since``: our rank among the
    present ids (kept by :class:`~.bounds.RoomPresence`, so this costs nothing however many)."""
    return since + present.below_me * step


def should_create(traffic_seen: bool, present: RoomPresence, since: float, now: float, step: float) -> bool:
    """Create the group now (see the module doc)."""
    if traffic_seen:
        return False
    return present.only_me or now >= creation_turn(present, since, step)


def join_republish_delay(step: float, attempts: int) -> float:
    """How long to wait before publishing our join request again, after ``attempts`` so far."""
    return min(JOIN_REPUBLISH_MAX, step * float(2 ** min(attempts, 5)))


class AfterRemoval(enum.Enum):
    LEFT = "left"  # our /leave completed
    REJOIN = "rejoin"  # evicted while we were away: come back in
    ENDED = "ended"  # kicked while connected


def after_removal(leaving: bool, caught_up: bool) -> AfterRemoval:
    """What a removal from the group means for us (see the module doc)."""
    if leaving:
        return AfterRemoval.LEFT
    return AfterRemoval.ENDED if caught_up else AfterRemoval.REJOIN
