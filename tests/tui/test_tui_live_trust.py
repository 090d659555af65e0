"""The three numbers to compare, each labelled where it is shown; /trust once, /untrust (real sessions)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from tui_peers import Peer

from groupchat.client import wording, wording_tui
from groupchat.client.notices import TrustState
from groupchat.client.trust import TrustStore
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


async def test_each_number_says_what_it_is_for(peers: PeerFactory) -> None:
    alice = await peers("alice")
    await alice.wait_ready(1)
    bob = await peers("bob")
    await bob.wait_ready(2)
    await alice.wait_ready(2)
    code = (await alice.epoch())[1]
    assert code is not None
    status = await alice.read(lambda app: str(app.status_bar.content))
    assert f"group code {code}" in status
    assert await alice.read(lambda app: app.status_bar.tooltip) == wording_tui.GROUP_CODE_MEANS

    await alice.type("/who")
    lines = await alice.lines()
    assert lines[-1] == "  " + wording_tui.FINGERPRINT_MEANS
    await alice.type("/verify bob")
    lines = await alice.lines()
    assert lines[-1] == "  " + wording_tui.safety_number_means("bob")
    assert lines[-4] == "safety number with bob:"
    await alice.type("/help")
    lines = await alice.lines()
    at = lines.index("  numbers to compare:")
    assert lines[at : at + 4] == ["  numbers to compare:"] + [
        "    " + m for m in (wording_tui.GROUP_CODE_MEANS, wording_tui.FINGERPRINT_MEANS,
                             wording_tui.SAFETY_NUMBER_MEANS)
    ]


async def test_trust_twice_says_already_and_untrust_withdraws(peers: PeerFactory, tmp_path: Path) -> None:
    store = tmp_path / "trust.json"
    alice = await peers("alice", trust=TrustStore(store))
    await alice.wait_ready(1)
    bob = await peers("bob")
    await bob.wait_ready(2)
    await alice.wait_ready(2)

    await alice.type("/trust bob")
    await alice.wait_until("bob verified", lambda app: "● ✓ bob" in str(app.member_list.content))
    await alice.type("/trust bob")
    lines = await alice.lines()
    assert lines[-1] == wording_tui.already_verified("bob")
    assert sum(wording.marked_verified("bob") in line for line in lines) == 1  # said once

    await alice.type("/untrust bob")
    await alice.wait_line(wording.marked_unverified("bob"))
    await alice.wait_until("bob not verified", lambda app: "● ? bob" in str(app.member_list.content))
    assert await alice.trust_of("bob") is TrustState.UNVERIFIED
    assert TrustStore(store).state(bob.identity.public_key) is TrustState.UNVERIFIED  # on disk too
    await alice.type("/untrust bob")
    assert (await alice.lines())[-1] == wording_tui.not_verified("bob")

    await alice.type("/untrust alice")
    assert (await alice.lines())[-1] == "✕ " + wording_tui.TRUST_SELF
    await alice.type("/trust bob")  # and back: the mark is the key's, as before
    await alice.wait_until("bob verified again", lambda app: "● ✓ bob" in str(app.member_list.content))
    assert TrustStore(store).state(bob.identity.public_key) is TrustState.VERIFIED
