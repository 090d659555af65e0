"""The chat screen: status bar, timeline, member list, /tree panel and an input with history.

Theory of operation. The session runs in an async worker of group ``net`` and never touches a
widget: it calls :meth:`ChatApp.deliver` with typed notices, which become Textual messages
(:mod:`groupchat.tui.messages`) handled on the app's loop. Every handler does a bounded amount of
work (one widget update), so the loop is never blocked by the UI; heavy protocol work is the
session's business (it uses thread workers for it). User input goes the other way through the
:class:`~groupchat.tui.session_api.SessionAPI` methods, which only queue work and return at once.
"""

from __future__ import annotations

import gc
import logging
import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from datetime import date, datetime
from pathlib import Path

from textual import events, on
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding
from textual.containers import Horizontal
from textual.theme import BUILTIN_THEMES
from textual.widgets import Footer

from groupchat.client import wording, wording_tui
from groupchat.client.config import ConfigFileError
from groupchat.client.notices import ConnectionState, Notice, RosterEntry, TrustState
from groupchat.client.session.settings import MAX_TEXT_BYTES
from groupchat.core.errors import GroupChatError, UsageError

from .commands import Command, CommandError, CommandName, SendText, help_lines, invite_options, parse_input
from .draft import check_draft
from .highlight import ACTION_PREFIX, Attention, names_me
from .keys import check_keymap
from .messages import (
    ChatLineNotice,
    ConfirmedNotice,
    PlaceholderNotice,
    RosterNotice,
    SessionEnded,
    StatusNotice,
    TimelineNotice,
    TreeNotice,
    message_for,
)
from .session_api import SessionAPI, SessionFactory
from .widgets import HistoryInput, MemberList, MessageLog, StatusBar, TreePanel, UnreadMarker

__all__ = ["ChatApp", "check_theme", "run_chat"]

log = logging.getLogger(__name__)

# Columns (chat.tcss): the side panels' widths, and the least the timeline keeps beside them.
_TREE_WIDTH = 36
_TREE_MIN_WIDTH = 28  # narrower than this the tree's lines wrap into nonsense
_MEMBERS_WIDTH = 26
_MIN_LOG_WIDTH = 46

_TRUST_WORDS: dict[TrustState, str] = {
    TrustState.VERIFIED: "verified",
    TrustState.UNVERIFIED: "not verified",
    TrustState.KEY_CHANGED: "KEY CHANGED, verify again",
}


def check_theme(name: str | None) -> None:
    """Refuse, in one line, a theme that is not one of Textual's built-in ones (None: the default)."""
    if name is not None and name not in BUILTIN_THEMES:
        raise ConfigFileError(wording_tui.unknown_theme(name, sorted(BUILTIN_THEMES)))


