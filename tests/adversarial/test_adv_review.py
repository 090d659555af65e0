"""Issue 13 review: attacks found by the adversarial review, each mounted on real sessions in a
hostile room (hostile_relay.py) and asserting the specific outcome."""

from __future__ import annotations

import os

from expect import holds_group
from hostile_relay import HostileRoom, is_chat, is_commit, start_room, with_epoch
from session_room import Member

from groupchat.client.notices import ChatLine
from groupchat.client.room_payload import PayloadKind, RoomPayload
from groupchat.client.session import SessionSettings
from groupchat.core.invite import InviteSecret
from groupchat.lab.clock import ManualClock
from groupchat.relay_protocol import Deliver


def wait(room: HostileRoom, clock: ManualClock, seconds: float, step: float = 0.5) -> None:
    for _ in range(int(seconds / step)):
        clock.advance(step)
        room.tick()


def chat(member: Member) -> list[str]:
    return [n.text for n in member.notices() if isinstance(n, ChatLine) and not n.own]


def test_one_forged_huge_sequence_number_does_not_deafen_a_member_for_good(clock: ManualClock) -> None:
    """A Deliver whose seq is far ahead (a relay claim, on junk) made the member drop every later
    frame as "already processed": deaf to chat and commits until it reconnected."""
    room, (alice, bob, _carol) = start_room(clock, "alice", "bob", "carol")
    room.inbox.append((bob, Deliver(1 << 40, room.room, alice.mid, None, b"\x05" + os.urandom(8))))
    room.settle()
    bob.machine.queue_text("bob speaks")  # any publish of bob's is acknowledged with the real seq
    room.tick()
    wait(room, clock, 20)
    alice.machine.queue_text("after the forged seq")
    room.tick()
    wait(room, clock, 5)
    assert "after the forged seq" in chat(bob)
    assert chat(alice).count("bob speaks") == 1


def test_the_invite_code_never_shows_in_the_settings_repr() -> None:
    """SessionSettings is a dataclass: its repr (a log line, a traceback with locals) printed the code."""
    code = InviteSecret(bytes(16)).code
    settings = SessionSettings("ws://memory", "room", "dave", invite=code)
    assert code not in repr(settings)
    assert code[5:] not in repr(settings)


def test_forged_later_epoch_frames_in_an_idle_room_do_not_churn_the_group(clock: ManualClock) -> None:
    room, members = start_room(clock, "alice", "bob", "carol")
    alice = members[0]
    alice.machine.queue_text("hello")
    room.tick()
    body = RoomPayload.decode(next(d for d in room.log if is_chat(d.payload)).payload).body
    before = sum(is_commit(d.payload) for d in room.log)
    for _ in range(180):  # three minutes of one forged frame a second, nothing else said
        epoch = max(m.machine.epoch or 0 for m in members)
        forged = RoomPayload(PayloadKind.CORE, with_epoch(body, epoch + 5)).encode()
        room.forge(alice.mid, forged, settle=False)
        clock.advance(1.0)
        room.tick()
    commits = sum(is_commit(d.payload) for d in room.log) - before
    assert commits <= 6, f"{commits} commits (re-adds and their updates) caused by unsigned frames"


def test_a_revoke_that_lost_its_race_is_forgotten(clock: ManualClock) -> None:
    """Two members revoke one invite at once: the loser's revoke named an invite no longer live,
    so it was never committed and never forgotten (every input then planned a commit for it)."""
    from expect import invited

    from groupchat.client.session.inputs import RevokeRequested

    room, (alice, bob) = start_room(clock, "alice", "bob")
    invited(room, alice, "spare")
    (view,) = bob.machine.live_invites()
    room.policy.hold(bob.mid)  # bob has not yet seen alice's revoke when he asks for his
    room.feed(alice, RevokeRequested(view.invite_key, clock()))
    room.feed(bob, RevokeRequested(view.invite_key, clock()))
    room.settle()
    room.release(bob, reverse=False)
    wait(room, clock, 10)
    assert alice.machine.live_invites() == () and bob.machine.live_invites() == ()
    assert alice.machine.epoch == bob.machine.epoch
    assert not alice.machine._duties.revokes and not bob.machine._duties.revokes


def test_future_seq_answered_to_every_join_costs_a_bounded_number_of_joins(clock: ManualClock) -> None:
    """future_seq to a resume from 0 (nothing is ahead of the log's start) was answered with another
    Join from 0 at once: a relay that says it every time made the member loop as fast as it answered,
    a warning on the timeline each round."""
    from groupchat.client.session.actions import CloseConnection
    from groupchat.relay_protocol import ErrorCode, Join

    room, (alice, bob) = start_room(clock, "alice", "bob")
    room.policy.answer_join(ErrorCode.FUTURE_SEQ, bob.mid, times=1000)
    before = len(bob.sent())
    room.disconnect(bob)
    room.connect(bob)  # settles: the room raises if the member never stops asking
    joins = [a for a in bob.sent()[before:] if isinstance(a.frame, Join)]
    assert len(joins) <= 3
    assert any(isinstance(a, CloseConnection) for a in bob.actions)
    assert holds_group(bob)
    room.policy.behave()
    room.disconnect(bob)
    room.connect(bob)
    wait(room, clock, 10)
    assert alice.machine.epoch == bob.machine.epoch
    alice.machine.queue_text("once it behaves")
    room.tick()
    assert "once it behaves" in chat(bob)


