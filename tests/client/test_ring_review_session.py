"""Adversarial review of the issue-14 ring, session side: real session machines in the in-memory
room (session_room.py), real cryptography. Marked ``xfail(strict=True)``: each test fails today,
proving a flaw (the reason says which)."""

from __future__ import annotations

from typing import Any

import pytest
from session_room import Member, MemoryRoom

from groupchat.client.room_payload import PayloadKind
from groupchat.lab.clock import ManualClock
from groupchat.relay_protocol import Ack, Deliver, Join, Leave, Publish, SendTo


class DroppingRoom(MemoryRoom):
    """The in-memory relay, except that it acknowledges the first Welcome addressed to ``drop_to``
    and never delivers it (a relay that drops one frame for one recipient); it behaves otherwise."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock)
        self.drop_to: bytes | None = None
        self.dropped = 0

    def _route(self, sender: Member, frame: Join | Leave | Publish | SendTo) -> None:
        welcome = isinstance(frame, SendTo) and frame.payload[:1] == bytes((PayloadKind.WELCOME,))
        if welcome and isinstance(frame, SendTo) and frame.to == self.drop_to and not self.dropped:
            self.dropped += 1
            d = Deliver(len(self.log) + 1, self.room, sender.mid, frame.to, frame.payload)
            self.log.append(d)
            self.inbox.append((sender, Ack(frame.req_id, d.seq)))  # taken, never delivered
            return
        super()._route(sender, frame)


def _group(m: Member) -> Any:
    return m.machine._group


@pytest.mark.xfail(
    strict=True,
    reason="review: one dropped ring Welcome freezes the group for good: the ring waits for the "
    "joiner, who is online (so never evicted) and asks again with fresh requests nobody answers",
)
def test_a_dropped_ring_welcome_does_not_freeze_the_group() -> None:
    """bob is in alice's ring group; carol asks to join and alice's commit adding her wins, so the
    ring of 3 starts; the relay drops the Welcome to carol (one frame) and then behaves. The ring
    cannot finish without carol, who never got the epoch state to take part. The session's restart
    rule removes only members offline past the grace, and carol is online (she keeps asking with
    fresh join requests, which nobody handles while a ring runs). So the ring times out forever,
    alice's and bob's chat is held forever, and carol never gets in. Ten minutes here; the
    eviction grace is 60 s and each round 30 s."""
    clock = ManualClock()
    room = DroppingRoom(clock)
    alice = room.add("alice", scheme="ring")
    room.connect(alice)
    bob = room.add("bob")
    room.connect(bob)
    for _ in range(20):
        clock.now += 1
        room.tick()
    assert _group(alice).epoch == _group(bob).epoch == 1
    carol = room.add("carol")
    room.drop_to = carol.mid
    room.connect(carol)
    typed = False
    for _ in range(600):  # bounded: ten minutes of the session clock, a tick a second
        clock.now += 1
        room.tick()
        if room.dropped and not typed:
            alice.machine.queue_text("typed while the ring runs")
            typed = True
    assert room.dropped == 1  # the one Welcome the relay dropped
    a, b = _group(alice), _group(bob)
    states = {"alice": (a.epoch, a.phase.value), "bob": (b.epoch, b.phase.value), "carol": _group(carol)}
    assert a.phase.value == "member" and b.phase.value == "member", f"still frozen after 600 s: {states}"
    assert any(getattr(n, "text", None) == "typed while the ring runs" for n in bob.notices()), (
        "alice's message never reached bob"
    )
