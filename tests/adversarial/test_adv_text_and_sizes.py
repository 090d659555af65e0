"""Issue 13, "relay-chosen text reaches the terminal" and "relay-chosen sizes cost memory and
time"; threats.md §1 item 29. No control, escape or bidi character the relay chose reaches a
notice or a log line; no input's cost grows with a set the relay chose; a waiting joiner keeps a
bounded number of bytes."""

from __future__ import annotations

import logging
import os
import statistics
import time

import pytest
from expect import (
    JOINER_BUFFER_MAX_BYTES,
    MAX_COST_RATIO,
    PRESENCE_IDS_MAX,
    foreign_control,
    holds_group,
    invited,
    joiner_buffer_bytes,
    let_in,
    notice_texts,
    relay_ids_kept,
)
from hostile_relay import HostileRoom, payload_kind, start_room
from session_room import Member

from groupchat.client.room_payload import PayloadKind, RoomPayload
from groupchat.client.session.driver import drive
from groupchat.client.session.inputs import FrameReceived
from groupchat.lab.clock import ManualClock
from groupchat.relay_protocol import (
    MAX_MEMBERS_LISTED,
    Deliver,
    ErrorCode,
    Presence,
    PresenceEvent,
    ServerFrame,
)

EVIL = "\x1b[2J\x1b]0;owned\x07\u202efake\u202c\r\n* alice was removed by bob \x9b31m"
PRESENCE_FLOOD = 2 * PRESENCE_IDS_MAX
NOT_SANITISED = "issue 13: relay-chosen text reaches notices and logs with its escapes"


def leaks(member: Member) -> list[str]:
    return [t for t in notice_texts(member) if foreign_control(t)]


def test_an_error_frames_reason_never_reaches_a_notice_or_log_with_its_escapes(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    room, (alice, _bob) = start_room(clock, "alice", "bob")
    with caplog.at_level(logging.DEBUG, logger="groupchat"):
        for code in (ErrorCode.REPLACED, ErrorCode.SLOW_CONSUMER, ErrorCode.SHUTTING_DOWN, EVIL):
            room.error(alice, code, EVIL)
    assert any("fake" in t for t in notice_texts(alice)), "the relay's words were not shown at all"
    assert leaks(alice) == []
    assert [r.getMessage() for r in caplog.records if foreign_control(r.getMessage())] == []


def test_a_join_refusals_reason_never_reaches_a_notice_with_its_escapes(clock: ManualClock) -> None:
    room = HostileRoom(clock)
    alice = room.add("alice")
    room.policy.answer_join(ErrorCode.ROOM_FULL, reason=EVIL)
    room.connect(alice)
    assert any("fake" in t for t in notice_texts(alice))
    assert leaks(alice) == []


def _one_input(member: Member, clock: ManualClock, mid: bytes, event: PresenceEvent) -> float:
    """Seconds for the member to take one presence input and arm its timer (as the glue does)."""
    start = time.perf_counter()
    drive(member.machine, FrameReceived(Presence(b"room", mid, event), clock()), clock)
    member.machine.next_wakeup(clock())
    return time.perf_counter() - start


def test_a_flood_of_fake_presence_ids_keeps_the_cost_per_input_flat(clock: ManualClock) -> None:
    _room, (alice, bob) = start_room(clock, "alice", "bob")

    def fake() -> bytes:
        return os.urandom(16).hex().encode()

    for _ in range(3000):  # the flood, at alice only
        mid = fake()
        _one_input(alice, clock, mid, PresenceEvent.JOINED)
        _one_input(alice, clock, mid, PresenceEvent.LEFT)
    # Interleaved, input by input, so that the machine's load weighs on both alike: bob is the
    # same kind of member without the flood.
    flooded: list[float] = []
    spared: list[float] = []
    for _ in range(150):
        mid = fake()
        for event in (PresenceEvent.JOINED, PresenceEvent.LEFT):
            spared.append(_one_input(bob, clock, mid, event))
            flooded.append(_one_input(alice, clock, mid, event))
    large, small = statistics.median(flooded), statistics.median(spared)
    took = f"one input takes {large * 1e6:.0f} us after the flood, {small * 1e6:.0f} us without"
    assert large <= MAX_COST_RATIO * small, took


def test_fake_presence_ids_are_kept_within_a_bound(clock: ManualClock) -> None:
    room, (alice, _bob) = start_room(clock, "alice", "bob")
    for _ in range(PRESENCE_FLOOD):
        mid = os.urandom(16).hex().encode()
        room.inbox.append((alice, Presence(room.room, mid, PresenceEvent.JOINED)))
        room.inbox.append((alice, Presence(room.room, mid, PresenceEvent.LEFT)))
    for _ in range(PRESENCE_FLOOD):
        room.inbox.append((alice, Presence(room.room, os.urandom(16).hex().encode(), PresenceEvent.JOINED)))
    room.settle()
    assert relay_ids_kept(alice) <= PRESENCE_IDS_MAX
    # And a Joined list as long as the protocol allows, on a reconnect.
    room.fake_present = {os.urandom(16).hex().encode() for _ in range(MAX_MEMBERS_LISTED - 8)}
    room.disconnect(alice)
    room.connect(alice)
    assert holds_group(alice)
    assert relay_ids_kept(alice) <= PRESENCE_IDS_MAX


def test_a_waiting_joiner_keeps_a_bounded_number_of_bytes(clock: ManualClock) -> None:
    room, (alice, _bob) = start_room(clock, "alice", "bob")
    carol = room.add("carol", **invited(room, alice, "carol"))

    def no_welcome(to: bytes, f: ServerFrame) -> bool:
        return isinstance(f, Deliver) and to == carol.mid and payload_kind(f.payload) is PayloadKind.WELCOME

    room.policy.drop(no_welcome)
    room.connect(carol)
    let_in(room, alice, carol)
    junk = RoomPayload(PayloadKind.CORE, os.urandom(60_000)).encode()
    for _ in range(300):  # 18 MB
        room.forge(alice.mid, junk, recipients=[carol], settle=False)
    room.settle()
    assert carol.machine.epoch is None  # still waiting
    assert joiner_buffer_bytes(carol) <= JOINER_BUFFER_MAX_BYTES
