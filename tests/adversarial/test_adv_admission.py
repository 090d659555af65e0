"""Issue 13, "the relay can join and read" and "one unsigned frame removes anyone"; threats.md §1
items 1 (ghost member), 2 (key substitution), 3 (forged or replayed removal), 24 (stale join
material) and 26 (the relay admits itself). Nothing joins that no member let in, and nothing a
member did not sign removes anyone."""

from __future__ import annotations

import pytest
from expect import (
    OPEN_ROOM,
    PENDING_JOINERS_MAX,
    approve,
    asks_to_join,
    holds_group,
    invited,
    let_in,
    pending_joiners,
    roster_keys,
    roster_names,
    says_open,
    shown_names,
    skeleton,
)
from hostile_relay import HostileRoom, VirtualMember, forged_request, is_chat, payload_kind, start_room

from groupchat.client.room_payload import PayloadKind, RoomPayload
from groupchat.client.session.inputs import KickRequested
from groupchat.core.errors import GroupChatError
from groupchat.core.events import MessageReceived
from groupchat.lab.clock import ManualClock

ADMITS_ON_PRESENCE = "issue 13: admission follows presence, not an invite or a member's approval"


def reads(v: VirtualMember, room: HostileRoom) -> list[bytes]:
    """Every chat plaintext the relay's identity can decrypt from the room's log with its keys."""
    out = []
    for group in v.opened():
        for d in room.log:
            if is_chat(d.payload):
                try:
                    event = group.receive(RoomPayload.decode(d.payload).body)
                except GroupChatError:
                    continue
                if isinstance(event, MessageReceived):
                    out.append(event.plaintext)
    return out


def wait(room: object, clock: ManualClock, seconds: float, step: float = 0.5) -> None:
    for _ in range(int(seconds / step)):
        clock.advance(step)
        room.tick()  # type: ignore[attr-defined]


def test_the_relays_own_identity_is_never_admitted_and_decrypts_nothing(clock: ManualClock) -> None:
    room, members = start_room(clock, "alice", "bob", "carol")
    mallory = room.virtual("mallory")
    room.announce(mallory.mid)  # "present": no socket, no machine behind it
    room.forge(mallory.mid, mallory.join_request())
    wait(room, clock, 10)
    members[0].machine.queue_text("the plan")
    room.tick()
    assert reads(mallory, room) == [], "the relay's identity decrypted the chat"
    assert mallory.opened() == [], "a welcome sent to the relay's identity opened"
    assert room.welcomes_for(mallory.mid) == []
    for m in members:
        assert mallory.identity.public_key not in roster_keys(m)
        assert "mallory" not in roster_names(m)


def test_a_lookalike_name_is_never_admitted_on_the_relays_word(clock: ManualClock) -> None:
    room, (alice, bob) = start_room(clock, "alice", "bob")
    impostor = room.virtual("b\u043eb")  # a Cyrillic o
    room.announce(impostor.mid)
    room.forge(impostor.mid, impostor.join_request())
    wait(room, clock, 10)
    assert impostor.opened() == []
    for m in (alice, bob):
        assert impostor.identity.public_key not in roster_keys(m)


def test_an_exact_duplicate_name_is_never_admitted_on_the_relays_word(clock: ManualClock) -> None:
    room, (alice, _bob) = start_room(clock, "alice", "bob")
    impostor = room.virtual("bob")
    room.announce(impostor.mid)
    room.forge(impostor.mid, impostor.join_request())
    wait(room, clock, 10)
    assert impostor.opened() == []
    assert impostor.identity.public_key not in roster_keys(alice)


def test_a_kicked_member_asking_again_is_not_back_without_an_invite(clock: ManualClock) -> None:
    room, (alice, bob, carol) = start_room(clock, "alice", "bob", "carol")
    room.feed(alice, KickRequested(carol.machine.identity.public_key, clock()))
    room.settle()
    assert carol.stopped
    again = room.add("carol", identity=carol.machine.identity)  # same identity, fresh state
    room.connect(again)
    wait(room, clock, 20)
    assert carol.machine.identity.public_key not in roster_keys(alice) | roster_keys(bob)
    assert not holds_group(again)


def test_a_forged_join_request_for_each_member_removes_nobody(clock: ManualClock) -> None:
    room, members = start_room(clock, "alice", "bob", "carol")
    keys = {m.machine.identity.public_key for m in members}
    for m in members:
        room.forge(m.mid, forged_request(m.machine.identity, room.room_name, room.config, m.name))
    wait(room, clock, 10)
    for m in members:
        assert holds_group(m), f"{m.name} lost the group"
        assert roster_keys(m) == keys, f"{m.name}'s roster changed"


def test_a_replayed_old_join_request_removes_nobody(clock: ManualClock) -> None:
    room, members = start_room(clock, "alice", "bob", "carol")
    keys = {m.machine.identity.public_key for m in members}
    epochs = {m.machine.epoch for m in members}
    for d in [d for d in room.log if payload_kind(d.payload) is PayloadKind.JOIN_REQUEST]:
        room.replay(d.seq)
    wait(room, clock, 10)
    for m in members:
        assert holds_group(m) and roster_keys(m) == keys
    assert {m.machine.epoch for m in members} == epochs  # nothing was committed for them


