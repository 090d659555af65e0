"""The top line: connection state, latency, room, epoch and its code, scheme, members, relay.

On a narrow terminal the line is shortened before anything is cut: the relay's URL goes first
(unless it is why we are not connected), then the long forms ("group code" becomes "code", an open
room's explanation, who a ring rekey waits for), so at 80 columns the state, room, epoch code,
scheme and member count all show.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.widgets import Static

from groupchat.client import wording_tui
from groupchat.client.notices import ConnectionState, StatusChanged

__all__ = ["StatusBar", "status_text"]

# A symbol and a word for each state, so the state reads the same without colour (NO_COLOR).
_STATE_MARK: dict[ConnectionState, str] = {
    ConnectionState.CONNECTING: "◌ connecting",
    ConnectionState.JOINING: "◐ joining",
    ConnectionState.READY: "● ready",
    ConnectionState.RECONNECTING: "◌ reconnecting",
    ConnectionState.CLOSED: "○ closed",
}

_SEP = " │ "
_SHORTER = 4  # how many ways _build can shorten the line (0: the full line)


def _closed_text(status: StatusChanged) -> Text:
    """A session that has ended shows no members, epoch or scheme it no longer has."""
    text = Text(_STATE_MARK[ConnectionState.CLOSED], style="bold")
    if status.problem:  # why it stopped by itself ("another window took over")
        text.append(f" · {status.problem_line}", style="bold red")
    text.append(_SEP)
    text.append(f"#{status.room}", style="bold")
    text.append(_SEP)
    text.append(wording_tui.CLOSED_STATUS)
    return text


def _build(status: StatusChanged, shorter: int) -> Text:
    """The status line; each step of ``shorter`` drops or shortens one more field."""
    text = Text()
    text.append(_STATE_MARK[status.connection], style="bold")
    if shorter < 1 or status.problem:  # the URL is part of why we cannot connect
        text.append(f" {status.relay}")
    if status.latency_ms is not None:
        text.append(f" {status.latency_ms:.0f} ms")
    if status.problem:  # why we are not connected, and the next retry: one line that updates
        text.append(f" · {status.problem_line}", style="bold red")
    text.append(_SEP)
    text.append(f"#{status.room}", style="bold")
    if status.open_room:
        words = wording_tui.OPEN_ROOM if shorter < 2 else wording_tui.OPEN_ROOM_SHORT
        text.append(f" · {words}", style="bold yellow")
    text.append(_SEP)
    if status.epoch is None:
        text.append("no epoch yet")
    else:
        text.append(f"epoch {status.epoch}")
        if status.epoch_code:
            # Named: one of three numbers to compare ("code" alone when space is short).
            text.append(f" · {wording_tui.GROUP_CODE if shorter < 3 else 'code'} ")
            text.append(status.epoch_code, style="bold")
    text.append(_SEP)
    text.append(status.scheme)
    waiting = status.rekey_waiting_for
    if waiting is not None and status.epoch is not None:
        text.append(f" · rekeying to epoch {status.epoch + 1}", style="bold")
        if waiting and shorter < 4:
            shown = ", ".join(waiting[:3]) + (f" +{len(waiting) - 3}" if len(waiting) > 3 else "")
            text.append(f" (waiting for {shown})")
        elif waiting:
            text.append(f" (waiting for {len(waiting)})")
    text.append(_SEP)
    n = status.member_count
    text.append("1 member" if n == 1 else f"{n} members")
    return text


def status_text(status: StatusChanged | None, width: int = 0) -> Text:
    """The status line for ``status`` (``None`` before the session has said anything), as long as
    fits in ``width`` cells if it can (0: no limit, the full line)."""
    if status is None:
        return Text("◌ starting")
    if status.connection is ConnectionState.CLOSED:
        return _closed_text(status)
    text = _build(status, 0)
    for shorter in range(1, _SHORTER + 1):
        if not width or text.cell_len <= width:
            break
        text = _build(status, shorter)
    return text


class StatusBar(Static):
    """Shows the last :class:`StatusChanged`; its CSS class names the connection state."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(status_text(None), id=id)
        self.status: StatusChanged | None = None
        self.tooltip = wording_tui.GROUP_CODE_MEANS  # for the mouse; /help says it too

    def show(self, status: StatusChanged) -> None:
        for state in ConnectionState:
            self.set_class(state is status.connection, f"-{state.value}")
        self.status = status
        self.update(status_text(status, self.content_size.width))

    def on_resize(self, event: events.Resize) -> None:
        if self.status is not None:
            self.update(status_text(self.status, self.content_size.width))
