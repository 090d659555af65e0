"""The chat screen's own sentences: the draft, the editor, the unread marker, the numbers to compare.

Beside :mod:`groupchat.client.wording` (the session's sentences), which is near the module size
cap; same rules: pure functions of plain values, nothing here formats key material.
"""

from __future__ import annotations

from datetime import date
from typing import Final

__all__ = [
    "ALREADY_IN_ROOM",
    "CLOSED_STATUS",
    "COMMAND_ONE_LINE",
    "FINGERPRINT_MEANS",
    "GROUP_CODE",
    "GROUP_CODE_MEANS",
    "KEY_HELP",
    "LEFT_GROUP",
    "NOT_SENT_MARK",
    "NO_EDITOR_HERE",
    "NO_REJOIN_HERE",
    "OPEN_ROOM",
    "OPEN_ROOM_SHORT",
    "QUIT_LEAVING",
    "QUIT_STAYING",
    "RING_LEGEND",
    "SAFETY_NUMBER_MEANS",
    "SEARCH_CLEARED",
    "SEARCH_HOW",
    "SESSION_ENDED",
    "SET_BY_LEGEND",
    "TREE_EMPTY",
    "TREE_LEGEND",
    "TRUST_SELF",
    "already_verified",
    "date_separator",
    "draft_is_long",
    "draft_over_limit",
    "editor_failed",
    "joining_again",
    "not_verified",
    "safety_number_means",
    "search_none",
    "search_position",
    "session_stopped",
    "unknown_theme",
    "unread_marker",
    "window_title",
]

COMMAND_ONE_LINE: Final = (
    "a command is one line: put its argument on the same line, or type // to send text starting with /"
)
NO_EDITOR_HERE: Final = "this terminal cannot hand the screen to an editor; the draft is unchanged"
SEARCH_CLEARED: Final = "search cleared"
SEARCH_HOW: Final = "type /search WORD to search the scrollback (your draft is kept)"
TRUST_SELF: Final = "that is you: /trust and /untrust are for the other members"
QUIT_LEAVING: Final = "leaving the group…"
QUIT_STAYING: Final = (
    "closing; you stay in the group and the next start resumes where you were "
    "(/leave leaves it; offline past the eviction grace, you are removed and come back by yourself)"
)

# The status bar's words where space is short, and once the session has ended.
OPEN_ROOM: Final = "open room: anyone who knows its name gets in"
OPEN_ROOM_SHORT: Final = "open room"
CLOSED_STATUS: Final = "not in the group: /join to join again"
# After /leave, a removal or another window taking over: the screen says so, everywhere.
SESSION_ENDED: Final = "the session has ended: /join to join the room again, /quit (or ctrl+q) to exit"
NOT_SENT_MARK: Final = " (not sent: the session ended)"
ALREADY_IN_ROOM: Final = "you are in the room already: /join is for after /leave, a removal or a takeover"
NO_REJOIN_HERE: Final = "this window cannot start a new session; restart groupchat chat to join again"
LEFT_GROUP: Final = "you have left the group: /join to join it again, /quit to exit"

# The /tree panel: one word for every node without a member or a key, and a legend line for each
# symbol it draws (docs/tui.md, "The key tree panel").
TREE_EMPTY: Final = "(empty)"
TREE_LEGEND: Final = (
    "a1f0 a node's key, first digits",
    "(empty) no member, or no key",
    "* changed by the last commit",
    "◂ your path (keys you hold)",
)
RING_LEGEND: Final = (
    "a1f0 a member's key, first digits",
    "↓ the next in the ring",
    "* took fresh keys in the last rekey (everyone does)",
    "◂ you",
)
SET_BY_LEGEND: Final = (
    "← set by X: X chose this leaf's secret; the owner's next update (or X's removal) replaces it"
)


def joining_again(room: str) -> str:
    return f"joining #{room} again (a new session)…"


def session_stopped(error: str, kind: str) -> str:
    return f"the session stopped: {error} ({kind}); /join to try again, /quit to exit"

# The three numbers a user may compare, each named where it is shown with what it proves and whom
# to compare it with (docs/tui.md, "Numbers to compare").
GROUP_CODE: Final = "group code"
GROUP_CODE_MEANS: Final = (
    "group code (status bar): this epoch's group keys, the same for every member: compare it with any "
    "member; it changes at each epoch"
)
FINGERPRINT_MEANS: Final = (
    "fingerprint (last column of /who): one member's identity key: compare it with what that member's "
    "own /who shows for them"
)
SAFETY_NUMBER_MEANS: Final = (
    "safety number (/verify NAME): your key and NAME's together: compare it with NAME only, then /trust NAME"
)


# What each key binding does, by its id (ChatApp's and the input's), for /help.
KEY_HELP: Final = {
    "submit": "send the draft (with the focus elsewhere: back to the input, then send)",
    "newline": "start a new line in the draft",
    "complete-name": "complete the member name before the cursor; again: the next match",
    "history-previous": "what you sent before (from the draft's first line)",
    "history-next": "back towards the draft (from its last line)",
    "edit-draft": "edit the draft in $VISUAL / $EDITOR",
    "focus-input": "back to the input, the draft as it was",
    "scroll-up": "scroll the timeline up",
    "scroll-down": "scroll the timeline down",
    "scroll-bottom": "back to the newest line",
    "toggle-tree": "show or hide the key tree",
    "search-next": "the previous line that matches /search WORD (with no search: start one)",
    "quit": "leave and exit",
}


def _size(n: int) -> str:
    return f"{n} bytes" if n < 1024 else f"{n / 1024:.1f} KiB"


def draft_is_long(lines: int, size: int) -> str:
    return f"this message has {lines} lines ({_size(size)}): press Enter again to send it, or change it first"


def draft_over_limit(size: int, limit: int, parts: int) -> str:
    return (
        f"this message is {_size(size)}, more than the {_size(limit)} one message may hold: press Enter "
        f"again to send it as {parts} messages, or change it first"
    )


def editor_failed(editor: str, detail: str) -> str:
    return f"the editor {editor!r} failed ({detail}); the draft is unchanged"


def unread_marker(count: int) -> str:
    return f"{count} new message{'' if count == 1 else 's'} ↓ (ctrl+end)"


def safety_number_means(name: str) -> str:
    """Under the number /verify shows: what it proves and whom to compare it with."""
    return (
        f"it stands for your key and {name}'s together: the same on both your screens, and only there "
        "(not the group code, not a fingerprint)"
    )


def already_verified(name: str) -> str:
    return f"{name} is already marked verified; nothing changed"


def not_verified(name: str) -> str:
    return f"{name} is not marked verified; nothing changed"


def window_title(unread: int, mentions: int) -> str:
    """The terminal's title: what arrived while you were away (other window, scrolled up)."""
    if not unread:
        return "groupchat"
    mention = f", {mentions} naming you" if mentions else ""
    return f"groupchat ({unread} unread{mention})"


def date_separator(day: date) -> str:
    """The timeline's line between two lines of different local dates."""
    return f"── {day:%A} {day.day} {day:%B %Y} ──"


def search_none(word: str) -> str:
    return f"no line in the scrollback matches {word!r}"


def search_position(number: int, total: int, word: str) -> str:
    """Where the timeline has jumped to: match ``number`` (1 = the newest) of ``total``."""
    return (
        f"{word!r}: line {number} of {total} from the newest (ctrl+f: the one before; "
        "ctrl+end: back to the end; /search: clear)"
    )


def unknown_theme(name: str, known: list[str]) -> str:
    return f"theme {name!r} is unknown: choose one of {', '.join(known)}"
