"""The top line: connection state, latency, room, epoch and its code, scheme, members, relay.

On a narrow terminal the line is shortened before anything is cut: the relay's URL goes first
(unless it is why we are not connected), then the long forms ("group code" becomes "code", an open
room's explanation, who a ring rekey waits for), then the most useful fields come first (state,
room, members, scheme, epoch and code, latency), so at 80 columns all of them show.
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
    text = Text()
    text.append(_STATE_MARK[ConnectionState.CLOSED], style="bold")
    if status.problem:  # why it stopped by itself ("another window took over")
        text.append(f" · {status.problem_line}", style="bold red")
    text.append(_SEP)
    text.append(f"#{status.room}", style="bold")
    text.append(_SEP)
    text.append(wording_tui.CLOSED_STATUS)
    return text


def _state(status: StatusChanged, shorter: int) -> Text:
    text = Text()
    text.append(_STATE_MARK[status.connection], style="bold")
    if shorter < 1 or status.problem:  # the URL is part of why we cannot connect
        text.append(f" {status.relay}")
    if status.latency_ms is not None and shorter < 3:
        text.append(f" {status.latency_ms:.0f} ms")
    if status.problem:  # why we are not connected, and the next retry: one line that updates
        text.append(f" · {status.problem_line}", style="bold red")
    return text


def _room(status: StatusChanged, shorter: int) -> Text:
    text = Text()
    text.append(f"#{status.room}", style="bold")
    if status.open_room:
        words = wording_tui.OPEN_ROOM if shorter < 2 else wording_tui.OPEN_ROOM_SHORT
        text.append(f" · {words}", style="bold yellow")
    return text


def _epoch(status: StatusChanged, shorter: int) -> Text:
    if status.epoch is None:
        return Text("no epoch yet")
    text = Text(f"epoch {status.epoch}")
    if status.epoch_code:
        # Named: one of three numbers to compare ("code" alone when space is short).
        text.append(f" · {wording_tui.GROUP_CODE if shorter < 3 else 'code'} ")
        text.append(status.epoch_code, style="bold")
    return text


def _scheme(status: StatusChanged, shorter: int) -> Text:
    text = Text(status.scheme)
    waiting = status.rekey_waiting_for
    if waiting is None or status.epoch is None:
        return text
    if shorter >= 3:
        text.append(" · rekeying", style="bold")
        return text
    text.append(f" · rekeying to epoch {status.epoch + 1}", style="bold")
    if waiting and shorter < 2:
        shown = ", ".join(waiting[:3]) + (f" +{len(waiting) - 3}" if len(waiting) > 3 else "")
        text.append(f" (waiting for {shown})")
    elif waiting:
        text.append(f" (waiting for {len(waiting)})")
    return text


def _members(status: StatusChanged) -> Text:
    n = status.member_count
    return Text("1 member" if n == 1 else f"{n} members")


def _build(status: StatusChanged, shorter: int) -> Text:
    """The status line; each step of ``shorter`` drops or shortens more: 1 the relay's URL, 2 the
    open room's explanation and the names a rekey waits for, 3 the most useful fields first
    (members and scheme before the epoch), "code" for "group code", the latency last; 4, while
    the reason we cannot connect is shown and we are in no group yet, only the state and the room
    (no member count, scheme or epoch to tell: the reason needs the space)."""
    if shorter >= 4 and status.problem and status.epoch is None:
        return Text(_SEP).join([_state(status, shorter), _room(status, shorter)])
    if shorter < 3:
        parts = [_state(status, shorter), _room(status, shorter), _epoch(status, shorter),
                 _scheme(status, shorter), _members(status)]
    else:
        parts = [_state(status, shorter), _room(status, shorter), _members(status),
                 _scheme(status, shorter), _epoch(status, shorter)]
        if status.latency_ms is not None:
            parts.append(Text(f"{status.latency_ms:.0f} ms"))
    return Text(_SEP).join(parts)


def status_text(status: StatusChanged | None, width: int = 0) -> Text:
    """The status line for ``status`` (``None`` before the session has said anything), as long as
    fits in ``width`` cells if it can (0: no limit, the full line; what still does not fit is cut
    at the end, where the least useful fields are)."""
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
