"""The session machine without a socket: inputs in (relay frames as relay_protocol objects, ticks,
commands, each with ``now``), actions out, on one ManualClock, in milliseconds."""

from __future__ import annotations

from session_room import HELLO, Member, MemoryRoom

from groupchat.client.notices import ConnectionState, TimelineEvent, TimelineKind
from groupchat.client.room_payload import PayloadKind, RoomPayload
from groupchat.client.session.actions import AbortConnection, CallCore, Notify, SendFrame, Stop
from groupchat.client.session.beacons import KEEPALIVE
from groupchat.client.session.core_calls import CreateGroup
from groupchat.client.session.driver import drive
from groupchat.client.session.inputs import (
    Connected,
    Disconnected,
    DropRequested,
    FrameReceived,
    KickRequested,
    LeaveRequested,
    RekeyRequested,
    Tick,
)
from groupchat.client.session.phases import Phase
from groupchat.client.session.rejoin import GAP_RETRIES
from groupchat.lab.clock import ManualClock
from groupchat.relay_protocol import Ack, Deliver, Error, ErrorCode, Join, Joined, Publish, SendTo


def test_a_lone_member_creates_the_group_step_by_step(room: MemoryRoom, clock: ManualClock) -> None:
    alice = room.add("alice")
    m = alice.machine
    assert m.phase is Phase.ARRIVING
    out = drive(m, Connected(HELLO, clock()), clock)
    (join,) = [a.frame for a in out if isinstance(a, SendFrame)]
    assert isinstance(join, Join) and join.resume_after == 0  # the whole log, from seq 0
    out = drive(m, FrameReceived(Joined(join.req_id, join.room, 0, ()), clock()), clock)
    (sync,) = [a.frame for a in out if isinstance(a, SendFrame)]
    assert isinstance(sync, SendTo) and sync.to == alice.mid
    assert RoomPayload.decode(sync.payload).kind is PayloadKind.SYNC
    assert m.phase is Phase.ARRIVING  # not before the backlog is read
    out = drive(m, FrameReceived(Deliver(1, join.room, alice.mid, alice.mid, sync.payload), clock()), clock)
    assert any(isinstance(a, CallCore) and isinstance(a.call, CreateGroup) for a in out)
    (marker,) = [a.frame for a in out if isinstance(a, SendFrame)]
    assert (
        isinstance(marker, Publish) and RoomPayload.decode(marker.payload).kind is PayloadKind.GROUP_CREATED
    )
    assert m.phase is Phase.CREATING and m.epoch is None
    out = drive(m, FrameReceived(Deliver(2, join.room, alice.mid, None, marker.payload), clock()), clock)
    assert m.phase is Phase.MEMBER and m.epoch == 0
    assert m.status.connection is ConnectionState.READY
    texts = [a.notice.text for a in out if hasattr(a, "notice") and isinstance(a.notice, TimelineEvent)]
    assert texts and texts[0].startswith("you created the group in room room · epoch 0 · code ")


def test_a_joiner_is_added_welcomed_and_updates(pair: tuple[Member, Member]) -> None:
    alice, bob = pair
    assert alice.machine.phase is bob.machine.phase is Phase.MEMBER
    assert alice.machine.epoch == bob.machine.epoch == 2  # the Add, then bob's first update
    assert alice.machine.epoch_codes[2] == bob.machine.epoch_codes[2]
    assert any(t.startswith("bob joined · epoch 1 ·") for t in alice.timeline())
    assert any(t.startswith("you joined · epoch 1 · 2 members") for t in bob.timeline())
    assert any(t.startswith("bob refreshed their keys · epoch 2") for t in alice.timeline())
    assert bob.machine.quiet and alice.machine.quiet


def test_a_message_goes_out_and_is_confirmed_by_its_echo(
    room: MemoryRoom, pair: tuple[Member, Member]
) -> None:
    alice, bob = pair
    entry = alice.machine.queue_text("hello")
    room.tick(alice)
    from groupchat.client.notices import ChatLine, MessageConfirmed

    assert [n.text for n in bob.notices() if isinstance(n, ChatLine)] == ["hello"]
    assert MessageConfirmed(entry.local_id) in alice.notices()


def test_the_next_wakeup_is_the_turn_the_coordinator_gives(room: MemoryRoom, clock: ManualClock) -> None:
    alice = room.add("alice")
    room.connect(alice)
    bob = room.add("bob")
    room.connect(bob)
    room.tick()
    carol = room.add("carol")
    # alice (leaf 0) is first in line for carol's Add; bob (leaf 1) one add_timeout later.
    room.members.pop(carol.mid)
    bob_wakes_before = bob.machine.next_wakeup(clock())
    room.members[carol.mid] = carol
    alice.connected = False  # alice stops reading: bob must take over at his turn
    room.connect(carol)
    since = clock()
    assert bob.machine.next_wakeup(clock()) == since + 0.5
    assert bob_wakes_before > since + 0.5  # only the scheduled update was due before
    clock.advance(0.5)
    room.tick(bob)
    assert any(t.startswith("carol joined") for t in bob.timeline())


