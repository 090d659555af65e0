"""The open duties, in the coordinator's terms: what is pending and since when, from what we hold.

One function builds them (:func:`open_duties`), and both the commit planner
(:func:`~groupchat.client.coordinator.plan_commit`) and the timer's deadline
(:func:`~groupchat.client.coordinator.next_turns`) read them, so the session wakes exactly when a
duty becomes ours and the two can never drift apart. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, replace
from typing import Final

from ...core.admission import Admissibility
from ...core.events import Member
from ..coordinator import AddDuty, RemoveDuty
from .eviction import eviction_removes
from .phases import Duties
from .settings import member_id

__all__ = ["OpenDuties", "online_leaves", "open_duties"]

_ADMITTED: Final = frozenset(
    {Admissibility.INVITED, Admissibility.RETURNING, Admissibility.OPEN, Admissibility.REJOINING}
)


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
    last_heard: Mapping[bytes, float] | None = None,
    by_key: Mapping[bytes, int] | None = None,
) -> OpenDuties:
    """Leave requests, evictions and join requests as Add and Remove duties.

    A join request is weighed only once the agreed group state admits it (an invite, a member
    returning after an eviction, an open room: :attr:`AddDuty.admissibility`) and while its sender
    is present (a welcome is useless to someone who is not there); one from a member who lost its
    state (REJOINING) removes the old leaf and adds the new one in one commit. A request that needs
    a member's approval is not here: the session keeps it aside until our user approves it.
    ``by_key``: each member's leaf by identity key, if the caller keeps it for ``members``.
    """
    if by_key is None:
        by_key = {m.identity_key: leaf for leaf, m in members.items()}
    removes = [
        RemoveDuty(by_key[key], since, "left")
        for key, since in duties.leave_requests.items()
        if key in by_key
    ]
    removes.extend(eviction_removes(members, my_leaf, offline_since, eviction_grace, last_heard))
    adds: list[AddDuty] = []
    for key, duty in duties.adds.items():
        how = duty.admissibility
        if how not in _ADMITTED or member_id(key) not in present:
            continue
        if how is Admissibility.REJOINING:
            leaf = by_key.get(key)
            if leaf is None or leaf == my_leaf:
                continue
            removes.append(RemoveDuty(leaf, duty.since, "rejoining"))
            adds.append(replace(duty, exclude=leaf))
        elif key not in by_key:
            adds.append(duty)
    return OpenDuties(tuple(adds), tuple(removes))
