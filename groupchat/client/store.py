"""The local store: group state and chat history on disk, encrypted at rest (docs/protocol.md §12).

One SQLite file per data directory (``store.sqlite3``, WAL mode), each row
sealed with AES-256-GCM under a random 32-byte key kept beside the identity (``store.key``, mode
0600, created atomically, refused if its mode is wider, as the identity is). Each row has its own
random 96-bit nonce and binds what it is (table, room, identity, message id) as associated data,
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

from cryptography.exceptions import InvalidTag

try:
    import fcntl
except ImportError:  # not POSIX: no advisory lock (the claim is then the user's to keep)
    fcntl = None  # type: ignore[assignment]
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..core.errors import UsageError
from .identity_store import IdentityFileError, check_private_mode

__all__ = [
    "KEY_FILE",
    "STORE_FILE",
    "HistoryEntry",
    "Store",
    "StoreError",
    "StoredState",
    "load_or_create_store_key",
]

STORE_FILE: Final = "store.sqlite3"
"""The store's file name in the data directory."""
KEY_FILE: Final = "store.key"
"""The local key's file name, beside the identity."""

_KEY_MAGIC: Final = "groupchat-store-key-v1"
_SCHEMA: Final = 1
_CHECK: Final = b"groupchat store v1 key check"
_NONCE: Final = 12


class StoreError(UsageError):
    """The local store cannot be used as it is (wrong key, corrupt row, bad permissions, damaged file)."""


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


def _parse_key(path: Path, data: bytes) -> bytes:
    lines = data.decode("ascii", errors="replace").splitlines()
    if len(lines) != 2 or lines[0] != _KEY_MAGIC:
        raise StoreError(f"store key file {path} is not a groupchat store key (expected {_KEY_MAGIC!r})")
    try:
        key = bytes.fromhex(lines[1])
    except ValueError:
        raise StoreError(f"store key file {path} is corrupt: the key is not hex") from None
    if len(key) != 32:
        raise StoreError(f"store key file {path} is corrupt: the key is not 32 bytes")
    return key


def _create_key(path: Path) -> None:
    """Create ``path`` with a fresh key, mode 0600, atomically: a complete file or none, and never
    over a key another process created meanwhile (``link`` fails if the name exists)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(f"{_KEY_MAGIC}\n{secrets.token_bytes(32).hex()}\n".encode())
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def load_or_create_store_key(path: Path, *, create: bool = True) -> bytes:
    """The 32-byte store key at ``path``, created (mode 0600) if there is none and ``create``;
    refused if its mode is wider."""
    try:
        check_private_mode(path, "store key file")
    except FileNotFoundError:
        if not create:
            raise StoreError(
                f"store key file {path} is missing: the store cannot be read without it"
            ) from None
        _create_key(path)
        check_private_mode(path, "store key file")
    except IdentityFileError as exc:
        raise StoreError(str(exc)) from None
    except PermissionError as exc:
        raise StoreError(f"cannot read store key file {path}: {exc.strerror}") from None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StoreError(f"cannot read store key file {path}: {exc.strerror}") from None
    return _parse_key(path, data)


def _aad(kind: bytes, *parts: str | bytes) -> bytes:
    """Associated data: the row's kind and place, each part length-prefixed (no ambiguity)."""
    out = bytearray(b"groupchat store v1 " + kind)
    for part in parts:
        raw = part.encode("utf-8") if isinstance(part, str) else part
        out += struct.pack(">I", len(raw)) + raw
    return bytes(out)


