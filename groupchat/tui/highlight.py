"""Pure rules for what the timeline marks: a line naming you, a member's colour, a search match.

No Textual here, so each rule is tested on its own. A member's colour comes from their identity
key's fingerprint (not their name), so two members who pick the same name still differ, and one
member keeps a colour across renames and restarts.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from typing import Final

from groupchat.client import wording_tui
from groupchat.core.errors import UsageError

__all__ = [
    "ACTION_PREFIX",
    "BELL_MODES",
    "PALETTE",
    "Attention",
    "action_of",
    "match_spans",
    "member_colour",
    "names_me",
    "own_names",
]

# ``/me waves`` travels as the chat text "/me waves" (IRC's and Matrix's convention, readable as it is
# by a client that does not know it, such as the plain transcript); a chat screen shows "* alice waves".
ACTION_PREFIX: Final = "/me "

# When the terminal bell rings: a line naming you, every message from someone else, never.
BELL_MODES: Final = ("mention", "all", "off")

# Twelve hues at the lightness where each has at least 4.5:1 contrast against both black and white
# (WCAG relative luminance near 0.18), so a name is as readable in a light theme as in a dark one.
PALETTE: Final = (
    "#e12b2b", "#ae6319", "#787811", "#4b8413", "#138813", "#13864d",
    "#138484", "#1e77d0", "#6565e9", "#994ce6", "#cb1dcb", "#dd207e",
)


def member_colour(fingerprint: str) -> str:
    """The member's colour, from a hash of their identity key's fingerprint (stable, not the name)."""
    digest = hashlib.sha256(fingerprint.replace(" ", "").lower().encode("ascii", "replace")).digest()
    return PALETTE[int.from_bytes(digest[:4], "big") % len(PALETTE)]


def action_of(text: str) -> str | None:
    """The action of a ``/me`` message (``"/me waves"`` gives ``"waves"``), or None for plain text."""
    if text.startswith(ACTION_PREFIX) and text[len(ACTION_PREFIX):].strip():
        return text[len(ACTION_PREFIX):]
    return None


def own_names(label: str) -> set[str]:
    """The words that name you: your label as shown (``alice·3f2a``) and the display name in it."""
    names = {label.strip()}
    for sep in ("·", "#"):
        base = label.partition(sep)[0].strip()
        if base:
            names.add(base)
    return {n for n in names if n}


def _word_pattern(word: str) -> re.Pattern[str]:
    # A whole word: not inside a longer word ("alice" is not named by "malice" or "alice2").
    return re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE)


def names_me(text: str, names: Iterable[str]) -> bool:
    """Whether ``text`` names one of ``names`` as a word, case-insensitive."""
    return any(_word_pattern(name).search(text) for name in names if name)


def match_spans(text: str, word: str) -> list[tuple[int, int]]:
    """Where ``word`` occurs in ``text`` (case-insensitive, anywhere), as (start, end) pairs."""
    if not word:
        return []
    return [(m.start(), m.end()) for m in re.finditer(re.escape(word), text, re.IGNORECASE)]


class Attention:
    """When to ring the bell, and what arrived while you were away (the window title's count).

    ``ring`` rings the terminal bell; ``show`` sets the window title."""

    def __init__(self, bell: str, *, ring: Callable[[], None], show: Callable[[str], None]) -> None:
        if bell not in BELL_MODES:
            raise UsageError(f"bell must be one of {', '.join(BELL_MODES)}, not {bell!r}")
        self.bell = bell
        self._ring = ring
        self._show = show
        self.unseen = 0  # messages from others while you were away (another window, scrolled up)
        self.mentions = 0  # ...of which name you

    def arrived(self, mention: bool, *, away: bool) -> None:
        """A message from someone else: ring as configured; count it if you were not looking."""
        if self.bell == "all" or (mention and self.bell == "mention"):
            self._ring()
        if away:
            self.unseen += 1
            self.mentions += mention
            self._show(wording_tui.window_title(self.unseen, self.mentions))

    def seen(self) -> None:
        """You are looking at the newest line again: the count goes."""
        if self.unseen:
            self.unseen = self.mentions = 0
            self._show(wording_tui.window_title(0, 0))
