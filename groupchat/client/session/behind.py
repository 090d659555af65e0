"""Falling behind: what unverifiable hints may do (prompt a check), and what they may not (reset us).

A message whose public header claims a later epoch, a commit at our epoch whose confirmation tag
does not match, a ring confirmation that does not match our secret: none of these is signed in a
way we can check, so the relay can make every one of them up. Each is only a *hint*. Hints never
drop our group. They count only while nothing readable comes from any other member (any
authenticated traffic at our epoch clears them), and only once they have kept coming for
``after`` seconds do we act, and first only by asking everyone for signs of life (a beacon with
``ask``): in a room that is merely idle their signed answers are readable and end the run. Only
if nothing readable comes within :data:`PROBE_WAIT` do we ask to be re-added with a fresh, signed
join request, **keeping our group** until a welcome for it opens. One forged frame, or a burst of
them, changes nothing; a relay that withholds every readable message and forges for ``after``
seconds costs one re-add (liveness), never our membership.

**Cut off** (:class:`Split`) is not a hint: a commit at our epoch whose committer's signature
checked and whose path does not match the secrets we derive (``InconsistentPathError``) was built
by a member, not the relay. In a DH tree the members above the node where it lies accept it
(docs/protocol.md §7), so the group has moved on without us: we ask to be re-added at once,
commit nothing and hold our chat meanwhile (our epoch is one the others left), and keep our
group. Should no welcome come within ``rejoin.fresh_after`` (nobody else took the change: a lie
at the root is refused by all), the group we hold stands again. Pure: times are given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["PROBE_WAIT", "Behind", "Split", "note_hint", "probe_due", "should_reenter"]

PROBE_WAIT: Final = 8.0  # seconds the members' answers to our ask may take


@dataclass(slots=True)
class Behind:
    """Hints since the last readable traffic from another member: first and last, highest epoch."""

    first: float
    last: float
    epoch: int
    hints: int = 1
    asked: bool = False  # we asked to be re-added for these hints
    probed_at: float | None = None  # when we asked everyone for signs of life for these hints


@dataclass(frozen=True, slots=True)
class Split:
    """We could not follow a signed commit at our epoch: the group moved on without us."""

    epoch: int  # ours, the one the commit ended for the others
    by: str  # the committer who signed it (its name)
    leaf: int  # the committer's leaf
    since: float


def note_hint(behind: Behind | None, now: float, epoch: int) -> Behind:
    """Count one more hint (claiming ``epoch``)."""
    if behind is None:
        return Behind(now, now, epoch)
    behind.last = max(behind.last, now)
    behind.epoch = max(behind.epoch, epoch)
    behind.hints += 1
    return behind


def probe_due(behind: Behind | None, after: float) -> bool:
    """Whether hints have kept coming for ``after`` seconds with nothing readable in between, and
    we have not yet asked everyone for signs of life."""
    return (
        behind is not None
        and not behind.asked
        and behind.probed_at is None
        and behind.last - behind.first >= after
    )


def should_reenter(behind: Behind | None, now: float) -> bool:
    """Whether we asked for signs of life :data:`PROBE_WAIT` seconds ago and nothing readable has
    come since (readable traffic would have ended the run: ``behind`` would be None)."""
    return (
        behind is not None
        and not behind.asked
        and behind.probed_at is not None
        and now >= behind.probed_at + PROBE_WAIT
    )
