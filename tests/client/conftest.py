"""Shared fixtures of the client tests: session machines in an in-memory room (session_room.py),
on one ManualClock. Time moves only when a test says so."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from session_room import Member, MemoryRoom

from groupchat.lab.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def room(clock: ManualClock) -> Iterator[MemoryRoom]:
    yield MemoryRoom(clock)


@pytest.fixture
def pair(room: MemoryRoom) -> tuple[Member, Member]:
    """alice created the group; bob joined it and committed his first update."""
    alice = room.add("alice")
    room.connect(alice)
    bob = room.add("bob")
    room.connect(bob)
    room.tick()
    return alice, bob
