"""What to do with a draft before it is sent: ask first if it is very long, split it if too big.

Pure (no Textual, no session) so the thresholds and the splitting are tested on their own. A paste
of many lines is easy to make by mistake, so one of more than :data:`CONFIRM_LINES` lines or
:data:`CONFIRM_BYTES` bytes is sent only on a second Enter; one over the session's limit
(``MAX_TEXT_BYTES``) is offered as several messages, cut at line ends where possible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from groupchat.client import wording_tui as wording

__all__ = ["CONFIRM_BYTES", "CONFIRM_LINES", "DraftCheck", "check_draft", "split_text"]

CONFIRM_LINES: Final = 20
CONFIRM_BYTES: Final = 4096


@dataclass(frozen=True, slots=True)
class DraftCheck:
    """A draft that needs a second Enter: what to tell the user, and the messages it becomes."""

    prompt: str
    parts: tuple[str, ...]


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _cut_line(line: str, max_bytes: int) -> list[str]:
    """``line`` in pieces of at most ``max_bytes`` UTF-8 bytes, cut after a space where one is near."""
    pieces: list[str] = []
    while _size(line) > max_bytes:
        end = len(line.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore"))  # whole characters
        space = line.rfind(" ", 0, end)
        cut = space + 1 if space >= end // 2 else end
        pieces.append(line[:cut])
        line = line[cut:]
    return [*pieces, line]


def split_text(text: str, max_bytes: int) -> list[str]:
    """``text`` as messages of at most ``max_bytes`` bytes each, whole lines where they fit.

    No piece is blank (the session refuses blank messages); joining the pieces with newlines gives
    the text back, except where a line longer than the limit had to be cut."""
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for line in text.split("\n"):
        for piece in _cut_line(line, max_bytes):
            cost = _size(piece) + (1 if current else 0)
            if current and used + cost > max_bytes:
                parts.append("\n".join(current))
                current, used, cost = [], 0, _size(piece)
            current.append(piece)
            used += cost
    parts.append("\n".join(current))
    return [p for p in parts if p.strip()]


def check_draft(text: str, max_bytes: int) -> DraftCheck | None:
    """None if ``text`` may be sent at once; else the prompt for the second Enter."""
    size = _size(text)
    lines = text.count("\n") + 1
    if size > max_bytes:
        parts = tuple(split_text(text, max_bytes))
        return DraftCheck(wording.draft_over_limit(size, max_bytes, len(parts)), parts)
    if lines > CONFIRM_LINES or size > CONFIRM_BYTES:
        return DraftCheck(wording.draft_is_long(lines, size), (text,))
    return None
