"""An 80x24 terminal: the status bar keeps its useful fields, and the side panels give way so the
timeline stays readable (it was 11 columns wide with the key tree open)."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from groupchat.client.notices import (
    ConnectionState,
    RosterChanged,
    RosterEntry,
    StatusChanged,
    TreeNode,
    TreeView,
    TrustState,
)
from groupchat.tui.app import ChatApp

STATUS = StatusChanged(
    connection=ConnectionState.READY,
    relay="ws://chat.example.org:8765",
    room="lobby",
    scheme="ring",
    member_count=12,
    epoch=17,
    epoch_code="4F2A-91C0",
    latency_ms=12.4,
    open_room=True,
)
TREE = TreeView("tree", 3, (
    TreeNode(0, 0, "alice", "aa11", False, True),
    TreeNode(1, 1, "", "bb22", True, True),
    TreeNode(2, 0, "bob", "cc33", True, False),
))


def _app() -> ChatApp:
    return ChatApp(now=lambda: datetime(2026, 11, 22, 9, 30), cursor_blink=False)


async def test_at_80_columns_the_status_bar_shows_scheme_members_and_code() -> None:
    app = _app()
    async with app.run_test(size=(80, 24)) as pilot:
        waiting = ("bob", "carol", "dave", "erin")
        app.deliver(dataclasses.replace(STATUS, rekey_waiting_for=waiting))
        await pilot.pause()
        shown = str(app.status_bar.render())
        # The most useful fields first, in short forms, in the bar's 78 columns; the URL gave way.
        first = "● ready │ #lobby · open room │ 12 members │ ring · rekeying │ epoch 17"
        assert shown.startswith(first), shown
        assert "code 4F2A-91C0" in shown, shown
        assert "chat.example.org" not in shown
        # Not connected: the URL is part of the reason, so it stays, and the reason comes first.
        app.deliver(StatusChanged(ConnectionState.RECONNECTING, "ws://chat.example.org:8765", "lobby", "tree",
                                  12, problem="cannot reach the relay (connection refused)",
                                  retry_attempt=3, retry_in=4.0))
        await pilot.pause()
        shown = str(app.status_bar.render())
        assert shown.startswith("◌ reconnecting ws://chat.example.org:8765 · cannot reach the relay"), shown
        # Wide enough: the full line, with the URL.
        await pilot.resize_terminal(160, 24)
        app.deliver(STATUS)
        await pilot.pause()
        assert "ws://chat.example.org:8765 12 ms" in str(app.status_bar.render())
        assert "group code 4F2A-91C0" in str(app.status_bar.render())


async def test_at_80_columns_the_key_tree_takes_the_member_lists_place() -> None:
    app = _app()
    async with app.run_test(size=(80, 24)) as pilot:
        app.deliver(RosterChanged((RosterEntry("alice", "aaaa", True, TrustState.VERIFIED, is_me=True),)))
        app.deliver(TREE)
        await pilot.pause()
        assert app.member_list.display and app.message_log.size.width >= 46
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert app.tree_panel.display and not app.member_list.display
        assert app.message_log.outer_size.width == 46, app.message_log.outer_size  # it was 11
        assert "alice" in str(app.tree_panel.render())
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert not app.tree_panel.display and app.member_list.display
        # A wide terminal has room for both.
        await pilot.resize_terminal(130, 24)
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert app.tree_panel.display and app.member_list.display
        assert app.message_log.size.width >= 60
        # Narrower than the timeline and the member list: the list collapses (the bar counts them).
        await pilot.press("ctrl+t")
        await pilot.resize_terminal(60, 24)
        await pilot.pause()
        assert not app.member_list.display and app.message_log.outer_size.width == 60
        app.deliver(dataclasses.replace(STATUS, open_room=False))
        await pilot.pause()
        assert str(app.status_bar.render()).startswith("● ready │ #lobby │ 12 members │ ring │ epoch 17")


async def test_an_app_started_narrow_collapses_the_member_list_at_once() -> None:
    app = _app()
    async with app.run_test(size=(64, 24)) as pilot:
        await pilot.pause()
        assert not app.member_list.display and app.message_log.outer_size.width == 64
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert app.tree_panel.outer_size.width == 28 and app.message_log.outer_size.width == 36
