"""The "N new messages ↓" line under the timeline while the user reads above the newest line."""

from __future__ import annotations

from textual import events
from textual.widgets import Static

from groupchat.client import wording_tui

__all__ = ["UnreadMarker"]


class UnreadMarker(Static):
    """Hidden while the count is 0; a click (or ctrl+end) jumps to the newest line."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.count = 0
        self.display = False

    def show(self, count: int) -> None:
        self.count = count
        self.display = count > 0
        self.update(wording_tui.unread_marker(count) if count else "")

    async def on_click(self, event: events.Click) -> None:
        await self.run_action("app.scroll_bottom")
