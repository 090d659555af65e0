"""A joiner of a ring rekey that never takes part (online as far as the relay says, but silent:
a sock puppet of the member who let it in, or a joiner whose Welcome was bad) must not freeze the
group: it never held an epoch, so after ``JOINER_PATIENCE`` timeouts a restart drops it, and it
may simply ask again. Before, the ring waited for it for ever (it is never "offline")."""

from __future__ import annotations

from session_room import HELLO, Member, MemoryRoom

from groupchat.client.session.inputs import Connected, FrameReceived
from groupchat.client.session.phases import Phase
from groupchat.client.session.ring_driver import JOINER_PATIENCE
from groupchat.relay_protocol import Publish


def _settle_for(room: MemoryRoom, seconds: float, *members: Member) -> None:
    for _ in range(int(seconds * 2)):
        room.clock.advance(0.5)
        room.tick(*members)


def test_a_silent_ring_joiner_is_dropped_by_a_restart_and_the_group_goes_on(room: MemoryRoom) -> None:
    alice = room.add("alice", scheme="ring")
    room.connect(alice)
    bob = room.add("bob")
    room.connect(bob)
    _settle_for(room, 5)
    assert bob.machine.phase is Phase.MEMBER and bob.machine.epoch == alice.machine.epoch
    epoch = alice.machine.epoch
    assert epoch is not None
    puppet = room.add("puppet")
    # It connects and asks to join (an open room), then goes silent while staying present.
    puppet.connected = True
    room.feed(puppet, Connected(HELLO, room.clock()))
    for _ in range(1000):
        if any(isinstance(f.frame, Publish) for f in puppet.sent()):
            break
        member, frame = room.inbox.pop(0)
        room.feed(member, FrameReceived(frame, room.clock()))
    puppet.stopped = True  # never reads again: not its Welcome, not a ring message
    room.settle()
    _settle_for(room, 3, alice, bob)
    group = alice.machine._group
    assert group is not None and group.phase.value == "agreeing"  # the ring that adds it waits
    _settle_for(room, 32 * (JOINER_PATIENCE + 1), alice, bob)
    assert alice.machine.epoch == bob.machine.epoch == epoch + 1
    assert sorted(m.display_name for m in group.members()) == ["alice", "bob"]
    assert any("is waiting for puppet" in t for t in alice.timeline())
    # Every member tells the same story, from the reason in the signed restart.
    for m in (alice, bob):
        line = [t for t in m.timeline() if "epoch " + str(epoch + 1) in t][-1]
        assert "puppet was not let in by" in line and "stalled the rekey for" in line, line
    # Chat goes on.
    assert alice.machine._group is not None and alice.machine._group.phase.value == "member"


def test_a_joiner_whose_signed_messages_fail_two_attempts_is_due_for_removal() -> None:
    """The pure rule: two attempts that failed on a joiner's signed message make it due; one is not
    enough, and a member of the old roster is never counted (it may be us who are wrong)."""
    from groupchat.client.session.phases import RingRun
    from groupchat.client.session.ring_driver import joiner_failed, restart_removes
    from groupchat.core.events import Member as CoreMember

    old = {0: CoreMember(0, "alice", b"a" * 32), 1: CoreMember(1, "bob", b"b" * 32)}
    joiner = CoreMember(2, "j", b"j" * 32)
    ring = RingRun(epoch=5, started=100.0, timeouts=1)

    def due() -> list[int]:
        removes, _ = restart_removes(ring, old, 0, set(), set(), {}, 60.0, 200.0)
        return [d.leaf for d in removes]

    joiner_failed(ring, old[1], old)  # bob's message showed it: bob is no joiner, never counted
    joiner_failed(ring, joiner, old)
    assert due() == []
    joiner_failed(ring, joiner, old)
    assert due() == [2] and ring.failed_by == {2: JOINER_PATIENCE}
