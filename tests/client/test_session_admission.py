"""Who may come in (issue 13, item 1), with real session machines in the in-memory room: invites,
approvals, a kicked member asking again, an evicted one coming back, and one story per removal.
Every room here is invite-only, as a room is by default."""

from __future__ import annotations

import re

import pytest
from session_room import Member, MemoryRoom

from groupchat.client.names import AmbiguousMember
from groupchat.client.notices import ChatLine
from groupchat.client.room_payload import JoinAsk, PayloadKind, RoomPayload
from groupchat.client.session.inputs import ApproveRequested, FrameReceived, InviteRequested, KickRequested
from groupchat.client.session.phases import Phase
from groupchat.client.session.settings import member_id
from groupchat.core.errors import UsageError
from groupchat.core.identity import Identity, JoinRequest
from groupchat.relay_protocol import Deliver, Presence, PresenceEvent, SendTo

CLOSED = {"open_room": False}


def _invite(room: MemoryRoom, inviter: Member, uses: int = 1, lifetime: float = 3600.0) -> str:
    """Run ``/invite`` at ``inviter`` and return the code its timeline shows once committed."""
    room.feed(inviter, InviteRequested(uses, lifetime, "", room.clock()))
    room.settle()
    lines = [t for t in inviter.timeline() if t.startswith("invite ready")]
    assert lines, inviter.timeline()
    match = re.search(r"--invite (gci1-\S+)", lines[-1])
    assert match is not None
    return match.group(1)


def _settle_for(room: MemoryRoom, seconds: float, step: float = 0.5) -> None:
    for _ in range(int(seconds / step)):
        room.clock.advance(step)
        room.tick()


def _welcomes(member: Member) -> list[SendTo]:
    return [
        f.frame
        for f in member.sent()
        if isinstance(f.frame, SendTo) and RoomPayload.decode(f.frame.payload).kind is PayloadKind.WELCOME
    ]


def _reads(room: MemoryRoom, sender: Member, reader: Member, text: str) -> bool:
    sender.machine.queue_text(text)
    room.tick(sender)
    return any(isinstance(n, ChatLine) and n.text == text for n in reader.notices())


@pytest.fixture
def alice(room: MemoryRoom) -> Member:
    a = room.add("alice", **CLOSED)
    room.connect(a)
    assert a.machine.phase is Phase.MEMBER
    return a


def test_an_invited_joiner_comes_in_and_reads(room: MemoryRoom, alice: Member) -> None:
    code = _invite(room, alice)
    bob = room.add("bob", invite=code, **CLOSED)
    room.connect(bob)
    _settle_for(room, 3)
    assert bob.machine.phase is Phase.MEMBER
    assert bob.machine.epoch == alice.machine.epoch
    assert _reads(room, alice, bob, "welcome, bob")
    assert alice.machine._group is not None and alice.machine._group.admission.invites == ()  # used up


def test_without_an_invite_nobody_comes_in_until_a_member_approves(room: MemoryRoom, alice: Member) -> None:
    mallory = room.add("mallory", **CLOSED)
    room.connect(mallory)
    _settle_for(room, 20)
    assert mallory.machine.phase is Phase.JOINING and mallory.machine.epoch is None
    asks = [t for t in alice.timeline() if "asks to join" in t]
    assert len(asks) == 1 and "/approve mallory" in asks[0]  # shown once, however often it asks
    assert not _welcomes(alice)
    key = alice.machine.approval_for("mallory").identity_key
    room.feed(alice, ApproveRequested(key, room.clock()))
    _settle_for(room, 2)
    assert mallory.machine.phase is Phase.MEMBER and mallory.machine.epoch == alice.machine.epoch


def test_an_invite_is_good_for_its_uses_only(room: MemoryRoom, alice: Member) -> None:
    code = _invite(room, alice, uses=1)
    bob = room.add("bob", invite=code, **CLOSED)
    room.connect(bob)
    _settle_for(room, 3)
    carol = room.add("carol", invite=code, **CLOSED)
    room.connect(carol)
    _settle_for(room, 20)
    assert bob.machine.phase is Phase.MEMBER
    assert carol.machine.phase is Phase.JOINING
    assert any("carol" in t and "asks to join" in t and "not live" in t for t in alice.timeline())


