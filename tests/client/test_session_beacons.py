"""Beacons report loss, withholding and forks (issue 13 item 4): real session machines in an
in-memory room whose relay drops, withholds and partitions on request (:class:`FaultyRoom`)."""

from __future__ import annotations

import pytest
from session_room import Member, MemoryRoom

from groupchat.client import wording
from groupchat.client.app_content import AppContent, ContentKind
from groupchat.client.notices import ChatLine, Placeholder, TimelineEvent, TimelineKind, UnreadableReason
from groupchat.client.room_payload import PayloadKind, RoomPayload
from groupchat.client.session.actions import CallCore
from groupchat.client.session.core_calls import Encrypt
from groupchat.client.session.inputs import FrameReceived, Input, RekeyRequested
from groupchat.lab.clock import ManualClock
from groupchat.relay_protocol import Deliver, Publish


class FaultyRoom(MemoryRoom):
    """The memory relay, with hooks: ``cut`` holds (sender, recipient) member-id pairs whose room
    deliveries it drops (the sender's own echo still comes back, so the sender believes it sent)."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock)
        self.cut: set[tuple[bytes, bytes]] = set()

    def feed(self, member: Member, item: Input) -> list[object]:  # type: ignore[override]
        if isinstance(item, FrameReceived) and isinstance(item.frame, Deliver):
            d = item.frame
            if d.sender != member.mid and (d.sender, member.mid) in self.cut:
                return []
        return list(super().feed(member, item))

    def withhold(self, sender: Member, *recipients: Member) -> None:
        for r in recipients or tuple(m for m in self.members.values() if m is not sender):
            self.cut.add((sender.mid, r.mid))

    def run(self, seconds: float, step: float = 1.0) -> None:
        """Let ``seconds`` pass, ticking every member every ``step``."""
        for _ in range(round(seconds / step)):
            self.clock.advance(step)
            self.tick()


@pytest.fixture
def froom(clock: ManualClock) -> FaultyRoom:
    return FaultyRoom(clock)


def _group(room: FaultyRoom, *names: str) -> list[Member]:
    members = []
    for name in names:
        m = room.add(name)
        room.connect(m)
        room.tick()
        members.append(m)
    room.run(25)  # everyone's first update, the beacons after it and their bounds
    return members


def _say(room: FaultyRoom, member: Member, text: str) -> None:
    member.machine.queue_text(text)
    room.tick(member)


def _warnings(m: Member, since: int = 0) -> list[str]:
    events = [n for n in m.notices()[since:] if isinstance(n, TimelineEvent)]
    return [e.text for e in events if e.kind is TimelineKind.WARNING]


def _texts(m: Member) -> list[str]:
    return [n.text for n in m.notices() if isinstance(n, ChatLine)]


def _beacons_sent(m: Member) -> int:
    return sum(
        1
        for a in m.actions
        if isinstance(a, CallCore)
        and isinstance(a.call, Encrypt)
        and a.call.plaintext[:1] == bytes((ContentKind.BEACON,))
    )


def test_a_behaving_relay_gives_no_report_and_beacons_are_never_chat(froom: FaultyRoom) -> None:
    members = _group(froom, "alice", "bob", "carol")
    marks = [len(m.notices()) for m in members]
    beacons_before = [_beacons_sent(m) for m in members]
    said: dict[str, list[str]] = {m.name: [] for m in members}
    for i in range(40):  # two minutes of chat, with a rekey in the middle
        sender = members[i % 3]
        text = f"message {i}"
        _say(froom, sender, text)
        said[sender.name].append(text)
        if i == 20:
            froom.feed(members[1], RekeyRequested(froom.clock()))
            froom.settle()
        froom.run(3)
    froom.run(80)  # the last beacons and every bound after them
    for m, mark in zip(members, marks, strict=True):
        assert _warnings(m, mark) == []
        assert not [n for n in m.notices()[mark:] if isinstance(n, Placeholder)]
        expected = [t for other in members if other is not m for t in said[other.name]]
        assert sorted(_texts(m)) == sorted(expected)  # beacons are never shown as lines
    # Beacons did flow (after each epoch change and while chat flowed), and stopped when it did.
    assert all(_beacons_sent(m) > b + 3 for m, b in zip(members, beacons_before, strict=True))
    quiet = [_beacons_sent(m) for m in members]
    froom.run(120, step=10)
    assert [_beacons_sent(m) for m in members] == quiet  # an idle room sends none


def test_a_dropped_message_is_reported_to_its_recipient_and_its_sender(froom: FaultyRoom) -> None:
    alice, bob = _group(froom, "alice", "bob")
    a0, b0 = len(alice.notices()), len(bob.notices())
    _say(froom, alice, "one")
    froom.withhold(alice, bob)
    _say(froom, alice, "two")  # the relay logs it and echoes it to alice, but bob never gets it
    froom.cut.clear()
    froom.run(25)  # within the bound: alice's next beacon claims 2, bob got 1
    assert _texts(bob) == ["one"]
    assert _warnings(bob, b0) == [wording.messages_lost(1, "alice")]
    # bob's beacon confirms one of alice's two messages: she is told about the other.
    assert _warnings(alice, a0) == [wording.messages_unconfirmed(1)]
    froom.run(60)
    assert _warnings(bob, b0) == [wording.messages_lost(1, "alice")]  # reported once


def test_a_gap_in_generations_is_reported_even_without_the_senders_beacon(froom: FaultyRoom) -> None:
    alice, bob = _group(froom, "alice", "bob")
    b0 = len(bob.notices())
    froom.withhold(alice, bob)
    for text in ("one", "two", "three"):
        _say(froom, alice, text)
    froom.cut.clear()
    _say(froom, alice, "four")
    # alice's beacons are withheld from bob from now on: only the gap in her generations speaks.
    froom.withhold(alice, bob)
    froom.run(30)
    assert _texts(bob) == ["four"]
    assert wording.messages_lost(3, "alice") in _warnings(bob, b0)


def test_the_sender_of_withheld_messages_is_told_nobody_confirmed_them(froom: FaultyRoom) -> None:
    alice, bob, carol = _group(froom, "alice", "bob", "carol")
    a0 = len(alice.notices())
    froom.withhold(alice)
    _say(froom, alice, "anyone?")
    _say(froom, alice, "hello?")
    froom.run(14)
    assert _warnings(alice, a0) == []  # inside the bound
    froom.run(6)
    assert _warnings(alice, a0) == [wording.messages_unconfirmed(2)]
    assert _texts(bob) == _texts(carol) == []


def test_an_update_nobody_confirms_is_reported(froom: FaultyRoom) -> None:
    alice, bob = _group(froom, "alice", "bob")
    a0 = len(alice.notices())
    froom.withhold(bob, alice)  # alice's commit goes through; nothing of bob's comes back
    froom.feed(alice, RekeyRequested(froom.clock()))
    froom.settle()
    assert alice.machine.epoch == bob.machine.epoch
    froom.run(20)
    assert _warnings(alice, a0) == [wording.commit_unconfirmed(True, 15.0)]


def test_a_withheld_member_is_reported_as_not_heard_while_the_relay_says_online(froom: FaultyRoom) -> None:
    alice, bob, carol = _group(froom, "alice", "bob", "carol")
    a0 = len(alice.notices())
    froom.withhold(bob)
    for i in range(8):  # alice and carol keep chatting; bob's beacons (and anything else) vanish
        _say(froom, (alice, carol)[i % 2], f"message {i}")
        froom.run(10)
    assert all(r.online for r in alice.machine.roster())  # the relay says bob is there
    warned = _warnings(alice, a0)
    assert warned.count(wording.not_heard("bob", 60.0)) == 1
    assert not any("carol" in w for w in warned)
    heard_bob = alice.machine.last_heard(bob.machine.identity.public_key)
    heard_carol = alice.machine.last_heard(carol.machine.identity.public_key)
    assert heard_bob is not None and heard_carol is not None
    assert froom.clock() - heard_bob >= 80 and froom.clock() - heard_carol < 15
    # Nothing removes him: the report is all.
    assert alice.machine.epoch == bob.machine.epoch and len(alice.machine.roster()) == 3


def test_a_fork_names_the_member_on_the_other_side_when_its_beacon_crosses(froom: FaultyRoom) -> None:
    alice, bob, carol = _group(froom, "alice", "bob", "carol")
    a0, b0 = len(alice.notices()), len(bob.notices())
    epoch = alice.machine.epoch
    assert epoch is not None
    # The relay shows carol nothing of alice and bob from now on; alice's update splits the group.
    froom.withhold(alice, carol)
    froom.withhold(bob, carol)
    froom.feed(alice, RekeyRequested(froom.clock()))
    froom.settle()
    assert alice.machine.epoch == bob.machine.epoch == epoch + 1 and carol.machine.epoch == epoch
    _say(froom, carol, "is anyone here?")  # read at alice and bob with the previous epoch's keys
    froom.run(15)
    for m, mark in ((alice, a0), (bob, b0)):
        assert wording.fork_view("carol") in _warnings(m, mark)
        assert _warnings(m, mark).count(wording.fork_view("carol")) == 1


def test_a_malformed_beacon_is_a_placeholder_not_a_crash(froom: FaultyRoom) -> None:
    alice, bob = _group(froom, "alice", "bob")
    b0 = len(bob.notices())
    hold = alice.machine._hold
    assert hold is not None
    data = hold.group.encrypt(AppContent.beacon(b"\x00\x01junk").encode())  # signed by alice
    froom._route(alice, Publish(99, froom.room, RoomPayload(PayloadKind.CORE, data).encode()))
    froom.settle()
    shown = [n for n in bob.notices()[b0:] if isinstance(n, Placeholder)]
    assert len(shown) == 1 and shown[0].reason is UnreadableReason.TAMPERED and shown[0].sender == "alice"
    assert shown[0].detail.startswith("a malformed beacon: beacon: truncated")
    _say(froom, alice, "still fine")
    assert _texts(bob) == ["still fine"]


def test_a_commit_is_confirmed_by_two_beacons_to_its_committer_alone(froom: FaultyRoom) -> None:
    members = _group(froom, "alice", "bob", "carol", "dave")
    alice = members[0]
    before = len(froom.log)
    sent = [_beacons_sent(m) for m in members]
    froom.feed(alice, RekeyRequested(froom.clock()))
    froom.settle()
    froom.run(20)
    new = froom.log[before:]
    addressed = [d for d in new if d.to is not None]
    assert len(addressed) == 2 and all(d.to == alice.mid for d in addressed)
    assert [_beacons_sent(m) - s for m, s in zip(members, sent, strict=True)].count(1) == 2
    assert len(new) == 3  # the commit and the two beacons: nobody else spoke
    assert _warnings(alice) == []
