"""A readable plain-text transcript of a session's notices, for ``groupchat bot`` and the headless demo.

Timeline wording comes from the session (every sentence is in :mod:`groupchat.client.wording`)
and the notices themselves (:mod:`groupchat.client.notices` composes a placeholder's text once for
every UI); this module only adds a time stamp, the viewer's name and a mark per kind, and
leaves out what is noise in a log (status refreshes that change nothing, retries of the same failed
connection, roster redraws, tree views).

The marks (docs/tui.md, "Marks"): ``+`` joined, ``-`` left or removed, ``~`` keys refreshed, ``^``
reconnected, ``v`` disconnected, ``*`` information, ``⚠`` warning (as in the TUI), ``⊘`` messages
that cannot be shown (as in the TUI), ``=`` the connection state; a chat line from a member whose
key changed starts with ``!`` (as in the TUI, where ``!`` means "key changed" and nothing else).
A multi-line message keeps its lines: the first after the prefix, each further one indented under
it after ``|``. Our own messages are written once the relay echoed them, in the room's order (a
transcript cannot update a line); one never echoed is written when the session closes, marked as
such.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from ..core.text import sanitise
from . import wording
from .notices import (
    ChatLine,
    ConnectionState,
    MessageConfirmed,
    Notice,
    Placeholder,
    RosterChanged,
    StatusChanged,
    TimelineEvent,
    TimelineKind,
    TreeView,
    TrustState,
)

__all__ = ["KEY_CHANGED_MARK", "UNREADABLE_MARK", "Transcript", "render"]

_MARKS: Final = {
    TimelineKind.JOINED: "+",
    TimelineKind.LEFT: "-",
    TimelineKind.REMOVED: "-",
    TimelineKind.UPDATED: "~",
    TimelineKind.RECONNECTED: "^",
    TimelineKind.DISCONNECTED: "v",
    TimelineKind.INFO: "*",
    TimelineKind.WARNING: "⚠",
}
UNREADABLE_MARK: Final = "⊘"
_CONTINUED: Final = "  | "  # before each further line of a multi-line message
KEY_CHANGED_MARK: Final = "!"


def render(notice: Notice) -> str | None:
    """One line for ``notice``, or None if a transcript should not show it on its own."""
    match notice:
        case ChatLine(sender=sender, body=body, epoch=epoch, own=own, pending=pending, trust=trust):
            tail = " (sending)" if own and pending else ""
            mark = f"{KEY_CHANGED_MARK} " if trust is TrustState.KEY_CHANGED and not own else ""
            return f"{mark}[epoch {epoch}] <{sender}> {body}{tail}"
        case Placeholder():
            return f"{UNREADABLE_MARK} {notice.text}"
        case TimelineEvent(kind=kind, text=text):
            return f"{_MARKS[kind]} {text}"
        case StatusChanged(connection=state, epoch=epoch, epoch_code=code):
            where = f" · epoch {epoch}" if epoch is not None else ""
            code_text = f" · code {code}" if code else ""
            why = f" · {notice.problem_line}" if notice.problem else ""
            return f"= {state.value}{where}{code_text}{why}"
        case MessageConfirmed() | RosterChanged() | TreeView():
            return None


class Transcript:
    """Writes rendered notices as ``"  1.23s [viewer] line"``; status lines only when the connection
    state changes. Use one per session: its :meth:`notify` is the session's notice callback."""

    def __init__(
        self,
        write: Callable[[str], None],
        viewer: str | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        start: float | None = None,
    ) -> None:
        self._write = write
        self._viewer = viewer
        self._clock = clock
        self._start = clock() if start is None else start
        self._state: tuple[ConnectionState, str] | None = None
        self._unechoed: dict[int, ChatLine] = {}  # our own lines by local id, until their echo
        self.notices: list[Notice] = []  # everything seen, for checks after the run

    def notify(self, notice: Notice) -> None:
        self.notices.append(notice)
        if isinstance(notice, ChatLine) and notice.own and notice.pending and notice.local_id is not None:
            self._unechoed[notice.local_id] = notice  # written on its echo, not as "(sending)"
            return
        if isinstance(notice, MessageConfirmed):
            echoed = self._unechoed.pop(notice.local_id, None)
            if echoed is not None:
                self.line(f"[epoch {echoed.epoch}] <{echoed.sender}> {echoed.body}")
            return
        if isinstance(notice, StatusChanged) and notice.connection is ConnectionState.CLOSED:
            for own in self._unechoed.values():
                self.line(f"[epoch {own.epoch}] <{own.sender}> {own.body} ({wording.NOT_ECHOED})")
            self._unechoed.clear()
        if isinstance(notice, StatusChanged):
            # A line when the state or the reason for not being connected changes; a retry of
            # the same failure is not news ("...; retry 5 in 8 s" stays one line, as on screen).
            key = (notice.connection, notice.problem)
            if key == self._state:
                return
            self._state = key
        line = render(notice)
        if line is not None:
            self.line(line)

    def line(self, text: str) -> None:
        """Write one entry (a notice, or the bot's and demo's remarks) with the same prefix; the
        lines of a multi-line message follow it, indented, so none is taken for an entry."""
        who = f"[{self._viewer}] " if self._viewer else ""
        stamp = f"{self._clock() - self._start:7.2f}s "
        # stdout may be a terminal: nothing a peer chose (a name in a remark) writes an escape
        first, *more = sanitise(who + text, multiline=True).split("\n")
        self._write(stamp + first)
        for extra in more:
            self._write(f"{' ' * len(stamp)}{_CONTINUED}{extra}")
