"""The ring driver (ring groups): follow a running ring rekey, poll its deadline, restart it
without members who are gone for good (docs/session.md, "Ring groups"; docs/protocol.md §8).

* every :class:`~groupchat.core.events.RekeyProgress` updates the :class:`~.phases.RingRun`
  (whom it waits for, the core time it cost); the machine then drains the core's outbox;
* while a ring runs the core's deadline is polled once every :data:`RING_POLL` seconds;
* once it timed out, a member it waits for who is offline past the eviction grace (or whom our
  user kicked) is removed by a *restart* commit, committed by the member in line (the same
  coordinator rule as any eviction); so is a *joiner* of the ring's commit (it never held an
  epoch, and may simply ask again) that the ring waited for through :data:`JOINER_PATIENCE`
  timeouts, or whose signed messages failed that many attempts (a joiner given a bad Welcome
  confirms another epoch than everyone, every time); and so is a member proven to have lied (its
  own signed key reveal contradicts the ring value it signed: the core's ``WRONG_VALUE``);
* at once, without a timeout, a member the ring waits for whose identity signed a strictly newer
  join request (the core's ``REJOINING``): it lost its state, so its leaf can never take part in
  this run again (its keys are gone); the signed request is the evidence, the same for every
  member, and it is let in again by the normal add path once the ring is done.

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

__all__ = [
    "JOINER_PATIENCE",
    "RING_POLL",
    "follow",
    "joiner_failed",
    "poll_due",
    "rejoining_removes",
    "restart_removes",
]

RING_POLL: Final = 1.0  # seconds between checks of a running ring's round deadline
JOINER_PATIENCE: Final = 2  # timeouts (or failed attempts) a ring waits on one of its joiners


def follow(
    ring: RingRun | None,
    ev: RekeyProgress,
    now: float,
    core_ms: float,
    label: Callable[[Member], str],
    roster: Mapping[int, Member],
) -> tuple[RingRun, bool]:
    """The ring after ``ev`` (a new run if it is another epoch's), and whether whom it waits for
    changed; members are named by ``label`` (client/names.py); ``roster`` is the old epoch's."""
    if ring is None or ring.epoch != ev.epoch:
        ring = RingRun(ev.epoch, now)
        ring.next_poll = ring.started + RING_POLL
    ring.core_ms += core_ms
    ring.joiners.update({m.leaf: m for m in ev.waiting_for if m.leaf not in roster})
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


def joiner_failed(
    ring: RingRun, signer: Member | None, roster: Mapping[int, Member], proven: bool = False
) -> None:
    """An attempt failed on ``signer``'s signed message: count it if ``signer`` is a joiner; a
    member ``proven`` to have lied (its own signed reveal contradicts its signed value) goes."""
    if signer is not None and proven:
        ring.liars.add(signer.leaf)
        if signer.leaf not in roster:
            ring.joiners[signer.leaf] = signer
    if signer is not None and signer.leaf not in roster:
        ring.joiners[signer.leaf] = signer
        ring.failed_by[signer.leaf] = ring.failed_by.get(signer.leaf, 0) + 1


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
    listed = {d.leaf for d in removes}
    for leaf in sorted(ring.joiners.keys() | ring.liars):
        waited = leaf in ring.waiting_leaves and ring.timeouts >= JOINER_PATIENCE
        failed = ring.failed_by.get(leaf, 0) >= JOINER_PATIENCE
        if leaf == my_leaf or leaf in listed:
            continue
        if leaf in ring.liars:
            removes.append(RemoveDuty(leaf, ring.started, "lied"))  # a kick: it stays out
        elif waited or failed:
            removes.append(RemoveDuty(leaf, ring.started, "stalled"))
    return removes, kicked


def rejoining_removes(
    ring: RingRun, members: Mapping[int, Member], my_leaf: int, rejoining: Mapping[bytes, float]
) -> list[RemoveDuty]:
    """The members the ring waits for whose identity asked to join again (``rejoining``: identity
    key -> since when, requests the core judged REJOINING at our epoch): each lost its state, so
    the run can never complete with its leaf; it goes now, with no timeout to wait for. Only
    members of the old roster: a joiner's fresh request proves nothing (it may have been sent
    while its Welcome was on the way), the joiner rules above cover it."""
    removes: list[RemoveDuty] = []
    for leaf in ring.waiting_leaves:
        m = members.get(leaf)
        if m is None or leaf == my_leaf:
            continue
        since = rejoining.get(m.identity_key)
        if since is not None:
            removes.append(RemoveDuty(leaf, since, "rejoining"))
    return removes
