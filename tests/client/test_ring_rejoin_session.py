"""A ring member that lost its state inside a ring run (docs/protocol.md §12.2, §12.5): real
session machines in the in-memory room (session_room.py), real cryptography.

carol dies after her Nth ring frame of bob's rekey; a new process for her identity holds nothing (a
ring run is never stored) and asks to join with a fresh, strictly newer request. That signed
request proves her leaf can never take part in the run again, so the member in line removes it
with a restart commit (reason: rejoining) as soon as the run waits for it, without waiting for a
timeout, and she is let in again once the ring is done, without an invite or an approval even in
an invite-only room. Before the fix the ring waited for
her old leaf forever: she is online again, so no timeout ever dropped her.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from session_room import Member, MemoryRoom

from groupchat.client.notices import ChatLine
from groupchat.client.room_payload import PayloadKind, RoomPayload
from groupchat.client.session.inputs import InviteRequested, RekeyRequested
from groupchat.client.session.phases import Phase
from groupchat.core.identity import Identity
from groupchat.lab.clock import ManualClock
from groupchat.relay_protocol import Join, Leave, Publish, SendTo

ROUND_TIMEOUT = 30.0  # the ring's round deadline (s): the rejoin must not wait for it


class KillingRoom(MemoryRoom):
    """The in-memory relay; ``victim`` dies right after its ``left``-th core frame reached the relay
    (nothing it sends after that goes out, as with SIGKILL)."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock)
        self.victim: bytes | None = None
        self.left = 0

    def _route(self, sender: Member, frame: Join | Leave | Publish | SendTo) -> None:
        if sender.stopped:
            return  # dead: the rest of its step never runs
        super()._route(sender, frame)
        core = isinstance(frame, Publish) and RoomPayload.decode(frame.payload).kind is PayloadKind.CORE
        if sender.mid == self.victim and core:
            self.left -= 1
            if self.left == 0:
                sender.stopped, sender.connected = True, False
                self._gone(sender)


def _group(m: Member) -> Any:
    return m.machine._group


def _run(room: KillingRoom, clock: ManualClock, seconds: int) -> None:
    for _ in range(seconds):
        clock.now += 1
        room.tick()


def _ring_of(
    room: KillingRoom, clock: ManualClock, closed: bool, *names: str
) -> tuple[Member, ...]:
    """alice's ring group with ``names`` in it, in turn: open, or invite-only (one invite, used
    up by them)."""
    settings: dict[str, Any] = {"open_room": not closed}
    alice = room.add("alice", scheme="ring", **settings)
    room.connect(alice)
    if closed:
        room.feed(alice, InviteRequested(len(names), 3600.0, "", clock()))
        room.settle()
        ready = [t for t in alice.timeline() if t.startswith("invite ready")]
        found = re.search(r"--invite (gci1-\S+)", ready[-1]) if ready else None
        assert found is not None, alice.timeline()
        settings["invite"] = found.group(1)
    members = [alice]
    for name in names:
        members.append(room.add(name, **settings))
        room.connect(members[-1])
        _run(room, clock, 10)
    assert {m.display_name for m in _group(alice).members()} == {"alice", *names}
    return tuple(members)


def _reads(room: KillingRoom, clock: ManualClock, sender: Member, reader: Member, text: str) -> bool:
    sender.machine.queue_text(text)
    _run(room, clock, 3)
    return any(isinstance(n, ChatLine) and n.text == text for n in reader.notices())


@pytest.mark.parametrize("closed", [False, True], ids=["open room", "invite-only room"])
@pytest.mark.parametrize("frames", [1, 2])
def test_a_ring_member_that_lost_its_state_is_replaced_at_once(closed: bool, frames: int) -> None:
    """carol dies after her ``frames``-th ring frame of bob's rekey and comes back with nothing:
    her old leaf is removed (rejoining) well before the ring's round deadline, she is added again
    by the add path, and all three agree on one epoch and read each other."""
    clock = ManualClock()
    room = KillingRoom(clock)
    alice, bob, carol = _ring_of(room, clock, closed, "bob", "carol")
    carol_id: Identity = carol.machine.identity
    epoch = _group(alice).epoch
    room.victim, room.left = carol.mid, frames
    room.feed(bob, RekeyRequested(clock()))
    room.settle()
    assert carol.stopped and _group(alice).epoch == epoch  # the ring waits for her old leaf
    again = room.add("carol", identity=carol_id, open_room=not closed)  # no invite: it is used up
    room.connect(again)
    waited = 0
    while waited < ROUND_TIMEOUT and not (
        again.machine.phase is Phase.MEMBER and again.machine.epoch == _group(alice).epoch
    ):
        waited += 1
        clock.now += 1
        room.tick()
    assert again.machine.phase is Phase.MEMBER, (again.timeline(), alice.timeline())
    assert waited < ROUND_TIMEOUT / 2, waited  # at once: no ring timeout was waited for
    assert again.machine.epoch == _group(alice).epoch == _group(bob).epoch
    assert [m.display_name for m in _group(alice).members()].count("carol") == 1
    for m in (alice, bob):
        assert any("carol is rejoining" in t for t in m.timeline()), m.timeline()
        assert not any("asks to join" in t for t in m.timeline())  # nobody had to approve her
        assert not any("timed out" in t for t in m.timeline())
    assert _reads(room, clock, again, alice, "carol is back")
    assert _reads(room, clock, bob, again, "welcome back")


def test_a_fresh_request_during_a_long_ring_waits_for_its_epoch() -> None:
    """Invite-only: carol dies after her round-1 frame of bob's rekey while dave is away, so the
    ring waits for dave's round 1 (not for carol's leaf: it sent it). At the round's deadline the
    next attempt waits for her leaf too, and it goes at once (dave stays until he is evicted,
    60 s). The fresh request carol publishes while that ring still runs is judged by the epoch the
    ring makes, where she is returning: nobody is asked to approve her (judged by the epoch
    before, she would have needed an approval), and she is let in once the ring is done."""
    clock = ManualClock()
    room = KillingRoom(clock)
    alice, bob, carol, dave = _ring_of(room, clock, True, "bob", "carol", "dave")
    room.disconnect(dave)
    epoch = _group(alice).epoch
    room.victim, room.left = carol.mid, 1
    room.feed(bob, RekeyRequested(clock()))
    room.settle()
    assert carol.stopped
    again = room.add("carol", identity=carol.machine.identity, open_room=False)
    room.connect(again)
    _run(room, clock, 5)
    assert len(_group(alice).members()) == 4  # carol's leaf has done its round 1
    _run(room, clock, 35)
    names = {m.display_name for m in _group(alice).members()}
    assert names == {"alice", "bob", "dave"} and _group(alice).epoch == epoch  # the ring runs on
    assert any("fresh join request" in t for t in again.timeline())  # asked again, ring running
    _run(room, clock, 120)
    assert again.machine.phase is Phase.MEMBER, (again.timeline(), alice.timeline())
    assert again.machine.epoch == _group(alice).epoch == _group(bob).epoch
    assert {m.display_name for m in _group(alice).members()} == {"alice", "bob", "carol"}
    for m in (alice, bob):
        assert not any("asks to join" in t for t in m.timeline()), m.timeline()
    assert _reads(room, clock, alice, again, "hello again")