class ChatApp(App[int]):
    """The groupchat terminal UI for one session.

    Args:
        session_factory: builds the session with the app's notice callback; called on mount.
        session: an already built session whose ``notify`` forwards to this app's :meth:`deliver`
            (e.g. ``notify=lambda n: app.deliver(n)`` bound after the app is made); prefer
            ``session_factory``.
        now: the clock for line timestamps (frozen in snapshot tests).
        cursor_blink: False keeps the input's cursor still (snapshot tests).
        bell: when to ring the terminal bell: ``"mention"`` (a line naming you), ``"all"`` (every
            message from someone else) or ``"off"``.
        theme: one of Textual's built-in themes (``textual-light``, ``nord``...); None: the default.
        keymap: binding id -> keys, to remap the bindings below and the input's (the config file's
            ``[keys]``; checked by :func:`~groupchat.tui.keys.check_keymap`, see docs/config.md).

    With neither a factory nor a session the app only displays what is delivered to it.
    """

    CSS_PATH = "chat.tcss"
    TITLE = "groupchat"
    ENABLE_COMMAND_PALETTE = False  # commands are typed with a slash, and listed by /help

    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True),
        Binding("ctrl+t", "toggle_tree", "Key tree", id="toggle-tree", priority=True),
        Binding("escape", "focus_input", "Type", id="focus-input"),
        Binding("pageup", "scroll_log(-1)", "Scroll up", id="scroll-up", priority=True),
        Binding("pagedown", "scroll_log(1)", "Scroll down", id="scroll-down", priority=True),
        Binding("ctrl+end", "scroll_bottom", "Latest", id="scroll-bottom", priority=True),
        # Not a priority binding: from the input it runs in order with the keys typed before it
        # (widgets/history_input.py), so "draft ctrl+o" opens the editor on all of "draft".
        Binding("ctrl+o", "edit_draft", "Editor", id="edit-draft"),
        Binding("ctrl+f", "search_next", "Find", id="search-next", priority=True),
        # Enter reaches the app only when the input does not have focus (the input takes its own).
        Binding("enter", "submit_draft", "Send", id="submit", show=False),
    ]

    @classmethod
    def checked_keymap(cls, keymap: Mapping[str, str]) -> dict[str, str]:
        """``keymap`` checked against the screen's bindings and the input's (keys.py)."""
        return check_keymap(keymap, [*cls.BINDINGS, *HistoryInput.BINDINGS])

    def __init__(
        self,
        session_factory: SessionFactory | None = None,
        *,
        session: SessionAPI | None = None,
        now: Callable[[], datetime] = datetime.now,
        cursor_blink: bool = True,
        keymap: Mapping[str, str] | None = None,
        bell: str = "mention",
        theme: str | None = None,
    ) -> None:
        super().__init__()
        if session_factory is not None and session is not None:
            raise UsageError("give ChatApp a session factory or a session, not both")
        # The bell, and the unread count in the title (Textual's App.bell, looked up at each ring).
        self._attention = Attention(bell, ring=lambda: self.bell(), show=self._show_title)
        check_theme(theme)
        if theme is not None:
            self.theme = theme
        self._keymap_given = self.checked_keymap(keymap or {})
        if keymap:
            self.set_keymap(self._keymap_given)
        self._factory = session_factory
        self.session: SessionAPI | None = session
        self._now = now
        self._cursor_blink = cursor_blink
        self._last_day: date | None = None  # the local date of the last stamped line
        self._session_closed = False
        self._left = False  # the session has ended (left, removed, replaced or failed): /join
        self._tree_open = False  # asked for with /tree or ctrl+t
        self._armed: str | None = None  # a long draft the user was asked about: Enter again sends it

    # -- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with Horizontal(id="main"):
            yield MessageLog(id="log")
            yield TreePanel(id="tree")
            yield MemberList(id="members")
        yield UnreadMarker(id="unread")
        yield HistoryInput(placeholder="Type a message, or /help", id="input")
        yield Footer()

    @property
    def message_log(self) -> MessageLog:
        return self.query_one("#log", MessageLog)

    @property
    def status_bar(self) -> StatusBar:
        return self.query_one("#status", StatusBar)

    @property
    def member_list(self) -> MemberList:
        return self.query_one("#members", MemberList)

    @property
    def tree_panel(self) -> TreePanel:
        return self.query_one("#tree", TreePanel)

    @property
    def input(self) -> HistoryInput:
        return self.query_one("#input", HistoryInput)

    def on_mount(self) -> None:
        self._to_terminal("\x1b[22;2t")  # keep the terminal's own title (xterm's title stack)...
        self.watch_title(self.title)
        self.input.cursor_blink = self._cursor_blink
        self.input.names = self._completion_names
        self.input.focus()
        self._start_session()

    def _start_session(self) -> None:
        """Build the session (with the factory, if given) and run it in the ``net`` worker."""
        if self._factory is not None:
            try:
                self.session = self._factory(self.deliver)
            except GroupChatError as exc:
                self.message_log.add_error(f"cannot start the session: {exc}")
                return
        if self.session is not None:
            self.run_worker(self._run_session(self.session), group="net", exclusive=True, exit_on_error=False)

    def _join_again(self) -> None:
        """``/join`` after the session ended: a new session for the same settings, same screen."""
        if not self._left:
            raise CommandError(wording_tui.ALREADY_IN_ROOM)
        if self._factory is None:
            raise CommandError(wording_tui.NO_REJOIN_HERE)
        status = self.status_bar.status
        self._left = self._session_closed = False
        self.message_log.add_info(wording_tui.joining_again(status.room if status else ""))
        self._start_session()

    # -- from the session -----------------------------------------------------------------------

    def deliver(self, notice: Notice) -> None:
        """The session's ``notify`` callback. Safe to call from the app's loop or any thread.

        ``post_message`` queues directly on the loop's thread and goes through
        ``loop.call_soon_threadsafe`` from any other, so a session thread never blocks on the UI
        (``call_from_thread`` would wait for the handler, and fail once the app has stopped).
        """
        self.post_message(message_for(notice))

    async def _run_session(self, session: SessionAPI) -> None:
        error: Exception | None = None
        try:
            await session.run()
        except GroupChatError as exc:
            error = exc
        except Exception as exc:
            # A bug in the session: keep the UI up, say so, and keep the traceback in the log file.
            log.exception("session crashed")
            error = exc
        self.post_message(SessionEnded(error))

    def _stamp(self) -> str:
        """The time stamp of a new line; a date line goes first if the local date changed."""
        now = self._now()
        day = now.date()
        if self._last_day is not None and day != self._last_day:
            self.message_log.add_separator(wording_tui.date_separator(day))
        self._last_day = day
        return now.strftime("%H:%M")

    @on(MessageLog.UnreadChanged)
    def _on_unread(self, message: MessageLog.UnreadChanged) -> None:
        self.query_one("#unread", UnreadMarker).show(message.count)
        if message.count == 0 and self.app_focus:
            self._attention.seen()

    def _show_title(self, title: str) -> None:
        self.title = title

    def watch_app_focus(self, focus: bool) -> None:
        if focus and self.message_log.following:
            self._attention.seen()

    def watch_title(self, title: str) -> None:
        """Show the title (and so the unread count) in the terminal's title bar too (OSC 2)."""
        self._to_terminal(f"\x1b]2;{title}\x07")

    def _to_terminal(self, sequence: str) -> None:
        driver = self._driver
        if driver is not None and not self.is_headless:
            driver.write(sequence)

    @on(StatusNotice)
    def _on_status(self, message: StatusNotice) -> None:
        self.status_bar.show(message.status)
        if message.status.connection is ConnectionState.CLOSED:
            self.member_list.show_ended()  # in no group now: nobody is shown online

    @on(RosterNotice)
    def _on_roster(self, message: RosterNotice) -> None:
        if self._left:
            return  # a late roster of the session that ended: the list says we are in no group
        self.member_list.show(message.roster.members)

    @on(ChatLineNotice)
    def _on_chat_line(self, message: ChatLineNotice) -> None:
        line, members, log = message.line, self.member_list, self.message_log
        mention = not line.own and names_me(line.body, members.my_names())
        log.add_chat(line, self._stamp(), mention=mention, colour=members.colour_of(line.sender))
        if not line.own:
            self._attention.arrived(mention, away=not self.app_focus or not log.following)

    @on(ConfirmedNotice)
    def _on_confirmed(self, message: ConfirmedNotice) -> None:
        self.message_log.confirm(message.confirmed.local_id)

    @on(PlaceholderNotice)
    def _on_placeholder(self, message: PlaceholderNotice) -> None:
        self.message_log.add_placeholder(message.placeholder, self._stamp())

    @on(TimelineNotice)
    def _on_timeline(self, message: TimelineNotice) -> None:
        self.message_log.add_event(message.event, self._stamp())

    @on(TreeNotice)
    def _on_tree(self, message: TreeNotice) -> None:
        self.tree_panel.show_view(message.view)

    @on(SessionEnded)
    def _on_session_ended(self, message: SessionEnded) -> None:
        self._left = True
        self.member_list.show_ended()
        self.message_log.fail_pending(wording_tui.NOT_SENT_MARK)  # never "sending…" for good
        if message.error is None:
            self.message_log.add_info(wording_tui.SESSION_ENDED)
        else:
            kind = type(message.error).__name__
            self.message_log.add_error(wording_tui.session_stopped(str(message.error), kind))

    # -- from the user --------------------------------------------------------------------------

    @on(HistoryInput.Submitted, "#input")
    def _on_submit(self, event: HistoryInput.Submitted) -> None:
        line = event.value
        if line.strip():
            self.message_log.jump_to_bottom()  # what you send (or ask for) shows, wherever you read
        try:
            parsed = parse_input(line)
        except CommandError as exc:
            if "\n" in line:  # a mistyped one-line command goes; a long draft stays to be fixed
                self.input.restore(line)
            else:
                self.input.remember(line)
            self.message_log.add_error(str(exc))
            return
        parts: tuple[str, ...] = ()
        if isinstance(parsed, SendText):
            # A long paste is sent on a second Enter; one over the limit becomes several messages.
            check = check_draft(parsed.text, MAX_TEXT_BYTES)
            parts = (parsed.text,) if check is None else check.parts
            if check is not None and self._armed != parsed.text:
                self._armed = parsed.text
                self.input.restore(line)
                self.message_log.add_info(check.prompt)
                return
        self._armed = None
        self.input.remember(line)
        if parsed is None:
            return
        try:
            if isinstance(parsed, SendText):
                session = self._require_session()
                for part in parts:
                    session.send_text(part)
            else:
                self._run_command(parsed)
        except GroupChatError as exc:
            # UsageError and friends carry a message written for the user: show it as it is.
            self.message_log.add_error(str(exc))

    def _require_session(self) -> SessionAPI:
        if self.session is None:
            raise CommandError("not connected: this window has no chat session")
        if self._left:
            raise CommandError(wording_tui.LEFT_GROUP)
        return self.session

    def _run_command(self, command: Command) -> None:
        out = self.message_log
        name, arg = command.name, command.arg or ""
        match name:
            case CommandName.HELP:
                out.add_info("commands:")
                for text in help_lines():
                    out.add_info("  " + text)
                out.add_info("keys:")
                for text in self._key_help():
                    out.add_info("  " + text)
            case CommandName.ME:
                self._require_session().send_text(ACTION_PREFIX + arg)
            case CommandName.WHO:
                session = self.session if not self._left else None  # an ended one's roster is stale
                members = session.roster() if session is not None else self.member_list.members
                self._show_who(members)
            case CommandName.VERIFY:
                session = self._require_session()
                who = session.member_label(arg)  # refuses a name that several members look like
                number = session.safety_number(who)
                out.add_info(f"safety number with {who}:")
                out.add_info(f"  {number}")
                out.add_info(
                    f"  compare it with {who} in person or over a channel you trust; "
                    f"if it matches, type /trust {who}"
                )
                out.add_info("  " + wording_tui.safety_number_means(who))
            case CommandName.TRUST | CommandName.UNTRUST:
                self._trust_command(name is CommandName.TRUST, arg)
            case CommandName.REKEY:
                self._require_session().request_rekey()
                out.add_info("refreshing your keys (self-update)…")
            case CommandName.KICK:
                session = self._require_session()
                who = session.member_label(arg)
                session.kick(who)
                out.add_info(f"asked the group to remove {who}…")
            case CommandName.INVITE:
                uses, hours = invite_options(command.arg)
                self._require_session().invite(uses, hours)
                out.add_info("making an invite… its code appears here once the group has it")
            case CommandName.INVITES:
                views = self._require_session().invites()
                if not views:
                    out.add_info("no live invites (/invite makes one)")
                for v in views:
                    out.add_info(
                        "  " + wording.invite_line(v.number, v.label, v.uses_left, v.not_after, v.inviter)
                    )
                    if v.code:
                        out.add_info(f"     code: {v.code}")
            case CommandName.REVOKE:
                self._require_session().revoke(arg)
                out.add_info(f"withdrawing invite {arg}…")
            case CommandName.APPROVE:
                self._require_session().approve(arg)
                out.add_info(f"letting {arg} in…")
            case CommandName.LEAVE:
                self._require_session().leave()
                out.add_info("leaving the group…")
            case CommandName.JOIN:
                self._join_again()
            case CommandName.TREE:
                self.action_toggle_tree()
            case CommandName.SEARCH:
                if out.search_command(arg):
                    self.action_search_next()
            case CommandName.EDIT:
                self.action_edit_draft()
            case CommandName.QUIT:
                self._start_quit()

    def _key_help(self) -> list[str]:
        """One line per key binding for /help, with the keys as remapped by ``keymap``."""
        keys: dict[str, str] = {}
        for binding in [*self.BINDINGS, *HistoryInput.BINDINGS]:
            if isinstance(binding, Binding) and binding.id in wording_tui.KEY_HELP:
                keys[binding.id] = self._keymap_given.get(binding.id, binding.key)
        shown = {i: " / ".join(k.split(",")) for i, k in keys.items()}
        width = max(len(k) for k in shown.values())
        return [f"{shown[i]:<{width}}  {wording_tui.KEY_HELP[i]}" for i in wording_tui.KEY_HELP if i in shown]

    def _trust_command(self, trust: bool, arg: str) -> None:
        """``/trust`` or ``/untrust``: a mark already so is said once, and nothing changes."""
        session = self._require_session()
        who = session.member_label(arg)  # refuses a name that several members look like
        entry = next((m for m in session.roster() if m.name == who), None)
        if entry is not None and entry.is_me:
            raise UsageError(wording_tui.TRUST_SELF)
        verified = entry is not None and entry.trust is TrustState.VERIFIED
        if trust and verified:
            self.message_log.add_info(wording_tui.already_verified(who))
        elif not trust and not verified:
            self.message_log.add_info(wording_tui.not_verified(who))
        elif trust:
            session.trust(arg)  # the session confirms it in the timeline
        else:
            session.untrust(arg)

    def _show_who(self, members: tuple[RosterEntry, ...]) -> None:
        out = self.message_log
        if not members:
            out.add_info("no members known yet")
            return
        out.add_info(f"{len(members)} member{'s' if len(members) != 1 else ''}:")
        for m in sorted(members, key=lambda m: (not m.is_me, m.name.casefold())):
            who = m.name + (" (you)" if m.is_me else "")
            state = "online" if m.online else "offline"
            out.add_info(f"  {who} · {state} · {_TRUST_WORDS[m.trust]} · {m.fingerprint}")
        out.add_info("  " + wording_tui.FINGERPRINT_MEANS)

    # -- actions (key bindings) -----------------------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        self._fit_panels(event.size.width)

    def _fit_panels(self, width: int) -> None:
        """Side panels only where the timeline keeps ``_MIN_LOG_WIDTH`` columns: the key tree (when
        asked for) first, narrower if need be, then the member list, which collapses on a narrow
        terminal (the status bar still counts the members, and /who lists them)."""
        tree_open = self._tree_open
        tree_width = min(_TREE_WIDTH, max(_TREE_MIN_WIDTH, width - _MIN_LOG_WIDTH))
        left = width - (tree_width if tree_open else 0)
        self.tree_panel.styles.width = tree_width
        self.tree_panel.display = tree_open
        self.member_list.display = left - _MEMBERS_WIDTH >= _MIN_LOG_WIDTH

    def action_toggle_tree(self) -> None:
        panel = self.tree_panel
        self._tree_open = not self._tree_open
        self._fit_panels(self.size.width)
        if panel.display and self.session is not None:
            try:
                panel.show_view(self.session.tree_view())
            except GroupChatError as exc:
                self.message_log.add_error(f"no key tree to show: {exc}")

    def action_search_next(self) -> None:
        """The match before the current one; with no search, start one in the input."""
        log = self.message_log
        where = log.next_match() if log.search_word else None
        if where is None:
            if self.input.value.strip():  # a draft is never replaced
                log.add_info(wording_tui.SEARCH_HOW)
            else:
                self.input.value = "/search "
            self.input.focus()
            return
        self.notify(wording_tui.search_position(*where, log.search_word), timeout=4)

    def action_focus_input(self) -> None:
        self.input.focus()  # a TextArea: taking focus selects nothing, so the draft is safe

    def action_submit_draft(self) -> None:
        """Enter while the focus is elsewhere: back to the input, and send the draft if any."""
        field = self.input
        field.focus()
        if field.value.strip():
            field.submit()

    def on_paste(self, event: events.Paste) -> None:
        """A paste while the focus is elsewhere (it bubbled up here): into the draft, not lost."""
        field = self.input
        field.focus()
        field.post_message(events.Paste(event.text))

    def _completion_names(self) -> list[str]:
        """What Tab completes in the input: the other members' labels (client/names.py)."""
        return [m.name for m in self.member_list.members if not m.is_me]

    def action_edit_draft(self) -> None:
        """Open ``$VISUAL`` / ``$EDITOR`` (else ``vi``) on the draft; what it saves becomes the draft."""
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        fd, name = tempfile.mkstemp(prefix="groupchat-draft-", suffix=".txt")  # mode 0600
        path = Path(name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self.input.value)
            argv = [*shlex.split(editor), str(path)]
            if self.is_headless:  # no terminal to hand over (tests): the editor runs as it is
                code = subprocess.run(argv, check=False).returncode
            else:
                with self.suspend():
                    code = subprocess.run(argv, check=False).returncode
            if code != 0:
                self.message_log.add_error(wording_tui.editor_failed(editor, f"exit status {code}"))
                return
            text = path.read_text(encoding="utf-8")
        except SuspendNotSupported:
            self.message_log.add_error(wording_tui.NO_EDITOR_HERE)
            return
        except (OSError, ValueError) as exc:  # not found, not runnable, bad quoting, not UTF-8
            self.message_log.add_error(wording_tui.editor_failed(editor, str(exc)))
            return
        finally:
            path.unlink(missing_ok=True)
        self.input.value = text.removesuffix("\n")  # editors end the file with a newline
        self.input.focus()

    def action_scroll_log(self, direction: int) -> None:
        self.message_log.scroll_page(direction)

    def action_scroll_bottom(self) -> None:
        self.message_log.jump_to_bottom()

    async def action_quit(self) -> None:
        """Close the session and exit: a stored session stays in the group (the next start resumes
        its leaf, no commit for anyone); an ephemeral one leaves first (so the others rekey now).

        Runs in a worker so that the notices of our own removal are still handled meanwhile."""
        self._start_quit()

    def _start_quit(self) -> None:
        self.run_worker(self._quit(), group="quit", exclusive=True)

    async def _quit(self) -> None:
        await self._shutdown_session()
        self.exit(0)

    async def _shutdown_session(self) -> None:
        session = self.session
        if session is None or self._session_closed:
            return
        self._session_closed = True
        stay = session.keeps_state
        if not self._left:
            self.message_log.add_info(wording_tui.QUIT_STAYING if stay else wording_tui.QUIT_LEAVING)
        # Ephemeral: close() publishes the signed leave request first (if we are a member), so the
        # others remove us and rekey at once instead of after the eviction grace period.
        await session.close(leave=not stay)

    async def on_unmount(self) -> None:
        self._to_terminal("\x1b[23;2t")  # ...and give it back on the way out
        # Whatever ended the app (quit, ctrl+c, an error), the session's socket is closed.
        if self.session is not None and not self._session_closed:
            self._session_closed = True
            await self.session.close(leave=not self.session.keeps_state)


def run_chat(
    session_factory: SessionFactory,
    *,
    no_color: bool = False,
    bell: str = "mention",
    theme: str | None = None,
    keymap: Mapping[str, str] | None = None,
) -> int:
    """Run the TUI in this terminal until the user quits; returns the exit code.

    ``no_color`` sets ``NO_COLOR`` for this process, which Textual reads when the app is built:
    every state still reads from its symbol and word (●/◌, ✓/?/!, *, ◂)."""
    if no_color:
        os.environ["NO_COLOR"] = "1"
    app = ChatApp(session_factory, bell=bell, theme=theme, keymap=keymap)
    # Everything imported and built so far lives as long as the app: out of the collector's way,
    # so a full collection under a flood of relay junk does not stall the UI (issue 13 item 6).
    gc.freeze()
    app.run()
    return app.return_code or 0
