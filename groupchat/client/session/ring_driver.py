"""The ring driver (ring groups): follow a running ring rekey, poll its deadline, restart it
without members who are gone for good (docs/session.md, "Ring groups"; docs/protocol.md §8).

* every :class:`~groupchat.core.events.RekeyProgress` updates the :class:`~.phases.RingRun`
  (whom it waits for, the core time it cost); the machine then drains the core's outbox;
* while a ring runs the core's deadline is polled once every :data:`RING_POLL` seconds;
* once it timed out, a member it waits for who is offline past the eviction grace (or whom our
  user kicked) is removed by a *restart* commit, committed by the member in line (the same
  coordinator rule as any eviction).

Pure: times are given; presence (the relay's claim) only decides who acts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set
from typing import Final

from ...core.events import Member, RekeyProgress
from ..coordinator import RemoveDuty
from .eviction import offline_past_grace
from .phases import RingRun
from .settings import member_id

__all__ = ["RING_POLL", "follow", "poll_due", "restart_removes"]

RING_POLL: Final = 1.0  # seconds between checks of a running ring's round deadline


def follow(
    ring: RingRun | None, ev: RekeyProgress, now: float, core_ms: float, label: Callable[[Member], str]
) -> tuple[RingRun, bool]:
    """The ring after ``ev`` (a new run if it is another epoch's), and whether whom it waits for
    changed; members are named by ``label`` (client/names.py)."""
    if ring is None or ring.epoch != ev.epoch:
        ring = RingRun(ev.epoch, now)
        ring.next_poll = ring.started + RING_POLL
    ring.core_ms += core_ms
    waiting = tuple(label(m) for m in ev.waiting_for)
    changed = waiting != ring.waiting_for
    ring.waiting_for = waiting
    ring.waiting_leaves = tuple(m.leaf for m in ev.waiting_for)
    return ring, changed


def poll_due(ring: RingRun, now: float) -> bool:
    """Time to poll the core's deadline; if so, the next poll is scheduled."""
    if now < ring.next_poll:
        return False
    ring.next_poll = now + RING_POLL
    return True


def restart_removes(
    ring: RingRun,
    members: Mapping[int, Member],
    my_leaf: int,
    kicks: set[bytes],
    present: Set[bytes],
    offline_since: Mapping[bytes, float],
    grace: float,
    now: float,
) -> tuple[list[RemoveDuty], set[bytes]]:
    """The members a timed-out ring waits for who should go: kicked ones now, absent ones once
    past the grace; and the kicks among them."""
    removes: list[RemoveDuty] = []
    kicked: set[bytes] = set()
    for leaf in ring.waiting_leaves:
        m = members.get(leaf)
        if m is None or leaf == my_leaf:
            continue
        if m.identity_key in kicks:
            removes.append(RemoveDuty(leaf, now, "kicked"))
            kicked.add(m.identity_key)
        elif (
            due := offline_past_grace(member_id(m.identity_key), present, offline_since, grace)
        ) is not None:
            removes.append(RemoveDuty(leaf, due, "evicted"))
    return removes, kicked
