"""The input under Pilot: multi-line drafts, pastes, $EDITOR, long drafts and the timeline's rows.

These apps have no session (what is sent is checked end to end in test_tui_live_input.py): a
message that would be sent is refused with "not connected", which shows it got that far.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import datetime
from pathlib import Path

import pytest
from textual import events

from groupchat.client import wording_tui
from groupchat.client.notices import ChatLine, RosterChanged, RosterEntry, TrustState
from groupchat.client.session.settings import MAX_TEXT_BYTES
from groupchat.tui.app import ChatApp
from groupchat.tui.commands import CommandName, SendText, parse_input
from groupchat.tui.draft import CONFIRM_LINES, check_draft, split_text
from groupchat.tui.widgets import UnreadMarker
from groupchat.tui.widgets.history_input import complete_name

SIZE = (100, 30)
NOT_CONNECTED = "✕ not connected: this window has no chat session"


def make_app() -> ChatApp:
    return ChatApp(now=lambda: datetime(2026, 11, 22, 9, 30), cursor_blink=False)


async def test_a_paste_keeps_every_line() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.post_message(events.Paste("first line\r\nsecond line\rthird line"))  # as terminals send it
        await pilot.pause()
        assert app.input.value == "first line\nsecond line\nthird line"
        assert app.input.has_focus
        await pilot.press("enter")  # three lines are not long: sent at once (here: refused, no session)
        assert app.message_log.plain_lines() == [NOT_CONNECTED]
        assert app.input.value == ""
        assert app.input.sent == ["first line\nsecond line\nthird line"]


@pytest.mark.parametrize("key", ["ctrl+j", "alt+enter", "shift+enter"])
async def test_newline_keys_start_a_new_line_and_enter_submits(key: str) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("h", "i", key, "y", "o")
        assert app.input.value == "hi\nyo"
        assert app.message_log.plain_lines() == []  # nothing was submitted
        await pilot.press("up")  # on the second line, up moves the cursor; it recalls nothing
        assert app.input.value == "hi\nyo" and app.input.cursor_location == (0, 2)
        await pilot.press("enter")
        assert app.message_log.plain_lines() == [NOT_CONNECTED]
        assert app.input.sent == ["hi\nyo"]


async def test_a_long_paste_is_sent_only_on_a_second_enter() -> None:
    app = make_app()
    draft = "\n".join(f"line {i}" for i in range(CONFIRM_LINES + 5))
    async with app.run_test(size=SIZE) as pilot:
        app.post_message(events.Paste(draft))
        await pilot.pause()
        await pilot.press("enter")
        prompt = wording_tui.draft_is_long(CONFIRM_LINES + 5, len(draft.encode()))
        assert app.message_log.plain_lines() == [prompt]
        assert app.input.value == draft  # kept, to send or to change
        await pilot.press("x")  # a changed draft is asked about again
        await pilot.press("enter")
        assert app.message_log.plain_lines()[-1].startswith("this message has")
        await pilot.press("enter")
        assert app.message_log.plain_lines()[-1] == NOT_CONNECTED
        assert app.input.value == ""


async def test_a_draft_over_the_limit_is_offered_as_several_messages() -> None:
    app = make_app()
    draft = "\n".join("x" * 1000 for _ in range(40))  # 40 KiB of lines
    async with app.run_test(size=SIZE) as pilot:
        app.input.value = draft
        await pilot.press("enter")
        parts = split_text(draft, MAX_TEXT_BYTES)
        assert len(parts) == 3
        assert app.message_log.plain_lines() == [
            wording_tui.draft_over_limit(len(draft), MAX_TEXT_BYTES, 3)
        ]
        await pilot.press("enter")
        assert app.message_log.plain_lines()[-1] == NOT_CONNECTED


def test_split_text_keeps_lines_whole_and_cuts_only_overlong_ones() -> None:
    text = "\n".join(["a" * 6, "b" * 6, "c" * 20, "", "d"])
    parts = split_text(text, 14)
    assert parts == ["a" * 6 + "\n" + "b" * 6, "c" * 14, "c" * 6 + "\n\nd"]
    assert all(len(p.encode()) <= 14 for p in parts)
    # Cut after a space when one is near; never inside a UTF-8 sequence.
    assert split_text("hello wide world", 12) == ["hello wide ", "world"]
    assert split_text("é" * 10, 5) == ["éé", "éé", "éé", "éé", "éé"]
    assert split_text("a\n   \nb", 2) == ["a", "b"]  # no blank message
    assert check_draft("short", MAX_TEXT_BYTES) is None


def test_multi_line_drafts_parse_as_one_message() -> None:
    assert parse_input("\n  code:\n    x = 1  \n\n") == SendText("  code:\n    x = 1")
    assert parse_input("//x\ny") == SendText("/x\ny")
    with pytest.raises(Exception, match="a command is one line"):
        parse_input("/verify bob\nand more")
    assert parse_input("/edit").name is CommandName.EDIT  # type: ignore[union-attr]


def _editor(tmp_path: Path, body: str) -> str:
    """An $EDITOR that appends a line to the file it is given (as a person would) and saves."""
    script = tmp_path / "editor.py"
    script.write_text(
        "import os, sys\n"
        "p = sys.argv[1]\n"
        f"open({str(tmp_path / 'seen')!r}, 'a').write(p + ' %o\\n' % (os.stat(p).st_mode & 0o777))\n"
        "text = open(p, encoding='utf-8').read()\n"
        f"open(p, 'w', encoding='utf-8').write(text + {body!r} + '\\n')\n"
        "sys.exit(0)\n"
    )
    return f"{sys.executable} {script}"


async def test_ctrl_o_opens_the_editor_on_the_draft(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the draft file is made here
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", _editor(tmp_path, "\nand a second line"))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("h", "i")
        await pilot.press("ctrl+o")
        assert app.input.value == "hi\nand a second line"  # the editor's file, without its last newline
        assert app.input.has_focus
        draft_file, mode = (tmp_path / "seen").read_text().split()
        assert Path(draft_file).parent == tmp_path and mode == "600"  # only we could read the draft
        assert not Path(draft_file).exists()  # and it is gone
        assert app.message_log.plain_lines() == []


async def test_slash_edit_and_a_failing_editor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISUAL", _editor(tmp_path, "from the editor"))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.input.value = "/edit"
        await pilot.press("enter")
        assert app.input.value == "from the editor"
        monkeypatch.setenv("VISUAL", f"{sys.executable} -c 'import sys; sys.exit(3)'")
        await pilot.press("ctrl+o")
        assert app.input.value == "from the editor"  # unchanged
        assert app.message_log.plain_lines()[-1] == "✕ " + wording_tui.editor_failed(
            f"{sys.executable} -c 'import sys; sys.exit(3)'", "exit status 3"
        )


async def test_a_multi_line_message_shows_each_line_under_its_stamp() -> None:
    app = make_app()
    async with app.run_test(size=(60, 20)) as pilot:
        app.deliver(ChatLine("bob", "first\nsecond\n09:30 carol: not carol", epoch=1))
        await pilot.pause()
        rows = [strip.text.rstrip() for strip in app.message_log.lines[-1].strips]
        assert rows == ["09:30 bob: first", "    │ second", "    │ 09:30 carol: not carol"]


# -- focus and Tab (item 2) ------------------------------------------------------------------------

ROSTER = RosterChanged((
    RosterEntry("alice", "aaaa 1111", True, TrustState.VERIFIED, is_me=True),
    RosterEntry("bob", "bbbb 2222", True, TrustState.UNVERIFIED),
    RosterEntry("bob·3f2a", "3f2a 3333", True, TrustState.UNVERIFIED),
    RosterEntry("Bea", "cccc 4444", False, TrustState.UNVERIFIED),
    RosterEntry("carol", "dddd 5555", True, TrustState.UNVERIFIED),
))


async def test_tab_completes_member_names_cycling_and_keeps_focus() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.deliver(ROSTER)
        await pilot.pause()
        await pilot.press("b", "tab")
        assert app.input.has_focus
        assert app.input.value == "Bea: "  # at the start of a message: "name: "
        await pilot.press("tab")
        assert app.input.value == "bob: "
        await pilot.press("tab")
        assert app.input.value == "bob·3f2a: "  # a look-alike's label, as the member list shows it
        await pilot.press("tab")
        assert app.input.value == "Bea: "  # round again
        await pilot.press("h", "i", " ", "c", "a", "tab")
        assert app.input.value == "Bea: hi carol "
        await pilot.press("tab")
        assert app.input.value == "Bea: hi carol "  # one match: it stays
        app.input.value = "/verify @bo"
        await pilot.press("tab")
        assert app.input.value == "/verify @bob "
        app.input.value = "x a"
        await pilot.press("tab")  # ourselves and no match: nothing changes, focus stays
        assert app.input.value == "x a" and app.input.has_focus


async def test_escape_back_to_the_input_keeps_the_draft() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("h", "e", "l", "l", "o")
        app.set_focus(app.message_log)  # scrolling the timeline with the mouse or shift+tab
        await pilot.pause()
        assert not app.input.has_focus
        await pilot.press("escape")
        assert app.input.has_focus
        assert app.input.selected_text == ""
        await pilot.press("!")  # the next key adds to the draft, it does not replace it
        assert app.input.value == "hello!"


async def test_enter_while_the_focus_is_elsewhere_sends_the_draft() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.set_focus(app.message_log)
        await pilot.press("enter")  # nothing drafted: only back to the input
        assert app.input.has_focus and app.message_log.plain_lines() == []
        await pilot.press("h", "i")
        app.set_focus(app.message_log)
        await pilot.pause()
        await pilot.press("enter")
        assert app.input.has_focus
        assert app.message_log.plain_lines() == [NOT_CONNECTED]  # it was sent (no session here)
        assert app.input.value == ""


def test_complete_name_rules() -> None:
    names = ["bob", "bobby", "carol smith"]
    assert complete_name("hi bo", 5, names) == ("hi bob ", 7, "bo")
    assert complete_name("hi bob ", 7, names, "bo", "bob") == ("hi bobby ", 9, "bo")
    assert complete_name("hi bobby ", 9, names, "bo", "bobby") == ("hi bob ", 7, "bo")
    assert complete_name("ca and more", 2, names) == ("carol smith: and more", 13, "ca")
    assert complete_name("hi ", 3, names) is None  # no word before the cursor
    assert complete_name("hi zed", 6, names) is None


# -- scrolling (item 3) ----------------------------------------------------------------------------


async def test_unread_count_while_scrolled_up_and_sending_scrolls_to_the_end() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        log, marker = app.message_log, app.query_one("#unread", UnreadMarker)
        for i in range(120):
            app.deliver(ChatLine("bob", f"line {i}", epoch=1))
        await pilot.pause()
        assert not marker.display  # following the end: nothing is unread
        await pilot.press("pageup")
        await pilot.pause()
        app.deliver(ChatLine("bob", "while you read", epoch=1))
        app.deliver(ChatLine("carol", "and this", epoch=1))
        await pilot.pause()
        assert log.unread == 2 and marker.display
        assert str(marker.content) == wording_tui.unread_marker(2) == "2 new messages ↓ (ctrl+end)"
        reading_at = log.scroll_y
        assert reading_at < log.max_scroll_y  # not yanked away
        # Sending scrolls to the end: our own line shows, and so does what we had not read.
        await pilot.press("h", "i", "enter")
        await pilot.pause()
        assert log.scroll_y == log.max_scroll_y and log.following
        assert log.unread == 0 and not marker.display
        # Scrolling back down by hand clears the count too.
        await pilot.press("pageup")
        app.deliver(ChatLine("bob", "one more", epoch=1))
        await pilot.pause()
        assert str(marker.content) == "1 new message ↓ (ctrl+end)"
        for _ in range(5):
            await pilot.press("pagedown")
        await pilot.pause()
        assert log.following and not marker.display
        app.deliver(ChatLine("bob", "latest", epoch=1))
        await pilot.pause()
        assert log.scroll_y == log.max_scroll_y and log.unread == 0


async def test_clicking_the_unread_marker_jumps_to_the_end() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        log = app.message_log
        for i in range(120):
            app.deliver(ChatLine("bob", f"line {i}", epoch=1))
        await pilot.pause()
        await pilot.press("pageup")
        app.deliver(ChatLine("bob", "new", epoch=1))
        await pilot.pause()
        await pilot.click("#unread")
        await pilot.pause()
        assert log.scroll_y == log.max_scroll_y and log.unread == 0


async def test_a_paste_while_the_focus_is_elsewhere_goes_into_the_draft() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a", " ")
        app.set_focus(app.message_log)
        await pilot.pause()
        app.post_message(events.Paste("pasted\ntwice"))
        await pilot.pause()
        assert app.input.has_focus
        assert app.input.value == "a pasted\ntwice"


async def test_the_input_grows_with_the_draft_up_to_a_limit() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        one_line = app.input.outer_size.height
        app.input.value = "1\n2\n3"
        await pilot.pause()
        assert app.input.outer_size.height == one_line + 2
        app.input.value = "\n".join(str(i) for i in range(40))
        await pilot.pause()
        assert app.input.outer_size.height == 10  # then it scrolls; the timeline keeps the screen
        assert app.message_log.size.height > 10


async def test_keys_typed_before_the_app_handles_enter_are_kept() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.input.value = "first"
        app.input.submit()  # Enter: the app handles it later, on its own queue…
        app.input.insert("next")  # …after keys a fast typist (or tmux) sent right behind it
        await pilot.pause()
        assert app.message_log.plain_lines() == [NOT_CONNECTED]
        assert app.input.sent == ["first"]
        assert app.input.value == "next"  # the next draft, not wiped by the first one's submission


async def test_keys_that_arrive_together_stay_in_order() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        # As the terminal driver forwards a burst of keys: all queued on the input before any runs.
        for key, char in (("a", "a"), ("ctrl+j", None), ("b", "b"), ("backspace", None), ("c", "c")):
            app.input.post_message(events.Key(key, char))
        await pilot.pause()
        assert app.input.value == "a\nc"


async def test_help_lists_the_keys_as_remapped_and_input_keys_can_be_remapped() -> None:
    app = ChatApp(now=lambda: datetime(2026, 11, 22, 9, 30), cursor_blink=False,
                  keymap={"newline": "ctrl+n", "edit-draft": "f4"})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a", "ctrl+n", "b")
        assert app.input.value == "a\nb"
        await pilot.press("ctrl+j")  # no longer the newline key
        assert app.input.value == "a\nb"
        app.input.value = "/help"
        await pilot.press("enter")
        lines = app.message_log.plain_lines()
        keys = lines[lines.index("keys:") + 1 :]
        assert keys[0].split() == ["enter", *wording_tui.KEY_HELP["submit"].split()]
        assert keys[1].split() == ["ctrl+n", *wording_tui.KEY_HELP["newline"].split()]
        assert any(k.split()[0] == "f4" and k.endswith(wording_tui.KEY_HELP["edit-draft"]) for k in keys)
        assert len(keys) == len(wording_tui.KEY_HELP)


async def test_ctrl_o_in_a_burst_of_keys_opens_the_editor_on_every_key_typed_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a terminal forwards "draft ctrl+o" in one burst: the editor must see all of "draft", and
    nothing typed before ctrl+o may land after what the editor saved. (It ran as a priority
    binding on the app's task, ahead of the keys still queued on the input: the tmux test saw
    "dra" + the editor's lines + "ft".)"""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", _editor(tmp_path, "from the editor"))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        for char in "draft ":
            app.post_message(events.Key("space" if char == " " else char, char))
        app.post_message(events.Key("ctrl+o", None))
        await pilot.pause()
        await pilot.pause()
        assert app.input.value == "draft from the editor"
