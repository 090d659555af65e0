"""Second adversarial review of the store (issue 15): the sealed key file, the schema 1 migration
and ``adopt``, the outbox of unsent messages and its bookkeeping.

Real :class:`Store` files, real scrypt and AES-GCM, real session machines (store_room.py).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import time
from pathlib import Path

import pytest
from store_room import StoredRoom
from test_local_store import ME, _schema_1_store

from groupchat.client import store_command
from groupchat.client.session.persistence import Unsent
from groupchat.client.session_store import SessionStore, _encode_unsent
from groupchat.client.store import KEY_FILE, STORE_FILE, Place, Store
from groupchat.client.store_key import StoreError, load_or_create_store_key, write_key_file
from groupchat.core.errors import UsageError
from groupchat.core.identity import Identity
from groupchat.lab.clock import ManualClock

RELAY = "ws://memory"
ROOM = "room"


def _sealed(tmp_path: Path, passphrase: str = "pass phrase") -> tuple[Path, bytes, list[str]]:
    key_path = tmp_path / KEY_FILE
    key = os.urandom(32)
    write_key_file(key_path, key, passphrase)
    return key_path, key, key_path.read_text().splitlines()


def _rewrite(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


# 1. The key file sealed under a passphrase.

_SALT = "00" * 16


@pytest.mark.parametrize(
    "params",
    [
        f"scrypt n=2097152 r=1 p=1 salt={_SALT}",  # 128·r·N = 256 MiB exactly: passes the check
        f"scrypt n=2 r=1048576 p=4 salt={_SALT}",  # within the memory bound, about 8 s of work
        f"scrypt n=32768 r=8 p=5 salt={_SALT}",
        f"scrypt n=32768 r=0 p=1 salt={_SALT}",
        f"scrypt n=32769 r=8 p=1 salt={_SALT}",
        f"scrypt n={'9' * 5000} r=8 p=1 salt={_SALT}",  # beyond int()'s digit limit
        "scrypt n=32768 r=8 p=1 salt=00",  # a short salt
        "scrypt n=32768 r=8 p=1 salt=zz",
        "scrypt n=32768 r=8 p=1",
        f"scrypt n=32768 r=8 p=1 salt={_SALT} \u00e9t\u00e9",  # not ASCII: the AAD cannot encode it
    ],
    ids=["256MiB", "huge-r", "p5", "r0", "n-odd", "n-digits", "short-salt", "salt-not-hex",
         "no-salt", "not-ascii"],
)
def test_tampered_scrypt_parameters_are_one_clear_error_and_quick(tmp_path: Path, params: str) -> None:
    """A file edited to ask for other parameters: a StoreError within a couple of seconds, never
    a MemoryError from the KDF or a long hang at every start."""
    key_path, _, lines = _sealed(tmp_path)
    key_path.write_bytes("\n".join([lines[0], params, lines[2]]).encode("utf-8") + b"\n")
    start = time.monotonic()
    with pytest.raises(StoreError):
        load_or_create_store_key(key_path, passphrase=lambda: "pass phrase")
    assert time.monotonic() - start < 3.0


@pytest.mark.parametrize("cut", [1, 2, 30, 60])
def test_a_truncated_or_odd_sealed_key_is_refused(tmp_path: Path, cut: int) -> None:
    key_path, _, lines = _sealed(tmp_path)
    _rewrite(key_path, [lines[0], lines[1], lines[2][:-cut]])
    with pytest.raises(StoreError, match="corrupt"):
        load_or_create_store_key(key_path, passphrase=lambda: "pass phrase")


def test_another_salt_does_not_open_without_the_passphrase_nor_with_it(tmp_path: Path) -> None:
    key_path, _, lines = _sealed(tmp_path)
    _rewrite(key_path, [lines[0], lines[1].rsplit("salt=", 1)[0] + "salt=" + "11" * 16, lines[2]])
    with pytest.raises(StoreError, match="protected by a passphrase"):
        load_or_create_store_key(key_path)
    with pytest.raises(StoreError, match="wrong passphrase"):
        load_or_create_store_key(key_path, passphrase=lambda: "pass phrase")


def test_a_sealed_key_is_written_owner_only_and_leaves_no_temporary(tmp_path: Path) -> None:
    key_path, key, _ = _sealed(tmp_path)
    os.umask(old := os.umask(0))
    try:
        write_key_file(key_path, key, "another")
    finally:
        os.umask(old)
    assert key_path.stat().st_mode & 0o077 == 0
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]


def _args(tmp_path: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    store_command.add_arguments(parser)
    return parser.parse_args(["--data-dir", str(tmp_path), "--identity", str(tmp_path / "identity"), *extra])


def test_store_passphrase_with_a_wrong_current_one_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_path, key, _ = _sealed(tmp_path, "old one")
    before = key_path.read_bytes()
    monkeypatch.setenv("GROUPCHAT_STORE_PASSPHRASE", "not the old one")
    monkeypatch.setenv("GROUPCHAT_STORE_NEW_PASSPHRASE", "new one")
    with pytest.raises(StoreError, match="wrong passphrase"):
        store_command.run(_args(tmp_path))
    assert key_path.read_bytes() == before
    monkeypatch.setenv("GROUPCHAT_STORE_PASSPHRASE", "old one")
    monkeypatch.setenv("GROUPCHAT_STORE_NEW_PASSPHRASE", "")
    with pytest.raises(StoreError, match="empty"):
        store_command.run(_args(tmp_path))
    assert key_path.read_bytes() == before
    assert store_command.run(_args(tmp_path, "--remove")) == 0
    assert load_or_create_store_key(key_path) == key


def test_store_passphrase_killed_mid_write_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replace is atomic: a failure between the temporary file and the rename leaves the old
    key file, which still opens with the old passphrase."""
    key_path, key, _ = _sealed(tmp_path, "old one")

    def die(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setenv("GROUPCHAT_STORE_PASSPHRASE", "old one")
    monkeypatch.setenv("GROUPCHAT_STORE_NEW_PASSPHRASE", "new one")
    monkeypatch.setattr(os, "replace", die)
    with pytest.raises(KeyboardInterrupt):
        store_command.run(_args(tmp_path))
    monkeypatch.undo()
    assert load_or_create_store_key(key_path, passphrase=lambda: "old one") == key
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]


