"""The relay says another connection joined as this member (the same identity in a second
window): the session stops by itself, says so, and sends nothing more (no leave request: the
other window is this member too)."""

from __future__ import annotations

import asyncio

from session_harness import running_relay, start_peer, stop_all, wait_until
from session_room import Member, MemoryRoom

from groupchat.client import wording
from groupchat.client.notices import ConnectionState, StatusChanged
from groupchat.client.session.actions import Stop
from groupchat.client.session.inputs import FrameReceived
from groupchat.relay_protocol import Error, ErrorCode


def test_replaced_stops_the_session_without_a_leave_request(
    room: MemoryRoom, pair: tuple[Member, Member]
) -> None:
    alice, bob = pair
    assert bob.machine.epoch is not None and not bob.stopped
    before = len(bob.sent())
    replaced = Error(ErrorCode.REPLACED, "another connection joined as this member", 0, room.room)
    out = room.feed(bob, FrameReceived(replaced, room.clock()))
    assert any(isinstance(a, Stop) for a in out)
    assert bob.stopped and len(bob.sent()) == before  # not a frame more: no Leave, no leave request
    assert any(t.startswith("another window (or device) joined this room as you") for t in bob.timeline())
    bob.machine.mark_closed()  # what the glue does once it has stopped
    status = bob.machine.status
    assert status.connection is ConnectionState.CLOSED and status.problem == wording.REPLACED_STATUS
    assert bob.machine.closed
    room.settle()
    assert len(alice.machine.roster()) == 2  # bob is still a member: nobody asked to remove him


async def test_a_second_window_with_the_same_identity_stops_the_first() -> None:
    async with running_relay() as relay:
        alice = start_peer(relay.port, "twice", "alice")
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start_peer(relay.port, "twice", "bob")
        await wait_until(lambda: bob.ready and len(alice.session.roster()) == 2, 15, "bob joins")
        bob2 = start_peer(relay.port, "twice", "bob", identity=bob.session.identity)
        try:
            assert bob.task is not None
            await asyncio.wait_for(bob.task, 10)  # the first window's session ended by itself
            statuses = [n for n in bob.notices if isinstance(n, StatusChanged)]
            assert statuses[-1].problem == wording.REPLACED_STATUS
            assert any(t.startswith("another window (or device) joined") for t in bob.timeline())
            assert bob.session.status.connection is ConnectionState.CLOSED
        finally:
            await stop_all(alice, bob2, bob)
