"""Text from others made safe to show: one function, :func:`sanitise`, for every boundary.

A relay or a peer chooses the bytes of an error or close reason, a server name, a display name and
a chat line. Written to a terminal as they are, an escape sequence clears the screen or sets the
window title, a bidi override reorders what follows, and a newline starts a line that looks like
the client's own ("system") output. :func:`sanitise` removes whole escape sequences (7-bit and C1
CSI, OSC, DCS/SOS/PM/APC, two-byte ESC sequences), then every character of the categories
:data:`UNSAFE_CATEGORIES` (control, format (bidi marks and overrides, zero-width characters, the
Arabic letter mark, soft hyphen), lone surrogates, line and paragraph separators). Whitespace
controls (newline, tab, CR...) become one space, so the result is a single line: neither the TUI's
log nor the bot's transcript renders a second line from one message. ``multiline=True`` keeps
``\\n`` (for our own tracebacks in the log file). ``validate_display_name`` refuses exactly these
categories, so a valid name is returned unchanged; :func:`has_unsafe` is the same test for every
other text we are configured with and show (a room name, a relay URL), so that what is refused and
what is shown follow one rule. Pure and idempotent.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

__all__ = ["UNSAFE_CATEGORIES", "has_unsafe", "sanitise"]

#: Unicode general categories never shown as they are: Cc control, Cf format (bidi, zero-width),
#: Cs surrogate, Zl line separator, Zp paragraph separator.
UNSAFE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

# Escape sequences (ECMA-48), removed whole so that no "[2J" or "]0;title" residue is left.
# ESC [ or CSI (U+009B): parameters, intermediates, one final byte. ESC ] or OSC (U+009D), and
# DCS/SOS/PM/APC (ESC P X ^ _, U+0090/98/9E/9F): a string up to BEL or ST (ESC \ or U+009C), or
# to the end. Any other ESC: ESC with its intermediates and final byte.
_SEQUENCES: Final = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)


_SPACES: Final = frozenset("\t\n\v\f\r\x1c\x1d\x1e\x1f\x85\u2028\u2029")


def sanitise(text: str, *, multiline: bool = False) -> str:
    """``text`` without escape sequences or unsafe characters, whitespace controls as one space.

    Printable text (no character of :data:`UNSAFE_CATEGORIES`) is returned as it is; a string
    that is only unsafe characters becomes ``""``. ``multiline`` keeps newlines.
    """
    if text.isprintable():
        return text  # the common case, at C speed (isprintable is False for every unsafe category)
    text = _SEQUENCES.sub("", text)
    out: list[str] = []
    for c in text:
        if c in _SPACES and not (multiline and c == "\n"):
            if not out or out[-1] != " ":
                out.append(" ")
        elif c == "\n" or unicodedata.category(c) not in UNSAFE_CATEGORIES:
            out.append(c)
    return "".join(out)


def has_unsafe(text: str) -> bool:
    """Whether ``text`` holds a character :func:`sanitise` would not show as it is (an escape
    sequence starts with one): the rule by which a name or setting is refused."""
    return not text.isprintable() and any(unicodedata.category(c) in UNSAFE_CATEGORIES for c in text)
