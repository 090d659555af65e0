"""The local store: group state and chat history on disk, encrypted at rest (docs/protocol.md §12).

One SQLite file per data directory (``store.sqlite3``, WAL mode), each row
sealed with AES-256-GCM under a random 32-byte key kept beside the identity (``store.key``, mode
0600, optionally under a passphrase: ``store_key.py``). Rows are kept per :class:`Place` (relay,
room, identity). Each row has its own random 96-bit nonce and binds what it is (table, relay,
room, identity, message id) as associated data,
so a row moved to another place or another store does not open. The stored group state holds
epoch secrets: it is exactly as safe as this key (§12.3). Every write is one transaction, so a
crash leaves the store as it was before or after the write, never between. Every transaction
survives the process being killed; one written with ``durable`` (before a frame is sent) is also
synced to the disk, with every one before it, so a power cut cannot roll the ratchets back past a
message that left.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import sqlite3
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from cryptography.exceptions import InvalidTag

try:
    import fcntl
except ImportError:  # not POSIX: no advisory lock (the claim is then the user's to keep)
    fcntl = None  # type: ignore[assignment]
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import wording_store as words
from .identity_store import IdentityFileError, check_private_mode
from .store_key import Passphrase, StoreError, load_or_create_store_key

__all__ = [
    "KEY_FILE",
    "STORE_FILE",
    "HistoryEntry",
    "Passphrase",
    "Place",
    "Store",
    "StoreError",
    "StoredState",
    "load_or_create_store_key",
    "relay_place",
]

STORE_FILE: Final = "store.sqlite3"
"""The store's file name in the data directory."""
KEY_FILE: Final = "store.key"
"""The local key's file name, beside the identity."""

_SCHEMA: Final = 2  # 1: rows keyed by (room, identity); 2: by (relay, room, identity)
_CHECK: Final = b"groupchat store v1 key check"
_NONCE: Final = 12


@dataclass(frozen=True, slots=True)
class Place:
    """Whose rows: one identity in one room of one relay (the same room name elsewhere is another).

    ``relay`` is :func:`relay_place` of the relay URL; ``""`` marks rows written by schema 1, which
    did not record the relay (:meth:`Store.adopt` hands them to the first relay that asks)."""

    relay: str
    room: str
    identity: bytes

    def aad(self, kind: bytes, *more: str) -> bytes:
        """Associated data naming this place (and ``more``: a message id). Rows of schema 1
        (``relay == ""``) bound no relay; their associated data is kept as it was."""
        return _aad(kind, self.room, self.identity, *more, *((self.relay,) if self.relay else ()))


def relay_place(url: str) -> str:
    """The relay part of a :class:`Place`: the URL with its scheme and host in lower case and no
    trailing slash, so ``WS://Host:8765/`` and ``ws://host:8765`` share a store."""
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


@dataclass(frozen=True, slots=True)
class StoredState:
    """A stored group state and the relay position (the last log sequence it has read) it matches."""

    state: bytes
    position: int


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One chat message as kept in the history."""

    message_id: str  # hex of the message's msg_id (chosen by its sender, stable over resends)
    epoch: int
    sender_key: str  # hex of the sender's identity key
    sender_name: str
    text: str
    time: float  # seconds since the epoch (when we sent or received it)
    own: bool  # True: we sent it (and the relay echoed it)

    def to_json(self) -> dict[str, object]:
        """The entry as a JSON object (the export format)."""
        return {
            "message_id": self.message_id,
            "epoch": self.epoch,
            "sender_key": self.sender_key,
            "sender_name": self.sender_name,
            "text": self.text,
            "time": self.time,
            "own": self.own,
        }


def _aad(kind: bytes, *parts: str | bytes) -> bytes:
    """Associated data: the row's kind and place, each part length-prefixed (no ambiguity)."""
    out = bytearray(b"groupchat store v1 " + kind)
    for part in parts:
        raw = part.encode("utf-8") if isinstance(part, str) else part
        out += struct.pack(">I", len(raw)) + raw
    return bytes(out)


