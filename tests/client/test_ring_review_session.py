"""Adversarial review of the issue-14 ring, session side: real session machines in the in-memory
room (session_room.py), real cryptography. Each test failed against the first version of the
rewrite, proving the flaw its docstring tells, and passes since its fix."""

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


def _ring_of_three(room: MemoryRoom, clock: ManualClock) -> tuple[Member, Member, Member]:
    """alice creates a ring group; bob, then carol, join it (each given ten seconds)."""
    alice = room.add("alice", scheme="ring")
    room.connect(alice)
    bob = room.add("bob")
    room.connect(bob)
    for _ in range(10):
        clock.now += 1
        room.tick()
    carol = room.add("carol")
    room.connect(carol)
    for _ in range(10):
        clock.now += 1
        room.tick()
    return alice, bob, carol


def _ring_round3_senders(room: MemoryRoom, epoch: int) -> set[int]:
    """Leaves whose round-3 message of the ring creating ``epoch`` the relay has sequenced."""
    from groupchat.core.schemes.ring_message import RING_WIRE_FORMAT, RingRound

    out: set[int] = set()
    for d in room.log:
        core = d.payload[1:]
        if (
            d.payload[:1] == bytes((PayloadKind.CORE,))
            and int.from_bytes(core[2:4], "big") == RING_WIRE_FORMAT
        ):
            msg = RingRound.decode(core)
            if msg.round == 3 and msg.epoch == epoch:
                out.add(msg.sender)
    return out


def test_a_kick_whose_restart_loses_to_the_completing_ring_is_not_forgotten() -> None:
    """alice's /rekey ring waits for carol (disconnected) and times out. carol comes back and takes
    part; when every confirmation is sequenced but alice has not read them yet, alice's user types
    /kick carol: the session commits a restart removing her (carol is still waited for, in
    alice's view). The relay orders it after the last confirmation, so the ring completes and the
    restart is stale. ``_on_epoch`` sees ``ev.own`` (the ring was alice's) and takes the branch
    "ours won the epoch": the kick is discarded from the duties, the restart forgotten, no warning.
    carol stays a member for good. (Core side: ``_enter_agreed_epoch`` reports
    ``superseded_own_commit`` only when the ring was not ours.)"""
    from session_room import HELLO

    from groupchat.client.session.inputs import Connected, FrameReceived, KickRequested, RekeyRequested

    clock = ManualClock()
    room = MemoryRoom(clock)
    alice, bob, carol = _ring_of_three(room, clock)
    group = _group(alice)
    assert len(group.members()) == 3
    carol_key = carol.machine.identity.public_key
    room.disconnect(carol)
    room.feed(alice, RekeyRequested(clock()))
    room.settle()
    clock.now += 31
    room.tick(alice, bob)  # the ring times out waiting for carol; alice and bob retry
    carol.connected = True
    room.feed(carol, Connected(HELLO, clock()))
    kicked, held = False, []
    for _ in range(20_000):  # the relay, frame by frame; alice's frames wait once she confirmed
        if not room.inbox:
            break
        member, frame = room.inbox.pop(0)
        senders = _ring_round3_senders(room, group.epoch + 1)
        if member is alice and not kicked and group.my_leaf in senders:
            held.append(frame)
            if len(senders) == 3:  # every confirmation is sequenced; alice has not read them
                sequenced = len(room.log)
                room.feed(alice, KickRequested(carol_key, clock()))  # commits the restart now
                assert len(room.log) == sequenced + 1  # the restart removing carol, after them
                kicked = True
                room.inbox[:0] = [(alice, f) for f in held]
            continue
        if member.connected and not member.stopped:
            room.feed(member, FrameReceived(frame, clock()))
    assert kicked
    for _ in range(120):  # two minutes
        clock.now += 1
        room.tick()
    names = sorted(m.display_name for m in _group(alice).members())
    warned = [t for t in alice.timeline() if "kick" in t.lower()]
    assert names == ["alice", "bob"] or warned, f"the /kick of carol was dropped silently: {names}"


def test_the_timeout_after_a_failed_attempt_is_worded_for_what_happened(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """carol sends a wrong round-2 value; the attempt fails everywhere (``RekeyFailed``, shown). At
    its deadline the core reports ``RekeyTimedOut(round=2, missing=())`` (every message came), and
    the session words it with ``wording_ring.ring_timed_out`` as if someone were missing: an empty name
    list in "is waiting for  (round 2 timed out)"."""
    from groupchat.client.session.inputs import RekeyRequested
    from groupchat.core.schemes.ring import RingRekey
    from groupchat.core.schemes.ring_message import RingRound

    clock = ManualClock()
    room = MemoryRoom(clock)
    alice, _, carol = _ring_of_three(room, clock)
    assert len(_group(alice).members()) == 3
    liar = carol.machine.identity.public_key
    sign = RingRekey._sign

    def lying_sign(self: RingRekey, round_: int, value: bytes, view: bytes) -> RingRound:
        if round_ == 2 and self._identity.public_key == liar:
            value = bytes([value[0] ^ 1]) + value[1:]
        return sign(self, round_, value, view)

    monkeypatch.setattr(RingRekey, "_sign", lying_sign)
    room.feed(alice, RekeyRequested(clock()))
    room.settle()
    for _ in range(40):
        clock.now += 1
        room.tick()
    lines = alice.timeline()
    assert any("cannot complete" in t for t in lines)  # the failure was shown
    timeouts = [t for t in lines if "timed out" in t]
    assert timeouts, lines
    assert not [t for t in timeouts if "waiting for  (" in t], timeouts
