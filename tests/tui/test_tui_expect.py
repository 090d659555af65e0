"""What users expect of a chat client (issue 15): mentions and the bell, the unread count in the
title, per-member colours, date separators, /me, a scrollback search and themes. The real ChatApp
under Pilot, fed the notices a session sends."""

from __future__ import annotations

from datetime import datetime

import pytest
from textual import events
from textual.pilot import Pilot

from groupchat.client import wording_tui
from groupchat.client.notices import ChatLine, RosterChanged, RosterEntry, TrustState
from groupchat.tui.app import ChatApp
from groupchat.tui.highlight import names_me, own_names

SIZE = (110, 30)

ROSTER = RosterChanged((
    RosterEntry("alice", "aaaa 1111", online=True, trust=TrustState.VERIFIED, is_me=True),
    RosterEntry("bob", "bbbb 2222", online=True, trust=TrustState.UNVERIFIED),
    RosterEntry("carol", "cccc 3333", online=True, trust=TrustState.UNVERIFIED),
))


def make_app(**kwargs: object) -> ChatApp:
    return ChatApp(now=lambda: datetime(2026, 11, 22, 9, 30), cursor_blink=False, **kwargs)  # type: ignore[arg-type]


class Bells:
    def __init__(self, app: ChatApp) -> None:
        self.count = 0
        app.bell = self.ring  # type: ignore[method-assign]

    def ring(self) -> None:
        self.count += 1


async def type_line(pilot: Pilot[int], app: ChatApp, text: str) -> None:
    app.input.value = text
    await app.input.action_submit()
    await pilot.pause()


# -- 1. mentions, the bell, the title -----------------------------------------------------------


def test_a_mention_is_the_name_as_a_word_in_any_case() -> None:
    names = own_names("alice·3f2a")
    assert names == {"alice·3f2a", "alice"}
    assert names_me("hi Alice, look", names)
    assert names_me("ALICE?", names)
    assert names_me("@alice·3f2a see this", names)
    assert not names_me("malice aforethought", names)
    assert not names_me("alice2 is someone else", names)
    assert not names_me("hi bob", names)


async def test_a_line_naming_you_is_highlighted_and_rings_the_bell() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        bells = Bells(app)
        app.deliver(ROSTER)
        app.deliver(ChatLine("bob", "morning all", epoch=3))
        app.deliver(ChatLine("bob", "ALICE, are you there?", epoch=3))
        app.deliver(ChatLine("carol", "malice is a word", epoch=3))
        app.deliver(ChatLine("alice", "yes, alice here", epoch=3, own=True, pending=True, local_id=1))
        await pilot.pause()
        plain, named, not_a_word, own = app.message_log.lines
        assert named.has_class("mention")
        assert not plain.has_class("mention") and not not_a_word.has_class("mention")
        assert not own.has_class("mention")  # naming yourself is not a mention
        assert bells.count == 1


@pytest.mark.parametrize(("mode", "rings"), [("mention", 1), ("all", 3), ("off", 0)])
async def test_the_bell_is_configurable(mode: str, rings: int) -> None:
    app = make_app(bell=mode)
    async with app.run_test(size=SIZE) as pilot:
        bells = Bells(app)
        app.deliver(ROSTER)
        app.deliver(ChatLine("bob", "hi", epoch=3))
        app.deliver(ChatLine("bob", "hi alice", epoch=3))
        app.deliver(ChatLine("carol", "hi", epoch=3))
        app.deliver(ChatLine("alice", "hi alice", epoch=3, own=True))
        await pilot.pause()
        assert bells.count == rings


def test_an_unknown_bell_mode_is_refused() -> None:
    with pytest.raises(Exception, match="bell must be one of mention, all, off, not 'loud'"):
        make_app(bell="loud")


async def test_the_title_counts_what_arrived_while_you_were_away() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.deliver(ROSTER)
        await pilot.pause()
        app.deliver(ChatLine("bob", "seen at once", epoch=3))
        await pilot.pause()
        assert app.title == "groupchat"  # you were looking
        app.post_message(events.AppBlur())
        await pilot.pause()
        app.deliver(ChatLine("bob", "one", epoch=3))
        app.deliver(ChatLine("carol", "alice: two", epoch=3))
        app.deliver(ChatLine("alice", "mine do not count", epoch=3, own=True))
        await pilot.pause()
        assert app.title == wording_tui.window_title(2, 1) == "groupchat (2 unread, 1 naming you)"
        app.post_message(events.AppFocus())
        await pilot.pause()
        assert app.title == "groupchat"
        # Scrolled up in a focused window counts too, until you are back at the end.
        for i in range(40):
            app.deliver(ChatLine("bob", f"filler {i}", epoch=3))
        await pilot.pause()
        app.action_scroll_log(-1)
        await pilot.pause()
        app.deliver(ChatLine("bob", "below", epoch=3))
        await pilot.pause()
        assert app.title == "groupchat (1 unread)"
        app.action_scroll_bottom()
        await pilot.pause()
        assert app.title == "groupchat"
