"""Typed Textual messages: one per session notice, plus the end of the network worker.

The session calls a plain ``notify(notice)`` callback; :func:`message_for` wraps each notice in
the message class the app handles, so handlers are dispatched by type and never by inspection.
"""

from __future__ import annotations

from typing import assert_never

from textual.message import Message

from groupchat.client.notices import (
    ChatLine,
    MessageConfirmed,
    Notice,
    Placeholder,
    RosterChanged,
    StatusChanged,
    TimelineEvent,
    TreeView,
)

__all__ = [
    "ChatLineNotice",
    "ConfirmedNotice",
    "PlaceholderNotice",
    "RosterNotice",
    "SessionEnded",
    "StatusNotice",
    "TimelineNotice",
    "TreeNotice",
    "message_for",
]


class StatusNotice(Message):
    """The status bar's content changed."""

    def __init__(self, status: StatusChanged) -> None:
        super().__init__()
        self.status = status


class RosterNotice(Message):
    """The member list changed (membership, online state or trust)."""

    def __init__(self, roster: RosterChanged) -> None:
        super().__init__()
        self.roster = roster


class ChatLineNotice(Message):
    """A chat line to show: someone else's, or our own (pending until confirmed)."""

    def __init__(self, line: ChatLine) -> None:
        super().__init__()
        self.line = line


class ConfirmedNotice(Message):
    """The relay echoed one of our own messages."""

    def __init__(self, confirmed: MessageConfirmed) -> None:
        super().__init__()
        self.confirmed = confirmed


class PlaceholderNotice(Message):
    """Messages that cannot be shown, with the reason."""

    def __init__(self, placeholder: Placeholder) -> None:
        super().__init__()
        self.placeholder = placeholder


class TimelineNotice(Message):
    """A membership, key or connection event in plain words."""

    def __init__(self, event: TimelineEvent) -> None:
        super().__init__()
        self.event = event


class TreeNotice(Message):
    """A fresh picture of the key tree (or ring) for the /tree panel."""

    def __init__(self, view: TreeView) -> None:
        super().__init__()
        self.view = view


class SessionEnded(Message):
    """The session's ``run()`` returned (we left or closed) or raised ``error``."""

    def __init__(self, error: BaseException | None) -> None:
        super().__init__()
        self.error = error


def message_for(notice: Notice) -> Message:
    """The Textual message that carries ``notice``."""
    match notice:
        case StatusChanged():
            return StatusNotice(notice)
        case RosterChanged():
            return RosterNotice(notice)
        case ChatLine():
            return ChatLineNotice(notice)
        case MessageConfirmed():
            return ConfirmedNotice(notice)
        case Placeholder():
            return PlaceholderNotice(notice)
        case TimelineEvent():
            return TimelineNotice(notice)
        case TreeView():
            return TreeNotice(notice)
        case _:
            assert_never(notice)
