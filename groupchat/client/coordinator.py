"""Who commits what: one member commits each pending change, chosen from what every member sees.

Every member runs the same rule on the same inputs (the group's roster from the core, presence
from the relay, the order in which the relay delivered requests), so they agree on whose turn it
is without talking:

* the online members able to do a duty are ranked by leaf index, lowest first;
* the member at rank ``r`` commits the duty once it has been pending ``r * step`` seconds.

Rank 0 acts at once. If it is gone or slow, rank 1 acts one ``step`` later, and so on, so the
group never stalls on one silent member. Views may differ for a moment (presence is not
ordered with messages), so two members may both commit: that is safe, because the relay's order
decides which commit wins the epoch and the loser's is superseded (RFC 9420 §14). The rule
only makes such races rare. This module is pure: times are given, nothing is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..core.admission import Admissibility, Admit
from ..core.identity import JoinRequest

__all__ = ["AddDuty", "CommitPlan", "RemoveDuty", "is_my_turn", "next_turns", "plan_commit", "turn_at"]


@dataclass(frozen=True, slots=True)
class AddDuty:
    """A joiner's signed request, first seen at ``since``, waiting for someone to commit the Add.

    ``admissibility`` is what the agreed group state said of it at epoch ``classified_at``
    (``Group.classify_request``; None: not classified yet, so not planned); ``invite_key`` and
    ``proof`` are the invite it offered. ``exclude`` is a leaf left out of the ranking (a
    rejoining member's old leaf, removed in the same commit)."""

    request: JoinRequest
    since: float
    invite_key: bytes | None = None
    proof: bytes | None = None
    admissibility: Admissibility | None = None
    classified_at: int = -1
    exclude: int = -1

    @property
    def add(self) -> JoinRequest | Admit:
        """What the commit adds: the request, with its invite when it came in by one."""
        if self.admissibility is Admissibility.INVITED and self.invite_key and self.proof:
            return Admit(self.request, self.invite_key, self.proof)
        return self.request


@dataclass(frozen=True, slots=True)
class RemoveDuty:
    """Leaf ``leaf`` must go (it asked to leave, stayed offline too long, or is rejoining) from
    ``since`` on. Its own holder never commits it (a member cannot remove itself)."""

    leaf: int
    since: float
    why: str


@dataclass(frozen=True, slots=True)
class CommitPlan:
    add: tuple[AddDuty, ...]
    remove: tuple[RemoveDuty, ...]

    def __bool__(self) -> bool:
        return bool(self.add or self.remove)


def turn_at(
    my_leaf: int, online_leaves: Iterable[int], since: float, step: float, exclude: int = -1
) -> float | None:
    """When ``my_leaf``'s turn comes for a duty pending since ``since`` (None: never, we are not
    among the online members able to do it); see the module doc."""
    # Our rank among the online leaves in leaf order (excluding ``exclude``), counted at C speed:
    # every member weighs every open duty after every input.
    ranked = set(online_leaves)
    ranked.discard(exclude)
    if my_leaf not in ranked:
        return None
    return since + sum(map(my_leaf.__gt__, ranked)) * step


def is_my_turn(
    my_leaf: int, online_leaves: Iterable[int], since: float, now: float, step: float, exclude: int = -1
) -> bool:
    """Whether ``my_leaf`` should commit a duty pending since ``since`` (see the module doc)."""
    at = turn_at(my_leaf, online_leaves, since, step, exclude)
    return at is not None and now >= since and now >= at


def plan_commit(
    *,
    my_leaf: int,
    members: Mapping[int, bytes],
    online_leaves: Iterable[int],
    adds: Iterable[AddDuty],
    removes: Iterable[RemoveDuty],
    now: float,
    step: float,
) -> CommitPlan:
    """The adds and removes that are ours to commit now.

    ``members`` maps each leaf to its identity key. An add is planned only for an identity that
    is not a member, or whose old leaf this same plan removes (a rejoining member: both go in one
    commit, so the Add is judged while the member is still known to be rejoining).
    """
    online = [leaf for leaf in online_leaves if leaf in members]
    identities = set(members.values())
    planned_removes: list[RemoveDuty] = []
    for duty in removes:
        if duty.leaf == my_leaf or duty.leaf not in members:
            continue
        if is_my_turn(my_leaf, online, duty.since, now, step, exclude=duty.leaf):
            planned_removes.append(duty)
    leaving = {members[d.leaf] for d in planned_removes}
    planned_adds: list[AddDuty] = []
    seen: set[bytes] = set()
    for add in adds:
        key = add.request.identity_key
        if (key in identities and key not in leaving) or key in seen:
            continue
        if is_my_turn(my_leaf, online, add.since, now, step, exclude=add.exclude):
            planned_adds.append(add)
            seen.add(key)
    return CommitPlan(tuple(planned_adds), tuple(planned_removes))


def next_turns(
    *,
    my_leaf: int,
    online_leaves: Iterable[int],
    adds: Iterable[AddDuty],
    removes: Iterable[RemoveDuty],
    step: float,
) -> list[float]:
    """When our turn comes for each duty that :func:`plan_commit` would weigh: the same rule, so
    the session's timer wakes exactly when a duty becomes ours (None turns, never ours, left out)."""
    online = list(online_leaves)
    turns = [turn_at(my_leaf, online, add.since, step, exclude=add.exclude) for add in adds]
    turns.extend(
        turn_at(my_leaf, online, d.since, step, exclude=d.leaf) for d in removes if d.leaf != my_leaf
    )
    return [t for t in turns if t is not None]
