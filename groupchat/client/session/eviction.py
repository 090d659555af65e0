"""Eviction: a member that is absent and silent for longer than the grace period is removed.

Absence is the relay's claim (presence events), so it never removes anyone by itself: it only
starts a count. The count is of *silence*: it restarts whenever the member's own signed traffic
(a chat message, a beacon, a commit: ``last_heard``) reaches us, so a member whose messages
arrive is never evicted, whatever the relay says of its presence; and ``ASK_AHEAD`` seconds before
a silence comes due, the members ask everyone for signs of life, so that an idle member (one with
nothing to say) answers with a signed beacon and is not evicted either. Once due, the Remove is
committed by the member in line (coordinator.py) as a signed commit every member checks, with
the reason "offline" in it. After our own reconnect we cannot know when the absent ones left, so
their absence is counted from then. Pure: times are given.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Set
from typing import Final

from ...core.events import Member
from ..coordinator import RemoveDuty
from .settings import member_id

__all__ = ["ASK_AHEAD", "eviction_removes", "note_absent", "offline_past_grace"]

#: Seconds before an eviction for silence comes due when the members ask everyone for signs of
#: life (a beacon with ``ask``): an idle member the relay only claims is gone answers in time.
ASK_AHEAD: Final = 15.0


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
    members: Mapping[int, Member],
    my_leaf: int,
    offline_since: Mapping[bytes, float],
    grace: float,
    last_heard: Mapping[bytes, float] | None = None,
) -> list[RemoveDuty]:
    """A Remove for each absent member, due ``grace`` seconds after it left or after its last
    signed traffic reached us (``last_heard``, by identity key), whichever is later; never our
    own leaf."""
    if not offline_since:
        return []  # the common case: everyone present (no roster walk per input)
    heard = last_heard or {}
    by_id = {member_id(m.identity_key): (leaf, m.identity_key) for leaf, m in members.items()}
    removes = []
    for mid, since in offline_since.items():
        found = by_id.get(mid)
        if found is None or found[0] == my_leaf:
            continue
        leaf, key = found
        removes.append(RemoveDuty(leaf, max(since, heard.get(key, since)) + grace, "evicted"))
    return removes


def offline_past_grace(
    mid: bytes, present: Set[bytes], offline_since: Mapping[bytes, float], grace: float
) -> float | None:
    """When an absent member's eviction is due (None: it is present or was never seen leaving)."""
    if mid in present or mid not in offline_since:
        return None
    return offline_since[mid] + grace
