"""Eviction: a member absent from the room for longer than the grace period is removed.

Absence is the relay's claim (presence events), so it never removes anyone by itself: it only
makes a Remove *due*, which the member in line (coordinator.py) commits as a signed commit that
every member checks. After our own reconnect we cannot know when the absent ones left, so their
absence is counted from then. Pure: times are given.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Set

from ...core.events import Member
from ..coordinator import RemoveDuty
from .settings import member_id

__all__ = ["eviction_removes", "note_absent", "offline_past_grace"]


def note_absent(
    offline_since: MutableMapping[bytes, float],
    members: Mapping[int, Member],
    me: bytes,
    present: Set[bytes],
    now: float,
) -> None:
    """Start counting the absence of every member the relay does not list as present."""
    for m in members.values():
        mid = member_id(m.identity_key)
        if mid != me and mid not in present:
            offline_since.setdefault(mid, now)


def eviction_removes(
    members: Mapping[int, Member], my_leaf: int, offline_since: Mapping[bytes, float], grace: float
) -> list[RemoveDuty]:
    """A Remove for each absent member, due ``grace`` seconds after it left (never our own leaf)."""
    by_id = {member_id(m.identity_key): leaf for leaf, m in members.items()}
    return [
        RemoveDuty(by_id[mid], since + grace, "evicted")
        for mid, since in offline_since.items()
        if mid in by_id and by_id[mid] != my_leaf
    ]


def offline_past_grace(
    mid: bytes, present: Set[bytes], offline_since: Mapping[bytes, float], grace: float
) -> float | None:
    """When an absent member's eviction is due (None: it is present or was never seen leaving)."""
    if mid in present or mid not in offline_since:
        return None
    return offline_since[mid] + grace
