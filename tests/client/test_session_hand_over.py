"""The reader hands a frame to the machine itself when nothing waits in the inbox (no queue hop):
what the machine raises then still ends the session with that error, never taken for a lost
connection (the reader reconnects after those), and inputs keep their order."""

from __future__ import annotations

import asyncio

import pytest
from session_harness import running_relay, start_peer, stop_all, wait_until

from groupchat.client.notices import ConnectionState, StatusChanged
from groupchat.client.session import inputs as i
from groupchat.client.session.actions import Step
from groupchat.core.errors import InvalidValueError
from groupchat.relay_protocol import Presence, PresenceEvent


class _Injected(InvalidValueError):
    """A GroupChatError, like those the reader catches for a failed connection attempt."""


async def test_a_failure_in_a_frame_handed_over_ends_the_session_with_it() -> None:
    async with running_relay() as relay:
        alice = start_peer(relay.port, "r", "alice")
        bob = None
        try:
            await wait_until(lambda: alice.ready, what="alice ready")
            machine = alice.session._machine
            real = machine.step

            def failing(item: i.Input) -> Step[None]:
                if isinstance(item, i.FrameReceived):
                    raise _Injected("the machine failed")
                return real(item)

            machine.step = failing  # type: ignore[method-assign]
            bob = start_peer(relay.port, "r", "bob")  # his arrival is a frame for alice
            assert alice.task is not None
            with pytest.raises(_Injected):
                await asyncio.wait_for(alice.task, 10)
            states = [n.connection for n in alice.notices if isinstance(n, StatusChanged)]
            assert ConnectionState.RECONNECTING not in states
        finally:
            await stop_all(*(p for p in (alice, bob) if p is not None))


async def test_commands_and_frames_keep_their_order() -> None:
    """Typed while frames pour in, every message arrives, in the order typed."""
    async with running_relay() as relay:
        alice = start_peer(relay.port, "r", "alice")
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start_peer(relay.port, "r", "bob")
        try:
            await wait_until(lambda: alice.ready and bob.ready and alice.epoch == bob.epoch, what="both in")
            for n in range(30):
                alice.session.send_text(f"a{n}")
                bob.session.send_text(f"b{n}")
                if n % 7 == 0:
                    await asyncio.sleep(0)
            await wait_until(lambda: len(bob.texts()) == 30 and len(alice.texts()) == 30, what="all read")
            assert bob.texts() == [f"a{n}" for n in range(30)]
            assert alice.texts() == [f"b{n}" for n in range(30)]
        finally:
            await stop_all(alice, bob)


async def test_no_frame_is_handed_over_once_the_machine_has_stopped() -> None:
    """A read can hold several frames (websockets hands them over without yielding); once the
    machine said Stop, the rest of the read is not given to it (as the actor stops taking inputs)."""
    async with running_relay() as relay:
        alice = start_peer(relay.port, "r", "alice")
        try:
            await wait_until(lambda: alice.ready, what="alice ready")
            session, machine = alice.session, alice.session._machine
            seen: list[i.Input] = []
            real = machine.step

            def counting(item: i.Input) -> Step[None]:
                seen.append(item)
                return real(item)

            machine.step = counting  # type: ignore[method-assign]
            frame = Presence(machine._room, b"\x01" * 32, PresenceEvent.JOINED)
            await session._hand_over(frame)  # the control: handed over while running
            assert [type(x) for x in seen] == [i.FrameReceived]
            assert session._finished is not None
            session._finished.set()  # what the machine's Stop does
            await session._hand_over(frame)
            assert [type(x) for x in seen] == [i.FrameReceived]
        finally:
            await stop_all(alice)
