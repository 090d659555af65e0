"""The timeline: chat lines, events, placeholders and command output, anchored to the bottom.

A line-based :class:`~textual.scroll_view.ScrollView` (like Textual's ``RichLog``): each entry is
wrapped once for the current width and kept as rendered strips, and only the visible rows are
drawn. Adding a line costs the same with 10 or 2,000 lines in the log (a widget per line made
every new line re-lay out all of them: 0.5 s per line at 2,000). Entries stay addressable, so our
own pending line is re-rendered in place when the relay echoes it. Colours come from the
component classes in ``chat.tcss``; the symbols carry the meaning without them.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from groupchat.client import wording_tui
from groupchat.client.notices import ChatLine, Placeholder, TimelineEvent, TimelineKind, TrustState

from ..highlight import action_of, match_spans

__all__ = ["CONTINUED", "PENDING_MARK", "LogEntry", "MessageLog"]

PENDING_MARK = " (sending…)"
CONTINUED = "│"  # under the time stamp, on every row of a chat message after its first

# Timeline kinds shown with a leading symbol, so they stand out without colour.
_EVENT_MARK: dict[TimelineKind, str] = {
    TimelineKind.JOINED: "→",
    TimelineKind.LEFT: "←",
    TimelineKind.REMOVED: "←",
    TimelineKind.UPDATED: "↻",
    TimelineKind.RECONNECTED: "↻",
    TimelineKind.DISCONNECTED: "✕",
    TimelineKind.INFO: "·",
    TimelineKind.WARNING: "⚠",
}


@dataclass(eq=False, slots=True)
class LogEntry:
    """One entry of the timeline: an optional time stamp, the text, and its style classes."""

    stamp: str | None
    body: Text
    classes: frozenset[str]
    local_id: int | None = None
    strips: list[Strip] = field(default_factory=list)  # rendered at MessageLog._width; [] = stale

    @property
    def plain(self) -> str:
        """What the entry says, stamp first, without styles."""
        return self.body.plain if self.stamp is None else f"{self.stamp} {self.body.plain}"

    def has_class(self, name: str) -> bool:
        return name in self.classes


class MessageLog(ScrollView, can_focus=True):
    """Scrollback that sticks to the bottom until the user scrolls up (``anchor()``)."""

    COMPONENT_CLASSES = {
        "message-log--stamp",
        "message-log--own",
        "message-log--pending",
        "message-log--event",
        "message-log--membership",
        "message-log--connection",
        "message-log--warning",
        "message-log--placeholder",
        "message-log--error",
        "message-log--info",
        "message-log--mention",
        "message-log--separator",
        "message-log--match",
        "message-log--match-current",
    }

    MAX_LINES = 2000
    _TRIM_SLACK = 100  # drop old entries in batches, so trimming is not paid on every line

    class UnreadChanged(Message):
        """The count of messages that arrived below the view while the user reads above changed."""

        def __init__(self, count: int) -> None:
            super().__init__()
            self.count = count

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.unread = 0  # messages added since the user scrolled up; 0 while following the end
        self.entries: list[LogEntry] = []
        self._starts: list[int] = []  # first row of each entry, for row -> entry lookups
        self._rows = 0
        self._width = 0
        self._pending: dict[int, tuple[LogEntry, ChatLine, str | None]] = {}
        self._styles: dict[str, Style] = {}
        self.search_word = ""  # what /search highlights ("" = no search)
        self.search_current: LogEntry | None = None  # the match the view jumped to

    def on_mount(self) -> None:
        self.anchor()

    @property
    def following(self) -> bool:
        """The view sticks to the newest line (the user has not scrolled up, or came back down)."""
        return not self._anchor_released or self.scroll_y >= self.max_scroll_y

    def _set_unread(self, count: int) -> None:
        if count != self.unread:
            self.unread = count
            self.post_message(self.UnreadChanged(count))

    def _count_unread(self) -> None:
        if not self.following:
            self._set_unread(self.unread + 1)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)  # restores the anchor at the end
        if self.unread and self.following:
            self._set_unread(0)

    # -- what tests and /who read ---------------------------------------------------------------

    @property
    def lines(self) -> list[LogEntry]:
        return list(self.entries)

    def plain_lines(self) -> list[str]:
        """The text of every entry, oldest first (what a user reads, without styles)."""
        return [entry.plain for entry in self.entries]

    # -- rendering ------------------------------------------------------------------------------

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            style = self._styles[name] = self.get_component_rich_style(f"message-log--{name}", partial=True)
        return style

    def _entry_style(self, entry: LogEntry) -> Style:
        style = Style()
        for name in ("event", "membership", "connection", "placeholder", "info", "error", "own", "pending",
                     "warning", "mention", "separator"):
            if name in entry.classes:
                style += self._style(name)
        return style

    def _render_entry(self, entry: LogEntry) -> list[Strip]:
        """Wrap ``entry`` to the width, wrapped rows indented under the text (not the stamp)."""
        width = max(self._width, 8)
        stamp = entry.stamp or ""
        indent = len(stamp) + 1 if entry.stamp is not None else 0
        console = self.app.console
        body = entry.body.copy()
        body.stylize_before(self._entry_style(entry))  # the text's own spans (bold names) stay on top
        if self.search_word and self._searchable(entry):
            mark = self._style("match-current" if entry is self.search_current else "match")
            for start, end in match_spans(body.plain, self.search_word):
                body.stylize(mark, start, end)
        rows = body.wrap(console, max(width - indent, 4))
        stamp_style = self._style("stamp")
        # The rows after a chat message's first carry a bar under its stamp: they are part of that
        # message, so a line a sender wrote to look like another message ("09:41 carol: …") cannot.
        more = CONTINUED.rjust(indent - 1) + " " if "chat" in entry.classes and indent > 1 else ""
        strips = []
        for i, row in enumerate(rows):
            head = [Segment((stamp if i == 0 else more).ljust(indent), stamp_style)] if indent else []
            segments = head + [s for s in row.render(console) if s.text != "\n"]
            strips.append(Strip(segments).adjust_cell_length(width))
        return strips or [Strip.blank(width)]

    def _layout_all(self) -> None:
        self._starts = []
        self._rows = 0
        for entry in self.entries:
            if not entry.strips:
                entry.strips = self._render_entry(entry)
            self._starts.append(self._rows)
            self._rows += len(entry.strips)
        self.virtual_size = Size(self._width, self._rows)
        self.refresh()

    def _restyle(self) -> None:
        for entry in self.entries:
            entry.strips = []
        self._layout_all()

    def on_resize(self) -> None:
        width = self.scrollable_content_region.width
        if width and width != self._width:
            self._width = width
            self._restyle()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        if self._width:
            self._restyle()

    def render_line(self, y: int) -> Strip:
        row = self.scroll_offset.y + y
        if row >= self._rows or not self.entries:
            return Strip.blank(self.scrollable_content_region.width, self.rich_style)
        index = bisect.bisect_right(self._starts, row) - 1
        entry = self.entries[index]
        if not entry.strips:  # a style change arrived before the next layout
            entry.strips = self._render_entry(entry)
        strips = entry.strips
        strip = strips[min(row - self._starts[index], len(strips) - 1)]
        return strip.apply_style(self.rich_style)

    # -- adding and changing entries ------------------------------------------------------------

    def _add(
        self, stamp: str | None, body: Text, classes: frozenset[str], local_id: int | None = None
    ) -> LogEntry:
        if self._anchor_released and self.scroll_y >= self.max_scroll_y:
            # Back at the end by a scroll that released the anchor (pgdn or the wheel at the end).
            self.anchor()
        entry = LogEntry(stamp, body, classes, local_id)
        self.entries.append(entry)
        if len(self.entries) > self.MAX_LINES + self._TRIM_SLACK:
            for old in self.entries[: -self.MAX_LINES]:
                if old.local_id is not None:
                    self._pending.pop(old.local_id, None)
            del self.entries[: -self.MAX_LINES]
            self._layout_all()
        elif self._width:
            entry.strips = self._render_entry(entry)
            self._starts.append(self._rows)
            self._rows += len(entry.strips)
            self.virtual_size = Size(self._width, self._rows)
            self.refresh()
        else:
            self._starts.append(self._rows)  # rendered on the first resize
        return entry

    @staticmethod
    def _chat_text(
        line: ChatLine, pending: bool, colour: str | None = None, mark: str = PENDING_MARK
    ) -> Text:
        text = Text()
        if line.trust is TrustState.KEY_CHANGED and not line.own:
            # The sender's key differs from the pinned one: say so on every line until re-verified.
            text.append("! ", style="bold reverse")
        action = action_of(line.body)
        if action is not None:
            text.append("* ")  # "/me waves" from alice: "* alice waves"
        text.append(line.sender, style=f"bold {colour}" if colour else "bold")
        text.append(": " if action is None else " ")
        text.append(line.body if action is None else action, style="" if action is None else "italic")
        if pending:
            text.append(mark, style="italic")
        return text

    def add_chat(
        self, line: ChatLine, stamp: str, *, mention: bool = False, colour: str | None = None
    ) -> None:
        """A chat line; ``mention``: it names you (highlighted); ``colour``: the sender's name colour."""
        classes = {"chat"} | ({"own"} if line.own else set()) | ({"pending"} if line.pending else set())
        if mention:
            classes.add("mention")
        body = self._chat_text(line, line.pending, colour)
        entry = self._add(stamp, body, frozenset(classes), line.local_id)
        if not line.own:
            self._count_unread()
        if line.pending and line.local_id is not None:
            self._pending[line.local_id] = (entry, line, colour)

    def confirm(self, local_id: int) -> bool:
        """Clear the pending mark of our line ``local_id``; False if it is not (or no longer) shown."""
        pending = self._pending.pop(local_id, None)
        if pending is None:
            return False
        entry, line, colour = pending
        entry.body = self._chat_text(line, pending=False, colour=colour)
        entry.classes = entry.classes - {"pending"}
        self._rerender(entry)
        return True

    def fail_pending(self, mark: str) -> int:
        """The session ended: each line still marked sending says ``mark`` instead; how many."""
        pending, self._pending = self._pending, {}
        for entry, line, colour in pending.values():
            entry.body = self._chat_text(line, pending=True, colour=colour, mark=mark)
            self._rerender(entry)
        return len(pending)

    def _rerender(self, entry: LogEntry) -> None:
        old_rows = len(entry.strips)
        entry.strips = self._render_entry(entry) if self._width else []
        if len(entry.strips) != old_rows:
            self._layout_all()
        else:
            self.refresh()

    def add_event(self, event: TimelineEvent, stamp: str) -> None:
        group = {
            TimelineKind.JOINED: "membership",
            TimelineKind.LEFT: "membership",
            TimelineKind.REMOVED: "membership",
            TimelineKind.UPDATED: "membership",
            TimelineKind.RECONNECTED: "connection",
            TimelineKind.DISCONNECTED: "connection",
            TimelineKind.WARNING: "warning",
            TimelineKind.INFO: "event",
        }[event.kind]
        classes = frozenset({"event", group, event.kind.value})
        self._add(stamp, Text(f"{_EVENT_MARK[event.kind]} {event.text}"), classes)

    def add_placeholder(self, placeholder: Placeholder, stamp: str) -> None:
        self._add(stamp, Text(f"⊘ {placeholder.text}", style="italic"), frozenset({"placeholder"}))
        self._count_unread()

    def add_info(self, message: str) -> None:
        """Output of a local command (help, who, verify…), not part of the conversation."""
        self._add(None, Text(message), frozenset({"info"}))

    def add_separator(self, message: str) -> None:
        """A line between two days: the local date changed since the line above."""
        self._add(None, Text(message), frozenset({"separator"}))

    def add_error(self, message: str) -> None:
        """A local error, such as a mistyped command; nothing was sent."""
        self._add(None, Text(f"✕ {message}"), frozenset({"error"}))

    # -- search ---------------------------------------------------------------------------------

    @staticmethod
    def _searchable(entry: LogEntry) -> bool:
        """What was said and what happened, not the output of your own commands (nor date lines)."""
        return not entry.classes & {"info", "error", "separator"}

    def matches(self) -> list[LogEntry]:
        """The entries that match the search, oldest first."""
        word = self.search_word
        return [e for e in self.entries if word and self._searchable(e) and match_spans(e.body.plain, word)]

    def search(self, word: str) -> int:
        """Highlight ``word`` (case-insensitive) everywhere; returns how many entries match.

        The view does not move: :meth:`next_match` jumps. An empty word clears the search."""
        self.search_word = word
        self.search_current = None
        self._restyle()
        return len(self.matches())

    def search_command(self, word: str) -> bool:
        """``/search WORD``: highlight it (True: there are matches to jump to); ``/search``: clear."""
        found = self.search(word)
        if not word or not found:
            self.add_info(wording_tui.search_none(word) if word else wording_tui.SEARCH_CLEARED)
        return bool(found)

    def next_match(self) -> tuple[int, int] | None:
        """Jump to the match before the current one (the newest first, then wrapping round).

        Returns (its number counted from the newest, the number of matches), or None if none."""
        found = self.matches()
        if not found:
            return None
        current = self.search_current
        before = next((i for i, e in enumerate(found) if e is current), 0)  # 0: wrap to the newest
        number = len(found) - before + 1 if before else 1
        target = found[before - 1]
        self.search_current = target
        for entry in (current, target):
            if entry is not None:
                entry.strips = []
        self._layout_all()
        index = next(i for i in range(len(self.entries) - 1, -1, -1) if self.entries[i] is target)
        self.release_anchor()  # the view stays on the match while new lines arrive
        middle = self._starts[index] - self.scrollable_content_region.height // 2
        self.scroll_to(y=max(0, middle), animate=False)
        return number, len(found)

    def scroll_page(self, direction: int) -> None:
        if direction < 0:
            self.scroll_page_up(animate=False)
        else:
            self.scroll_page_down(animate=False)

    def jump_to_bottom(self) -> None:
        """To the newest line, and stick there again (the unread count goes)."""
        self.anchor()
        self._set_unread(0)
