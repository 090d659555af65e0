"""The hostile relay over real websockets on 127.0.0.1 port 0, with real ``ChatSession``s: the
attacks that depend on the asyncio glue (close reasons) or that must hold end to end. Bounded:
every wait has a timeout of a few seconds."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from typing import Any

from expect import foreign_control, invited_peer
from hostile_relay import LoopbackRelay, is_chat, with_epoch
from session_harness import Peer, agree, stop_all, wait_until
from session_harness import start_peer as _start_peer
from test_session_loop_lag import BUDGET, MeasuringLoop

from groupchat.client.notices import TimelineEvent
from groupchat.client.room_payload import PayloadKind, RoomPayload
from groupchat.client.session.settings import member_id
from groupchat.core.errors import UsageError
from groupchat.relay_protocol import Presence, PresenceEvent

ROOM = "hostile"


def start_peer(port: int, room: str, name: str, **overrides: Any) -> Peer:
    """The harness's peer, in an invite-only room (the harness makes open ones by default)."""
    return _start_peer(port, room, name, **{"open_room": False, **overrides})


EVIL = "\x1b[2J\x1b]0;owned\x07\u202efake\u202c * bob was removed"


async def two(relay: LoopbackRelay) -> tuple[Peer, Peer]:
    alice = start_peer(relay.port, ROOM, "alice")
    await wait_until(lambda: alice.epoch is not None, 5, "alice's group")
    bob = start_peer(relay.port, ROOM, "bob", **await invited_peer(alice, "bob"))
    await wait_until(lambda: agree(alice, bob) and bool(bob.epoch), 8, "bob in alice's group")
    return alice, bob


async def test_two_sessions_chat_over_the_hostile_relay_when_it_behaves() -> None:
    async with LoopbackRelay() as relay:
        alice, bob = await two(relay)
        try:
            alice.session.send_text("hello over loopback")
            await wait_until(lambda: "hello over loopback" in bob.texts(), 5, "bob reads alice")
        finally:
            await stop_all(alice, bob)


async def test_the_relays_own_identity_is_never_admitted_over_loopback() -> None:
    async with LoopbackRelay() as relay:
        alice, bob = await two(relay)
        try:
            mallory = relay.virtual("mallory", ROOM)
            await relay.announce(mallory.mid)
            await relay.forge(mallory.mid, mallory.join_request())
            with contextlib.suppress(AssertionError):  # none within the bound: what we want
                await wait_until(lambda: bool(mallory.welcomes), 3, "a welcome for the relay")
            assert mallory.opened() == []
            names = {e.name for e in alice.session.roster()} | {e.name for e in bob.session.roster()}
            assert "mallory" not in names
        finally:
            await stop_all(alice, bob)


async def test_a_close_reason_with_escapes_never_reaches_a_notice() -> None:
    async with LoopbackRelay() as relay:
        alice, bob = await two(relay)
        try:
            before = len(alice.timeline())
            await relay.close(member_id(alice.session.identity.public_key), 1008, EVIL)
            await wait_until(lambda: len(alice.timeline()) > before, 5, "alice told of the close")
            shown = [n.text for n in alice.notices if isinstance(n, TimelineEvent)]
            assert [t for t in shown if foreign_control(t)] == []
        finally:
            await stop_all(alice, bob)


async def test_a_forged_later_epoch_frame_leaves_both_sessions_in_the_group() -> None:
    async with LoopbackRelay() as relay:
        alice, bob = await two(relay)
        try:
            alice.session.send_text("first")
            await wait_until(lambda: "first" in bob.texts(), 5, "bob reads alice")
            real = next(d for d in relay.log if is_chat(d.payload))
            epoch = alice.epoch
            assert epoch is not None
            body = with_epoch(RoomPayload.decode(real.payload).body, epoch + 1)
            await relay.forge(real.sender, RoomPayload(PayloadKind.CORE, body).encode())
            await asyncio.sleep(0.5)
            assert alice.epoch == bob.epoch == epoch, "a member dropped its group"
            bob.session.send_text("still here")
            await wait_until(lambda: "still here" in alice.texts(), 5, "alice reads bob")
        finally:
            await stop_all(alice, bob)


async def test_a_session_whose_messages_arrive_is_not_evicted_when_the_relay_says_it_left() -> None:
    async with LoopbackRelay() as relay:
        alice = start_peer(relay.port, ROOM, "alice", eviction_grace=1.0)
        await wait_until(lambda: alice.epoch is not None, 5, "alice's group")
        bob = start_peer(relay.port, ROOM, "bob", eviction_grace=1.0, **await invited_peer(alice, "bob"))
        try:
            await wait_until(lambda: agree(alice, bob) and bool(bob.epoch), 8, "bob in alice's group")
            await relay.report_offline(member_id(bob.session.identity.public_key))
            for i in range(15):  # 3 s: three times the grace, bob talking all along
                try:
                    bob.session.send_text(f"bob {i}")
                except UsageError:
                    raise AssertionError(f"bob's session ended after {i * 0.2:.1f} s") from None
                await asyncio.sleep(0.2)
            await wait_until(lambda: "bob 14" in alice.texts(), 3, "bob's messages to flow")
            assert bob.task is not None and not bob.task.done(), "bob's session ended"
            assert "bob" in {e.name for e in alice.session.roster()}, "bob was evicted"
        finally:
            await stop_all(alice, bob)


FLOOD_IDS = 4000


async def _flood(loop: MeasuringLoop) -> None:
    async with LoopbackRelay() as relay:
        alice, bob = await two(relay)
        try:
            me = member_id(alice.session.identity.public_key)
            # What lives now lives to the end, as the TUI's startup objects do (run_chat freezes
            # them): a full collection of this test process's heap (a thousand tests' worth in
            # the full suite) is not the session's work.
            gc.collect()
            gc.freeze()
            await asyncio.sleep(0)  # that collection is not the session's: measure from the next turn
            loop.measuring = True
            for i in range(FLOOD_IDS):
                mid = os.urandom(16).hex().encode()
                await relay._send(me, Presence(ROOM.encode(), mid, PresenceEvent.JOINED))
                await relay._send(me, Presence(ROOM.encode(), mid, PresenceEvent.LEFT))
                if i % 20 == 0:
                    # The relay shares this loop: in small chunks, so that its own sending is not
                    # what an iteration measures.
                    await asyncio.sleep(0)
            bob.session.send_text("after the flood")
            await wait_until(lambda: "after the flood" in alice.texts(), 20, "alice reads bob afterwards")
        finally:
            loop.measuring = False
            gc.unfreeze()
            await stop_all(alice, bob)


def test_a_flood_of_fake_presence_never_stalls_the_event_loop() -> None:
    """Issue 13 §6: under a flood of junk the UI loop never stalls longer than 50 ms (the CPU time
    of one loop iteration, as in tests/client/test_session_loop_lag.py; the relay shares the loop)."""
    loop = MeasuringLoop()
    try:
        loop.run_until_complete(_flood(loop))
    finally:
        loop.close()
    took = f"one event-loop iteration took {loop.worst_cpu * 1000:.1f} ms of CPU"
    assert loop.worst_cpu < BUDGET, took
