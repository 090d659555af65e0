"""A ring group in real ChatApps over one real relay: joins rerun the ring, the chat reads, the
status bar names the scheme and ``/tree`` draws the ring."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tui_peers import Peer

from server.relay import Relay


@pytest.fixture
async def ring_peers(relay: Relay) -> AsyncIterator[list[Peer]]:
    started: list[Peer] = []
    for name, scheme in (("alice", "ring"), ("bob", "tree"), ("carol", "tree")):
        # Only the creator chooses the scheme; the joiners follow the group's.
        peer = await Peer(relay.port, name, room="ringroom", scheme=scheme).start()
        started.append(peer)
        await peer.wait_ready(len(started))
    yield started
    for peer in reversed(started):
        await peer.stop()


async def test_a_ring_group_in_three_apps(ring_peers: list[Peer]) -> None:
    alice, bob, carol = ring_peers
    for peer in ring_peers:
        await peer.wait_ready(3)
    await alice.wait_line("carol joined")
    line = await bob.wait_line("carol joined")
    assert "ring of 3 agreed in 3 rounds" in line
    assert "ring agreed in" in await carol.wait_line("you joined")
    codes = {await p.epoch() for p in ring_peers}
    assert len(codes) == 1, codes
    assert " │ ring │ " in await bob.read(lambda app: str(app.status_bar.content))

    await carol.type("hello ring")
    await alice.wait_line("carol: hello ring")
    await bob.wait_line("carol: hello ring")

    await bob.type("/tree")
    text = await bob.read(lambda app: str(app.tree_panel.content) if app.tree_panel.display else "")
    epoch, _ = await bob.epoch()
    assert f"Ring · epoch {epoch}" in text
    assert text.index("alice") < text.index("bob") < text.index("carol")  # ring order
    assert "back to alice" in text
