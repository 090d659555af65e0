"""Two and three ChatApps with real sessions over one real relay on loopback: what each user sees.

Every app runs the real session (real crypto, real websockets); the test types into the input and
reads the widgets, as a person would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from tui_peers import Peer

from groupchat.client.names import compact_fingerprint
from groupchat.client.notices import TrustState
from groupchat.client.trust import TrustStore
from groupchat.tui.app import ChatApp
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


async def test_two_users_chat(peers: PeerFactory) -> None:
    alice = await peers("alice")
    await alice.wait_ready(1)
    bob = await peers("bob")
    await bob.wait_ready(2)
    await alice.wait_ready(2)

    await alice.type("hello bob")
    # Our own line shows at once, then loses its pending mark on the relay's echo.
    await alice.wait_line("alice: hello bob")
    await alice.wait_until(
        "confirmation", lambda app: "09:41 alice: hello bob" in app.message_log.plain_lines()
    )
    assert await bob.wait_line("alice: hello bob") == "09:41 alice: hello bob"
    await bob.type("hi alice")
    await alice.wait_line("bob: hi alice")
    assert await alice.epoch() == await bob.epoch()


async def test_join_and_leave_rekey_in_every_timeline(peers: PeerFactory) -> None:
    alice = await peers("alice")
    await alice.wait_ready(1)
    bob = await peers("bob")
    await bob.wait_ready(2)
    carol = await peers("carol")
    await carol.wait_ready(3)
    for peer in (alice, bob):
        await peer.wait_ready(3)
        line = await peer.wait_line("carol joined")
        assert "epoch" in line
    codes = {await p.epoch() for p in (alice, bob, carol)}
    assert len(codes) == 1, codes

    await carol.type("/leave")
    await carol.wait_line("leaving the group")
    for peer in (alice, bob):
        await peer.wait_ready(2)
        await peer.wait_line("carol left")
    assert await alice.epoch() == await bob.epoch()
    await carol.wait_line("the session has ended")


async def test_verify_and_trust(peers: PeerFactory) -> None:
    alice = await peers("alice")
    await alice.wait_ready(1)
    bob = await peers("bob")
    await bob.wait_ready(2)
    await alice.wait_ready(2)
    assert await alice.trust_of("bob") is TrustState.UNVERIFIED

    await alice.type("/verify bob")
    await bob.type("/verify alice")
    numbers = []
    for peer, other in ((alice, "bob"), (bob, "alice")):
        lines = await peer.lines()
        at = lines.index(f"safety number with {other}:")
        numbers.append(lines[at + 1].strip())
        assert f"if it matches, type /trust {other}" in lines[at + 2]
    assert numbers[0] == numbers[1]  # both sides read out the same digits

    await alice.type("/trust bob")
    await alice.wait_line("bob is now marked verified")
    await alice.wait_until("bob verified", lambda app: "● ✓ bob" in str(app.member_list.content))

    await alice.type("/verify nobody")
    line = (await alice.lines())[-1]
    assert line.startswith("✕ ") and "nobody" in line


async def test_a_new_key_under_a_verified_name_is_shown_as_another_member(peers: PeerFactory) -> None:
    alice_trust = TrustStore(None)
    alice = await peers("alice", trust=alice_trust)
    await alice.wait_ready(1)
    bob = await peers("bob")
    await bob.wait_ready(2)
    await alice.wait_ready(2)
    await alice.type("/trust bob")
    await alice.wait_until("bob verified", lambda app: "● ✓ bob" in str(app.member_list.content))

    await bob.stop()
    await alice.wait_ready(1)
    # Someone else now calls themselves bob: another identity key, so another member.
    impostor = await peers("bob")
    await impostor.wait_ready(2)
    await alice.wait_ready(2)
    label = "bob·" + compact_fingerprint(impostor.identity.public_key)[:4]
    await alice.wait_until("suffixed roster", lambda app: f"● ? {label}" in str(app.member_list.content))
    warning = next(line for line in await alice.lines() if "⚠" in line and "looks like" in line)
    assert label in warning and "bob·" + compact_fingerprint(bob.identity.public_key)[:4] in warning
    assert await alice.trust_of(label) is TrustState.UNVERIFIED
    assert alice_trust.state(bob.identity.public_key) is TrustState.VERIFIED  # the key keeps its mark

    await impostor.type("trust me")
    assert await alice.wait_line(f"{label}: trust me") == f"09:41 {label}: trust me"


async def test_lookalike_members_are_told_apart_in_the_roster_and_by_commands(peers: PeerFactory) -> None:
    alice = await peers("alice")
    await alice.wait_ready(1)
    bob = await peers("bob")
    await bob.wait_ready(2)
    impostor = await peers("b\u043eb")  # Cyrillic o
    await impostor.wait_ready(3)
    await alice.wait_ready(3)
    bob_label = "bob·" + compact_fingerprint(bob.identity.public_key)[:4]
    imp_label = "b\u043eb·" + compact_fingerprint(impostor.identity.public_key)[:4]

    def both_suffixed(app: ChatApp) -> bool:
        shown = str(app.member_list.content)  # what is drawn, and the entries it is drawn from
        listed = {m.name for m in app.member_list.members}
        return listed >= {bob_label, imp_label} and bob_label in shown and imp_label in shown

    for peer in (alice, bob, impostor):
        await peer.wait_until("both suffixed", both_suffixed)

    await alice.type("/kick bob")
    refused = (await alice.lines())[-1]
    assert refused.startswith("✕ ") and bob_label in refused and imp_label in refused
    await alice.type(f"/verify {imp_label.replace('·', '#')}")
    assert f"safety number with {imp_label}:" in await alice.lines()
    await alice.type(f"/kick {imp_label}")
    await alice.wait_line(f"{imp_label} was removed by alice")
    await alice.wait_ready(2)
    assert await alice.trust_of(bob_label) is TrustState.UNVERIFIED  # bob is still in, still apart


async def test_tree_panel_shows_the_group(peers: PeerFactory) -> None:
    alice = await peers("alice")
    await alice.wait_ready(1)
    bob = await peers("bob")
    await bob.wait_ready(2)
    carol = await peers("carol")
    await carol.wait_ready(3)
    await alice.wait_ready(3)

    await alice.type("/tree")
    text = await alice.read(lambda app: str(app.tree_panel.content) if app.tree_panel.display else "")
    epoch, _ = await alice.epoch()
    assert f"Key tree · epoch {epoch}" in text
    for name in ("alice", "bob", "carol"):
        assert name in text
    assert "◂" in text  # our own path is marked
    await alice.type("/tree")
    assert not await alice.read(lambda app: app.tree_panel.display)


async def test_quit_leaves_the_group_and_exits(peers: PeerFactory) -> None:
    alice = await peers("alice")
    await alice.wait_ready(1)
    bob = await peers("bob")
    await bob.wait_ready(2)
    await alice.wait_ready(2)

    await bob.type("/quit")
    await bob.wait_until_stopped()
    assert bob.app.return_code == 0
    # The leave request went out before the socket closed: alice's group removed bob at once.
    await alice.wait_ready(1)
    assert "bob left" in await alice.wait_line("bob left")


async def test_rekey_kick_and_messages_from_before_joining(peers: PeerFactory) -> None:
    alice = await peers("alice")
    await alice.wait_ready(1)
    await alice.type("said before anyone joined")
    bob = await peers("bob")
    await bob.wait_ready(2)
    carol = await peers("carol")
    await carol.wait_ready(3)
    await alice.wait_ready(3)
    # Never a silent drop: what was sent before bob joined is a placeholder with its reason.
    assert "cannot be shown: sent before you joined" in await bob.wait_line("cannot be shown")

    await alice.type("/rekey")
    await alice.wait_line("you refreshed your keys")
    for peer in (bob, carol):
        await peer.wait_line("alice refreshed their keys")

    await alice.type("/kick nobody")
    refused = (await alice.lines())[-1]
    assert refused.startswith("✕ no member named") and "nobody" in refused
    await alice.type("/kick carol")
    for peer, by in ((alice, "alice"), (bob, "alice")):
        await peer.wait_ready(2)
        await peer.wait_line(f"carol was removed by {by}")
    await carol.wait_line("you were removed from the group by alice")
    await carol.wait_line("the session has ended")
    assert await alice.epoch() == await bob.epoch()


async def test_invite_only_room_through_the_commands(peers: PeerFactory) -> None:
    """/invite shows a code; a newcomer with it gets in; one without it is shown as asking, and
    /approve lets it in: what a person types and reads, with real sessions."""
    alice = await peers("alice", open_room=False)
    await alice.wait_ready(1)
    await alice.type("/invite")
    line = await alice.wait_line("invite ready")
    await alice.type("/invites")
    codes = [t.split("code: ")[1].strip() for t in await alice.lines() if "code: gci1-" in t]
    assert len(codes) == 1 and "--invite gci1-" in line
    code = codes[0]
    bob = await peers("bob", open_room=False, invite=code)
    await bob.wait_ready(2)
    carol = await peers("carol", open_room=False)
    asks = await alice.wait_line("carol (fingerprint")
    assert "asks to join" in asks and "/approve carol" in asks
    await alice.type("/approve carol")
    await carol.wait_ready(3)
    assert await carol.epoch() == await alice.epoch() == await bob.epoch()