class Store:
    """The encrypted store of one data directory; open with :meth:`open`, close with :meth:`close`."""

    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self._aead = AESGCM(key)
        self._claims: dict[str, int] = {}  # held (room, identity) locks: name -> open descriptor
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        try:
            check_private_mode(path, "store file")
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

    @classmethod
    def open(cls, data_dir: Path, key_path: Path | None = None, *, create: bool = True) -> Store:
        """The store of ``data_dir``, its key at ``key_path`` (default: ``data_dir/store.key``);
        ``create=False`` refuses to make a new key (to read an existing store only)."""
        key = load_or_create_store_key(
            key_path if key_path is not None else data_dir / KEY_FILE, create=create
        )
        return cls(data_dir / STORE_FILE, key)

    def close(self) -> None:
        """Close the database (every write is already committed) and release every claim."""
        for fd in self._claims.values():
            os.close(fd)
        self._claims.clear()
        self._db.close()

    def claim(self, room: str, identity: bytes) -> None:
        """Hold ``(room, identity)`` for this process until :meth:`close`, or raise
        :class:`StoreError` if another process holds it. Two processes resuming one stored state
        would hold the same leaf and ratchets, and encrypt with the same key and nonce; the lock
        (``flock``, released by the system even on SIGKILL) makes the second one refuse."""
        name = hashlib.sha256(_aad(b"claim", room, identity)).hexdigest()[:24]
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
                f"another groupchat process is using this identity in room {room!r} with the store "
                f"in {self.path.parent}: close it first, or run this one with --ephemeral"
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
            db.execute(
                "CREATE TABLE IF NOT EXISTS state (room TEXT NOT NULL, identity BLOB NOT NULL, "
                "nonce BLOB NOT NULL, sealed BLOB NOT NULL, PRIMARY KEY (room, identity))"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS history (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                "room TEXT NOT NULL, identity BLOB NOT NULL, message_id TEXT NOT NULL, "
                "nonce BLOB NOT NULL, sealed BLOB NOT NULL, UNIQUE (room, identity, message_id))"
            )
            rows = {str(n): v for n, v in db.execute("SELECT name, value FROM meta").fetchall()}
            if not rows:
                nonce = secrets.token_bytes(_NONCE)
                check = self._aead.encrypt(nonce, _CHECK, _aad(b"check"))
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(_SCHEMA).encode(),))
                db.execute("INSERT INTO meta VALUES ('check', ?)", (nonce + check,))
                return
        if rows.get("schema") != str(_SCHEMA).encode():
            raise StoreError(
                f"store file {self.path} has schema {rows.get('schema')!r}; this build reads {_SCHEMA}"
            )
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

    # The group state, one row per (room, identity).

    def save_state(self, room: str, identity: bytes, state: bytes, position: int) -> None:
        """Replace the stored state of ``identity`` in ``room`` (one transaction)."""
        nonce, sealed = self._seal(struct.pack(">Q", position) + state, _aad(b"state", room, identity))
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?)", (room, identity, nonce, sealed))

    def load_state(self, room: str, identity: bytes) -> StoredState | None:
        """The stored state of ``identity`` in ``room``, ``None`` if none; :class:`StoreError` if corrupt."""
        rows = self._query(
            "SELECT nonce, sealed FROM state WHERE room = ? AND identity = ?", (room, identity)
        )
        if not rows:
            return None
        row = rows[0]
        plain = self._open(
            row[0], row[1], _aad(b"state", room, identity), f"the group state of room {room!r}"
        )
        if len(plain) < 8:
            raise StoreError(f"the group state of room {room!r} in {self.path} is truncated")
        return StoredState(plain[8:], struct.unpack(">Q", plain[:8])[0])

    def delete_state(self, room: str, identity: bytes) -> None:
        """Forget the stored state (we left, were removed, or rejoin)."""
        with self._transaction() as db:
            db.execute("DELETE FROM state WHERE room = ? AND identity = ?", (room, identity))

    def save(
        self,
        room: str,
        identity: bytes,
        *,
        state: tuple[bytes, int] | None = None,
        drop_state: bool = False,
        messages: Sequence[HistoryEntry] = (),
        durable: bool = True,
    ) -> None:
        """In one transaction: add ``messages`` to the history, then replace the stored state by
        ``state`` (bytes, position) or, with ``drop_state``, forget it. A crash keeps all or none.
        ``durable=False`` skips the disk sync (WAL ``synchronous=NORMAL``): safe against a killed
        process, not a power cut; the next durable write syncs it too."""
        if durable != self._durable:
            try:
                self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write the store {self.path}: {exc}") from None
            self._durable = durable
        rows = [self._history_row(room, identity, e) for e in messages]
        sealed = None
        if state is not None:
            plain = struct.pack(">Q", state[1]) + state[0]
            sealed = self._seal(plain, _aad(b"state", room, identity))
        with self._transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO history (room, identity, message_id, nonce, sealed) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            if sealed is not None:
                db.execute("INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?)", (room, identity, *sealed))
            elif drop_state:
                db.execute("DELETE FROM state WHERE room = ? AND identity = ?", (room, identity))

    # The history.

    def _history_row(
        self, room: str, identity: bytes, entry: HistoryEntry
    ) -> tuple[str, bytes, str, bytes, bytes]:
        plain = json.dumps(entry.to_json(), ensure_ascii=False).encode("utf-8")
        nonce, sealed = self._seal(plain, _aad(b"history", room, identity, entry.message_id))
        return room, identity, entry.message_id, nonce, sealed

    def add_message(self, room: str, identity: bytes, entry: HistoryEntry) -> bool:
        """Append ``entry`` (one transaction); ``False`` if that message id is already kept."""
        row = self._history_row(room, identity, entry)
        with self._transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO history (room, identity, message_id, nonce, sealed) "
                "VALUES (?, ?, ?, ?, ?)",
                row,
            )
            return cur.rowcount == 1

    def history(
        self, room: str | None = None, identity: bytes | None = None
    ) -> tuple[list[HistoryEntry], int]:
        """The kept messages, oldest first, and how many rows could not be read (skipped, not fatal)."""
        query = "SELECT room, identity, message_id, nonce, sealed FROM history"
        where: list[str] = []
        args: list[str | bytes] = []
        if room is not None:
            where.append("room = ?")
            args.append(room)
        if identity is not None:
            where.append("identity = ?")
            args.append(identity)
        if where:
            query += " WHERE " + " AND ".join(where)
        entries: list[HistoryEntry] = []
        bad = 0
        for r, ident, mid, nonce, sealed in self._query(query + " ORDER BY seq", args):
            try:
                if not isinstance(r, str) or not isinstance(ident, bytes) or not isinstance(mid, str):
                    raise ValueError("history row has a malformed place")
                plain = self._open(nonce, sealed, _aad(b"history", r, ident, mid), "a history row")
                entries.append(_entry(json.loads(plain.decode("utf-8"))))
            except (StoreError, ValueError, KeyError, TypeError):
                bad += 1
        return entries, bad

    def rooms(self) -> list[str]:
        """Every room with kept history, sorted."""
        return [str(r) for (r,) in self._query("SELECT DISTINCT room FROM history ORDER BY room")]


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