def test_a_store_key_with_a_wide_mode_does_not_advise_deleting_it(tmp_path: Path) -> None:
    key_path = tmp_path / KEY_FILE
    load_or_create_store_key(key_path)
    key_path.chmod(0o644)
    with pytest.raises(StoreError) as caught:
        load_or_create_store_key(key_path)
    assert "delete it" not in str(caught.value) and "identity" not in str(caught.value)


# 2. Places, the schema 1 migration, adopt, the outbox table.


def test_a_second_process_migrating_schema_1_meanwhile_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes start on a schema 1 store: both read ``schema = 1`` (``_setup``'s first
    transaction), one migrates, adopts and stores a newer state; then the other migrates too.
    Its ALTER/INSERT ran on the schema 2 tables, moving every row to relay "" under an associated
    data that no longer matches: the state of every place was gone."""
    _schema_1_store(tmp_path)
    place = Place(RELAY, "room", ME)
    migrate = Store._from_schema_1
    raced: list[bool] = []

    def racing(self: Store) -> None:
        if not raced:
            raced.append(True)
            with Store.open(tmp_path) as first:  # the other process, all the way through
                first.adopt(place)
                first.save_state(place, b"newer state", 9)
        migrate(self)

    monkeypatch.setattr(Store, "_from_schema_1", racing)
    with Store.open(tmp_path) as second:
        got = second.load_state(place)
        assert got is not None and (got.state, got.position) == (b"newer state", 9)
        assert [e.text for e in second.history("room", ME, RELAY)[0]] == ["first", "second"]
        assert second.history()[1] == 0


def test_adopt_keeps_one_row_per_message_and_reseals_only_what_opened(tmp_path: Path) -> None:
    """A message kept both under relay "" and already under the relay is one row after adopt; a
    relay row moved to relay "" by hand does not open as a schema 1 row and is not re-sealed."""
    _schema_1_store(tmp_path)
    place = Place(RELAY, "room", ME)
    with Store.open(tmp_path) as store:
        from test_local_store import entry

        store.save(place, messages=[entry("01" * 8, "first")])  # already here under the relay
        other = Place("ws://elsewhere", "room", ME)
        store.save(other, messages=[entry("09" * 8, "elsewhere")])
        db = sqlite3.connect(tmp_path / STORE_FILE)
        with db:
            db.execute("UPDATE history SET relay = '' WHERE message_id = ?", ("09" * 8,))
        db.close()
        assert store.adopt(place) == 3
        entries, bad = store.history("room", ME, RELAY)
        assert [e.text for e in entries] == ["first", "second"] and bad == 0
        assert store.history()[1] == 1  # the moved row: still there, still unreadable
        assert store.adopt(place) == 0


def test_an_outbox_row_moved_to_another_place_or_table_does_not_open(tmp_path: Path) -> None:
    here, there = Place(RELAY, ROOM, ME), Place("ws://other", ROOM, ME)
    with Store.open(tmp_path) as store:
        store.save(here, outbox=b"[]x")
        store.save(there, state=(b"s", 1))
        db = sqlite3.connect(tmp_path / STORE_FILE)
        with db:
            db.execute("INSERT INTO outbox SELECT 'ws://other', room, identity, nonce, sealed FROM outbox")
            db.execute("UPDATE state SET (nonce, sealed) = (SELECT nonce, sealed FROM outbox "
                       "WHERE relay = ?) WHERE relay = 'ws://other'", (RELAY,))
        db.close()
        with pytest.raises(StoreError, match="outbox"):
            store.load_outbox(there)
        with pytest.raises(StoreError, match="group state"):
            store.load_state(there)
        assert store.load_outbox(here) == b"[]x"


@pytest.mark.parametrize("raw", [b"not json", b'{"id": "00"}', b'[{"id": "zz", "text": "x"}]',
                                 b'[{"id": "00", "text": 3}]', b"\xff\xfe"])
def test_an_outbox_we_cannot_read_back_is_a_warning(tmp_path: Path, raw: bytes) -> None:
    me = Identity.generate()
    with Store.open(tmp_path) as store:
        session = SessionStore(store, RELAY, ROOM, me)
        store.save(session.place, outbox=raw)
        said = session.unsent()
        assert isinstance(said, str) and "cannot be read back" in said


def test_a_flipped_bit_in_the_outbox_is_a_warning(tmp_path: Path) -> None:
    me = Identity.generate()
    with Store.open(tmp_path) as store:
        session = SessionStore(store, RELAY, ROOM, me)
        store.save(session.place, outbox=_encode_unsent([Unsent(b"\x01" * 8, "hi")]))
        db = sqlite3.connect(tmp_path / STORE_FILE)
        with db:
            db.execute("UPDATE outbox SET sealed = substr(sealed, 2) || x'00'")
        db.close()
        said = session.unsent()
        assert isinstance(said, str) and "corrupt" in said


# 3. The outbox of unsent messages across a restart.


def _pair(tmp_path: Path) -> tuple[StoredRoom, object, object, Store, Identity]:
    room = StoredRoom(ManualClock())
    me = Identity.generate()
    store = Store.open(tmp_path)
    alice = room.add_stored("alice", SessionStore(store, RELAY, ROOM, me), me)
    room.connect(alice)
    bob = room.add("bob")
    room.connect(bob)
    room.tick()
    room.settle()
    return room, alice, bob, store, me


def _bob_texts(bob: object) -> list[str]:
    from groupchat.client.notices import ChatLine

    return [n.text for n in bob.notices() if isinstance(n, ChatLine) and not n.own]  # type: ignore[attr-defined]


def test_a_state_forgotten_before_a_send_keeps_the_unsent_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message typed and stored in the outbox; then, before a frame, the state cannot be
    exported (a ring run in progress) and is forgotten. ``Store.save(drop_state=True)`` drops the
    outbox with it, while the session still believed it stored (the outbox "unchanged"): a crash
    then lost the typed message for good."""
    from groupchat.core.group import Group

    room, alice, _, store, _ = _pair(tmp_path)
    session = room.stores[alice.mid]  # type: ignore[attr-defined]
    alice.machine.queue_text("typed, not yet sent")  # type: ignore[attr-defined]
    session.persist(alice.machine)  # type: ignore[attr-defined]
    assert store.load_outbox(session.place) != b""

    def busy(self: Group) -> bytes:
        raise UsageError("a ring run is in progress")

    monkeypatch.setattr(Group, "export_state", busy)
    session.persist(alice.machine, before_send=True)  # type: ignore[attr-defined]
    monkeypatch.undo()
    assert store.load_state(session.place) is None  # forgotten, as it must be
    assert store.load_outbox(session.place) != b""  # but the message is still to be sent
    room.kill(alice)  # type: ignore[arg-type]
    again, _ = room.restart(alice)  # type: ignore[arg-type]
    # Back without a state (a rejoin): the message is shown as sending, and is sent once in.
    assert [u.text for u in again.machine.unsent()] == ["typed, not yet sent"]
    shown = [n for n in again.notices() if getattr(n, "own", False)]
    assert [(n.text, n.pending) for n in shown] == [("typed, not yet sent", True)]
    store.close()