def test_a_gap_on_resume_keeps_our_group(pair: tuple[Member, Member], clock: ManualClock) -> None:
    # GAP is the relay's claim: it is shown and the room is read without resume, but the group,
    # our duties and our update stay (issue 13: nothing unsigned resets a member).
    _, bob = pair
    m = bob.machine
    epoch = m.epoch
    m._duties.want_update = "request"
    drive(m, Disconnected("test", 0.1, clock()), clock)
    out = drive(m, Connected(HELLO, clock()), clock)
    (join,) = [a.frame for a in out if isinstance(a, SendFrame)]
    assert isinstance(join, Join) and join.resume_after is not None and join.resume_after > 0
    # The relay may be lying: the resume is asked for again (GAP_RETRIES times) before we skip.
    for _ in range(GAP_RETRIES):
        out = drive(m, FrameReceived(Error(ErrorCode.GAP, "trimmed", join.req_id, join.room), clock()), clock)
        assert not [a for a in out if isinstance(a, SendFrame)]
        clock.advance(m.next_wakeup(clock()) - clock())
        out = drive(m, Tick(clock()), clock)
        (join,) = [a.frame for a in out if isinstance(a, SendFrame)]
        assert isinstance(join, Join) and join.resume_after is not None and join.resume_after > 0
    out = drive(m, FrameReceived(Error(ErrorCode.GAP, "trimmed", join.req_id, join.room), clock()), clock)
    assert m.phase is Phase.MEMBER and m.epoch == epoch and m._duties.want_update == "request"
    warnings = [a.notice.text for a in out if isinstance(a, Notify) and isinstance(a.notice, TimelineEvent)]
    assert warnings[0].startswith("the relay says it no longer has the messages sent while you were offline")
    (again,) = [a.frame for a in out if isinstance(a, SendFrame)]
    assert isinstance(again, Join) and again.resume_after is None  # the room again, without resume


def test_a_kick_removes_the_member_and_ends_its_session(
    room: MemoryRoom, pair: tuple[Member, Member]
) -> None:
    alice, bob = pair
    room.feed(alice, KickRequested(bob.machine.identity.public_key, room.clock()))
    room.settle()
    assert bob.stopped and Stop() in bob.actions
    assert "you were removed from the group by alice" in bob.timeline()
    assert any(t.startswith("bob was removed by alice · epoch 3") for t in alice.timeline())
    assert bob.machine.phase is Phase.ENDED and bob.machine.epoch is None


def test_leave_is_committed_by_the_other_and_ends_the_session(
    room: MemoryRoom, pair: tuple[Member, Member]
) -> None:
    alice, bob = pair
    room.feed(bob, LeaveRequested(room.clock()))
    room.settle()
    room.tick(alice)
    assert bob.stopped
    assert "you left the group · removed by alice at epoch 3" in bob.timeline()
    assert any(t.startswith("bob left · epoch 3") for t in alice.timeline())
    kinds = [n.kind for n in alice.notices() if isinstance(n, TimelineEvent)]
    assert TimelineKind.LEFT in kinds


def test_leave_gives_up_after_its_deadline(
    room: MemoryRoom, pair: tuple[Member, Member], clock: ManualClock
) -> None:
    alice, bob = pair
    alice.connected = False  # nobody will remove bob
    room.feed(bob, LeaveRequested(clock()))
    deadline = bob.machine.next_wakeup(clock())
    assert deadline == clock() + 5.0  # max(5 s, 3 x add_timeout)
    clock.advance(5.01)
    room.feed(bob, Tick(clock()))
    assert "you left (no member confirmed your removal in time)" in bob.timeline()
    assert bob.stopped


def test_rekey_commits_a_self_update(room: MemoryRoom, pair: tuple[Member, Member]) -> None:
    alice, bob = pair
    room.feed(alice, RekeyRequested(room.clock()))
    room.settle()
    assert alice.machine.epoch == bob.machine.epoch == 3
    assert "you refreshed your keys · epoch 3" in " ".join(alice.timeline())


