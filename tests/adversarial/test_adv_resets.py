"""Issue 13, "one forged frame can destroy the group" and "no deadlock"; threats.md §1 items 9
(replays), 16 (bit flips), 20 (malformed frames) and 27 (unsigned claims that remove or reset).
No frame that no member signed makes a member discard its group, and once the relay behaves again
the room ends with one group that every honest member is in."""

from __future__ import annotations

import os

from expect import holds_group, invited, let_in
from hostile_relay import HostileRoom, is_chat, is_commit, payload_kind, start_room, with_epoch
from session_room import Member

from groupchat.client.notices import ChatLine, Placeholder
from groupchat.client.room_payload import CREATION_NONCE_LEN, PayloadKind, RoomPayload
from groupchat.client.session.beacons import KEEPALIVE
from groupchat.lab.clock import ManualClock
from groupchat.relay_protocol import Deliver, ErrorCode, Publish, SendTo, ServerFrame


def wait(room: HostileRoom, clock: ManualClock, seconds: float, step: float = 0.5) -> None:
    for _ in range(int(seconds / step)):
        clock.advance(step)
        room.tick()


def chat(member: Member) -> list[str]:
    return [n.text for n in member.notices() if isinstance(n, ChatLine) and not n.own]


def agree(*members: Member) -> bool:
    """Everyone holds a group, at one epoch, with one epoch code."""
    epochs = {m.machine.epoch for m in members}
    if None in epochs or len(epochs) != 1 or not all(holds_group(m) for m in members):
        return False
    epoch = epochs.pop()
    assert epoch is not None
    return len({m.machine.epoch_codes.get(epoch) for m in members}) == 1


def chat_continues(room: HostileRoom, sender: Member, *readers: Member) -> bool:
    text = f"still here {os.urandom(4).hex()}"
    sender.machine.queue_text(text)
    room.tick()
    return all(text in chat(r) for r in readers)


def flip_last(payload: bytes) -> bytes:
    return payload[:-1] + bytes([payload[-1] ^ 1])


def test_one_forged_later_epoch_frame_to_everyone_leaves_every_member_in_its_group(
    clock: ManualClock,
) -> None:
    room, members = start_room(clock, "alice", "bob", "carol")
    alice, bob, carol = members
    epoch = alice.machine.epoch
    assert epoch is not None
    alice.machine.queue_text("hello")
    room.tick()
    real = next(d for d in room.log if is_chat(d.payload))
    body = RoomPayload.decode(real.payload).body
    forged = RoomPayload(PayloadKind.CORE, with_epoch(body, epoch + 1)).encode()
    room.forge(alice.mid, forged)
    for m in members:
        assert holds_group(m), f"{m.name} dropped its group"
        assert m.machine.epoch == epoch
    wait(room, clock, 5)
    assert agree(*members)
    assert chat_continues(room, bob, alice, carol)


def test_a_fake_group_created_marker_leaves_nobody_without_a_group(clock: ManualClock) -> None:
    room = HostileRoom(clock)
    ghost = room.virtual("ghost")

    def forge_first(sender: Member, frame: Publish | SendTo) -> None:
        if payload_kind(frame.payload) is PayloadKind.GROUP_CREATED and sender.mid != ghost.mid:
            room.on_publish.clear()
            marker = RoomPayload(PayloadKind.GROUP_CREATED, os.urandom(CREATION_NONCE_LEN)).encode()
            room.forge(ghost.mid, marker, settle=False)

    room.on_publish.append(forge_first)
    alice = room.add("alice")
    room.connect(alice)
    wait(room, clock, 10)
    bob = room.add("bob", **invited(room, alice, "bob"))
    room.connect(bob)
    let_in(room, alice, bob)
    wait(room, clock, 40)
    assert agree(alice, bob), "the room ended without one group that both are in"
    assert chat_continues(room, alice, bob)


def test_a_future_seq_answer_to_every_member_leaves_every_member_in_the_group(clock: ManualClock) -> None:
    room, members = start_room(clock, "alice", "bob", "carol")
    for m in members:
        room.policy.answer_join(ErrorCode.FUTURE_SEQ, m.mid)
        room.disconnect(m)
    for m in members:
        room.connect(m)
    for m in members:
        assert holds_group(m), f"{m.name} dropped its group on the relay's word"
    room.policy.behave()
    wait(room, clock, 40)
    assert agree(*members)
    assert chat_continues(room, members[0], *members[1:])


