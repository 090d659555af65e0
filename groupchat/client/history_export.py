"""``groupchat history export``: the decrypted chat history of the local store, as text or JSON.

Reads the store of the data directory (``store.sqlite3``, its key ``store.key`` beside the
identity) and writes every kept message of one room (or of every room), oldest first, to stdout
or ``--output``. Text is for reading: unsafe characters and escape sequences are removed, as on
screen; JSON keeps the text as it arrived, one object per message. A row that cannot be decrypted
is counted on stderr and skipped. Errors are one line (``groupchat.cli``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from ..core.text import sanitise
from . import wording_store as words
from .config import add_config_arguments
from .store import KEY_FILE, STORE_FILE, HistoryEntry, Store, StoreError
from .store_key import ask_passphrase

__all__ = ["Rooms", "add_arguments", "format_json", "format_text", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The export's flags and the configuration flags that locate the store."""
    parser.add_argument("--room", help="only this room's messages (default: every room)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    parser.add_argument("--output", "-o", type=Path, metavar="FILE", help="write here (default: stdout)")
    add_config_arguments(parser, session=False)


Rooms = Sequence[tuple[str, str, Sequence[HistoryEntry]]]
"""What is exported: (room, relay, messages), per room of each relay."""


def format_text(rooms: Rooms) -> str:
    """Readable lines: ``[time] name: text`` per message (continuation lines indented), per room."""
    out: list[str] = []
    for room, relay, entries in rooms:
        out.append(f"# {sanitise(room)}" + (f" ({sanitise(relay)})" if relay else ""))
        for e in entries:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.time))
            who = words.history_sender(sanitise(e.sender_name), e.own)
            first, *rest = sanitise(e.text, multiline=True).split("\n")
            out.append(f"[{stamp}] {who}: {first}")
            out.extend(f"    {line}" for line in rest)
    return "".join(line + "\n" for line in out)


def format_json(rooms: Rooms) -> str:
    """One JSON document: ``{"rooms": [{"room": ..., "relay": ..., "messages": [...]}]}``."""
    doc = {
        "rooms": [
            {"room": room, "relay": relay, "messages": [e.to_json() for e in entries]}
            for room, relay, entries in rooms
        ]
    }
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def _write(text: str, output: Path | None, stdout: TextIO) -> None:
    if output is None:
        stdout.write(text)
        return
    # The export is decrypted history: owner-only, like the store's key.
    from .identity_store import write_private_file

    write_private_file(output, text.encode("utf-8"))


def run(args: argparse.Namespace) -> int:
    """Export the history; exit status 0, or 1 with one line on stderr."""
    from .config import load_config

    config = load_config(args)
    data_dir = config.data_path
    if not (data_dir / STORE_FILE).exists():
        raise StoreError(words.no_store(data_dir))
    key_path = config.identity_path.with_name(KEY_FILE)
    with Store.open(data_dir, key_path, create=False, passphrase=ask_passphrase()) as store:
        places = [p for p in store.places() if args.room is None or p[0] == args.room]
        rooms: list[tuple[str, str, Sequence[HistoryEntry]]] = []
        unreadable = 0
        for room, relay in places:
            entries, bad = store.history(room, relay=relay)
            unreadable += bad
            rooms.append((room, relay, entries))
    if args.room is not None and not any(entries for _, _, entries in rooms) and not unreadable:
        raise StoreError(words.no_history_for(args.room, data_dir))
    text = format_json(rooms) if args.format == "json" else format_text(rooms)
    _write(text, args.output, sys.stdout)
    if unreadable:
        print(words.unreadable_rows(unreadable), file=sys.stderr)
    return 0
