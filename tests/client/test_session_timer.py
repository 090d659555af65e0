"""The session has no ticker: the actor is woken for its next deadline, or once a second at most,
so an idle member costs (almost) nothing, and timed duties still happen on time."""

from __future__ import annotations

import asyncio

from session_harness import agree, running_relay, start_peer, stop_all, wait_until

from groupchat.client.session import ChatSession


async def test_an_idle_session_wakes_about_once_a_second_not_ten_times() -> None:
    async with running_relay() as relay:
        alice = start_peer(relay.port, "idle", "alice")
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start_peer(relay.port, "idle", "bob")
        try:
            await wait_until(lambda: agree(alice, bob), what="bob in")
            await asyncio.sleep(0.5)  # bob's first update and its echo settle
            wakes = {"alice": 0, "bob": 0}

            def counting(peer_name: str, session: ChatSession) -> None:
                original = session._on_timer

                def on_timer() -> None:
                    wakes[peer_name] += 1
                    original()

                session._on_timer = on_timer  # type: ignore[method-assign]

            counting("alice", alice.session)
            counting("bob", bob.session)
            await asyncio.sleep(3.0)
            # A 100 ms ticker would have woken each 30 times; the deadline timer: once a second.
            assert 1 <= wakes["alice"] <= 5 and 1 <= wakes["bob"] <= 5, wakes
            # Still alive and on time: a message goes through at once.
            alice.session.send_text("still here")
            await wait_until(lambda: "still here" in bob.texts(), 2.0, "a message after idling")
        finally:
            await stop_all(alice, bob)
