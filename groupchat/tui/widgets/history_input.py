"""The input line, with a history of what was submitted (up and down, like a shell)."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Input

__all__ = ["HistoryInput"]


class HistoryInput(Input):
    """An :class:`Input` that recalls earlier submissions with up/down; the draft is kept."""

    BINDINGS = [
        Binding("up", "history(-1)", "Previous", show=False, id="history-previous"),
        Binding("down", "history(1)", "Next", show=False, id="history-next"),
    ]

    MAX_HISTORY = 500

    def __init__(self, *, placeholder: str = "", id: str | None = None) -> None:
        super().__init__(placeholder=placeholder, id=id)
        self.history: list[str] = []
        self._pos: int | None = None  # index into history while browsing, None when editing a draft
        self._draft = ""

    def remember(self, line: str) -> None:
        """Add a submitted line (consecutive duplicates once) and stop browsing."""
        if line and (not self.history or self.history[-1] != line):
            self.history.append(line)
            del self.history[: -self.MAX_HISTORY]
        self._pos = None
        self._draft = ""

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        if self._pos is None:
            if step > 0:
                return
            self._draft = self.value
            pos = len(self.history) - 1
        else:
            pos = self._pos + step
        if pos < 0:
            pos = 0
        if pos >= len(self.history):
            self._pos = None
            self.value = self._draft
        else:
            self._pos = pos
            self.value = self.history[pos]
        self.cursor_position = len(self.value)
