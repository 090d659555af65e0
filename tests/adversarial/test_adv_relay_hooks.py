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
    from groupchat.client.room_payload import RoomPayload
    from groupchat.core.identity import JoinRequest

    req = JoinRequest.decode(RoomPayload.decode(v.join_request()).body)
    req.verify(room.config.suite())  # correctly signed: the attack is not a bad signature
    assert req.identity_key == v.identity.public_key