def test_a_restored_copy_in_flight_waits_for_the_logs_echo_after_a_long_downtime(tmp_path: Path) -> None:
    """Killed with our message logged but its echo unread; back a minute later. The restored copy
    is in flight since ``sent_at = 0.0`` (OutboundQueue.restore sets no time), so it is overdue
    the moment the session looks: a "not echoed" warning and a second copy re-encrypted before
    the log's echo even came. It must wait ``confirm_after`` from the restart, and be confirmed
    by the log's echo alone."""
    from groupchat.client.notices import ChatLine, MessageConfirmed
    from groupchat.client.session.inputs import Wake
    from groupchat.relay_protocol import Publish

    room, alice, bob, store, _ = _pair(tmp_path)
    alice.machine.queue_text("sent before the kill")  # type: ignore[attr-defined]
    room.kill_after[alice.mid] = 1  # type: ignore[attr-defined]
    room.feed(alice, Wake(room.clock()))  # type: ignore[arg-type]
    room.settle()
    assert alice.stopped  # type: ignore[attr-defined]
    room.clock.advance(60.0)
    again, _ = room.restart(alice)  # type: ignore[arg-type]
    room.tick()
    room.settle()
    published = [a for a in again.sent() if isinstance(a.frame, Publish)]
    shown = [n for n in again.notices() if isinstance(n, ChatLine) and n.own]
    assert [n.local_id for n in again.notices() if isinstance(n, MessageConfirmed)] == [shown[0].local_id]
    assert not [t for t in again.timeline() if "echo" in t or "confirm" in t], again.timeline()
    assert _bob_texts(bob).count("sent before the kill") == 1
    assert len(published) <= 1, [type(a.frame).__name__ for a in again.sent()]  # a leave/beacon at most
    store.close()


