"""The real ChatApp under Pilot, fed the notices a session would send: what a user reads."""

from __future__ import annotations

import dataclasses
import re
import threading
from datetime import datetime

import pytest
from textual.binding import Binding
from textual.pilot import Pilot

from groupchat.client import wording_tui
from groupchat.client.notices import (
    ChatLine,
    ConnectionState,
    MessageConfirmed,
    Placeholder,
    RosterChanged,
    RosterEntry,
    StatusChanged,
    TimelineEvent,
    TimelineKind,
    TreeNode,
    TreeView,
    TrustState,
    UnreadableReason,
)
from groupchat.core.errors import UsageError
from groupchat.tui.app import ChatApp
from groupchat.tui.widgets import LogEntry
from groupchat.tui.widgets.message_log import PENDING_MARK
from groupchat.tui.widgets.status_bar import status_text
from groupchat.tui.widgets.tree_panel import tree_text

SIZE = (110, 30)


def make_app() -> ChatApp:
    return ChatApp(now=lambda: datetime(2026, 11, 22, 9, 30), cursor_blink=False)


def last_line(app: ChatApp) -> LogEntry:
    return app.message_log.lines[-1]


async def type_line(pilot: Pilot[int], app: ChatApp, text: str) -> None:
    app.input.value = text
    await app.input.action_submit()
    await pilot.pause()


STATUS = StatusChanged(
    connection=ConnectionState.READY,
    relay="ws://127.0.0.1:8765",
    room="lobby",
    scheme="tree",
    member_count=3,
    epoch=7,
    epoch_code="4F2A-91C0",
    latency_ms=12.4,
)


async def test_status_bar_shows_every_field() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.deliver(STATUS)
        await pilot.pause()
        text = str(app.status_bar.content)
        for part in ("● ready", "ws://127.0.0.1:8765", "12 ms", "#lobby", "epoch 7", "code 4F2A-91C0",
                     "tree", "3 members"):
            assert part in text, part
        assert app.status_bar.has_class("-ready")
        app.deliver(StatusChanged(ConnectionState.RECONNECTING, "ws://127.0.0.1:8765", "lobby", "tree", 3))
        await pilot.pause()
        text = str(app.status_bar.content)
        assert "◌ reconnecting" in text and "no epoch yet" in text and "ms" not in text
        assert app.status_bar.has_class("-reconnecting") and not app.status_bar.has_class("-ready")
        # A ring rekey under way: the epoch it makes and whom it waits for (at most three named).
        waiting = ("bob", "carol", "dave", "erin")
        app.deliver(dataclasses.replace(STATUS, scheme="ring", rekey_waiting_for=waiting))
        await pilot.pause()
        text = str(app.status_bar.content)
        # At 110 columns the most useful fields come first, in short forms, so none is cut.
        assert text == "● ready │ #lobby │ 3 members │ ring · rekeying │ epoch 7 · code 4F2A-91C0 │ 12 ms"
        assert app.status_bar.status is not None
        full = str(status_text(app.status_bar.status))
        assert "ring · rekeying to epoch 8 (waiting for bob, carol, dave +1)" in full
        app.deliver(dataclasses.replace(STATUS, scheme="ring", rekey_waiting_for=()))
        await pilot.pause()
        text = str(app.status_bar.content)
        assert "ring · rekeying to epoch 8" in text and "waiting" not in text
        app.deliver(dataclasses.replace(STATUS, scheme="ring"))
        await pilot.pause()
        assert "rekeying" not in str(app.status_bar.content)


async def test_member_list_badges_and_online_state() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.deliver(RosterChanged((
            RosterEntry("bob", "bbbb", online=True, trust=TrustState.UNVERIFIED),
            RosterEntry("mallory", "cccc", online=False, trust=TrustState.KEY_CHANGED),
            RosterEntry("alice", "aaaa", online=True, trust=TrustState.VERIFIED, is_me=True),
        )))
        await pilot.pause()
        lines = str(app.member_list.content).splitlines()
        assert lines[:4] == [
            "Members (3)",
            "● ✓ alice (you)",  # ourselves first
            "● ? bob",
            "○ ! mallory key changed",
        ]


@pytest.mark.parametrize("reason", list(UnreadableReason))
async def test_each_placeholder_reason_is_shown(reason: UnreadableReason) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.deliver(Placeholder(reason, count=2, sender="carol", detail="ours 1A2B, theirs 9F8E"))
        await pilot.pause()
        line = last_line(app)
        assert line.has_class("placeholder")
        assert line.plain == (
            f"09:30 ⊘ 2 messages from carol cannot be shown: {reason.value} (ours 1A2B, theirs 9F8E)"
        )


