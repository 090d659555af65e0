"""Issue 13, "presence is trusted for eviction", "loss and partition are silent" and "members tell
different stories"; threats.md §1 items 3 (no one falsely evicted), 11 (fork, partition), 12
(selective dropping), 14 (a withheld self-update), 28 (silent loss) and 30 (one story per event).
What only the relay says never evicts anyone; what it hides is reported, naming whom it concerns."""

from __future__ import annotations

from expect import (
    holds_group,
    removal_sentence,
    reports_fork,
    reports_loss,
    reports_not_heard,
    reports_unconfirmed,
    roster_keys,
)
from hostile_relay import HostileRoom, is_chat, is_commit, start_room
from session_room import Member

from groupchat.client.notices import ChatLine
from groupchat.client.session.inputs import RekeyRequested
from groupchat.lab.clock import ManualClock
from groupchat.relay_protocol import Deliver, ServerFrame

GRACE = 60.0
NO_BEACONS = "issue 13: no signed beacons yet, so nothing reports what the relay hid"


def talk(room: HostileRoom, clock: ManualClock, seconds: float, *talkers: Member, every: float = 5.0) -> None:
    """Let ``seconds`` pass, each talker sending a message every ``every`` seconds."""
    t = 0.0
    while t < seconds:
        for m in talkers:
            if not m.stopped:
                m.machine.queue_text(f"{m.name} at {t:.0f}")
        clock.advance(every)
        room.tick()
        t += every


def test_an_online_member_whose_messages_arrive_is_never_evicted(clock: ManualClock) -> None:
    room, (alice, bob, carol) = start_room(clock, "alice", "bob", "carol")
    room.report_offline(bob)  # to alice and carol: "bob left"; his frames still flow
    talk(room, clock, 2.5 * GRACE, bob)
    key = bob.machine.identity.public_key
    assert not bob.stopped and holds_group(bob), "bob's session ended"
    assert key in roster_keys(alice) and key in roster_keys(carol), "bob was evicted"


def test_a_dropped_message_is_reported_to_its_recipient(clock: ManualClock) -> None:
    room, (alice, bob, carol) = start_room(clock, "alice", "bob", "carol")
    dropped: list[bytes] = []
    until = clock() + 12.0

    def drop_window(to: bytes, f: ServerFrame) -> bool:
        # The relay cannot tell chat from beacons (both are encrypted): it drops every message
        # of alice's to bob for 12 s, which holds at least two of her chat messages.
        ours = to == bob.mid and isinstance(f, Deliver) and f.sender == alice.mid and is_chat(f.payload)
        if ours and clock() <= until:
            assert isinstance(f, Deliver)
            dropped.append(f.payload)
            return True
        return False

    room.policy.drop(drop_window)
    talk(room, clock, 40, alice, carol)
    assert dropped, "the attack did not happen"
    assert reports_loss(bob, "alice"), "bob was not told that a message from alice did not reach him"
    assert not reports_loss(carol, "alice")  # carol got everything: no false alarm


def test_a_withheld_member_is_reported_as_not_heard_from(clock: ManualClock) -> None:
    room, (alice, bob, carol) = start_room(clock, "alice", "bob", "carol")
    room.policy.withhold(bob.mid, alice.mid)
    room.policy.withhold(bob.mid, carol.mid)
    talk(room, clock, 1.5 * GRACE, alice, bob, carol)
    assert reports_not_heard(alice, "bob") and reports_not_heard(carol, "bob")
    assert bob.machine.identity.public_key in roster_keys(alice)  # reported, not removed


def test_a_withheld_self_update_is_reported_to_its_sender(clock: ManualClock) -> None:
    room, (alice, bob, _carol) = start_room(clock, "alice", "bob", "carol")
    room.policy.swallow(bob.mid, is_commit)  # acknowledged, delivered to nobody
    room.feed(bob, RekeyRequested(clock()))
    room.settle()
    talk(room, clock, 30, alice)
    assert reports_unconfirmed(bob), "bob was not told that nobody confirmed his update"


def test_unconfirmed_messages_are_reported_to_their_sender(clock: ManualClock) -> None:
    room, (alice, bob, _carol) = start_room(clock, "alice", "bob", "carol")
    room.policy.swallow(bob.mid, is_chat)
    talk(room, clock, 30, bob, alice)
    assert reports_unconfirmed(bob)


def test_a_partition_is_reported_on_both_sides(clock: ManualClock) -> None:
    room, members = start_room(clock, "alice", "bob", "carol", "dave")
    alice, bob, carol, dave = members
    room.policy.partition({alice.mid, bob.mid}, {carol.mid, dave.mid})
    for m in (alice, carol):
        room.feed(m, RekeyRequested(clock()))
    room.settle()
    talk(room, clock, 1.5 * GRACE, *members)
    pairs = [(alice, carol), (bob, dave), (carol, alice), (dave, bob)]
    for m, other in pairs:
        assert reports_fork(m, other.name) or reports_not_heard(m, other.name), f"{m.name} was not told"
    for m in members:  # reported, nobody removed by the relay's split
        assert len(roster_keys(m)) == 4


def test_every_member_tells_the_same_story_of_one_removal(clock: ManualClock) -> None:
    room, (alice, bob, carol) = start_room(clock, "alice", "bob", "carol")
    room.disconnect(carol)
    talk(room, clock, GRACE + 10, alice, bob)
    assert carol.machine.identity.public_key not in roster_keys(alice) | roster_keys(bob)
    told = {removal_sentence(alice, "carol"), removal_sentence(bob, "carol")}
    assert None not in told and len(told) == 1, told


def test_a_suppressed_removal_is_reported_to_its_committer(clock: ManualClock) -> None:
    from groupchat.client.session.inputs import KickRequested

    room, (alice, _bob, carol) = start_room(clock, "alice", "bob", "carol")
    room.policy.swallow(alice.mid, is_commit)  # the kick is acknowledged and reaches nobody
    room.feed(alice, KickRequested(carol.machine.identity.public_key, clock()))
    room.settle()
    talk(room, clock, 30, alice)
    assert not carol.stopped  # the relay did suppress it
    assert reports_unconfirmed(alice), "alice was not told that her removal of carol went nowhere"


def test_messages_the_relay_delivers_out_of_seq_order_are_reported_if_not_shown(clock: ManualClock) -> None:
    room, (alice, bob) = start_room(clock, "alice", "bob")
    room.policy.hold(bob.mid)
    for text in ("one", "two", "three"):
        alice.machine.queue_text(text)
    room.tick(alice)
    room.release(bob, reverse=True, renumber=False)  # "three" first, under its own (highest) seq
    shown = [n.text for n in bob.notices() if isinstance(n, ChatLine)]
    missing = {"one", "two", "three"} - set(shown)
    assert missing, "the attack did not hide anything"
    talk(room, clock, 30, alice)
    assert reports_loss(bob, "alice"), f"bob was not told of {sorted(missing)}"