def test_killed_between_keeping_our_echoed_message_and_the_step_end_shows_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The echo of our message arrives: ``keep`` writes it to the history (as the glue does after
    each effect), and the process is killed before the step's ``persist`` wrote the outbox. After
    the restart the scrollback showed it confirmed and the outbox, still listing it in flight,
    showed it again as sending (then confirmed by the log's echo): twice in our own timeline.
    ``SessionStore.unsent`` now leaves out what the history keeps as ours."""
    from groupchat.client.notices import ChatLine, MessageConfirmed
    from groupchat.client.session.inputs import Wake

    room, alice, bob, store, _ = _pair(tmp_path)
    session = room.stores[alice.mid]  # type: ignore[attr-defined]
    alice.machine.queue_text("echoed just before the kill")  # type: ignore[attr-defined]
    real = session.persist
    monkeypatch.setattr(  # only the step's last persist is lost (the kill)
        session, "persist", lambda m, before_send=False: real(m, before_send=True) if before_send else []
    )
    room.feed(alice, Wake(room.clock()))  # type: ignore[arg-type]
    room.settle()  # the echo comes back: kept in the history, the outbox not written since
    monkeypatch.undo()
    assert any(isinstance(n, MessageConfirmed) for n in alice.notices())  # type: ignore[attr-defined]
    room.kill(alice)  # type: ignore[arg-type]
    again, scrollback = room.restart(alice)  # type: ignore[arg-type]
    room.tick()
    room.settle()
    own = [n.text for n in [*scrollback, *again.notices()] if isinstance(n, ChatLine) and n.own]
    assert own.count("echoed just before the kill") == 1, own
    assert _bob_texts(bob).count("echoed just before the kill") == 1
    store.close()


def test_store_passphrase_beside_a_store_whose_key_is_missing_makes_no_new_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key file was moved away (to restore from a backup, say) and the store is still there:
    ``groupchat store passphrase`` made a fresh key, sealed it and put it where the old key
    belongs, while ``Store.open`` refuses exactly that (a new key cannot open the store, and
    would stand where the user restores the old one)."""
    with Store.open(tmp_path) as store:
        store.save_state(Place(RELAY, ROOM, ME), b"state", 1)
    (tmp_path / KEY_FILE).unlink()
    monkeypatch.setenv("GROUPCHAT_STORE_NEW_PASSPHRASE", "new one")
    with pytest.raises(StoreError, match="missing"):
        store_command.run(_args(tmp_path))
    assert not (tmp_path / KEY_FILE).exists()


# 4. /quit with a store stays in the group.


def test_quit_keeps_the_state_only_if_one_is_stored(tmp_path: Path) -> None:
    from groupchat.client.session import SessionSettings
    from groupchat.client.session.asyncio_session import ChatSession
    from groupchat.client.trust import TrustStore

    me = Identity.generate()
    with Store.open(tmp_path) as store:
        kept = SessionStore(store, RELAY, ROOM, me)
        assert store.load_state(kept.place) is None
        session = ChatSession(SessionSettings(RELAY, ROOM, "me"), me, TrustStore(None), lambda n: None,
                              store=kept)
        assert not session.keeps_state  # nothing to resume: a restart rejoins, so quitting leaves


def test_a_resent_copy_is_not_shown_again_by_a_receiver_that_restarted(tmp_path: Path) -> None:
    """Alice's message reached bob; alice was killed before its echo, and the relay does not give
    it back on her resume (it lost or withholds its log): she sends it again under the same
    msg_id, as she must. Bob restarted meanwhile: his de-duplication (``_seen_ids``) lived in
    memory only, while the message is in his scrollback."""
    from groupchat.client.notices import ChatLine
    from groupchat.client.session.inputs import Wake

    room = StoredRoom(ManualClock())
    ids = {name: Identity.generate() for name in ("alice", "bob")}
    stores = {name: Store.open(tmp_path / name) for name in ids}
    alice, bob = (
        room.add_stored(name, SessionStore(stores[name], RELAY, ROOM, ids[name]), ids[name]) for name in ids
    )
    for m in (alice, bob):
        room.connect(m)
        room.tick()
        room.settle()
    assert alice.machine.epoch == bob.machine.epoch is not None
    alice.machine.queue_text("once")
    room.kill_after[alice.mid] = 1
    room.feed(alice, Wake(room.clock()))
    room.settle()
    assert alice.stopped and _bob_texts(bob) == ["once"]
    room.kill(bob)
    bob2, scrollback = room.restart(bob)
    room.tick()
    room.settle()
    room.withhold_own.add(alice.mid)
    alice2, _ = room.restart(alice)
    room.tick()
    room.settle()
    room.clock.advance(60.0)
    room.tick()
    room.settle()
    # She sent it again under the same msg_id (one row in bob's history), and it was confirmed.
    assert [(e.text, e.own) for e in stores["alice"].history()[0]] == [("once", True)]
    assert [e.text for e in stores["bob"].history()[0]] == ["once"]
    assert [n.text for n in alice2.notices() if isinstance(n, ChatLine)] == ["once"]
    shown = [n.text for n in [*scrollback, *bob2.notices()] if isinstance(n, ChatLine) and not n.own]
    assert shown.count("once") == 1, shown
    for s in stores.values():
        s.close()


@pytest.mark.parametrize("lost", [False, True], ids=["logged", "lost on the way"])
def test_a_restored_copy_in_flight_after_a_long_downtime_reuses_no_ratchet_key(
    tmp_path: Path, lost: bool
) -> None:
    """Killed with our message in flight, back a minute later (the restored copy has no send
    time, so it is overdue at once): whether the log confirms it or it is sent again, no ratchet
    key is handed out twice and bob reads it once, and what we type next goes out."""
    from store_room import send_log

    from groupchat.client.session.inputs import Wake

    room, alice, bob, store, _ = _pair(tmp_path)
    with send_log() as book:
        alice.machine.queue_text("in flight")  # type: ignore[attr-defined]
        room.kill_after[alice.mid] = 1  # type: ignore[attr-defined]
        if lost:
            room.lose_it.add(alice.mid)  # type: ignore[attr-defined]
        room.feed(alice, Wake(room.clock()))  # type: ignore[arg-type]
        room.settle()
        room.clock.advance(60.0)
        again, _ = room.restart(alice)  # type: ignore[arg-type]
        room.tick()
        room.settle()
        again.machine.queue_text("after")
        room.feed(again, Wake(room.clock()))
        room.settle()
        assert book.reused() == []
    assert _bob_texts(bob).count("in flight") == 1 and _bob_texts(bob).count("after") == 1
    assert store.load_outbox(room.stores[alice.mid].place) == b""  # type: ignore[attr-defined]
    store.close()
