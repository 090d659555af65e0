"""The encrypted local store (``groupchat/client/store.py``): round trips of group state and history,
and its refusals: a key file others can read, a row that was tampered with or moved, a store opened
under another key, a damaged database file. Real AES-GCM, real SQLite files in a temporary dir."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from groupchat.client.store import (
    KEY_FILE,
    STORE_FILE,
    HistoryEntry,
    Place,
    Store,
    StoreError,
    load_or_create_store_key,
    relay_place,
)
from groupchat.client.store_key import write_key_file
from groupchat.core.group import Group
from groupchat.core.identity import Identity

ME = b"\x01" * 32
RELAY = "ws://127.0.0.1:8765"


def at(room: str, identity: bytes = ME, relay: str = RELAY) -> Place:
    return Place(relay, room, identity)


def entry(mid: str, text: str, *, own: bool = False, epoch: int = 3) -> HistoryEntry:
    return HistoryEntry(mid, epoch, "ab" * 32, "alice", text, 1_700_000_000.5, own)


def test_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    key_path = tmp_path / "data" / KEY_FILE
    key = load_or_create_store_key(key_path)
    assert len(key) == 32
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert load_or_create_store_key(key_path) == key
    assert not [p for p in key_path.parent.iterdir() if p.name.endswith(".tmp")]


def test_key_file_with_wider_mode_is_refused(tmp_path: Path) -> None:
    key_path = tmp_path / KEY_FILE
    load_or_create_store_key(key_path)
    key_path.chmod(0o640)
    with pytest.raises(StoreError, match=r"mode 0640.*chmod 600"):
        load_or_create_store_key(key_path)
    with pytest.raises(StoreError, match="mode 0640"):
        Store.open(tmp_path)


def test_malformed_key_file_is_refused(tmp_path: Path) -> None:
    key_path = tmp_path / KEY_FILE
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"something else\n")
    os.close(fd)
    with pytest.raises(StoreError, match="not a groupchat store key"):
        load_or_create_store_key(key_path)


def test_state_round_trip_and_replace(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        assert store.load_state(at("room", ME)) is None
        store.save_state(at("room", ME), b"state one", 7)
        store.save_state(at("room", ME), b"state two", 9)
        store.save_state(at("other", ME), b"elsewhere", 1)
    assert stat.S_IMODE((tmp_path / STORE_FILE).stat().st_mode) == 0o600
    with Store.open(tmp_path) as store:
        got = store.load_state(at("room", ME))
        assert got is not None and (got.state, got.position) == (b"state two", 9)
        assert store.load_state(at("room", b"\x02" * 32)) is None
        store.delete_state(at("room", ME))
        assert store.load_state(at("room", ME)) is None
        other = store.load_state(at("other", ME))
        assert other is not None and other.state == b"elsewhere"


def test_a_real_group_state_survives_the_store(tmp_path: Path) -> None:
    identity = Identity.generate()
    group = Group.create(identity, b"g" * 16, "alice")
    sealed = group.encrypt(b"before")
    with Store.open(tmp_path) as store:
        store.save_state(at("room", identity.public_key), group.export_state(), 4)
    with Store.open(tmp_path) as store:
        got = store.load_state(at("room", identity.public_key))
    assert got is not None
    restored = Group.restore(got.state, identity, group.config)
    assert restored.epoch == group.epoch
    assert restored.encrypt(b"after") != sealed


def test_the_state_is_not_in_the_clear_on_disk(tmp_path: Path) -> None:
    secret = b"very-secret-state-bytes" * 4
    with Store.open(tmp_path) as store:
        store.save_state(at("room", ME), secret, 1)
        store.add_message(at("room", ME), entry("01" * 8, "hello plaintext"))
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(STORE_FILE))
    assert b"very-secret-state-bytes" not in raw
    assert b"hello plaintext" not in raw


def test_history_round_trip_in_order_and_deduplicated(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        assert store.add_message(at("room", ME), entry("01" * 8, "first", own=True))
        assert store.add_message(at("room", ME), entry("02" * 8, "second 🙂\nline two"))
        assert not store.add_message(at("room", ME), entry("01" * 8, "first again"))
        store.add_message(at("elsewhere", ME), entry("03" * 8, "other room"))
    with Store.open(tmp_path) as store:
        entries, bad = store.history("room", ME)
        assert bad == 0
        assert [e.text for e in entries] == ["first", "second 🙂\nline two"]
        assert entries[0] == entry("01" * 8, "first", own=True)
        assert store.places() == [("elsewhere", RELAY), ("room", RELAY)]
        assert len(store.history()[0]) == 3


def _tamper(path: Path, sql: str) -> None:
    db = sqlite3.connect(path)
    with db:
        db.execute(sql)
    db.close()


def test_a_corrupt_state_row_is_a_clear_error(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.save_state(at("room", ME), b"state", 2)
    _tamper(tmp_path / STORE_FILE, "UPDATE state SET sealed = X'00' || substr(sealed, 2)")
    with Store.open(tmp_path) as store, pytest.raises(StoreError, match=r"state of room 'room'.*corrupt"):
        store.load_state(at("room", ME))


def test_a_flipped_bit_in_a_state_row_is_a_clear_error(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.save_state(at("room", ME), b"state", 2)
    db = sqlite3.connect(tmp_path / STORE_FILE)
    (sealed,) = db.execute("SELECT sealed FROM state").fetchone()
    with db:
        db.execute("UPDATE state SET sealed = ?", (bytes([sealed[0] ^ 1]) + sealed[1:],))
    db.close()
    with Store.open(tmp_path) as store, pytest.raises(StoreError, match="cannot be decrypted"):
        store.load_state(at("room", ME))


def test_a_state_row_moved_to_another_room_does_not_open(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.save_state(at("room", ME), b"state", 2)
    _tamper(tmp_path / STORE_FILE, "UPDATE state SET room = 'other'")
    with Store.open(tmp_path) as store:
        with pytest.raises(StoreError, match="cannot be decrypted"):
            store.load_state(at("other", ME))
        assert store.load_state(at("room", ME)) is None


def test_a_corrupt_history_row_is_skipped_and_counted(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        for i in range(3):
            store.add_message(at("room", ME), entry(f"{i:016x}", f"message {i}"))
    _tamper(tmp_path / STORE_FILE, "UPDATE history SET message_id = 'ff' WHERE seq = 2")
    with Store.open(tmp_path) as store:
        entries, bad = store.history("room", ME)
    assert [e.text for e in entries] == ["message 0", "message 2"]
    assert bad == 1


def test_another_key_is_refused_at_open(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.save_state(at("room", ME), b"state", 2)
    (tmp_path / KEY_FILE).write_text(f"groupchat-store-key-v1\n{os.urandom(32).hex()}\n")
    with pytest.raises(StoreError, match="another store key"):
        Store.open(tmp_path)


def test_a_store_whose_key_is_missing_is_refused_and_gets_no_new_key(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.save_state(at("room", ME), b"state", 2)
    saved = (tmp_path / KEY_FILE).read_bytes()
    (tmp_path / KEY_FILE).unlink()
    with pytest.raises(StoreError, match="is missing: the store cannot be read without it"):
        Store.open(tmp_path)
    assert not (tmp_path / KEY_FILE).exists()  # nothing stands where the user puts the key back
    (tmp_path / KEY_FILE).write_bytes(saved)
    os.chmod(tmp_path / KEY_FILE, 0o600)
    with Store.open(tmp_path) as store:
        assert store.load_state(at("room", ME)) is not None


def test_a_damaged_store_file_is_a_clear_error(tmp_path: Path) -> None:
    load_or_create_store_key(tmp_path / KEY_FILE)
    fd = os.open(tmp_path / STORE_FILE, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"this is not a database" * 100)
    os.close(fd)
    with pytest.raises(StoreError, match=r"cannot be read.*move it away"):
        Store.open(tmp_path)


def test_a_store_file_others_can_read_is_refused(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    (tmp_path / STORE_FILE).chmod(0o644)
    with pytest.raises(StoreError, match="mode 0644"):
        Store.open(tmp_path)


def test_a_second_process_cannot_claim_the_same_room_and_identity(tmp_path: Path) -> None:
    first, second = Store.open(tmp_path), Store.open(tmp_path)  # two open files, as two processes
    try:
        first.claim(at("room"))
        first.claim(at("room"))  # the holder may ask again
        with pytest.raises(StoreError, match="another groupchat process is using this identity"):
            second.claim(at("room"))
        second.claim(at("other room"))  # another room is another stored state
        second.claim(at("room", relay="ws://elsewhere:1"))  # and so is the same room of another relay
        first.close()
        second.claim(at("room"))  # released with the first store
    finally:
        second.close()


def test_a_killed_holder_releases_its_claim(tmp_path: Path) -> None:
    import subprocess
    import sys

    Store.open(tmp_path).close()
    code = (
        "import sys, time; from pathlib import Path; from groupchat.client.store import Place, Store; "
        f"s = Store.open(Path({str(tmp_path)!r})); s.claim(Place({RELAY!r}, 'room', b'\\x01' * 32)); "
        "print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with Store.open(tmp_path) as store:
            with pytest.raises(StoreError, match="another groupchat process"):
                store.claim(at("room"))
            os.kill(proc.pid, 9)
            proc.wait(10)
            store.claim(at("room"))
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, 9)
            proc.wait(10)


def test_the_same_room_name_on_two_relays_is_two_places(tmp_path: Path) -> None:
    elsewhere = at("room", relay="wss://other.example:443")
    with Store.open(tmp_path) as store:
        store.save_state(at("room"), b"here", 3)
        store.save_state(elsewhere, b"there", 9)
        store.add_message(at("room"), entry("01" * 8, "said here"))
        store.add_message(elsewhere, entry("01" * 8, "said there"))  # one id, two places
        here = store.load_state(at("room"))
        there = store.load_state(elsewhere)
        assert here is not None and there is not None and (here.state, there.state) == (b"here", b"there")
        assert [e.text for e in store.history("room", ME, RELAY)[0]] == ["said here"]
        assert [e.text for e in store.history("room", ME, elsewhere.relay)[0]] == ["said there"]
        assert store.places() == [("room", RELAY), ("room", elsewhere.relay)]


def test_a_state_row_moved_to_another_relay_does_not_open(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.save_state(at("room"), b"state", 2)
    _tamper(tmp_path / STORE_FILE, "UPDATE state SET relay = 'ws://evil:1'")
    with Store.open(tmp_path) as store, pytest.raises(StoreError, match="cannot be decrypted"):
        store.load_state(at("room", relay="ws://evil:1"))


def test_relay_place_ignores_case_and_a_trailing_slash() -> None:
    assert relay_place("WS://Relay.Example:8765/") == relay_place("ws://relay.example:8765")
    assert relay_place("ws://relay.example:8765/a") != relay_place("ws://relay.example:8765")


def _schema_1_store(data_dir: Path) -> None:
    """A store as schema 1 wrote it: no relay column, rows bound to (room, identity) only."""
    key = load_or_create_store_key(data_dir / KEY_FILE)
    aead = AESGCM(key)

    def aad(kind: bytes, *parts: bytes) -> bytes:
        return b"groupchat store v1 " + kind + b"".join(len(p).to_bytes(4, "big") + p for p in parts)

    def seal(plain: bytes, assoc: bytes) -> tuple[bytes, bytes]:
        nonce = os.urandom(12)
        return nonce, aead.encrypt(nonce, plain, assoc)

    path = data_dir / STORE_FILE
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)")
        db.execute("CREATE TABLE state (room TEXT NOT NULL, identity BLOB NOT NULL, nonce BLOB NOT NULL, "
                   "sealed BLOB NOT NULL, PRIMARY KEY (room, identity))")
        db.execute("CREATE TABLE history (seq INTEGER PRIMARY KEY AUTOINCREMENT, room TEXT NOT NULL, "
                   "identity BLOB NOT NULL, message_id TEXT NOT NULL, nonce BLOB NOT NULL, sealed BLOB NOT "
                   "NULL, UNIQUE (room, identity, message_id))")
        db.execute("INSERT INTO meta VALUES ('schema', ?)", (b"1",))
        db.execute("INSERT INTO meta VALUES ('check', ?)", (b"".join(seal(b"groupchat store v1 key check",
                                                                          aad(b"check"))),))
        db.execute("INSERT INTO state VALUES ('room', ?, ?, ?)",
                   (ME, *seal((5).to_bytes(8, "big") + b"old state", aad(b"state", b"room", ME))))
        for mid, text in (("01" * 8, "first"), ("02" * 8, "second")):
            row = json.dumps(entry(mid, text).to_json()).encode()
            sealed = seal(row, aad(b"history", b"room", ME, mid.encode()))
            db.execute("INSERT INTO history (room, identity, message_id, nonce, sealed) "
                       "VALUES ('room', ?, ?, ?, ?)", (ME, mid, *sealed))
    db.close()


def test_a_schema_1_store_is_migrated_and_adopted_by_the_first_relay(tmp_path: Path) -> None:
    _schema_1_store(tmp_path)
    with Store.open(tmp_path) as store:
        assert store.load_state(at("room")) is None  # not yet adopted: the relay was never recorded
        assert store.places() == [("room", "")]
        assert [e.text for e in store.history("room")[0]] == ["first", "second"]  # still readable
        assert store.adopt(at("room")) == 3  # the state and two messages
        got = store.load_state(at("room"))
        assert got is not None and (got.state, got.position) == (b"old state", 5)
        assert [e.text for e in store.history("room", ME, RELAY)[0]] == ["first", "second"]
        assert store.places() == [("room", RELAY)]
        assert store.adopt(at("room", relay="ws://another:1")) == 0  # adopted once, by one relay
    with Store.open(tmp_path) as store:  # the migration stays done
        assert store.load_state(at("room")) is not None


def test_a_sealed_key_opens_with_its_passphrase_only(tmp_path: Path) -> None:
    key_path = tmp_path / KEY_FILE
    with Store.open(tmp_path) as store:
        store.save_state(at("room"), b"state", 2)
    write_key_file(key_path, load_or_create_store_key(key_path), "correct horse")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert load_or_create_store_key(key_path, passphrase=lambda: "correct horse") is not None
    with pytest.raises(StoreError, match="protected by a passphrase"):
        Store.open(tmp_path)
    with pytest.raises(StoreError, match="wrong passphrase"):
        Store.open(tmp_path, passphrase=lambda: "wrong horse")
    with Store.open(tmp_path, passphrase=lambda: "correct horse") as store:
        got = store.load_state(at("room"))
        assert got is not None and got.state == b"state"  # the same key: the store is untouched
    raw = key_path.read_bytes()
    assert raw.startswith(b"groupchat-store-key-v2\nscrypt n=32768 r=8 p=1 salt=")
    assert load_or_create_store_key(key_path, passphrase=lambda: "correct horse").hex() not in raw.decode()


def test_a_sealed_key_whose_parameters_were_lowered_is_refused(tmp_path: Path) -> None:
    key_path = tmp_path / KEY_FILE
    write_key_file(key_path, os.urandom(32), "pass phrase")
    lines = key_path.read_text().splitlines()
    lowered = lines[1].replace("n=32768", "n=1024")
    key_path.write_text("\n".join([lines[0], lowered, lines[2]]) + "\n")  # bound as associated data
    with pytest.raises(StoreError, match=r"wrong passphrase.*or the file was altered"):
        load_or_create_store_key(key_path, passphrase=lambda: "pass phrase")
    key_path.write_text("\n".join([lines[0], lines[1].replace("n=32768", "n=33554432"), lines[2]]) + "\n")
    with pytest.raises(StoreError, match="out of range"):
        load_or_create_store_key(key_path, passphrase=lambda: "pass phrase")


def test_the_outbox_outlives_a_forgotten_state_and_is_bound_to_its_place(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.save(at("room"), state=(b"state", 1), outbox=b"unsent")
        store.save(at("room"), drop_state=True)  # a ring run: the state cannot be kept, the texts can
        assert store.load_state(at("room")) is None and store.load_outbox(at("room")) == b"unsent"
        assert store.load_outbox(at("other")) == b""
        store.save(at("room"), outbox=b"")
        assert store.load_outbox(at("room")) == b""
        store.save(at("room"), outbox=b"again")
    _tamper(tmp_path / STORE_FILE, "UPDATE outbox SET room = 'other'")
    with Store.open(tmp_path) as store, pytest.raises(StoreError, match="cannot be decrypted"):
        store.load_outbox(at("other"))


def test_history_can_read_only_the_last_rows(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        for i in range(10):
            store.add_message(at("room"), entry(f"{i:016x}", f"message {i}"))
        store.add_message(at("other"), entry("ff" * 8, "elsewhere"))
        entries, bad = store.history("room", ME, RELAY, last=3)
        assert bad == 0 and [e.text for e in entries] == ["message 7", "message 8", "message 9"]
        assert len(store.history("room", ME, RELAY)[0]) == 10
