"""Every sentence about the local store and the history a user reads (the store's own refusals are
in its errors, ``groupchat/client/store.py``). Pure functions of plain values, as ``wording.py``."""

from __future__ import annotations

from pathlib import Path

from ..core.text import sanitise

__all__ = [
    "RESTORED",
    "STATE_TOO_OLD",
    "STORE_FILE_LEAKED",
    "STORE_KEY_LEAKED",
    "history_sender",
    "no_history_for",
    "no_store",
    "outbox_unreadable",
    "passphrase_removed",
    "passphrase_set",
    "rejoin_because",
    "scrollback_unreadable",
    "unreadable_rows",
]

RESTORED = "resumed from the stored group state: same leaf, no rejoin"
STATE_TOO_OLD = (
    "the relay no longer has the room's messages since your stored group state (its log was "
    "trimmed), and commits may have been among them"
)


# What to do with a store file or key others may have read (after "run chmod 600 ...;").
STORE_KEY_LEAKED = (
    "otherwise whoever read it can read your stored history and group state: move the store "
    "(store.sqlite3) and this key away together, and the next start begins a fresh store"
)
STORE_FILE_LEAKED = "its rows are sealed under store.key, which is what must not leak"


def history_sender(name: str, own: bool) -> str:
    """Who sent a message, in the text export."""
    return f"{name} (you)" if own else name


def no_store(data_dir: Path) -> str:
    return f"no history is kept in {data_dir} (nothing was stored there, or every session ran --ephemeral)"


def no_history_for(room: str, data_dir: Path) -> str:
    return f"no history of room {sanitise(room)!r} is kept in {data_dir}"


def unreadable_rows(count: int) -> str:
    if count == 1:
        return "1 stored message could not be decrypted and was left out"
    return f"{count} stored messages could not be decrypted and were left out"


def scrollback_unreadable(count: int) -> str:
    return f"{count} stored message{'s' if count != 1 else ''} of this room could not be decrypted"


def rejoin_because(reason: str) -> str:
    """The timeline line when a stored state cannot be resumed and we join afresh."""
    return f"joining afresh (a new leaf): {reason}"


def passphrase_set(path: Path) -> str:
    return f"the store key {path} is now sealed under the passphrase: it is asked for at each start"


def passphrase_removed(path: Path) -> str:
    return f"the store key {path} has no passphrase now: anyone who can read that file can read the store"


def outbox_unreadable(reason: str) -> str:
    """The messages stored as unsent cannot be read back (they were not confirmed by the relay)."""
    return (
        "the messages you sent just before the last exit cannot be read back, and may not have "
        f"gone out: {reason}"
    )
