"""The encrypted local store (``groupchat/client/store.py``): round trips of group state and history,
and its refusals: a key file others can read, a row that was tampered with or moved, a store opened
under another key, a damaged database file. Real AES-GCM, real SQLite files in a temporary dir."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from groupchat.client.store import (
    KEY_FILE,
    STORE_FILE,
    HistoryEntry,
    Store,
    StoreError,
    load_or_create_store_key,
)
from groupchat.core.group import Group
from groupchat.core.identity import Identity

ME = b"\x01" * 32


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
        assert store.load_state("room", ME) is None
        store.save_state("room", ME, b"state one", 7)
        store.save_state("room", ME, b"state two", 9)
        store.save_state("other", ME, b"elsewhere", 1)
    assert stat.S_IMODE((tmp_path / STORE_FILE).stat().st_mode) == 0o600
    with Store.open(tmp_path) as store:
        got = store.load_state("room", ME)
        assert got is not None and (got.state, got.position) == (b"state two", 9)
        assert store.load_state("room", b"\x02" * 32) is None
        store.delete_state("room", ME)
        assert store.load_state("room", ME) is None
        other = store.load_state("other", ME)
        assert other is not None and other.state == b"elsewhere"


def test_a_real_group_state_survives_the_store(tmp_path: Path) -> None:
    identity = Identity.generate()
    group = Group.create(identity, b"g" * 16, "alice")
    sealed = group.encrypt(b"before")
    with Store.open(tmp_path) as store:
        store.save_state("room", identity.public_key, group.export_state(), 4)
    with Store.open(tmp_path) as store:
        got = store.load_state("room", identity.public_key)
    assert got is not None
    restored = Group.restore(got.state, identity, group.config)
    assert restored.epoch == group.epoch
    assert restored.encrypt(b"after") != sealed


def test_the_state_is_not_in_the_clear_on_disk(tmp_path: Path) -> None:
    secret = b"very-secret-state-bytes" * 4
    with Store.open(tmp_path) as store:
        store.save_state("room", ME, secret, 1)
        store.add_message("room", ME, entry("01" * 8, "hello plaintext"))
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(STORE_FILE))
    assert b"very-secret-state-bytes" not in raw
    assert b"hello plaintext" not in raw


def test_history_round_trip_in_order_and_deduplicated(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        assert store.add_message("room", ME, entry("01" * 8, "first", own=True))
        assert store.add_message("room", ME, entry("02" * 8, "second 🙂\nline two"))
        assert not store.add_message("room", ME, entry("01" * 8, "first again"))
        store.add_message("elsewhere", ME, entry("03" * 8, "other room"))
    with Store.open(tmp_path) as store:
        entries, bad = store.history("room", ME)
        assert bad == 0
        assert [e.text for e in entries] == ["first", "second 🙂\nline two"]
        assert entries[0] == entry("01" * 8, "first", own=True)
        assert store.rooms() == ["elsewhere", "room"]
        assert len(store.history()[0]) == 3


def _tamper(path: Path, sql: str) -> None:
    db = sqlite3.connect(path)
    with db:
        db.execute(sql)
    db.close()


def test_a_corrupt_state_row_is_a_clear_error(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.save_state("room", ME, b"state", 2)
    _tamper(tmp_path / STORE_FILE, "UPDATE state SET sealed = X'00' || substr(sealed, 2)")
    with Store.open(tmp_path) as store, pytest.raises(StoreError, match=r"state of room 'room'.*corrupt"):
        store.load_state("room", ME)


def test_a_flipped_bit_in_a_state_row_is_a_clear_error(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.save_state("room", ME, b"state", 2)
    db = sqlite3.connect(tmp_path / STORE_FILE)
    (sealed,) = db.execute("SELECT sealed FROM state").fetchone()
    with db:
        db.execute("UPDATE state SET sealed = ?", (bytes([sealed[0] ^ 1]) + sealed[1:],))
    db.close()
    with Store.open(tmp_path) as store, pytest.raises(StoreError, match="cannot be decrypted"):
        store.load_state("room", ME)


def test_a_state_row_moved_to_another_room_does_not_open(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.save_state("room", ME, b"state", 2)
    _tamper(tmp_path / STORE_FILE, "UPDATE state SET room = 'other'")
    with Store.open(tmp_path) as store:
        with pytest.raises(StoreError, match="cannot be decrypted"):
            store.load_state("other", ME)
        assert store.load_state("room", ME) is None


def test_a_corrupt_history_row_is_skipped_and_counted(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        for i in range(3):
            store.add_message("room", ME, entry(f"{i:016x}", f"message {i}"))
    _tamper(tmp_path / STORE_FILE, "UPDATE history SET message_id = 'ff' WHERE seq = 2")
    with Store.open(tmp_path) as store:
        entries, bad = store.history("room", ME)
    assert [e.text for e in entries] == ["message 0", "message 2"]
    assert bad == 1


def test_another_key_is_refused_at_open(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.save_state("room", ME, b"state", 2)
    (tmp_path / KEY_FILE).unlink()
    with pytest.raises(StoreError, match="another store key"):
        Store.open(tmp_path)


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
        first.claim("room", ME)
        first.claim("room", ME)  # the holder may ask again
        with pytest.raises(StoreError, match="another groupchat process is using this identity"):
            second.claim("room", ME)
        second.claim("other room", ME)  # another room is another stored state
        first.close()
        second.claim("room", ME)  # released with the first store
    finally:
        second.close()


def test_a_killed_holder_releases_its_claim(tmp_path: Path) -> None:
    import subprocess
    import sys

    Store.open(tmp_path).close()
    code = (
        "import sys, time; from pathlib import Path; from groupchat.client.store import Store; "
        f"s = Store.open(Path({str(tmp_path)!r})); s.claim('room', b'\\x01' * 32); "
        "print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with Store.open(tmp_path) as store:
            with pytest.raises(StoreError, match="another groupchat process"):
                store.claim("room", ME)
            os.kill(proc.pid, 9)
            proc.wait(10)
            store.claim("room", ME)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, 9)
            proc.wait(10)
