"""The top line: relay and connection state, latency, room, epoch and its code, scheme, members."""

from __future__ import annotations

from rich.text import Text
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


def status_text(status: StatusChanged | None) -> Text:
    """The status line for ``status`` (``None`` before the session has said anything)."""
    if status is None:
        return Text("◌ starting")
    text = Text()
    text.append(_STATE_MARK[status.connection], style="bold")
    text.append(f" {status.relay}")
    if status.latency_ms is not None:
        text.append(f" {status.latency_ms:.0f} ms")
    if status.problem:  # why we are not connected, and the next retry: one line that updates
        text.append(f" · {status.problem_line}", style="bold red")
    text.append(_SEP)
    text.append(f"#{status.room}", style="bold")
    if status.open_room:
        text.append(" · open room: anyone who knows its name gets in", style="bold yellow")
    text.append(_SEP)
    if status.epoch is None:
        text.append("no epoch yet")
    else:
        text.append(f"epoch {status.epoch}")
        if status.epoch_code:
            text.append(f" · {wording_tui.GROUP_CODE} ")  # named: one of three numbers to compare
            text.append(status.epoch_code, style="bold")
    text.append(_SEP)
    text.append(status.scheme)
    waiting = status.rekey_waiting_for
    if waiting is not None and status.epoch is not None:
        text.append(f" · rekeying to epoch {status.epoch + 1}", style="bold")
        if waiting:
            shown = ", ".join(waiting[:3]) + (f" +{len(waiting) - 3}" if len(waiting) > 3 else "")
            text.append(f" (waiting for {shown})")
    text.append(_SEP)
    n = status.member_count
    text.append("1 member" if n == 1 else f"{n} members")
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
        self.update(status_text(status))