def test_an_absent_member_is_evicted_after_the_grace(room: MemoryRoom, clock: ManualClock) -> None:
    alice = room.add("alice", eviction_grace=10.0)
    room.connect(alice)
    bob = room.add("bob", eviction_grace=10.0)
    room.connect(bob)
    room.tick()
    _beacons_done(room, clock)
    room.disconnect(bob)
    # First a beacon asking for signs of life (bob could be online, the relay lying), then the
    # eviction when the grace is up and nothing signed came from bob.
    wake = alice.machine.next_wakeup(clock())
    assert clock() < wake <= clock() + 1.5
    assert alice.machine._beacons._asking
    clock.advance(10.0)
    room.tick(alice)
    evicted = "bob was removed by alice: not heard from for 10 s · epoch 3"
    assert any(t.startswith(evicted) for t in alice.timeline())


def test_drop_asks_the_glue_to_abort(pair: tuple[Member, Member], room: MemoryRoom) -> None:
    alice, _ = pair
    assert AbortConnection() in room.feed(alice, DropRequested(room.clock()))


def test_an_idle_member_wakes_only_for_its_scheduled_update_and_its_keepalive(
    room: MemoryRoom, pair: tuple[Member, Member], clock: ManualClock
) -> None:
    alice, _ = pair
    _beacons_done(room, clock)
    keepalive = alice.machine._beacons._keepalive_due
    assert keepalive is not None and keepalive >= clock() + 0.75 * KEEPALIVE - 30.0
    assert alice.machine.next_wakeup(clock()) == min(alice.machine._updates.last_update + 600.0, keepalive)


def _beacons_done(room: MemoryRoom, clock: ManualClock) -> None:
    """Let the beacons after the last epoch change go out and their bounds pass (beacons.py)."""
    for _ in range(3):
        clock.advance(8.0)
        room.tick()


def test_two_arrivals_at_once_take_turns_and_one_creates(room: MemoryRoom, clock: ManualClock) -> None:
    alice, bob = room.add("alice"), room.add("bob")
    for m in (alice, bob):
        m.connected = True
        room.feed(m, Connected(HELLO, clock()))
    room.settle()
    first, second = sorted((alice, bob), key=lambda m: m.mid)
    # The lowest member id creates at once; the other, whose turn to create was add_timeout
    # later, saw its marker first and joined instead.
    assert first.machine.phase is second.machine.phase is Phase.MEMBER
    creators = [m for m in (alice, bob) if any(t.startswith("you created") for t in m.timeline())]
    assert creators == [first]
    assert first.machine.epoch == second.machine.epoch == 2


def test_a_creator_whose_marker_comes_second_drops_its_group_and_joins(
    room: MemoryRoom, clock: ManualClock
) -> None:
    alice = room.add("alice")
    m = alice.machine
    (join,) = [a.frame for a in drive(m, Connected(HELLO, clock()), clock) if isinstance(a, SendFrame)]
    assert isinstance(join, Join)
    out = drive(m, FrameReceived(Joined(join.req_id, join.room, 0, ()), clock()), clock)
    (sync,) = [a.frame for a in out if isinstance(a, SendFrame)]
    assert isinstance(sync, SendTo)
    out = drive(m, FrameReceived(Deliver(1, join.room, alice.mid, alice.mid, sync.payload), clock()), clock)
    (marker,) = [a.frame for a in out if isinstance(a, SendFrame)]
    assert isinstance(marker, Publish) and m.phase is Phase.CREATING
    theirs = RoomPayload(PayloadKind.GROUP_CREATED, b"\x07" * 16).encode()
    out = drive(m, FrameReceived(Deliver(2, join.room, b"0" * 32, None, theirs), clock()), clock)
    # The relay ordered the other marker first: ours is dropped, and we ask to join theirs.
    assert m.phase is Phase.JOINING and m._hold is None and m.epoch is None
    (request,) = [a.frame for a in out if isinstance(a, SendFrame)]
    assert isinstance(request, Publish)
    assert RoomPayload.decode(request.payload).kind is PayloadKind.JOIN_REQUEST
    out = drive(m, FrameReceived(Deliver(3, join.room, alice.mid, None, marker.payload), clock()), clock)
    assert m.phase is Phase.JOINING  # our own marker's late echo changes nothing
    assert not [a for a in out if isinstance(a, Notify) and isinstance(a.notice, TimelineEvent)]


def test_an_ack_just_behind_what_we_took_is_not_taken_for_a_made_up_seq(
    pair: tuple[Member, Member], clock: ManualClock
) -> None:
    # An honest relay may deliver our own echo (or a frame just after ours) before our Ack: that
    # is no evidence of a made-up seq, and nothing is read again.
    _, bob = pair
    m = bob.machine
    assert m._link is not None and m._last_seq is not None
    taken = m._last_seq
    m._link.pending_acks[999] = ("message", clock())
    drive(m, FrameReceived(Ack(999, taken - 1), clock()), clock)
    assert m._last_seq == taken