def test_a_tampered_welcome_makes_the_joiner_retry_and_get_in_once_the_relay_behaves(
    clock: ManualClock,
) -> None:
    room, (alice, bob) = start_room(clock, "alice", "bob")
    carol = room.add("carol", **invited(room, alice, "carol"))

    def spoil(to: bytes, f: ServerFrame) -> ServerFrame | None:
        if to == carol.mid and isinstance(f, Deliver) and payload_kind(f.payload) is PayloadKind.WELCOME:
            room.policy.alters.clear()  # once
            return Deliver(f.seq, f.room, f.sender, f.to, flip_last(f.payload))
        return None

    room.policy.alter(spoil)
    room.connect(carol)
    let_in(room, alice, carol)
    wait(room, clock, 60)
    assert agree(alice, bob, carol), "the joiner never got in after the relay behaved"
    assert chat_continues(room, carol, alice, bob)


def test_a_replayed_chat_message_is_shown_once_and_changes_nothing(clock: ManualClock) -> None:
    room, (alice, bob) = start_room(clock, "alice", "bob")
    alice.machine.queue_text("pay 10")
    room.tick()
    epoch = bob.machine.epoch
    seq = next(d.seq for d in room.log if is_chat(d.payload))
    room.replay(seq)
    room.replay(seq)
    assert chat(bob).count("pay 10") == 1
    assert bob.machine.epoch == epoch and agree(alice, bob)


def test_a_replayed_old_commit_changes_nobodys_epoch(clock: ManualClock) -> None:
    room, members = start_room(clock, "alice", "bob", "carol")
    epochs = [m.machine.epoch for m in members]
    for d in [d for d in room.log if is_commit(d.payload)]:
        room.replay(d.seq)
    assert [m.machine.epoch for m in members] == epochs and agree(*members)


def test_a_bit_flipped_message_is_shown_as_tampered_and_changes_nothing(clock: ManualClock) -> None:
    room, (alice, bob) = start_room(clock, "alice", "bob")
    epoch = bob.machine.epoch

    def flip(to: bytes, f: ServerFrame) -> ServerFrame | None:
        if to == bob.mid and isinstance(f, Deliver) and is_chat(f.payload):
            room.policy.alters.clear()
            return Deliver(f.seq, f.room, f.sender, f.to, flip_last(f.payload))
        return None

    room.policy.alter(flip)
    alice.machine.queue_text("flipped")
    room.tick()
    assert "flipped" not in chat(bob)
    assert any(isinstance(n, Placeholder) for n in bob.notices())
    assert bob.machine.epoch == epoch and chat_continues(room, alice, bob)


def test_malformed_payloads_are_refused_and_change_nothing(clock: ManualClock) -> None:
    room, (alice, bob) = start_room(clock, "alice", "bob")
    epoch = bob.machine.epoch
    for junk in (b"", b"\xff" * 40, bytes([PayloadKind.CORE]) + os.urandom(300), bytes([2, 0, 1, 0, 2])):
        room.forge(alice.mid, junk)
    assert agree(alice, bob) and bob.machine.epoch == epoch
    assert chat_continues(room, alice, bob)


def test_a_gap_answer_to_every_member_ends_in_one_group_once_the_relay_behaves(clock: ManualClock) -> None:
    room, members = start_room(clock, "alice", "bob", "carol")
    for m in members:
        room.policy.answer_join(ErrorCode.GAP, m.mid)
        room.disconnect(m)
    for m in members:
        room.connect(m)
    room.policy.behave()
    wait(room, clock, 60, step=1.0)
    assert agree(*members), "the room did not end with one group every member is in"
    assert chat_continues(room, members[2], *members[:2])


def test_a_newcomer_shown_an_empty_room_creates_a_group_and_says_so(clock: ManualClock) -> None:
    room, (alice, bob) = start_room(clock, "alice", "bob")
    dave = room.add("dave", **invited(room, alice, "dave"))
    for m in (alice, bob):
        room.policy.hide(m.mid, dave.mid)  # dave's view: nobody is here...
    room.policy.withhold(dave.mid)  # ...and nobody hears him; the log shows the room's traffic
    room.connect(dave)
    wait(room, clock, 40, step=1.0)
    assert holds_group(dave), "dave waits for a welcome that cannot come"
    assert any("the relay showed no one here" in t for t in dave.timeline())


