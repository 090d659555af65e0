"""The timeline: chat lines, events, placeholders and command output, anchored to the bottom.

One small widget per line, so that our own pending lines can be marked confirmed in place when
the relay echoes them. The oldest lines are dropped past :attr:`MessageLog.MAX_LINES`.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from groupchat.client.notices import ChatLine, Placeholder, TimelineEvent, TimelineKind, TrustState

__all__ = ["PENDING_MARK", "LogLine", "MessageLog"]

PENDING_MARK = " (sending…)"

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


def _layout(stamp: str | None, body: Text) -> Text | Table:
    """``body`` after its time stamp, wrapped lines indented under the body (a hanging indent)."""
    if stamp is None:
        return body
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=len(stamp), no_wrap=True, style="dim")
    grid.add_column(ratio=1)
    grid.add_row(stamp, body)
    return grid


class LogLine(Static):
    """One line of the timeline. ``local_id`` is set on our own chat lines."""

    def __init__(self, stamp: str | None, body: Text, *, classes: str, local_id: int | None = None) -> None:
        super().__init__(_layout(stamp, body), classes=classes, markup=False)
        self.local_id = local_id
        self._stamp = stamp
        self._body = body

    @property
    def plain(self) -> str:
        """What the line says, stamp first, without styles."""
        return self._body.plain if self._stamp is None else f"{self._stamp} {self._body.plain}"

    def set_body(self, body: Text) -> None:
        self._body = body
        self.update(_layout(self._stamp, body))


class MessageLog(VerticalScroll, can_focus=True):
    """Scrollback that sticks to the bottom until the user scrolls up (``anchor()``)."""

    MAX_LINES = 2000

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._pending: dict[int, tuple[LogLine, ChatLine]] = {}

    def on_mount(self) -> None:
        self.anchor()

    @property
    def lines(self) -> list[LogLine]:
        return list(self.query_children(LogLine))

    def plain_lines(self) -> list[str]:
        """The text of every line, oldest first (what a user reads, without styles)."""
        return [line.plain for line in self.lines]

    def _add(self, stamp: str | None, body: Text, classes: str, local_id: int | None = None) -> LogLine:
        line = LogLine(stamp, body, classes=classes, local_id=local_id)
        self.mount(line)
        excess = len(self.children) - self.MAX_LINES
        if excess > 0:
            for old in list(self.children)[:excess]:
                if isinstance(old, LogLine) and old.local_id is not None:
                    self._pending.pop(old.local_id, None)
                old.remove()
        return line

    @staticmethod
    def _chat_text(line: ChatLine, pending: bool) -> Text:
        text = Text()
        if line.trust is TrustState.KEY_CHANGED and not line.own:
            # The sender's key differs from the pinned one: say so on every line until re-verified.
            text.append("! ", style="bold reverse red")
        text.append(line.sender, style="bold")
        text.append(": ")
        text.append(line.text)
        if pending:
            text.append(PENDING_MARK, style="dim italic")
        return text

    def add_chat(self, line: ChatLine, stamp: str) -> None:
        classes = "chat" + (" -own" if line.own else "") + (" -pending" if line.pending else "")
        widget = self._add(stamp, self._chat_text(line, line.pending), classes, line.local_id)
        if line.pending and line.local_id is not None:
            self._pending[line.local_id] = (widget, line)

    def confirm(self, local_id: int) -> bool:
        """Clear the pending mark of our line ``local_id``; False if it is not (or no longer) shown."""
        entry = self._pending.pop(local_id, None)
        if entry is None:
            return False
        widget, line = entry
        widget.remove_class("-pending")
        widget.set_body(self._chat_text(line, pending=False))
        return True

    def add_event(self, event: TimelineEvent, stamp: str) -> None:
        self._add(stamp, Text(f"{_EVENT_MARK[event.kind]} {event.text}"), f"event -{event.kind.value}")

    def add_placeholder(self, placeholder: Placeholder, stamp: str) -> None:
        self._add(stamp, Text(f"⊘ {placeholder.text}", style="italic"), "placeholder")

    def add_info(self, message: str) -> None:
        """Output of a local command (help, who, verify…), not part of the conversation."""
        self._add(None, Text(message), "info")

    def add_error(self, message: str) -> None:
        """A local error, such as a mistyped command; nothing was sent."""
        self._add(None, Text(f"✕ {message}"), "error")

    def scroll_page(self, direction: int) -> None:
        if direction < 0:
            self.scroll_page_up(animate=False)
        else:
            self.scroll_page_down(animate=False)

    def jump_to_bottom(self) -> None:
        self.anchor()
