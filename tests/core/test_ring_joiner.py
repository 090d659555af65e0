"""A ring joiner before its first epoch: its Welcome carries only the init_secret of the epoch
before it joined (docs/protocol.md §8.4), so until the ring creating its first epoch is done it
can neither send nor read at that epoch, and it never keeps that epoch's placeholder keys."""

from __future__ import annotations

import pytest
from ring_room import Room, grown

from groupchat.core.errors import EpochError, ReplayError, UsageError
from groupchat.core.events import MessageReceived


def _deliver(room: Room, name: str) -> None:
    """Everything in the log to one member only, sending what it must send."""
    group = room.members[name]
    while room.cursor[name] < len(room.log):
        data = room.log[room.cursor[name]]
        room.cursor[name] += 1
        group.receive(data)
        room.drain(name)


def test_a_ring_joiner_cannot_send_or_read_before_its_first_epoch_and_keeps_no_placeholder_keys() -> None:
    room = grown(2)
    m1 = room.members["m1"]
    early, late = m1.encrypt(b"at epoch 1"), m1.encrypt(b"also at epoch 1")
    room.commit("m0", add=["m2"])
    adding_commit = room.log[-1]
    _deliver(room, "m0")  # the echo: m0 starts the ring and releases the Welcome; m2 joins
    m2 = room.members["m2"]
    assert m2.joining and m2.epoch == 1

    with pytest.raises(UsageError, match="still agreeing our first epoch"):
        m2.encrypt(b"too early")
    with pytest.raises(UsageError, match="still agreeing our first epoch"):
        m2.epoch_authenticator  # noqa: B018 (a property that must refuse)
    with pytest.raises(EpochError, match="before we joined"):
        m2.receive(early)
    with pytest.raises(ReplayError, match="started the ring"):
        m2.receive(adding_commit)

    room.pump()
    room.assert_agreement()
    assert not m2.joining and m2.epoch == 2
    # Epoch 1's keys were never m2's: a late message of epoch 1 is refused by epoch, not tried
    # with the placeholder keys of the Welcome.
    with pytest.raises(EpochError, match="keys for epoch 2 only"):
        m2.receive(late)
    ev = room.members["m0"].receive(late)  # the others still read it (previous epoch kept)
    assert isinstance(ev, MessageReceived) and ev.plaintext == b"also at epoch 1"