def test_the_relays_own_identity_is_never_admitted(room: MemoryRoom, alice: Member) -> None:
    # The relay makes an identity, publishes its correctly signed request and says it is present:
    # there is no machine behind it, only the relay's frames.
    relay_id = Identity.generate()
    request = JoinRequest.create(
        alice.machine._suite, relay_id, alice.machine._group_id, "mallory", wall_clock=room.clock.wall
    ).request
    mid = member_id(relay_id.public_key)
    room.inbox.append((alice, Presence(room.room, mid, PresenceEvent.JOINED)))
    body = RoomPayload(PayloadKind.JOIN_REQUEST, JoinAsk(request.encoded).encode()).encode()
    for _ in range(5):
        room.log.append(Deliver(len(room.log) + 1, room.room, mid, None, body))
        room.inbox.append((alice, room.log[-1]))
        _settle_for(room, 5)
    group = alice.machine._group
    assert group is not None and [m.display_name for m in group.members()] == ["alice"]
    assert not _welcomes(alice)  # no welcome, so nothing to read


def test_a_kicked_member_asking_again_stays_out(room: MemoryRoom, alice: Member) -> None:
    code = _invite(room, alice, uses=2)
    bob_id = Identity.generate()
    bob = room.add("bob", identity=bob_id, invite=code, **CLOSED)
    room.connect(bob)
    _settle_for(room, 3)
    room.feed(alice, KickRequested(bob_id.public_key, room.clock()))
    room.settle()
    assert bob.stopped and "you were removed from the group by alice" in bob.timeline()
    # bob runs the client again, same identity, no invite: he must ask, and nobody lets him in.
    again = room.add("bob", identity=bob_id, **CLOSED)
    room.connect(again)
    _settle_for(room, 20)
    assert again.machine.phase is Phase.JOINING
    group = alice.machine._group
    assert group is not None and [m.display_name for m in group.members()] == ["alice"]


def test_a_member_evicted_as_offline_comes_back_without_an_invite(room: MemoryRoom) -> None:
    alice = room.add("alice", eviction_grace=10.0, **CLOSED)
    room.connect(alice)
    code = _invite(room, alice)
    bob_id = Identity.generate()
    bob = room.add("bob", identity=bob_id, invite=code, **CLOSED)
    room.connect(bob)
    _settle_for(room, 3)
    room.disconnect(bob)
    room.clock.advance(11)
    room.tick(alice)
    group = alice.machine._group
    assert group is not None and len(group.members()) == 1
    assert any(t.startswith("bob was removed by alice: not heard from for 10 s") for t in alice.timeline())
    # bob's machine comes back: it sees the removal in its backlog and asks again, and the
    # returning list lets it in (its invite is used up).
    room.connect(bob)
    _settle_for(room, 5)
    assert bob.machine.phase is Phase.MEMBER and bob.machine.epoch == alice.machine.epoch
    assert _reads(room, alice, bob, "back again")


def test_every_member_tells_the_same_story_of_one_removal(room: MemoryRoom, alice: Member) -> None:
    code = _invite(room, alice, uses=2)
    bob = room.add("bob", invite=code, **CLOSED)
    room.connect(bob)
    _settle_for(room, 3)
    carol = room.add("carol", invite=code, **CLOSED)
    room.connect(carol)
    _settle_for(room, 3)
    room.feed(bob, KickRequested(carol.machine.identity.public_key, room.clock()))
    room.settle()
    line = [t for t in alice.timeline() if t.startswith("carol was removed")]
    own = [t for t in bob.timeline() if t.startswith("carol was removed")]
    assert line and own
    assert line[-1].split(" · ")[0] == "carol was removed by bob"
    assert own[-1].split(" · ")[0] == "carol was removed by bob"  # the same sentence at the committer