def test_an_uninvited_request_is_shown_as_asking_to_join_with_its_fingerprint(clock: ManualClock) -> None:
    room, (alice, bob) = start_room(clock, "alice", "bob")
    dave = room.virtual("dave")
    room.announce(dave.mid)
    room.forge(dave.mid, dave.join_request())
    wait(room, clock, 5)
    for m in (alice, bob):
        assert asks_to_join(m, "dave", dave.identity.fingerprint)
        assert dave.identity.public_key not in roster_keys(m)


def test_an_approved_joiner_gets_in_and_only_then(clock: ManualClock) -> None:
    room, (alice, bob) = start_room(clock, "alice", "bob")
    dave = room.add("dave")
    room.connect(dave)
    wait(room, clock, 5)
    assert not holds_group(dave), "dave got in without an invite or an approval"
    approve(room, alice, "dave")
    wait(room, clock, 5)
    assert holds_group(dave) and dave.machine.epoch == alice.machine.epoch == bob.machine.epoch


def test_an_evicted_member_comes_back_without_a_new_invite(clock: ManualClock) -> None:
    room, (alice, bob, carol) = start_room(clock, "alice", "bob", "carol")
    room.disconnect(carol)
    wait(room, clock, 70, step=2.0)
    key = carol.machine.identity.public_key
    assert key not in roster_keys(alice), "carol was not evicted: the scenario did not happen"
    room.connect(carol)
    wait(room, clock, 30, step=1.0)
    assert holds_group(carol) and key in roster_keys(alice) and key in roster_keys(bob)


def test_a_member_who_lost_its_state_comes_back_without_a_new_invite(clock: ManualClock) -> None:
    room, (alice, bob, carol) = start_room(clock, "alice", "bob", "carol")
    room.disconnect(carol)
    carol.stopped = True  # its state is gone
    again = room.add("carol", identity=carol.machine.identity)
    room.connect(again)
    wait(room, clock, 30, step=1.0)
    assert holds_group(again)
    assert again.machine.epoch == alice.machine.epoch == bob.machine.epoch
    assert len(roster_keys(alice)) == 3  # the old leaf replaced, not doubled


def test_a_kicked_members_saved_state_reads_nothing_afterwards(clock: ManualClock) -> None:
    room, (alice, bob, carol) = start_room(clock, "alice", "bob", "carol")
    hold = carol.machine._hold
    assert hold is not None
    kept = hold.group  # everything carol's machine held, kept by carol
    room.feed(alice, KickRequested(carol.machine.identity.public_key, clock()))
    room.settle()
    assert carol.stopped
    start = len(room.log)
    bob.machine.queue_text("after the kick")
    room.tick()
    read = []
    for d in room.log[start:]:
        if is_chat(d.payload):
            try:
                read.append(kept.receive(RoomPayload.decode(d.payload).body))
            except GroupChatError:
                continue
    assert read == []
    assert any(is_chat(d.payload) for d in room.log[start:])


def test_a_flood_of_signed_join_requests_is_kept_within_a_bound_and_admits_nobody(clock: ManualClock) -> None:
    room, (alice, _bob) = start_room(clock, "alice", "bob")
    for i in range(PENDING_JOINERS_MAX + 100):
        v = room.virtual(f"g{i}")
        room.forge(v.mid, v.join_request(), recipients=[alice], settle=False)
    room.settle()
    assert pending_joiners(alice) <= PENDING_JOINERS_MAX
    assert len(roster_keys(alice)) == 2


@pytest.mark.parametrize("name", ["bob", "b\u043eb", "\uff42\uff4f\uff42"])
def test_no_two_members_look_alike_even_when_let_in(clock: ManualClock, name: str) -> None:
    room, (alice, _bob) = start_room(clock, "alice", "bob")
    twin = room.add(name, **invited(room, alice, name))
    room.connect(twin)
    let_in(room, alice, twin)
    wait(room, clock, 5)
    for m in room.members.values():
        shown = [skeleton(n) for n in shown_names(m)]
        assert len(shown) == len(set(shown)), f"{m.name} shows two members alike: {shown_names(m)}"


def test_an_open_room_admits_a_newcomer_without_an_invite_and_says_so(clock: ManualClock) -> None:
    room = HostileRoom(clock)
    alice = room.add("alice", **OPEN_ROOM)
    room.connect(alice)
    wait(room, clock, 2)
    dave = room.add("dave")
    room.connect(dave)
    wait(room, clock, 5)
    assert holds_group(dave) and dave.machine.epoch == alice.machine.epoch
    assert says_open(alice) and says_open(dave)


def test_a_forged_request_cannot_push_out_the_kept_request_it_claims_to_replace(clock: ManualClock) -> None:
    """A member checks a join request's signature once, when Classify judges it; a request that
    would replace one it keeps for the same identity is checked first. So a badly signed copy
    claiming a waiting joiner's identity is refused, and the joiner's own request still gets it in."""
    room = HostileRoom(clock)
    alice = room.add("alice", **OPEN_ROOM)
    room.connect(alice)
    wait(room, clock, 2)
    bob = room.add("bob", **OPEN_ROOM)
    room.connect(bob)
    wait(room, clock, 5)
    victor = room.virtual("victor")
    # Only bob sees it: second in line, he waits add_timeout before he commits the Add himself.
    room.forge(victor.mid, victor.join_request(), recipients=[bob])
    assert pending_joiners(bob) == 1
    room.forge(
        victor.mid, forged_request(victor.identity, room.room_name, room.config, "victor"), recipients=[bob]
    )
    assert pending_joiners(bob) == 1
    wait(room, clock, 10)
    for m in (alice, bob):
        assert victor.identity.public_key in roster_keys(m), f"{m.name} never added victor"