def test_a_replayed_newer_request_of_a_joined_member_costs_one_readd_told_alike(clock: ManualClock) -> None:
    """The relay hides dave's welcome until he asks again with a fresh request, hides that one,
    then lets the welcome through and, once dave is in, replays the fresh request: the others
    re-add dave for it (its signature is his). He comes back in, and his sentence says what the
    others say (re-added), not "removed you as offline"."""
    from expect import invited, roster_names
    from hostile_relay import payload_kind

    from groupchat.relay_protocol import Deliver, ServerFrame

    room, (alice, bob) = start_room(clock, "alice", "bob")
    dave = room.add("dave", **invited(room, alice, "dave"))

    def welcome_to_dave(r: bytes, f: ServerFrame) -> bool:
        return isinstance(f, Deliver) and r == dave.mid and payload_kind(f.payload) is PayloadKind.WELCOME

    def request_from_dave(r: bytes, f: ServerFrame) -> bool:
        return (
            isinstance(f, Deliver)
            and f.sender == dave.mid
            and r != dave.mid
            and payload_kind(f.payload) is PayloadKind.JOIN_REQUEST
        )

    room.policy.drop(welcome_to_dave)
    room.connect(dave)
    wait(room, clock, 2)
    room.policy.drop(request_from_dave)
    wait(room, clock, 40)  # dave asks again with a fresh request that nobody gets
    room.policy.behave()
    requests = [
        d.seq
        for d in room.log
        if d.sender == dave.mid and payload_kind(d.payload) is PayloadKind.JOIN_REQUEST
    ]
    (welcome,) = [
        d.seq for d in room.log if d.to == dave.mid and payload_kind(d.payload) is PayloadKind.WELCOME
    ]
    room.replay(welcome, recipients=[dave])
    wait(room, clock, 3)
    assert holds_group(dave)
    before = len(dave.timeline())
    room.replay(requests[-1], recipients=[alice, bob])
    wait(room, clock, 30)
    assert roster_names(alice) == roster_names(dave) == {"alice", "bob", "dave"}
    assert alice.machine.epoch == bob.machine.epoch == dave.machine.epoch
    told = dave.timeline()[before:]
    assert not [t for t in told if "offline" in t], told
    # The fresh request was his (made while his welcome was hidden), still out when he got in by
    # the first: its re-add is his own request carried out, answered by its welcome, and no
    # further request (each one strictly newer would be one more re-add, for good).
    assert any("to re-add us, as we asked" in t for t in told), told
    assert sum("you joined" in t for t in told) == 1, told


def test_a_stale_left_claim_does_not_keep_an_evicted_member_out_once_the_relay_behaves(
    clock: ManualClock,
) -> None:
    """The relay hides carol's traffic and says she left; she is evicted (a silence it can cause),
    comes back with signed requests every few seconds, yet the others still took her for absent
    on that one old LEFT (nothing re-announces a member who never reconnected): out for good,
    her requests unanswered, after the relay behaved."""
    from expect import roster_keys

    room, (alice, bob, carol) = start_room(clock, "alice", "bob", "carol")
    room.policy.withhold(carol.mid)
    room.report_offline(carol)
    wait(room, clock, 130, step=2.0)
    key = carol.machine.identity.public_key
    assert key not in roster_keys(alice), "carol was not evicted: the scenario did not happen"
    room.policy.behave()
    wait(room, clock, 90, step=1.0)
    assert holds_group(carol)
    assert key in roster_keys(alice) and key in roster_keys(bob)
    assert roster_keys(carol) == roster_keys(alice)


def test_the_relay_saying_each_member_itself_left_does_not_stop_admission(clock: ManualClock) -> None:
    """One Presence LEFT naming each member's own id, sent to that member: each took itself for
    absent, so none was ever in line to commit, and an invited joiner never got in."""
    from expect import invited, roster_names

    from groupchat.relay_protocol import Presence, PresenceEvent

    room, (alice, bob) = start_room(clock, "alice", "bob")
    extra = invited(room, alice, "dave")
    for m in (alice, bob):
        room.inbox.append((m, Presence(room.room, m.mid, PresenceEvent.LEFT)))
    room.settle()
    dave = room.add("dave", **extra)
    room.connect(dave)
    wait(room, clock, 20)
    assert holds_group(dave)
    assert roster_names(alice) == roster_names(bob) == roster_names(dave) == {"alice", "bob", "dave"}


def test_an_idle_member_the_relay_says_left_is_not_evicted(clock: ManualClock) -> None:
    from expect import roster_keys

    room, (alice, bob, _carol) = start_room(clock, "alice", "bob", "carol")
    room.report_offline(bob)  # bob is connected all along; nobody says anything
    wait(room, clock, 200, step=2.0)
    assert bob.machine.identity.public_key in roster_keys(alice)
    assert not [t for t in bob.timeline() if "removed you" in t]


def test_a_flood_of_made_up_present_ids_does_not_keep_an_invited_joiner_out(clock: ManualClock) -> None:
    """MAX_PRESENT made-up ids filled the presence set; past the cap every new id was ignored, the
    invited joiner's too, so it was never "present" and never added (until everyone reconnected)."""
    from expect import invited, roster_names

    from groupchat.client.session.bounds import MAX_PRESENT
    from groupchat.relay_protocol import Presence, PresenceEvent

    room, (alice, bob) = start_room(clock, "alice", "bob")
    extra = invited(room, alice, "dave")
    for m in (alice, bob):
        for _ in range(MAX_PRESENT):
            room.inbox.append((m, Presence(room.room, os.urandom(16), PresenceEvent.JOINED)))
    room.settle()
    dave = room.add("dave", **extra)
    room.connect(dave)
    wait(room, clock, 30)
    assert holds_group(dave)
    assert roster_names(alice) == roster_names(dave) == {"alice", "bob", "dave"}
    assert len(alice.machine._present) <= MAX_PRESENT + 2