def test_concurrent_commits_in_per_member_orders_end_in_one_group_once_members_talk(
    clock: ManualClock,
) -> None:
    """The minority of a fork reads nothing of the majority's traffic: after ``behind_after``
    seconds of that it asks to be re-added (signed), keeping its group until the welcome."""
    from groupchat.client.session.inputs import RekeyRequested

    room, (alice, bob, carol) = start_room(clock, "alice", "bob", "carol")
    room.policy.hold(bob.mid)
    room.feed(alice, RekeyRequested(clock()))
    room.feed(carol, RekeyRequested(clock()))
    room.settle()
    room.release(bob, reverse=True)  # bob sees carol's commit first, the others alice's
    epoch = alice.machine.epoch
    assert epoch is not None and bob.machine.epoch == epoch
    assert bob.machine.epoch_codes[epoch] != alice.machine.epoch_codes[epoch]  # the attack worked
    for _ in range(18):
        for m in (alice, bob, carol):
            m.machine.queue_text(f"{m.name} talks")
        clock.advance(5.0)
        room.tick()
    assert agree(alice, bob, carol), "the members never converged on one epoch code"
    assert any("asking to be re-added" in t for t in bob.timeline())
    assert chat_continues(room, bob, alice, carol)


def test_concurrent_commits_delivered_in_different_orders_end_in_one_group(clock: ManualClock) -> None:
    """In a room where nobody talks: each member's keepalive beacon (every KEEPALIVE, give or take
    a quarter) reaches the minority unreadable, which makes hints; the majority reads its own."""
    from groupchat.client.session.inputs import RekeyRequested

    room, (alice, bob, carol) = start_room(clock, "alice", "bob", "carol")
    room.policy.hold(bob.mid)
    room.feed(alice, RekeyRequested(clock()))
    room.feed(carol, RekeyRequested(clock()))
    room.settle()
    room.release(bob, reverse=True)  # bob sees carol's commit first, the others alice's
    epoch = alice.machine.epoch
    assert epoch is not None and bob.machine.epoch == epoch  # the attack: one epoch, two stories
    assert bob.machine.epoch_codes[epoch] != alice.machine.epoch_codes[epoch]
    wait(room, clock, 3 * KEEPALIVE, step=5.0)
    assert agree(alice, bob, carol), "the members never converged on one epoch code"
    assert chat_continues(room, bob, alice, carol)


def test_replayed_welcomes_change_nothing(clock: ManualClock) -> None:
    room, members = start_room(clock, "alice", "bob", "carol")
    epochs = [m.machine.epoch for m in members]
    for d in [d for d in room.log if payload_kind(d.payload) is PayloadKind.WELCOME]:
        room.replay(d.seq)
        room.forge(d.sender, d.payload, to=None)  # and to everyone
    assert [m.machine.epoch for m in members] == epochs and agree(*members)


def test_frames_replayed_from_another_room_change_nothing(clock: ManualClock) -> None:
    """threats.md §1 item 17: a chat message, a commit and a join request of room G1 fed into G2."""
    other = HostileRoom(clock)
    other.room_name = "other"
    xavier = other.add("xavier")
    other.connect(xavier)
    yvonne = other.add("yvonne", **invited(other, xavier, "yvonne"))
    other.connect(yvonne)
    let_in(other, xavier, yvonne)
    wait(other, clock, 3)
    xavier.machine.queue_text("from the other room")
    other.tick()
    room, (alice, bob) = start_room(clock, "alice", "bob")
    epochs = [alice.machine.epoch, bob.machine.epoch]
    assert any(is_chat(d.payload) for d in other.log) and any(is_commit(d.payload) for d in other.log)
    for d in other.log:
        if payload_kind(d.payload) in (PayloadKind.CORE, PayloadKind.JOIN_REQUEST):
            room.forge(alice.mid, d.payload)
    wait(room, clock, 5)
    assert [alice.machine.epoch, bob.machine.epoch] == epochs and agree(alice, bob)
    assert "from the other room" not in chat(bob) + chat(alice)
    assert len(alice.machine.roster()) == 2
