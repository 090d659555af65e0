"""The lab's in-process relay: one total order, the echo, directed sends, partial hand-over."""

from __future__ import annotations

import pytest

from groupchat.core.errors import UsageError
from groupchat.core.events import EpochChanged, MessageEchoed, MessageReceived
from groupchat.core.group import Group
from groupchat.core.identity import Identity, JoinRequest
from groupchat.core.outbox import ROOM, Joiner, OutboundKind
from groupchat.lab.room import Room


def _room_of_two() -> Room[str, Group]:
    room: Room[str, Group] = Room()
    alice = Group.create(Identity.generate(), b"lab-room", "alice")
    room.join("alice", alice)
    pending = JoinRequest.create(alice.suite, Identity.generate(), b"lab-room", "bob")
    room.expect("bob", pending.request.identity_key, lambda w: Group.join(pending, w, alice.config))
    events = room.deliver(alice.commit(add=[pending.request]), "alice")
    own = events["alice"]
    assert isinstance(own, EpochChanged) and own.own
    (flushed,) = room.flush("alice")  # the Welcome, released by the commit's echo
    assert flushed.outbound.kind is OutboundKind.WELCOME and isinstance(flushed.outbound.to, Joiner)
    assert flushed.delivery.to == "bob" and flushed.delivery.sender == "alice" and flushed.events == {}
    assert list(room.members) == ["alice", "bob"] and room.members["bob"].epoch == alice.epoch
    return room


def test_send_flushes_the_outbox_welcome_to_the_expected_joiner() -> None:
    room = _room_of_two()
    bob = room.members["bob"]
    pending = JoinRequest.create(bob.suite, Identity.generate(), b"lab-room", "carol")
    room.expect("carol", pending.request.identity_key, lambda w: Group.join(pending, w, bob.config))
    with pytest.raises(UsageError, match="already in the room"):
        room.expect("carol", b"another key", lambda w: Group.join(pending, w, bob.config))
    head = room.head
    events = room.send(bob.commit(add=[pending.request]), "bob")
    assert list(events) == ["alice", "bob"]
    # the commit, its Welcome to carol, then whatever carol's outbox had on joining (cascade)
    assert [(d.sender, d.to) for d in room.since(head)[:2]] == [("bob", None), ("bob", "carol")]
    assert all(d.sender == "carol" and d.to is None for d in room.since(head)[2:])
    assert {g.epoch_authenticator for g in room.members.values()} == {bob.epoch_authenticator}
    assert room.flush("bob") == []  # drained


def test_flush_of_an_unexpected_joiner_is_a_usage_error() -> None:
    room = _room_of_two()
    alice = room.members["alice"]
    pending = JoinRequest.create(alice.suite, Identity.generate(), b"lab-room", "mallory")
    room.deliver(alice.commit(add=[pending.request]), "alice")
    with pytest.raises(UsageError, match="no joiner 'mallory' is expected"):
        room.flush("alice")


def test_flush_without_hand_over_only_sequences() -> None:
    room = _room_of_two()
    alice = room.members["alice"]
    pending = JoinRequest.create(alice.suite, Identity.generate(), b"lab-room", "dave")
    room.expect("dave", pending.request.identity_key, lambda w: Group.join(pending, w, alice.config))
    room.deliver(alice.commit(add=[pending.request]), "alice", only=["alice"])
    head = room.head
    (flushed,) = room.flush("alice", hand_over=False)
    assert flushed.outbound.to is not ROOM and flushed.delivery.seq == head + 1 and "dave" in room.members


def test_deliver_sequences_echoes_and_reaches_everyone() -> None:
    room = _room_of_two()
    data = room.members["bob"].encrypt(b"hi")
    events = room.deliver(data, "bob")
    assert list(events) == ["alice", "bob"]
    assert isinstance(events["bob"], MessageEchoed)
    got = events["alice"]
    assert isinstance(got, MessageReceived) and got.plaintext == b"hi"
    assert [d.seq for d in room.log] == [1, 2, 3] and room.head == 3  # commit, welcome, message
    assert room.since(2) == [room.log[2]] and room.log[2].payload == data


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
    assert list(events) == ["alice"] and room.head == 3
    late = room.members["bob"].receive(room.since(2)[0].payload)  # a resume hands it over later
    assert isinstance(late, MessageReceived) and late.plaintext == b"held back from bob"


def test_roster_errors_are_usage_errors() -> None:
    room = _room_of_two()
    with pytest.raises(UsageError, match="already in the room"):
        room.join("bob", room.members["bob"])
    room.leave("bob")
    with pytest.raises(UsageError, match="not in the room"):
        room.leave("bob")
