"""After /leave, a kick or a takeover by another window: the screen agrees with itself, and /join
comes back. Real ChatApps with real sessions over one real relay on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from tui_peers import Peer

from groupchat.client import wording, wording_store, wording_tui
from groupchat.client.store import Store
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


def _screen(app: ChatApp) -> tuple[str, str]:
    """What the status bar and the member list draw."""
    return str(app.status_bar.render()), str(app.member_list.render())


def _consistent_after_end(app: ChatApp) -> None:
    status, members = _screen(app)
    assert status.startswith("○ closed"), status
    # No member count, epoch or scheme of a group we are no longer in (it said "0 members" and
    # "tree" beside a member list of everyone online).
    for stale in ("member", "epoch", "│ tree", "│ ring"):
        assert stale not in status, (stale, status)
    assert wording_tui.CLOSED_STATUS in status and wording_tui.CLOSED_STATUS in members
    assert "●" not in members and "○" not in members.split("\n", 1)[1], members
    assert app.member_list.members == ()


async def test_after_leave_the_screen_agrees_and_join_comes_back(peers: PeerFactory) -> None:
    alice = await peers("alice", room="ringroom", scheme="ring")
    await alice.wait_ready(1)
    bob = await peers("bob", room="ringroom")  # a joiner follows the group's scheme (ring)
    await bob.wait_ready(2)
    await alice.wait_ready(2)
    assert " │ ring │ " in (await bob.read(_screen))[0]

    await bob.type("/leave")
    await bob.wait_line(wording_tui.SESSION_ENDED)
    await bob.read(_consistent_after_end)
    await alice.wait_ready(1)
    await bob.type("hello?")  # nothing to send with: it says what to type instead
    await bob.wait_line(wording_tui.LEFT_GROUP)

    await bob.type("/rejoin")  # the alias of /join
    await bob.wait_line(wording_tui.joining_again("ringroom"))
    await bob.wait_ready(2, timeout=30)
    await alice.wait_ready(2, timeout=30)
    status, members = await bob.read(_screen)
    assert " │ ring │ " in status and "2 members" in status, status
    assert "● ✓ bob (you)" in members and "alice" in members, members
    await bob.type("back again")
    await alice.wait_line("bob: back again")
    await bob.type("/join")
    await bob.wait_line(wording_tui.ALREADY_IN_ROOM)


async def test_a_kicked_member_sees_no_one_online(peers: PeerFactory) -> None:
    alice = await peers("alice")
    await alice.wait_ready(1)
    bob = await peers("bob")
    await bob.wait_ready(2)
    carol = await peers("carol")
    await carol.wait_ready(3)
    await alice.wait_ready(3)
    await alice.type("/kick carol")
    await carol.wait_line(wording_tui.SESSION_ENDED)
    await carol.read(_consistent_after_end)
    assert any("removed" in line for line in await carol.lines())
    await alice.wait_ready(2)


async def test_the_same_identity_twice_the_first_window_says_it_was_taken_over(
    peers: PeerFactory,
) -> None:
    alice = await peers("alice")
    await alice.wait_ready(1)
    bob = await peers("bob")
    await bob.wait_ready(2)
    await alice.wait_ready(2)
    # bob starts a second window with the same identity: the relay gives it his member id.
    bob2 = await peers("bob", identity=bob.identity, trust=bob.trust)
    await bob.wait_line("another window (or device) joined this room as you")
    await bob.wait_line(wording_tui.SESSION_ENDED)
    status = (await bob.read(_screen))[0]
    assert status.startswith(f"○ closed · {wording.REPLACED_STATUS}"), status
    await bob.read(_consistent_after_end)
    # What is typed in the stopped window is refused, not left "sending…" for good.
    await bob.type("still there?")
    await bob.wait_line(wording_tui.LEFT_GROUP)
    assert not any("(sending…)" in line for line in await bob.lines())
    # The second window carries on (it is let in again as bob: that takes a while without a
    # stored state, and is not this test's business); it was not stopped in turn.
    status = await bob2.read(lambda app: app.status_bar.status)
    state = status.connection.value if status is not None else ""
    assert state in ("connecting", "joining", "ready"), state


async def test_a_line_typed_just_before_the_end_is_not_left_sending() -> None:
    from datetime import datetime

    from groupchat.client.notices import ChatLine, TrustState
    from groupchat.tui.messages import SessionEnded

    app = ChatApp(now=lambda: datetime(2026, 11, 22, 9, 41), cursor_blink=False)
    async with app.run_test(size=(100, 24)) as pilot:
        app.deliver(ChatLine("bob", "lost", 3, own=True, pending=True, local_id=1, trust=TrustState.VERIFIED))
        await pilot.pause()
        assert app.message_log.plain_lines()[-1].endswith("(sending…)")
        app.post_message(SessionEnded(None))
        await pilot.pause()
        lines = app.message_log.plain_lines()
        assert "09:41 bob: lost" + wording_tui.NOT_SENT_MARK in lines, lines
        assert lines[-1] == wording_tui.SESSION_ENDED


async def test_quit_with_a_store_stays_in_the_group_and_a_restart_resumes_with_scrollback(
    peers: PeerFactory, tmp_path: Path
) -> None:
    """Issue 15: quitting and restarting `groupchat chat` was a rejoin (a new leaf, a commit for
    everyone, its own messages "sent before you joined"). With the store, ctrl+q stays in the
    group and the next start resumes the leaf: no commit, the scrollback shown, chat goes on."""
    alice = await peers("alice")
    await alice.wait_ready(1)
    bob_store = Store.open(tmp_path)
    bob = await peers("bob", store=bob_store)
    await bob.wait_ready(2)
    await alice.wait_ready(2)
    await bob.type("bob before the restart")
    await alice.wait_line("bob: bob before the restart")
    await alice.type("alice before the restart")
    await bob.wait_line("alice: alice before the restart")
    before = await alice.epoch()

    await bob.do(lambda pilot: pilot.press("ctrl+q"))
    await bob.wait_until_stopped()
    assert bob.session is not None and bob.session.keeps_state
    bob_store.close()
    assert not any("bob left" in line for line in await alice.lines())

    store_again = Store.open(tmp_path)
    bob2 = await peers("bob", identity=bob.identity, trust=bob.trust, store=store_again)
    await bob2.wait_line(wording_store.RESTORED)
    await bob2.wait_ready(2)
    lines = await bob2.lines()
    # The scrollback, in order, before the resume; our own line as ours, not "sent before you joined".
    first = next(i for i, line in enumerate(lines) if "bob: bob before the restart" in line)
    second = next(i for i, line in enumerate(lines) if "alice: alice before the restart" in line)
    assert first < second < next(i for i, line in enumerate(lines) if wording_store.RESTORED in line)
    assert not any("sent before you joined" in line for line in lines), lines
    assert await alice.epoch() == before == await bob2.epoch()  # the same epoch: nobody committed
    joins = [line for line in await alice.lines() if "bob joined" in line]
    assert len(joins) == 1, joins  # his first join only
    await bob2.type("bob after the restart")
    await alice.wait_line("bob: bob after the restart")
    await alice.type("alice after the restart")
    await bob2.wait_line("alice: alice after the restart")
    await bob2.stop()
    store_again.close()


async def test_quit_without_a_store_leaves_the_group(peers: PeerFactory) -> None:
    alice = await peers("alice")
    await alice.wait_ready(1)
    bob = await peers("bob")
    await bob.wait_ready(2)
    await alice.wait_ready(2)
    await bob.do(lambda pilot: pilot.press("ctrl+q"))
    await bob.wait_until_stopped()
    assert bob.session is not None and not bob.session.keeps_state
    await alice.wait_line("bob left")
    await alice.wait_ready(1)
