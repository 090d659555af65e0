"""The input: a draft of one or more lines, a history of what was submitted, name completion.

A :class:`~textual.widgets.TextArea` rather than an ``Input``, so a paste keeps every line (an
``Input`` keeps only the first and drops the rest without a word). Enter submits; ``ctrl+j`` (which
every terminal sends), ``alt+enter`` and ``shift+enter`` (where the terminal reports them) start a
new line. Up and down recall earlier submissions from the first and last line of the draft, as in
a shell. Tab completes a member name before the cursor and, pressed again, the next match; focus
stays here. Taking focus never selects the draft, so the next key never replaces it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea

__all__ = ["HistoryInput", "complete_name"]


def complete_name(
    text: str, cursor: int, names: Sequence[str], prefix: str | None = None, after: str | None = None
) -> tuple[str, int, str] | None:
    """Complete the word that ends at ``cursor`` in ``text`` with a member name.

    ``prefix`` is what the user had typed when cycling began, ``after`` the name shown last (the
    next match follows it). Returns (new text, new cursor, the prefix) or None without a match.
    A name that starts the message is followed by ": ", elsewhere by a space (not doubled).
    """
    start = cursor
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    word = text[start:cursor]
    if after is not None:
        # Cycling: the word before the cursor is the previous completion and its separator.
        for sep in (": ", ":", " ", ""):
            if text[:cursor].endswith(after + sep):
                start = cursor - len(after + sep)
                break
        else:
            after, prefix = None, None
    typed = word if prefix is None else prefix
    bare = typed.removeprefix("@")
    matches = sorted({n for n in names if n.casefold().startswith(bare.casefold())}, key=str.casefold)
    if not bare or not matches:
        return None
    index = (matches.index(after) + 1) % len(matches) if after in matches else 0
    name = matches[index]
    sep = ":" if text[:start].strip() == "" else ""
    space_follows = text[cursor : cursor + 1].isspace()
    insert = typed[: len(typed) - len(bare)] + name + sep + ("" if space_follows else " ")  # keeps "@"
    new = text[:start] + insert + text[cursor:]
    return new, start + len(insert) + space_follows, typed  # the cursor after the space either way


@dataclass(slots=True)
class _Cycle:
    prefix: str
    shown: str
    text: str  # the draft right after the completion: any other change ends the cycle


class HistoryInput(TextArea):
    """The draft, with up/down history (the draft is kept) and Tab completion of member names."""

    DEFAULT_CSS = """
    HistoryInput { height: auto; max-height: 10; }
    """

    # Run by _on_key, not by the app: see there.
    BINDINGS = [
        Binding("up", "history(-1)", "Previous", show=False, id="history-previous"),
        Binding("down", "history(1)", "Next", show=False, id="history-next"),
        Binding("ctrl+j,alt+enter,shift+enter", "newline", "New line", show=False, id="newline"),
        Binding("tab", "complete", "Complete name", show=False, id="complete-name"),
    ]

    MAX_HISTORY = 500

    class Submitted(Message):
        """Enter was pressed: ``value`` is the whole draft."""

        def __init__(self, input: HistoryInput, value: str) -> None:
            super().__init__()
            self.input = input
            self.value = value

        @property
        def control(self) -> HistoryInput:
            return self.input

    def __init__(self, *, placeholder: str = "", id: str | None = None) -> None:
        super().__init__(placeholder=placeholder, id=id, soft_wrap=True, tab_behavior="focus",
                         highlight_cursor_line=False, show_line_numbers=False)
        self.sent: list[str] = []
        self._pos: int | None = None  # index into history while browsing, None when editing a draft
        self._draft = ""
        self.names: Callable[[], Sequence[str]] = tuple  # member labels to complete (the app sets it)
        self._cycle: _Cycle | None = None

    # -- the draft as one string ----------------------------------------------------------------

    @property
    def value(self) -> str:
        return self.text

    @value.setter
    def value(self, text: str) -> None:
        self.load_text(text)
        self.move_cursor(self.document.end)

    @property
    def cursor_offset(self) -> int:
        """The cursor as an index into :attr:`value`."""
        row, column = self.cursor_location
        return sum(len(line) + 1 for line in self.text.split("\n")[:row]) + column

    def _move_to_offset(self, offset: int) -> None:
        before = self.text[:offset].split("\n")
        self.move_cursor((len(before) - 1, len(before[-1])))

    # -- keys -----------------------------------------------------------------------------------

    async def _on_key(self, event: events.Key) -> None:
        """Enter submits; this widget's own bindings (ours and TextArea's: ctrl+j, tab, backspace…)
        run here, in order with the keys typed around them.

        Textual runs a binding once its key has bubbled back up to the app (a priority binding: on
        the app's task at once), while the printable keys around it wait in this widget's queue: a
        fast "a ctrl+j b" (tmux, a quick typist) became "ab" plus a newline somewhere else."""
        if event.key == "enter":  # submit; TextArea would insert a newline
            event.stop()
            event.prevent_default()
            self.submit()
            return
        active = self.screen.active_bindings.get(event.key)  # with the app's keymap applied
        if active is not None and active.binding.id == "edit-draft" and active.enabled:
            event.stop()  # the app's editor, after the keys typed before it (not ahead of them)
            event.prevent_default()
            await self.app.run_action(active.binding.action)
            return
        ours = active is not None and active.node is self and active.enabled
        if not (ours and active is not None and active.binding.action == "complete"):
            self._cycle = None  # any other key ends a completion cycle
        if ours and active is not None:
            event.stop()
            event.prevent_default()
            await self.run_action(active.binding.action)

    async def _on_paste(self, event: events.Paste) -> None:
        """Every line of a paste; terminals often send its line ends as carriage returns."""
        event.stop()  # here, not in the app a second time
        event.prevent_default()
        self._cycle = None
        if not self.read_only:
            self.insert(event.text.replace("\r\n", "\n").replace("\r", "\n"))
            self.focus()

    async def action_submit(self) -> None:
        self.submit()

    def submit(self) -> None:
        """Hand the draft to the app and empty the input at once: keys typed before the app has
        handled :class:`Submitted` start the next draft (clearing it later would lose them)."""
        value = self.text
        if value:
            self.load_text("")
        self.post_message(self.Submitted(self, value))

    def restore(self, draft: str) -> None:
        """Put back a submitted draft the app did not take (a long one to confirm); not over new typing."""
        if not self.text:
            self.value = draft

    def action_newline(self) -> None:
        self._cycle = None
        self.insert("\n")

    def action_complete(self) -> None:
        """Tab: complete the member name before the cursor; again: the next match."""
        cycle = self._cycle if self._cycle is not None and self._cycle.text == self.text else None
        done = complete_name(self.text, self.cursor_offset, list(self.names()),
                             cycle.prefix if cycle else None, cycle.shown if cycle else None)
        if done is None:
            self._cycle = None
            return
        text, offset, prefix = done
        shown = text[:offset].rstrip(": ").rsplit(None, 1)[-1].removeprefix("@")
        self.load_text(text)
        self._move_to_offset(offset)
        self._cycle = _Cycle(prefix, shown, text)

    # -- history --------------------------------------------------------------------------------

    def remember(self, line: str) -> None:
        """Add a submitted draft (consecutive duplicates once) and stop browsing."""
        if line and (not self.sent or self.sent[-1] != line):
            self.sent.append(line)
            del self.sent[: -self.MAX_HISTORY]
        self._pos = None
        self._draft = ""

    def action_history(self, step: int) -> None:
        """Up on the first line (down on the last) recalls history; elsewhere it moves the cursor."""
        row = self.cursor_location[0]
        if (step < 0 and row > 0) or (step > 0 and row < self.document.line_count - 1):
            self.move_cursor_relative(rows=step)
            return
        if not self.sent:
            return
        if self._pos is None:
            if step > 0:
                return
            self._draft = self.text
            pos = len(self.sent) - 1
        else:
            pos = self._pos + step
        if pos < 0:
            pos = 0
        if pos >= len(self.sent):
            self._pos = None
            self.value = self._draft
        else:
            self._pos = pos
            self.value = self.sent[pos]