async def test_timeline_events_in_plain_words() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.deliver(TimelineEvent(TimelineKind.JOINED, "carol joined · epoch 7 · 3 keys refreshed in 0.4 ms"))
        app.deliver(TimelineEvent(TimelineKind.LEFT, "carol left · epoch 8"))
        await pilot.pause()
        assert app.message_log.plain_lines() == [
            "09:30 → carol joined · epoch 7 · 3 keys refreshed in 0.4 ms",
            "09:30 ← carol left · epoch 8",
        ]
        assert app.message_log.lines[0].has_class("joined")


async def test_key_change_warning() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.deliver(RosterChanged((RosterEntry("bob", "bbbb", True, TrustState.KEY_CHANGED),)))
        app.deliver(TimelineEvent(TimelineKind.WARNING, "bob's key changed: type /verify bob"))
        app.deliver(ChatLine("bob", "it's me, new laptop", epoch=9, trust=TrustState.KEY_CHANGED))
        await pilot.pause()
        warning, chat = app.message_log.lines
        assert warning.plain == "09:30 ⚠ bob's key changed: type /verify bob"
        assert warning.has_class("warning")
        # Every line from a changed key carries the mark until it is verified again.
        assert chat.plain == "09:30 ! bob: it's me, new laptop"
        assert "! bob key changed" in str(app.member_list.content)


async def test_own_message_pending_until_confirmed() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.deliver(ChatLine("alice", "first", epoch=3, own=True, pending=True, local_id=1))
        app.deliver(ChatLine("alice", "second", epoch=3, own=True, pending=True, local_id=2))
        await pilot.pause()
        first, second = app.message_log.lines
        assert first.plain == "09:30 alice: first" + PENDING_MARK
        assert first.has_class("pending") and first.has_class("own")
        app.deliver(MessageConfirmed(1))
        await pilot.pause()
        assert first.plain == "09:30 alice: first" and not first.has_class("pending")
        assert second.plain.endswith(PENDING_MARK) and second.has_class("pending")
        # A second or unknown confirmation changes nothing.
        app.deliver(MessageConfirmed(1))
        app.deliver(MessageConfirmed(99))
        await pilot.pause()
        assert app.message_log.plain_lines() == ["09:30 alice: first", "09:30 alice: second" + PENDING_MARK]


async def test_notices_from_another_thread() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        def session_thread() -> None:
            for i in range(20):
                app.deliver(ChatLine("bob", f"m{i}", epoch=1))

        thread = threading.Thread(target=session_thread)
        thread.start()
        thread.join(timeout=5)
        for _ in range(20):
            await pilot.pause()
            if len(app.message_log.lines) == 20:
                break
        assert app.message_log.plain_lines() == [f"09:30 bob: m{i}" for i in range(20)]


async def test_command_errors_are_lines_not_crashes() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await type_line(pilot, app, "/nope")
        await type_line(pilot, app, "/verify")
        await type_line(pilot, app, "/who everyone")
        await type_line(pilot, app, "/trust bob")  # no session behind this app
        await type_line(pilot, app, "hello")
        assert app.message_log.plain_lines() == [
            "✕ unknown command /nope: type /help for the list, or // to send a line starting with /",
            "✕ /verify needs a NAME: type /verify NAME",
            "✕ /who takes no argument: type /who",
            "✕ not connected: this window has no chat session",
            "✕ not connected: this window has no chat session",
        ]
        assert all(line.has_class("error") for line in app.message_log.lines)
        assert app.input.value == ""
        assert app.is_running


async def test_help_and_who() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.deliver(RosterChanged((
            RosterEntry("alice", "aaaa 1111", True, TrustState.VERIFIED, is_me=True),
            RosterEntry("bob", "bbbb 2222", False, TrustState.UNVERIFIED),
        )))
        await pilot.pause()
        await type_line(pilot, app, "/help")
        assert any(
            re.fullmatch(r"  /verify NAME +show the safety number to compare with NAME out of band", line)
            for line in app.message_log.plain_lines()
        )
        await type_line(pilot, app, "/who")
        assert app.message_log.plain_lines()[-4:] == [
            "2 members:",
            "  alice (you) · online · verified · aaaa 1111",
            "  bob · offline · not verified · bbbb 2222",
            "  " + wording_tui.FINGERPRINT_MEANS,  # what the last column is for, and whom to ask
        ]