_TABLES: Final = (
    "CREATE TABLE IF NOT EXISTS state (relay TEXT NOT NULL, room TEXT NOT NULL, identity BLOB NOT "
    "NULL, nonce BLOB NOT NULL, sealed BLOB NOT NULL, PRIMARY KEY (relay, room, identity))",
    "CREATE TABLE IF NOT EXISTS history (seq INTEGER PRIMARY KEY AUTOINCREMENT, relay TEXT NOT NULL, "
    "room TEXT NOT NULL, identity BLOB NOT NULL, message_id TEXT NOT NULL, nonce BLOB NOT NULL, "
    "sealed BLOB NOT NULL, UNIQUE (relay, room, identity, message_id))",
    "CREATE TABLE IF NOT EXISTS outbox (relay TEXT NOT NULL, room TEXT NOT NULL, identity BLOB NOT "
    "NULL, nonce BLOB NOT NULL, sealed BLOB NOT NULL, PRIMARY KEY (relay, room, identity))",
)


class Store:
    """The encrypted store of one data directory; open with :meth:`open`, close with :meth:`close`."""

    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self._aead = AESGCM(key)
        self._claims: dict[str, int] = {}  # held place locks: name -> open descriptor
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        try:
            check_private_mode(path, "store file", words.STORE_FILE_LEAKED)
        except IdentityFileError as exc:
            raise StoreError(str(exc)) from None
        try:
            self._db = sqlite3.connect(path, isolation_level=None, timeout=10.0)
            # A damaged text cell must not raise from deep inside a query: read it leniently, the
            # AEAD then refuses the row.
            self._db.text_factory = lambda raw: raw.decode("utf-8", "replace")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._durable = True
            self._setup()
        except sqlite3.DatabaseError as exc:
            with contextlib.suppress(Exception):
                self._db.close()
            raise StoreError(
                f"store file {path} cannot be read ({exc}): move it away to start afresh"
            ) from None
        except StoreError:
            self._db.close()
            raise

    @classmethod
    def open(
        cls,
        data_dir: Path,
        key_path: Path | None = None,
        *,
        create: bool = True,
        passphrase: Passphrase | None = None,
    ) -> Store:
        """The store of ``data_dir``, its key at ``key_path`` (default: ``data_dir/store.key``);
        ``create=False`` refuses to make a new key (to read an existing store only);
        ``passphrase`` is asked for if the key is sealed under one (``store_key.py``)."""
        # A store without its key is refused, never given a new key it cannot open anyway (and
        # which would then stand where the user restores the old one).
        create = create and not (data_dir / STORE_FILE).is_file()
        key = load_or_create_store_key(
            key_path if key_path is not None else data_dir / KEY_FILE, create=create, passphrase=passphrase
        )
        return cls(data_dir / STORE_FILE, key)

    def close(self) -> None:
        """Close the database (every write is already committed) and release every claim."""
        for fd in self._claims.values():
            os.close(fd)
        self._claims.clear()
        self._db.close()

    def claim(self, place: Place) -> None:
        """Hold ``place`` for this process until :meth:`close`, or raise :class:`StoreError` if
        another process holds it. Two processes resuming one stored state would hold the same leaf
        and ratchets, and encrypt with the same key and nonce; the lock (``flock``, released by the
        system even on SIGKILL) makes the second one refuse."""
        name = hashlib.sha256(place.aad(b"claim")).hexdigest()[:24]
        if name in self._claims:
            return
        path = self.path.with_name(f".{self.path.name}.{name}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StoreError(
                f"another groupchat process is using this identity in room {place.room!r} of "
                f"{place.relay} with the store in {self.path.parent}: close it first, or run this one "
                "with --ephemeral"
            ) from None
        self._claims[name] = fd

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it is committed, or none (a crash rolls it back)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:  # SQLite ends it itself on some errors (a full disk)
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the store {self.path}: {exc}") from None

    def _query(self, sql: str, args: tuple[object, ...] | list[str | bytes] = ()) -> list[tuple[object, ...]]:
        try:
            return list(self._db.execute(sql, args).fetchall())
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the store {self.path}: {exc}") from None

    def _setup(self) -> None:
        with self._transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)")
            rows = {str(n): v for n, v in db.execute("SELECT name, value FROM meta").fetchall()}
            if not rows:
                for table in _TABLES:
                    db.execute(table)
                nonce = secrets.token_bytes(_NONCE)
                check = self._aead.encrypt(nonce, _CHECK, _aad(b"check"))
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(_SCHEMA).encode(),))
                db.execute("INSERT INTO meta VALUES ('check', ?)", (nonce + check,))
                return
        check = rows.get("check", b"")
        try:
            ok = self._aead.decrypt(check[:_NONCE], check[_NONCE:], _aad(b"check")) == _CHECK
        except (InvalidTag, ValueError):
            ok = False
        if not ok:
            raise StoreError(
                f"store file {self.path} was written with another store key than the one beside the "
                "identity: restore that key, or move the store away to start afresh"
            )
        if rows.get("schema") == b"1":
            self._from_schema_1()
        elif rows.get("schema") != str(_SCHEMA).encode():
            raise StoreError(
                f"store file {self.path} has schema {rows.get('schema')!r}; this build reads {_SCHEMA}"
            )
        else:
            with self._transaction() as db:  # a table added within schema 2 (the outbox)
                for table in _TABLES:
                    db.execute(table)

    def _from_schema_1(self) -> None:
        """Schema 1 kept no relay: its rows move to relay ``""`` as they are (sealed under the same
        associated data), until :meth:`adopt` re-seals them for the relay of the first session."""
        with self._transaction() as db:
            # Read again under the write lock: another process may have migrated meanwhile.
            if db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone() != (b"1",):
                return
            db.execute("ALTER TABLE state RENAME TO state_1")
            db.execute("ALTER TABLE history RENAME TO history_1")
            for table in _TABLES:
                db.execute(table)
            db.execute("INSERT INTO state SELECT '', room, identity, nonce, sealed FROM state_1")
            db.execute(
                "INSERT INTO history (relay, room, identity, message_id, nonce, sealed) "
                "SELECT '', room, identity, message_id, nonce, sealed FROM history_1 ORDER BY seq"
            )
            db.execute("DROP TABLE state_1")
            db.execute("DROP TABLE history_1")
            db.execute("UPDATE meta SET value = ? WHERE name = 'schema'", (str(_SCHEMA).encode(),))

    def _seal(self, plain: bytes, aad: bytes) -> tuple[bytes, bytes]:
        nonce = secrets.token_bytes(_NONCE)
        return nonce, self._aead.encrypt(nonce, plain, aad)

    def _open(self, nonce: object, sealed: object, aad: bytes, what: str) -> bytes:
        try:
            if not isinstance(nonce, bytes) or not isinstance(sealed, bytes):
                raise ValueError("not a sealed row")
            return self._aead.decrypt(nonce, sealed, aad)
        except (InvalidTag, ValueError):
            raise StoreError(
                f"{what} in {self.path} is corrupt or was not written here: it cannot be decrypted"
            ) from None

    def adopt(self, place: Place) -> int:
        """Hand the rows schema 1 kept for ``place``'s room and identity (relay unknown) to
        ``place``, re-sealed to bind its relay, in one transaction; how many rows moved. A row that
        does not open stays as it is (the export still counts it as unreadable)."""
        legacy = Place("", place.room, place.identity)
        if not place.relay or not self._query(
            "SELECT 1 FROM history WHERE relay = '' AND room = ? AND identity = ? UNION "
            "SELECT 1 FROM state WHERE relay = '' AND room = ? AND identity = ?",
            (place.room, place.identity, place.room, place.identity),
        ):
            return 0
        moved = 0
        with self._transaction() as db:
            state = db.execute(
                "SELECT nonce, sealed FROM state WHERE relay = '' AND room = ? AND identity = ?",
                (place.room, place.identity),
            ).fetchall()
            has_own = db.execute(
                "SELECT 1 FROM state WHERE relay = ? AND room = ? AND identity = ?",
                (place.relay, place.room, place.identity),
            ).fetchall()
            for nonce, sealed in state:
                with contextlib.suppress(StoreError):
                    plain = self._open(nonce, sealed, legacy.aad(b"state"), "a stored state")
                    if not has_own:
                        sealed_state = self._seal(plain, place.aad(b"state"))
                        db.execute(
                            "INSERT INTO state VALUES (?, ?, ?, ?, ?)",
                            (place.relay, place.room, place.identity, *sealed_state),
                        )
                    db.execute(
                        "DELETE FROM state WHERE relay = '' AND room = ? AND identity = ?",
                        (place.room, place.identity),
                    )
                    moved += 1
            rows = db.execute(
                "SELECT seq, message_id, nonce, sealed FROM history WHERE relay = '' AND room = ? "
                "AND identity = ? ORDER BY seq",
                (place.room, place.identity),
            ).fetchall()
            for seq, mid, nonce, sealed in rows:
                with contextlib.suppress(StoreError):
                    plain = self._open(nonce, sealed, legacy.aad(b"history", str(mid)), "a history row")
                    db.execute(
                        "INSERT OR IGNORE INTO history (relay, room, identity, message_id, nonce, "
                        "sealed) VALUES (?, ?, ?, ?, ?, ?)",
                        (place.relay, place.room, place.identity, str(mid),
                         *self._seal(plain, place.aad(b"history", str(mid)))),
                    )
                    db.execute("DELETE FROM history WHERE seq = ?", (seq,))
                    moved += 1
        return moved

    # The group state, one row per place.

    def save_state(self, place: Place, state: bytes, position: int) -> None:
        """Replace the stored state of ``place`` (one transaction)."""
        self.save(place, state=(state, position))

    def load_state(self, place: Place) -> StoredState | None:
        """The stored state of ``place``, ``None`` if none; :class:`StoreError` if corrupt."""
        rows = self._query(
            "SELECT nonce, sealed FROM state WHERE relay = ? AND room = ? AND identity = ?",
            (place.relay, place.room, place.identity),
        )
        if not rows:
            return None
        row = rows[0]
        plain = self._open(row[0], row[1], place.aad(b"state"), f"the group state of room {place.room!r}")
        if len(plain) < 8:
            raise StoreError(f"the group state of room {place.room!r} in {self.path} is truncated")
        return StoredState(plain[8:], struct.unpack(">Q", plain[:8])[0])

    def delete_state(self, place: Place) -> None:
        """Forget the stored state (we left, were removed, or rejoin)."""
        self.save(place, drop_state=True)

    def save(
        self,
        place: Place,
        *,
        state: tuple[bytes, int] | None = None,
        drop_state: bool = False,
        messages: Sequence[HistoryEntry] = (),
        outbox: bytes | None = None,
        durable: bool = True,
    ) -> None:
        """In one transaction: add ``messages`` to the history, then replace the stored state by
        ``state`` (bytes, position) or, with ``drop_state``, forget it, and replace the outbox (our
        messages not yet echoed, as the session encodes them; ``b""``: none, ``None``: unchanged;
        it outlives a forgotten state: a rejoin sends them). A crash keeps all or none.
        ``durable=False`` skips the disk sync (WAL ``synchronous=NORMAL``): safe against a killed
        process, not a power cut; the next durable write syncs it too."""
        if durable != self._durable:
            try:
                self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write the store {self.path}: {exc}") from None
            self._durable = durable
        rows = [self._history_row(place, e) for e in messages]
        sealed_outbox = self._seal(outbox, place.aad(b"outbox")) if outbox else None
        sealed = None
        if state is not None:
            sealed = self._seal(struct.pack(">Q", state[1]) + state[0], place.aad(b"state"))
        where = (place.relay, place.room, place.identity)
        with self._transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO history (relay, room, identity, message_id, nonce, sealed) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            if sealed is not None:
                db.execute("INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?, ?)", (*where, *sealed))
            elif drop_state:
                db.execute("DELETE FROM state WHERE relay = ? AND room = ? AND identity = ?", where)
            if sealed_outbox is not None:
                db.execute("INSERT OR REPLACE INTO outbox VALUES (?, ?, ?, ?, ?)", (*where, *sealed_outbox))
            elif outbox is not None:  # b"": nothing left unsent (a dropped state keeps its outbox)
                db.execute("DELETE FROM outbox WHERE relay = ? AND room = ? AND identity = ?", where)

    def load_outbox(self, place: Place) -> bytes:
        """The stored outbox of ``place`` (``b""``: none); :class:`StoreError` if corrupt."""
        rows = self._query(
            "SELECT nonce, sealed FROM outbox WHERE relay = ? AND room = ? AND identity = ?",
            (place.relay, place.room, place.identity),
        )
        if not rows:
            return b""
        return self._open(rows[0][0], rows[0][1], place.aad(b"outbox"), f"the outbox of room {place.room!r}")

    # The history.

    def _history_row(self, place: Place, entry: HistoryEntry) -> tuple[str, str, bytes, str, bytes, bytes]:
        plain = json.dumps(entry.to_json(), ensure_ascii=False).encode("utf-8")
        nonce, sealed = self._seal(plain, place.aad(b"history", entry.message_id))
        return place.relay, place.room, place.identity, entry.message_id, nonce, sealed

    def add_message(self, place: Place, entry: HistoryEntry) -> bool:
        """Append ``entry`` (one transaction); ``False`` if that message id is already kept."""
        with self._transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO history (relay, room, identity, message_id, nonce, sealed) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                self._history_row(place, entry),
            )
            return cur.rowcount == 1

    def history(
        self,
        room: str | None = None,
        identity: bytes | None = None,
        relay: str | None = None,
        *,
        last: int | None = None,
    ) -> tuple[list[HistoryEntry], int]:
        """The kept messages (of ``room``, ``identity``, ``relay`` where given; only the ``last``
        ones if given, so a start does not decrypt a whole long history), oldest first, and how
        many of the rows read could not be read (skipped, not fatal)."""
        query = "SELECT seq, relay, room, identity, message_id, nonce, sealed FROM history"
        where: list[str] = []
        args: list[str | bytes] = []
        for column, value in (("room", room), ("identity", identity), ("relay", relay)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if where:
            query += " WHERE " + " AND ".join(where)
        if last is not None:
            query = f"SELECT * FROM ({query} ORDER BY seq DESC LIMIT {int(last)})"
        entries: list[HistoryEntry] = []
        bad = 0
        for _, rel, r, ident, mid, nonce, sealed in self._query(query + " ORDER BY seq", args):
            try:
                if not (isinstance(rel, str) and isinstance(r, str) and isinstance(ident, bytes)
                        and isinstance(mid, str)):
                    raise ValueError("history row has a malformed place")
                plain = self._open(nonce, sealed, Place(rel, r, ident).aad(b"history", mid), "a history row")
                entries.append(_entry(json.loads(plain.decode("utf-8"))))
            except (StoreError, ValueError, KeyError, TypeError):
                bad += 1
        return entries, bad

    def places(self) -> list[tuple[str, str]]:
        """Every (room, relay) with kept history, sorted (relay ``""``: kept before relays were)."""
        rows = self._query("SELECT DISTINCT room, relay FROM history ORDER BY room, relay")
        return [(str(room), str(relay)) for room, relay in rows]

def _entry(obj: object) -> HistoryEntry:
    """A decrypted history row back as an entry; ``ValueError`` if it is not one we wrote."""
    if not isinstance(obj, dict):
        raise ValueError("history row is not an object")
    epoch, when, own = obj["epoch"], obj["time"], obj["own"]
    texts = [obj[k] for k in ("message_id", "sender_key", "sender_name", "text")]
    if not isinstance(epoch, int) or not isinstance(when, int | float) or not isinstance(own, bool):
        raise ValueError("history row has a malformed epoch, time or own flag")
    if not all(isinstance(t, str) for t in texts):
        raise ValueError("history row has a malformed text field")
    mid, key, name, text = (str(t) for t in texts)
    return HistoryEntry(mid, epoch, key, name, text, float(when), own)
