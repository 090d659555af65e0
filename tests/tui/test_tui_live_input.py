"""Multi-line messages end to end: two ChatApps with real sessions over one real relay on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from textual import events
from textual.pilot import Pilot
from tui_peers import Peer

from server.relay import Relay

PeerFactory = Callable[..., Awaitable[Peer]]


@pytest.fixture
async def peers(relay: Relay) -> AsyncIterator[PeerFactory]:
    started: list[Peer] = []

    async def make(name: str, **kw: object) -> Peer:
        peer = await Peer(relay.port, name, **kw).start()  # type: ignore[arg-type]
        started.append(peer)
        return peer

    yield make
    for peer in reversed(started):
        await peer.stop()


async def _pair(peers: PeerFactory) -> tuple[Peer, Peer]:
    alice = await peers("alice")
    await alice.wait_ready(1)
    bob = await peers("bob")
    await bob.wait_ready(2)
    await alice.wait_ready(2)
    return alice, bob


async def test_a_three_line_paste_arrives_as_three_lines(peers: PeerFactory) -> None:
    alice, bob = await _pair(peers)

    async def paste(pilot: Pilot[int]) -> None:
        alice.app.post_message(events.Paste("one\ntwo\nthree"))
        await pilot.pause()
        await pilot.press("enter")

    await alice.do(paste)
    assert await bob.wait_line("alice: one") == "09:41 alice: one\ntwo\nthree"

    def rows(app: object) -> list[str]:
        entry = bob.app.message_log.lines[-1]
        return [strip.text.rstrip() for strip in entry.strips]

    assert await bob.read(rows) == ["09:41 alice: one", "    │ two", "    │ three"]


async def test_a_message_over_the_limit_arrives_as_several(peers: PeerFactory) -> None:
    alice, bob = await _pair(peers)
    lines = [f"{i:02d} " + "y" * 997 for i in range(40)]  # 40,000 bytes: over the 16 KiB limit

    async def send(pilot: Pilot[int]) -> None:
        alice.app.input.value = "\n".join(lines)
        await pilot.press("enter")  # asks first
        await pilot.pause()
        await pilot.press("enter")  # sends it as three messages

    await alice.do(send)
    await bob.wait_line("alice: 32 ")

    def chat(app: object) -> list[str]:
        return [e.body.plain for e in bob.app.message_log.lines if e.has_class("chat")]

    got = await bob.read(chat)
    assert [m.split("\n")[0] for m in got] == ["alice: 00 " + "y" * 997, "alice: 16 " + "y" * 997,
                                               "alice: 32 " + "y" * 997]
    assert "\n".join(m.removeprefix("alice: ") for m in got) == "\n".join(lines)  # nothing lost
