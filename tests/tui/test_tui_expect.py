"""What users expect of a chat client (issue 15): mentions and the bell, the unread count in the
title, per-member colours, date separators, /me, a scrollback search and themes. The real ChatApp
under Pilot, fed the notices a session sends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path

import pytest
from rich.style import Style
from rich.text import Text
from textual import events
from textual.pilot import Pilot
from tui_peers import Peer

from groupchat.client import wording_tui
from groupchat.client.config import BELLS, ClientConfig, ConfigFileError, load_config
from groupchat.client.notices import ChatLine, RosterChanged, RosterEntry, TrustState
from groupchat.core.errors import UsageError
from groupchat.tui.app import ChatApp
from groupchat.tui.command import main as chat_main
from groupchat.tui.commands import Command, CommandError, CommandName, parse_input
from groupchat.tui.highlight import BELL_MODES, PALETTE, action_of, member_colour, names_me, own_names
from server.relay import Relay

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
    with pytest.raises(UsageError, match="bell must be one of mention, all, off, not 'loud'"):
        make_app(bell="loud")
    assert BELLS == BELL_MODES  # the config file accepts what the screen knows
    with pytest.raises(ConfigFileError, match="bell must be one of mention, all, off, not 'loud'"):
        ClientConfig(bell="loud")


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


# -- 2. per-member colours ----------------------------------------------------------------------


def _luminance(hex_colour: str) -> float:
    def channel(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def test_every_member_colour_reads_on_light_and_dark() -> None:
    assert len(set(PALETTE)) == len(PALETTE) >= 8
    for colour in PALETTE:
        lum = _luminance(colour)
        on_black = (lum + 0.05) / 0.05
        on_white = 1.05 / (lum + 0.05)
        assert min(on_black, on_white) >= 4.4, colour  # WCAG AA for text is 4.5; these are bold


def test_a_colour_comes_from_the_key_not_the_name() -> None:
    assert member_colour("aaaa 1111") == member_colour("AAAA1111")  # the same key, however written
    colours = {member_colour(f"{i:04x} 9c1d") for i in range(200)}
    assert len(colours) == len(PALETTE)  # the hash spreads keys over the whole palette


async def test_names_have_their_members_colour_in_the_list_and_the_timeline() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        # Two members named bob with different keys (labels tell them apart) get their own colours.
        twins = ("bbbb 2222", "0000 0007")
        assert member_colour(twins[0]) != member_colour(twins[1])
        app.deliver(RosterChanged((
            RosterEntry("alice", "aaaa 1111", online=True, trust=TrustState.VERIFIED, is_me=True),
            RosterEntry("bob·bbbb", twins[0], online=True, trust=TrustState.UNVERIFIED),
            RosterEntry("bob·0000", twins[1], online=True, trust=TrustState.UNVERIFIED),
        )))
        app.deliver(ChatLine("bob·bbbb", "one", epoch=3))
        app.deliver(ChatLine("bob·0000", "two", epoch=3))
        app.deliver(ChatLine("alice", "mine", epoch=3, own=True))
        await pilot.pause()

        def name_colour(text: Text, name: str) -> str:
            start = text.plain.index(name)
            spans = [s for s in text.spans if s.start <= start < s.end and "#" in str(s.style)]
            assert spans, name
            return str(Style.parse(str(spans[-1].style)).color.name)  # type: ignore[union-attr]

        first, second, own = app.message_log.lines
        assert name_colour(first.body, "bob·bbbb") == member_colour(twins[0])
        assert name_colour(second.body, "bob·0000") == member_colour(twins[1])
        assert name_colour(own.body, "alice") == member_colour("aaaa 1111")
        roster = app.member_list.content
        assert isinstance(roster, Text)
        for name, key in (("alice", "aaaa 1111"), ("bob·bbbb", twins[0]), ("bob·0000", twins[1])):
            assert name_colour(roster, name) == member_colour(key)


# -- 3. date separators -------------------------------------------------------------------------


async def test_a_date_line_when_the_local_date_changes() -> None:
    times = iter([
        datetime(2026, 11, 22, 23, 58), datetime(2026, 11, 22, 23, 59),
        datetime(2026, 11, 23, 0, 1), datetime(2026, 11, 23, 0, 2),
        datetime(2026, 11, 26, 8, 0),
    ])
    app = ChatApp(now=lambda: next(times), cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        app.deliver(ChatLine("bob", "late", epoch=3))
        app.deliver(ChatLine("bob", "very late", epoch=3))
        app.deliver(ChatLine("bob", "past midnight", epoch=3))
        app.deliver(ChatLine("carol", "go to bed", epoch=3))
        app.deliver(ChatLine("bob", "back", epoch=3))
        await pilot.pause()
        assert app.message_log.plain_lines() == [
            "23:58 bob: late",
            "23:59 bob: very late",
            "── Monday 23 November 2026 ──",
            "00:01 bob: past midnight",
            "00:02 carol: go to bed",
            "── Thursday 26 November 2026 ──",
            "08:00 bob: back",
        ]
        assert app.message_log.lines[2].has_class("separator")


# -- 4. /me -------------------------------------------------------------------------------------

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


def test_me_is_a_command_with_an_action() -> None:
    assert parse_input("/me waves at everyone") == Command(CommandName.ME, "waves at everyone")
    with pytest.raises(CommandError, match="/me needs a ACTION"):
        parse_input("/me")
    assert action_of("/me waves") == "waves"
    assert action_of("/me ") is None and action_of("/meow") is None and action_of("hi /me x") is None


async def test_me_reads_as_an_action_on_every_screen(peers: PeerFactory) -> None:
    alice = await peers("alice")
    await alice.wait_ready(1)
    bob = await peers("bob")
    await bob.wait_ready(2)
    await alice.wait_ready(2)

    await alice.type("/me waves at bob")
    assert await bob.wait_line("* alice waves at bob") == "09:41 * alice waves at bob"
    await alice.wait_until(
        "confirmation", lambda app: "09:41 * alice waves at bob" in app.message_log.plain_lines()
    )
    # A message that only contains "/me" later on is plain text.
    await bob.type("what does /me do")
    assert await alice.wait_line("bob: what does /me do") == "09:41 bob: what does /me do"


# -- 5. scrollback search -----------------------------------------------------------------------


def _visible(app: ChatApp, entry: object) -> bool:
    log = app.message_log
    index = next(i for i, e in enumerate(log.entries) if e is entry)
    top = log.scroll_offset.y
    return top <= log._starts[index] < top + log.scrollable_content_region.height


async def test_search_highlights_matches_and_jumps_between_them() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.deliver(ROSTER)
        app.deliver(ChatLine("bob", "the Deploy is at noon", epoch=3))
        for i in range(30):
            app.deliver(ChatLine("carol", f"filler {i}", epoch=3))
        app.deliver(ChatLine("carol", "deploy moved to one", epoch=3))
        for i in range(30):
            app.deliver(ChatLine("bob", f"more filler {i}", epoch=3))
        app.deliver(ChatLine("bob", "nothing here", epoch=3))
        await pilot.pause()
        log = app.message_log
        oldest = next(e for e in log.entries if "noon" in e.plain)
        newer = next(e for e in log.entries if "moved" in e.plain)
        await type_line(pilot, app, "/search deploy")
        assert [e.plain for e in log.matches()] == [oldest.plain, newer.plain]  # case-insensitive
        # The newest match first, scrolled into view and marked as the current one.
        assert log.search_current is newer and _visible(app, newer) and not log.following
        segments = [seg for strip in newer.strips for seg in strip]
        current = log.get_component_rich_style("message-log--match-current", partial=True)
        assert any(seg.text.lower() == "deploy" and seg.style is not None and seg.style.reverse
                   for seg in segments), segments
        assert current.reverse
        # ctrl+f: the one before, then round to the newest again.
        await pilot.press("ctrl+f")
        await pilot.pause()
        assert log.search_current is oldest and _visible(app, oldest)
        await pilot.press("ctrl+f")
        await pilot.pause()
        assert log.search_current is newer
        # The search's own output is not searched; /search alone clears the marks.
        await type_line(pilot, app, "/search filler 29")
        assert [e.plain for e in log.matches()] == ["09:30 carol: filler 29", "09:30 bob: more filler 29"]
        await type_line(pilot, app, "/search")
        assert log.search_word == "" and log.matches() == []
        assert log.plain_lines()[-1] == wording_tui.SEARCH_CLEARED


async def test_search_with_no_match_and_ctrl_f_with_no_search() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.deliver(ChatLine("bob", "hello", epoch=3))
        await type_line(pilot, app, "/search absent")
        assert app.message_log.plain_lines()[-1] == wording_tui.search_none("absent")
        await type_line(pilot, app, "/search")
        await pilot.press("ctrl+f")
        await pilot.pause()
        assert app.input.value == "/search "  # starts one in the empty input
        app.input.value = "my draft"
        await pilot.press("ctrl+f")
        await pilot.pause()
        assert app.input.value == "my draft"  # a draft is never replaced
        assert app.message_log.plain_lines()[-1] == wording_tui.SEARCH_HOW


# -- 6. themes ----------------------------------------------------------------------------------


async def test_a_theme_from_the_config_is_used() -> None:
    app = make_app(theme="textual-light")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.theme == "textual-light"
        assert app.current_theme.dark is False
    assert make_app().theme == "textual-dark"  # none given: Textual's default


def test_an_unknown_theme_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigFileError, match=r"theme 'neon' is unknown: choose one of ansi-dark, .*nord"):
        make_app(theme="neon")
    config = tmp_path / "config.toml"
    config.write_text('relay = "ws://127.0.0.1:9"\nroom = "lobby"\nname = "alice"\ntheme = "neon"\n')
    code = chat_main(["--config", str(config), "--data-dir", str(tmp_path), "--log-dir", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("groupchat chat: error: theme 'neon' is unknown: choose one of ")
    assert err.count("\n") == 1
    assert load_config(environ={"GROUPCHAT_CONFIG": str(config)}).theme == "neon"  # the file reads


async def test_help_lists_me_search_and_the_find_key() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await type_line(pilot, app, "/help")
        lines = app.message_log.plain_lines()
        assert any(line.strip().startswith("/me ACTION") for line in lines)
        assert any(line.strip().startswith("/search [WORD]") for line in lines)
        assert any(line.strip().startswith("ctrl+f") and "/search WORD" in line for line in lines)
