"""The lab's in-process relay: one total order, the echo, directed sends, partial hand-over."""

from __future__ import annotations

import pytest

from groupchat.core.errors import UsageError
from groupchat.core.events import EpochChanged, MessageEchoed, MessageReceived
from groupchat.core.group import Group
from groupchat.core.identity import Identity, JoinRequest
from groupchat.lab.room import Room


def _room_of_two() -> Room[str, Group]:
    room: Room[str, Group] = Room()
    alice = Group.create(Identity.generate(), b"lab-room", "alice")
    room.join("alice", alice)
    pending = JoinRequest.create(alice.suite, Identity.generate(), b"lab-room", "bob")
    events = room.deliver(alice.commit(add=[pending.request]), "alice")
    own = events["alice"]
    assert isinstance(own, EpochChanged) and own.own and own.welcome is not None
    room.join("bob", Group.join(pending, own.welcome, alice.config))
    return room


def test_deliver_sequences_echoes_and_reaches_everyone() -> None:
    room = _room_of_two()
    data = room.members["bob"].encrypt(b"hi")
    events = room.deliver(data, "bob")
    assert list(events) == ["alice", "bob"]
    assert isinstance(events["bob"], MessageEchoed)
    got = events["alice"]
    assert isinstance(got, MessageReceived) and got.plaintext == b"hi"
    assert [d.seq for d in room.log] == [1, 2] and room.head == 2
    assert room.since(1) == [room.log[1]] and room.log[1].payload == data


def test_directed_send_goes_to_the_addressee_and_echoes_to_the_sender() -> None:
    room = _room_of_two()
    room.join("carol", room.members["alice"])  # any receiver; never handed this message
    d = room.publish(b"x", sender="alice", to="bob")
    assert room.recipients(d) == ["alice", "bob"]
    with pytest.raises(UsageError, match="not in the room"):
        room.publish(b"x", sender="alice", to="dave")


def test_only_holds_a_message_back_but_still_logs_it() -> None:
    room = _room_of_two()
    data = room.members["alice"].encrypt(b"held back from bob")
    events = room.deliver(data, "alice", only=["alice"])
    assert list(events) == ["alice"] and room.head == 2
    late = room.members["bob"].receive(room.since(1)[0].payload)  # a resume hands it over later
    assert isinstance(late, MessageReceived) and late.plaintext == b"held back from bob"


def test_roster_errors_are_usage_errors() -> None:
    room = _room_of_two()
    with pytest.raises(UsageError, match="already in the room"):
        room.join("bob", room.members["bob"])
    room.leave("bob")
    with pytest.raises(UsageError, match="not in the room"):
        room.leave("bob")