TREE = TreeView("tree", 7, (
    TreeNode(0, 0, "alice", "a1f0", changed=True, mine=True),
    TreeNode(1, 1, "", "b2c3", changed=True, mine=True),
    TreeNode(2, 0, "bob", "c4d5", changed=False, mine=False),
    TreeNode(3, 2, "", "d6e7", changed=True, mine=True),
    TreeNode(4, 0, "carol", "e8f9", changed=False, mine=False),
))


def test_tree_drawing_marks_changed_nodes_and_our_path() -> None:
    assert tree_text(TREE).plain.splitlines()[:6] == [
        "Key tree · epoch 7",
        "d6e7 * ◂",
        "├─ b2c3 * ◂",
        "│  ├─ alice a1f0 * ◂",
        "│  └─ bob c4d5",
        "└─ carol e8f9",
    ]


def test_tree_drawing_names_who_chose_a_leaf_and_empty_slots() -> None:
    view = TreeView("tree", 3, (
        TreeNode(0, 0, "alice", "a1f0", changed=False, mine=True),
        TreeNode(1, 1, "", "b2c3", changed=True, mine=True),
        TreeNode(2, 0, "dave", "c4d5", changed=True, mine=False, set_by="alice"),
        TreeNode(3, 2, "", "d6e7", changed=True, mine=True),
        TreeNode(4, 0, "", "e8f9", changed=False, mine=False),
        TreeNode(5, 1, "", "", changed=False, mine=False),
        TreeNode(6, 0, "", "", changed=False, mine=False),
    ))
    lines = tree_text(view).plain.splitlines()
    assert lines[:8] == [
        "Key tree · epoch 3",
        "d6e7 * ◂",
        "├─ b2c3 * ◂",
        "│  ├─ alice a1f0 ◂",
        "│  └─ dave c4d5 ← set by alice *",
        "└─ (empty)",  # one word for every vacant node (it was "(blank)", "(empty slot)", "(empty)")
        "   ├─ (empty) e8f9",
        "   └─ (empty)",
    ]
    assert lines[-1].startswith("← set by X: X chose this leaf's secret")
    assert "set by" not in tree_text(TREE).plain  # no legend without a tainted leaf


def test_ring_drawing() -> None:
    ring = TreeView("ring", 2, (
        TreeNode(0, 0, "alice", "a1", changed=False, mine=True),
        TreeNode(1, 0, "bob", "b2", changed=True, mine=False),
    ))
    assert tree_text(ring).plain.splitlines()[:5] == [
        "Ring · epoch 2", "┌ alice a1 ◂", "  ↓", "  bob b2 *", "└ back to alice",
    ]
    # A ring has no paths: its legend says what the marks mean there.
    assert tree_text(ring).plain.splitlines()[-4:] == list(wording_tui.RING_LEGEND)


@pytest.mark.parametrize("scheme", ["tree", "ring"])
def test_the_legend_explains_every_symbol_the_panel_draws(scheme: str) -> None:
    middle = TreeNode(1, 1, "", "", changed=True, mine=True) if scheme == "tree" else (
        TreeNode(1, 0, "bob", "b2c3", changed=True, mine=False))  # a ring has members only
    view = TreeView(scheme, 3, (
        TreeNode(0, 0, "alice", "a1f0", changed=False, mine=True),
        middle,
        TreeNode(2, 0, "dave", "c4d5", changed=True, mine=False, set_by="alice"),
    ))
    text = tree_text(view).plain
    drawing, legend = text.split("\n\n", 1)
    # Every mark in the drawing (other than the tree's lines and the names) has its legend line.
    marks = {"*", "◂", "← set by", wording_tui.TREE_EMPTY, "↓"}
    for mark in marks:
        if mark in drawing:
            assert any(line.startswith(mark.split()[0]) for line in legend.splitlines()), (mark, legend)
    assert "a1f0 " in legend  # what the hex digits are
    assert (wording_tui.TREE_EMPTY in drawing) is (scheme == "tree")
    for word in ("(blank)", "(empty slot)"):
        assert word not in text


