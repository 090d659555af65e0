"""Coming in and coming back: create or join, re-asking to join, and what a removal means.

* **Create** only in a room with no group traffic in its whole log. If others are present but
  none has a group either (they arrived at the same moment), the present members take turns by
  member id, ``add_timeout`` apart, so exactly one usually creates; if two do, the relay's order
  of their creation markers decides (the first wins, the other joins it). The markers are the
  relay's claims: the loser keeps the group it made, and if no welcome comes within
  ``creation_fallback`` seconds its own group stands (no fake marker strands a creator).
* **Re-ask** to join with backoff (``add_timeout``, doubling, at most 30 s) until a welcome comes:
  the member in line may have been offline. When no welcome has come :func:`fresh_after` seconds
  after a request was first published, or a welcome does not open (tampered on the way, or for a
  request we replaced), the request is replaced by a fresh one: a request whose init key is
  already in the tree is never answered again, while a fresh one (strictly newer) re-adds us in
  place of that leaf.
* **Removed**: the signed commit says why (:func:`after_removal`): evicted as offline, come back
  (no invite needed); kicked, or after our own ``/leave``, the session ends; removed to be re-added
  as we asked, wait for the welcome.

Presence is the relay's claim: it only decides whose turn it is to create, never who is in.
Pure: times are given.
"""

from __future__ import annotations

import enum
from typing import Final

from ...core.admission import RemovalCode
from .. import wording
from .bounds import RoomPresence

__all__ = [
    "FRESH_AFTER_MIN",
    "GAP_RETRIES",
    "GAP_RETRY_DELAY",
    "JOIN_REPUBLISH_MAX",
    "AfterRemoval",
    "after_removal",
    "creation_turn",
    "fresh_after",
    "fresh_request_due",
    "join_republish_delay",
    "should_create",
    "stranded",
]

JOIN_REPUBLISH_MAX: Final = 30.0
GAP_RETRIES: Final = 2  # a member asks for its resume again this often before skipping to the head
GAP_RETRY_DELAY: Final = 1.0  # seconds, times the retry's number
FRESH_AFTER_MIN: Final = 30.0


def creation_turn(present: RoomPresence, since: float, step: float) -> float:
    """When it is our turn to create the group, counting from ``since``: our rank among the
    present ids (kept by :class:`~.bounds.RoomPresence`, so this costs nothing however many)."""
    return since + present.below_me * step


def should_create(traffic_seen: bool, present: RoomPresence, since: float, now: float, step: float) -> bool:
    """Create the group now (see the module doc)."""
    if traffic_seen:
        return False
    return present.only_me or now >= creation_turn(present, since, step)


def stranded(present: RoomPresence, now: float, since: float, after: float) -> bool:
    """A newcomer the relay shows no one to, with no welcome for ``after`` seconds: it makes a
    group of its own (and keeps asking to join the room's: see machine._create)."""
    return present.only_me and now >= since + after


def join_republish_delay(step: float, attempts: int) -> float:
    """How long to wait before publishing our join request again, after ``attempts`` so far."""
    return min(JOIN_REPUBLISH_MAX, step * float(2 ** min(attempts, 5)))


def fresh_after(step: float) -> float:
    """How long a published request may go unanswered before it is replaced by a fresh one: long
    enough for every member in line to have had its turn, never under half a minute."""
    return max(FRESH_AFTER_MIN, 8 * step)


def fresh_request_due(first_published: float | None, now: float, step: float) -> str | None:
    """Why the next publish replaces our request with a fresh one (None: it does not)."""
    if first_published is not None and now - first_published >= fresh_after(step):
        return wording.NO_WELCOME_YET
    return None


class AfterRemoval(enum.Enum):
    LEFT = "left"  # our /leave completed
    READD = "readd"  # a request of ours is being carried out: wait for the welcome
    REJOIN = "rejoin"  # evicted (while away, or by a relay that hid our traffic): come back in
    ENDED = "ended"  # kicked


def after_removal(
    leaving: bool, caught_up: bool, code: RemovalCode | None, asked: bool
) -> AfterRemoval:
    """What a removal from the group means for us, by the reason its signed commit gives
    (``asked``: we have a join request out, so a REJOINING removal is ours being carried out).

    Evicted as offline (or as stalling a rekey) we come back: we are on the returning list, so
    no invite is needed, and if we were in fact online the relay hid our traffic. Kicked, we stay
    out. A removal with no reason (an older client) is read as before: away means evicted.
    """
    if leaving or code is RemovalCode.LEFT:
        return AfterRemoval.LEFT
    if code is RemovalCode.REJOINING:
        return AfterRemoval.READD if asked else AfterRemoval.REJOIN
    if code in (RemovalCode.OFFLINE, RemovalCode.UNRESPONSIVE):
        return AfterRemoval.REJOIN
    if code is RemovalCode.KICKED:
        return AfterRemoval.ENDED
    return AfterRemoval.ENDED if caught_up else AfterRemoval.REJOIN