def test_a_replayed_old_request_of_a_member_removes_nobody(room: MemoryRoom, alice: Member) -> None:
    code = _invite(room, alice)
    bob = room.add("bob", invite=code, **CLOSED)
    room.connect(bob)
    _settle_for(room, 3)
    epoch = alice.machine.epoch
    old = [
        d
        for d in room.log
        if d.sender == bob.mid and RoomPayload.decode(d.payload).kind is PayloadKind.JOIN_REQUEST
    ]
    assert old
    room.clock.advance(5)
    room.feed(
        alice,
        FrameReceived(Deliver(len(room.log) + 1, room.room, bob.mid, None, old[0].payload), room.clock()),
    )
    room.log.append(Deliver(len(room.log) + 1, room.room, bob.mid, None, b""))
    _settle_for(room, 10)
    assert alice.machine.epoch == epoch
    assert bob.machine.phase is Phase.MEMBER



def test_a_ring_group_is_invite_only_too(room: MemoryRoom) -> None:
    alice = room.add("alice", scheme="ring", **CLOSED)
    room.connect(alice)
    code = _invite(room, alice)
    bob = room.add("bob", invite=code, **CLOSED)
    room.connect(bob)
    _settle_for(room, 5)
    mallory = room.add("mallory", **CLOSED)
    room.connect(mallory)
    _settle_for(room, 10)
    assert bob.machine.phase is Phase.MEMBER and bob.machine.epoch == alice.machine.epoch
    assert mallory.machine.epoch is None
    assert any("mallory" in t and "asks to join" in t for t in bob.timeline())
    group = alice.machine._group
    assert group is not None and group.scheme == "ring"
    assert sorted(m.display_name for m in group.members()) == ["alice", "bob"]
    assert _reads(room, bob, alice, "ring and invites")


def test_a_flood_of_askers_is_shown_a_few_lines_a_minute(room: MemoryRoom, alice: Member) -> None:
    # The relay can make up any number of signed askers: the timeline does not drown.
    for k in range(40):
        ident = Identity.generate()
        req = JoinRequest.create(
            alice.machine._suite, ident, alice.machine._group_id, f"ghost{k}", wall_clock=room.clock.wall
        ).request
        body = RoomPayload(PayloadKind.JOIN_REQUEST, JoinAsk(req.encoded).encode()).encode()
        room.log.append(Deliver(len(room.log) + 1, room.room, member_id(ident.public_key), None, body))
        room.feed(alice, FrameReceived(room.log[-1], room.clock()))
    asks = [t for t in alice.timeline() if "asks to join" in t]
    assert len(asks) == 5
    room.clock.advance(61)
    ident = Identity.generate()
    req = JoinRequest.create(
        alice.machine._suite, ident, alice.machine._group_id, "late", wall_clock=room.clock.wall
    ).request
    body = RoomPayload(PayloadKind.JOIN_REQUEST, JoinAsk(req.encoded).encode()).encode()
    room.log.append(Deliver(len(room.log) + 1, room.room, member_id(ident.public_key), None, body))
    room.feed(alice, FrameReceived(room.log[-1], room.clock()))
    last = [t for t in alice.timeline() if "asks to join" in t][-1]
    assert last.startswith("late ") and "and 35 more asked meanwhile" in last


def test_the_codes_of_used_invites_are_not_kept(room: MemoryRoom, alice: Member) -> None:
    code = _invite(room, alice)
    assert list(alice.machine._invite_codes.values()) == [code]  # /invites can show it again
    bob = room.add("bob", invite=code, **CLOSED)
    room.connect(bob)
    _settle_for(room, 3)
    assert bob.machine.phase is Phase.MEMBER
    assert alice.machine._invite_codes == {}  # used up: its secret is forgotten


def test_approve_names_one_asker_as_commands_name_one_member(room: MemoryRoom, alice: Member) -> None:
    twins = [room.add("carol", **CLOSED) for _ in range(2)]
    for m in twins:
        room.connect(m)
    _settle_for(room, 2)
    with pytest.raises(AmbiguousMember) as refused:
        alice.machine.approval_for("carol")
    assert len(refused.value.candidates) == 2
    with pytest.raises(UsageError, match="no one waiting to join matches 'dave'"):
        alice.machine.approval_for("dave")
    chosen = twins[1].machine.identity
    fp = chosen.fingerprint.replace(" ", "")[:8]
    assert alice.machine.approval_for(fp).identity_key == chosen.public_key
