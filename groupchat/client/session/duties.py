"""The open duties, in the coordinator's terms: what is pending and since when, from what we hold.

One function builds them (:func:`open_duties`), and both the commit planner
(:func:`~groupchat.client.coordinator.plan_commit`) and the timer's deadline
(:func:`~groupchat.client.coordinator.next_turns`) read them, so the session wakes exactly when a
duty becomes ours and the two can never drift apart. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass

from ...core.events import Member
from ..coordinator import AddDuty, RemoveDuty
from .eviction import eviction_removes
from .phases import Duties
from .settings import member_id

__all__ = ["OpenDuties", "online_leaves", "open_duties"]


@dataclass(frozen=True, slots=True)
class OpenDuties:
    adds: tuple[AddDuty, ...]
    removes: tuple[RemoveDuty, ...]


def online_leaves(members: Mapping[int, Member], present: Set[bytes]) -> list[int]:
    """The leaves whose member the relay says is in the room (a claim: it only picks who acts)."""
    return [leaf for leaf, m in members.items() if member_id(m.identity_key) in present]


def open_duties(
    duties: Duties,
    members: Mapping[int, Member],
    my_leaf: int,
    present: Set[bytes],
    offline_since: Mapping[bytes, float],
    eviction_grace: float,
) -> OpenDuties:
    """Leave requests, evictions and join requests as Add and Remove duties.

    A join request is weighed only while its sender is present (a welcome is useless to someone
    who is not there); one from a member who lost their state first removes the old leaf.
    """
    by_key = {m.identity_key: leaf for leaf, m in members.items()}
    removes = [
        RemoveDuty(by_key[key], since, "left")
        for key, since in duties.leave_requests.items()
        if key in by_key
    ]
    removes.extend(eviction_removes(members, my_leaf, offline_since, eviction_grace))
    adds: list[AddDuty] = []
    for key, duty in duties.adds.items():
        if member_id(key) not in present:
            continue
        if key in by_key:
            removes.append(RemoveDuty(by_key[key], duty.since, "rejoining"))
        else:
            adds.append(duty)
    return OpenDuties(tuple(adds), tuple(removes))
