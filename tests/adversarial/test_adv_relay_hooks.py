"""The hostile relay itself: it behaves when told to, and each hook does what it says."""

from __future__ import annotations

from hostile_relay import HostileRoom, is_chat, start_room

from groupchat.client.notices import ChatLine
from groupchat.lab.clock import ManualClock


def chat(member: object) -> list[str]:
    return [n.text for n in member.notices() if isinstance(n, ChatLine)]  # type: ignore[attr-defined]


def test_a_behaving_hostile_room_is_an_ordinary_room(clock: ManualClock) -> None:
    room, (alice, bob, carol) = start_room(clock, "alice", "bob", "carol")
    assert {m.machine.epoch for m in (alice, bob, carol)} == {alice.machine.epoch}
    assert alice.machine.epoch is not None
    alice.machine.queue_text("hi")
    room.tick(alice)
    assert chat(bob) == chat(carol) == ["hi"]


def test_withhold_and_drop_act_per_recipient(clock: ManualClock) -> None:
    room, (alice, bob, carol) = start_room(clock, "alice", "bob", "carol")
    room.policy.withhold(alice.mid, bob.mid)
    alice.machine.queue_text("one")
    room.tick(alice)
    room.policy.behave()
    room.policy.drop(lambda to, f: to == carol.mid and hasattr(f, "payload") and is_chat(f.payload))
    alice.machine.queue_text("two")
    room.tick(alice)
    assert chat(bob) == ["two"] and chat(carol) == ["one"]
    assert len(room.policy.dropped) == 2


def test_a_virtual_member_signs_real_requests(clock: ManualClock) -> None:
    room = HostileRoom(clock)
    v = room.virtual("mallory")
    from groupchat.client.room_payload import JoinAsk, RoomPayload
    from groupchat.core.identity import JoinRequest

    req = JoinRequest.decode(JoinAsk.decode(RoomPayload.decode(v.join_request()).body).request)
    req.verify(room.config.suite())  # correctly signed: the attack is not a bad signature
    assert req.identity_key == v.identity.public_key


def test_partition_swallow_and_report_offline(clock: ManualClock) -> None:
    room, (alice, bob, carol, dave) = start_room(clock, "alice", "bob", "carol", "dave")
    room.policy.partition({alice.mid, bob.mid}, {carol.mid, dave.mid})
    alice.machine.queue_text("west")
    room.tick(alice)
    assert "west" in chat(bob) and "west" not in chat(carol) + chat(dave)
    room.policy.behave()
    room.policy.swallow(carol.mid, is_chat)
    carol.machine.queue_text("void")
    room.tick(carol)
    assert all("void" not in chat(m) for m in (alice, bob, carol, dave))  # no echo either
    assert any(d.sender == carol.mid and is_chat(d.payload) for d in room.log)  # but logged
    room.policy.behave()
    room.report_offline(dave, [alice])
    online = {e.name: e.online for e in alice.machine.roster()}
    assert online["dave"] is False and online["carol"] is True
    dave.machine.queue_text("still talking")
    room.tick(dave)
    assert "still talking" in chat(alice)


def test_join_answers_and_reorder(clock: ManualClock) -> None:
    from groupchat.relay_protocol import ErrorCode

    room, (_alice, bob) = start_room(clock, "alice", "bob")
    room.policy.answer_join(ErrorCode.ROOM_FULL, bob.mid, reason="no room for you")
    room.disconnect(bob)
    room.connect(bob)
    assert any("no room for you" in t for t in bob.timeline())
    room2, (carol, dave) = start_room(clock, "carol", "dave")
    room2.policy.hold(dave.mid)
    for text in ("one", "two", "three"):
        carol.machine.queue_text(text)
    room2.tick(carol)
    assert chat(dave) == []
    room2.release(dave, reverse=True)
    assert chat(dave) == ["three", "two", "one"]


def test_replay_gives_a_logged_frame_a_new_seq(clock: ManualClock) -> None:
    room, (alice, _bob) = start_room(clock, "alice", "bob")
    alice.machine.queue_text("again")
    room.tick(alice)
    d = next(d for d in room.log if is_chat(d.payload))
    r = room.replay(d.seq)
    assert r.seq == len(room.log) > d.seq and (r.sender, r.payload) == (d.sender, d.payload)