async def test_tree_panel_toggles_by_command_and_key() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.deliver(TREE)
        await pilot.pause()
        assert not app.tree_panel.display
        await type_line(pilot, app, "/tree")
        assert app.tree_panel.display
        assert "│  ├─ alice a1f0 * ◂" in str(app.tree_panel.content)
        await pilot.press("ctrl+t")
        assert not app.tree_panel.display
        await pilot.press("ctrl+t")
        assert app.tree_panel.display


async def test_input_history_up_and_down() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        for text in ("/help", "/who", "/who"):
            await type_line(pilot, app, text)
        app.input.value = "draft"
        await pilot.press("up")
        assert app.input.value == "/who"  # a repeated line is remembered once
        await pilot.press("up")
        assert app.input.value == "/help"
        await pilot.press("up")
        assert app.input.value == "/help"
        await pilot.press("down", "down")
        assert app.input.value == "draft"


async def test_old_lines_are_dropped_past_the_cap() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.message_log.MAX_LINES = 5
        app.message_log._TRIM_SLACK = 2  # old lines go in batches: at 5 + 2, down to 5
        app.deliver(ChatLine("alice", "mine", epoch=1, own=True, pending=True, local_id=1))
        for i in range(6):
            app.deliver(ChatLine("bob", f"m{i}", epoch=1))
        await pilot.pause()
        assert len(app.message_log.lines) == 7
        app.deliver(ChatLine("bob", "m6", epoch=1))
        await pilot.pause()
        assert app.message_log.plain_lines() == [f"09:30 bob: m{i}" for i in range(2, 7)]
        app.deliver(MessageConfirmed(1))  # its line is gone: nothing to update, no error
        await pilot.pause()
        assert len(app.message_log.lines) == 5


async def test_bindings_have_ids_and_show_in_the_footer() -> None:
    app = make_app()
    async with app.run_test(size=SIZE):
        ids = {b.id for b in app.BINDINGS if isinstance(b, Binding)}
        assert {"quit", "toggle-tree", "focus-input", "scroll-up", "scroll-down", "scroll-bottom"} <= ids
        shown = {binding.action for (_, binding, enabled, _) in app.active_bindings.values() if binding.show}
        assert {"quit", "toggle_tree", "scroll_log(-1)", "scroll_log(1)", "scroll_bottom"} <= shown


@pytest.mark.parametrize("how", ["key", "command"])
async def test_quit_exits(how: str) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        if how == "key":
            await pilot.press("ctrl+q")
        else:
            await type_line(pilot, app, "/quit")
        for _ in range(100):
            if not app.is_running:
                break
            await pilot.pause(0.02)
        assert not app.is_running
    assert app.return_code == 0


async def test_log_sticks_to_the_bottom_until_the_user_scrolls_up() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        log = app.message_log
        for i in range(120):
            app.deliver(ChatLine("bob", f"line {i}", epoch=1))
        await pilot.pause()
        assert log.max_scroll_y > 0 and log.scroll_y == log.max_scroll_y
        await pilot.press("pageup")
        await pilot.pause()
        reading_at = log.scroll_y
        assert reading_at < log.max_scroll_y
        app.deliver(ChatLine("bob", "while you read", epoch=1))
        await pilot.pause()
        assert log.scroll_y == reading_at  # new lines do not yank the view away
        await pilot.press("ctrl+end")
        app.deliver(ChatLine("bob", "latest", epoch=1))
        await pilot.pause()
        assert log.scroll_y == log.max_scroll_y


async def test_long_lines_wrap_under_the_text_not_the_stamp() -> None:
    app = make_app()
    async with app.run_test(size=(60, 20)) as pilot:
        app.deliver(ChatLine("bob", "word " * 30, epoch=1))
        await pilot.pause()
        entry = app.message_log.lines[-1]
        rows = [strip.text for strip in entry.strips]
        assert len(rows) > 1
        assert rows[0].startswith("09:30 bob: word")
        # Under the stamp, a bar: these rows belong to bob's message.
        assert all(row.startswith("    │ word") for row in rows[1:])


async def test_keymap_remaps_a_binding_by_id() -> None:
    app = ChatApp(now=lambda: datetime(2026, 11, 22, 9, 30), cursor_blink=False, keymap={"toggle-tree": "f2"})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+t")
        assert not app.tree_panel.display
        await pilot.press("f2")
        assert app.tree_panel.display


def test_factory_and_session_together_are_refused() -> None:
    with pytest.raises(UsageError, match="a session factory or a session, not both"):
        ChatApp(lambda notify: None, session=object())  # type: ignore[arg-type,return-value]
