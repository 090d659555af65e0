"""The session's side of the local store: scrollback and resume at start, and the writes after.

Used by the asyncio glue (``session/asyncio_session.py``), which does the I/O; the machine only says
what to keep (``take_kept``) and which group stands (``stored_group``). The rule of
docs/protocol.md §12.2 is kept here: :meth:`SessionStore.persist` runs after each machine step
and, with ``before_send``, before each frame goes out; a state that cannot be exported then (a ring
run in progress, an undrained outbox) is *forgotten* before the frame is sent, so a crash after it
means a rejoin, never a ratchet generation used twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from ..core.errors import GroupChatError, UsageError
from ..core.group import Group, GroupConfig
from ..core.identity import Identity
from . import wording_store as words
from .names import SEPARATOR, NameIndex
from .notices import ChatLine, Notice, TimelineEvent, TimelineKind
from .session.persistence import Kept, Unsent
from .session.state import MachineState
from .store import HistoryEntry, Place, Store, StoreError, relay_place

__all__ = ["SessionStore"]

log = logging.getLogger("groupchat.client.store")

_SCROLLBACK_LINES = 2000
"""The most recent kept messages shown at start (the TUI's timeline holds as many)."""
_RECENT_ROWS = 4096
"""Kept messages read at start, once: the scrollback's, the ids a resend must not show again (the
machine remembers as many per sender), and ours an outbox entry may already be among."""


def _entry(k: Kept, now: float) -> HistoryEntry:
    return HistoryEntry(k.message_id.hex(), k.epoch, k.sender_key.hex(), k.sender_name, k.text, now, k.own)


def _labels(entries: list[HistoryEntry]) -> dict[tuple[str, str], str]:
    """How each (name, sender key) of the scrollback is shown: the name, with a fingerprint
    suffix when another sender in it has a look-alike name (names.py), as it was shown live."""
    pairs = {(e.sender_name, bytes.fromhex(e.sender_key)) for e in entries}
    index = NameIndex(pairs)
    out: dict[tuple[str, str], str] = {}
    for name, key in pairs:
        rivals = index.like(name) - {key}
        label = name
        if rivals or index.matches(name) != {key}:
            suffix = index.unambiguous_label(key, rivals).rpartition(SEPARATOR)[2]
            label = f"{name}{SEPARATOR}{suffix}"
        out[(name, key.hex())] = label
    return out


class SessionStore:
    """One session's relay, room and identity in a :class:`Store`, claimed for this process (a
    second process with the same identity in that room is refused: :meth:`Store.claim`)."""

    def __init__(
        self,
        store: Store,
        relay: str,
        room: str,
        identity: Identity,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.place = Place(relay_place(relay), room, identity.public_key)
        store.claim(self.place)  # one process per stored state (Store.claim)
        store.adopt(self.place)  # rows of a store written before relays were recorded
        self.store = store
        self.room = room
        self._identity = identity
        self._key = identity.public_key
        self._wall = wall
        self._saved: tuple[bytes, int] | None = None  # what the store holds now (None: nothing)
        self._saved_outbox = b""  # the unsent messages the store holds, encoded
        self._recent_rows: tuple[list[HistoryEntry], int] | None = None  # read at start (_recent)
        self._has_state = False
        self._failed = False  # a write failed: said once, retried at each step
        self._unsaved: list[Kept] = []  # messages a failed write did not keep (tried again next)
        self._synced = True  # the last state write was synced to the disk (durable)
        # A write before a send failed: the store may hold a state older than the frame would
        # leave behind, so the glue must not send it (a restart would reuse its generation).
        self.hold_sends = False

    def _recent(self) -> tuple[list[HistoryEntry], int]:
        """The last ``_RECENT_ROWS`` kept messages of this place and how many of them do not open,
        read and decrypted once (the start needs them three times)."""
        if self._recent_rows is None:
            self._recent_rows = self.store.history(
                self.room, self._key, self.place.relay, last=_RECENT_ROWS
            )
        return self._recent_rows

    def scrollback(self) -> list[Notice]:
        """The kept history of this room, as timeline lines (and a line for unreadable rows)."""
        try:
            entries, bad = self._recent()
        except StoreError as exc:
            return [TimelineEvent(TimelineKind.WARNING, str(exc))]
        entries = entries[-_SCROLLBACK_LINES:]  # what the timeline holds; the rest is for export
        labels = _labels(entries)
        out: list[Notice] = [
            ChatLine(labels[(e.sender_name, e.sender_key)], e.text, e.epoch, own=e.own) for e in entries
        ]
        if bad:
            out.append(TimelineEvent(TimelineKind.WARNING, words.scrollback_unreadable(bad)))
        return out

    def restore(self, config: GroupConfig) -> tuple[Group, int] | str | None:
        """The stored group and its relay position; a reason (to show) if it cannot be restored;
        ``None`` if nothing is stored for this room."""
        try:
            stored = self.store.load_state(self.place)
        except StoreError as exc:
            return str(exc)
        if stored is None:
            return None
        self._has_state = True
        try:
            group = Group.restore(stored.state, self._identity, config)
        except GroupChatError as exc:
            return f"the stored group state cannot be restored: {exc}"
        self._saved = (stored.state, stored.position)
        return group, stored.position

    def seen(self) -> list[tuple[bytes, bytes]]:
        """(sender key, message id) of the recent messages others sent that the history keeps
        (unreadable rows are left out; a store that cannot be read is the scrollback's warning)."""
        try:
            entries, _ = self._recent()
        except StoreError:
            return []
        out = []
        for e in entries:
            if not e.own:
                try:
                    out.append((bytes.fromhex(e.sender_key), bytes.fromhex(e.message_id)))
                except ValueError:
                    continue
        return out

    @property
    def holds_state(self) -> bool:
        """Whether the store holds our current group state (the last write of it succeeded)."""
        return self._has_state and not self._failed

    def unsent(self) -> list[Unsent] | str:
        """Our messages stored as not yet echoed (to send or confirm again); a reason if the
        stored outbox cannot be read."""
        try:
            raw = self.store.load_outbox(self.place)
            self._saved_outbox = raw
            unsent = _decode_unsent(raw)
            if unsent:  # one the history keeps as ours was echoed (a kill before the outbox's write)
                entries, _ = self._recent()  # an unsent one is among the last we sent, if kept
                echoed = {e.message_id for e in entries if e.own}
                unsent = [u for u in unsent if u.message_id.hex() not in echoed]
            return unsent
        except (StoreError, ValueError) as exc:
            return words.outbox_unreadable(str(exc))

    def keep(self, machine: MachineState) -> list[Notice]:
        """Write the messages shown since the last call (before they are shown: a message the
        user saw confirmed is kept); the notices to show if the store failed (once)."""
        kept = [*self._unsaved, *machine.take_kept()]
        self._unsaved = []
        if not kept:
            return []
        return self._save(kept, None, False, durable=False)

    def persist(self, machine: MachineState, *, before_send: bool = False) -> list[Notice]:
        """Write what changed since the last call (history, then the group state) in one
        transaction; the notices to show if the store failed (once)."""
        kept = [*self._unsaved, *machine.take_kept()]
        self._unsaved = []
        group = machine.stored_group()
        state: tuple[bytes, int] | None = None
        drop = False
        if group is not None:
            try:
                state = (group.export_state(), machine.last_seq or 0)
            except UsageError as exc:
                # Not storable now: before a send, the stale state must go (see the module doc).
                drop = before_send and self._has_state
                if drop:
                    log.info("the group state cannot be stored now (%s): the stored one is forgotten", exc)
        else:
            drop = self._has_state
        if state is not None and state == self._saved and not (before_send and not self._synced):
            state = None  # unchanged (and on disk already, or no frame depends on it yet)
        outbox: bytes | None = _encode_unsent(machine.unsent())
        if outbox == self._saved_outbox:
            outbox = None  # unchanged (a forgotten state keeps its outbox: Store.save)
        if not kept and state is None and not drop and outbox is None:
            return []
        return self._save(kept, state, drop, durable=before_send, outbox=outbox)

    def _save(
        self,
        kept: list[Kept],
        state: tuple[bytes, int] | None,
        drop: bool,
        *,
        durable: bool,
        outbox: bytes | None = None,
    ) -> list[Notice]:
        now = self._wall()
        messages = [_entry(k, now) for k in kept]
        try:
            self.store.save(
                self.place, state=state, drop_state=drop, messages=messages, outbox=outbox, durable=durable
            )
        except StoreError as exc:
            self._unsaved = kept
            if durable and (state is not None or drop):
                self.hold_sends = True
            if self._failed:
                return []
            self._failed = True
            return [TimelineEvent(TimelineKind.WARNING, str(exc))]
        self._failed = False
        if durable:
            self.hold_sends = False
        self._synced = durable or (self._synced and state is None and not drop)
        if outbox is not None:
            self._saved_outbox = outbox
        if state is not None:
            self._saved, self._has_state = state, True
        elif drop:
            self._saved, self._has_state = None, False
        return []


def _encode_unsent(unsent: list[Unsent]) -> bytes:
    """The outbox as the store keeps it (JSON; ``b""``: empty)."""
    if not unsent:
        return b""
    rows = [
        {
            "id": u.message_id.hex(),
            "text": u.text,
            "digest": None if u.digest is None else u.digest.hex(),
            "epoch": u.epoch,
        }
        for u in unsent
    ]
    return json.dumps(rows, ensure_ascii=False).encode("utf-8")


def _decode_unsent(raw: bytes) -> list[Unsent]:
    """The stored outbox back; ``ValueError`` if it is not one we wrote."""
    if not raw:
        return []
    rows = json.loads(raw.decode("utf-8"))
    if not isinstance(rows, list):
        raise ValueError("the stored outbox is not a list")
    out = []
    for row in rows:
        if not isinstance(row, dict):
            raise ValueError("a stored outbox entry is not an object")
        mid, text, digest, epoch = row.get("id"), row.get("text"), row.get("digest"), row.get("epoch")
        if not isinstance(mid, str) or not isinstance(text, str):
            raise ValueError("a stored outbox entry has no message id or text")
        if not (digest is None or isinstance(digest, str)) or not (epoch is None or isinstance(epoch, int)):
            raise ValueError("a stored outbox entry has a malformed digest or epoch")
        out.append(Unsent(bytes.fromhex(mid), text, None if digest is None else bytes.fromhex(digest), epoch))
    return out
