"""Adversarial review of the local store and the resume-after-restart path (issue 15).

Each test mounts one attack or fault on a real session machine with real cryptography (the
sans-I/O room with the store's glue: store_room.py) or on a real :class:`Store`, and asserts
the specific outcome: no ratchet key used twice across a restart, our own commit in flight
handled after a restart, a rolled-back state row, the per-(room, identity) claim, and damaged
files each giving one clear :class:`StoreError`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from store_room import StoredRoom, send_log

from groupchat.client.notices import ChatLine, MessageConfirmed, Placeholder
from groupchat.client.session.inputs import RekeyRequested, Wake
from groupchat.client.session_store import SessionStore
from groupchat.client.store import Place, Store
from groupchat.core.group import Group
from groupchat.core.identity import Identity
from groupchat.lab.clock import ManualClock

ROOM = "room"
RELAY = "ws://memory"  # the relay URL of the sans-I/O room's members (store_room.py)


def at(room: str = ROOM, identity: bytes = b"\x01" * 32) -> Place:
    """Where the store keeps ``identity``'s rows in ``room`` (of the room's relay)."""
    return Place(RELAY, room, identity)


def texts(member: object) -> list[str]:
    return [n.text for n in member.notices() if isinstance(n, ChatLine) and not n.own]  # type: ignore[attr-defined]


def placeholders(member: object) -> list[Placeholder]:
    return [n for n in member.notices() if isinstance(n, Placeholder)]  # type: ignore[attr-defined]


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
    assert alice.machine.epoch == bob.machine.epoch and alice.machine.epoch is not None
    return room, alice, bob, store, me


@pytest.mark.parametrize("frames", [1, 2, 3])
@pytest.mark.parametrize("lost", [False, True])
def test_killed_after_a_message_frame_never_reuses_a_ratchet_key(
    tmp_path: Path, frames: int, lost: bool
) -> None:
    """Kill alice right after her Nth message frame (reached the relay, or lost on the way),
    before any store after it; restart from the store and send again: no key+nonce of her
    ratchets is handed out twice, and bob refuses nothing."""
    room, alice, bob, store, _ = _pair(tmp_path)
    with send_log() as book:
        for i in range(3):
            alice.machine.queue_text(f"before-{i}")
        room.kill_after[alice.mid] = frames
        if lost:
            room.lose_it.add(alice.mid)
        room.feed(alice, Wake(room.clock()))
        room.settle()
        assert alice.stopped
        again, _ = room.restart(alice)
        assert isinstance(again.restored, tuple), again.restored  # type: ignore[attr-defined]
        for i in range(3):
            again.machine.queue_text(f"after-{i}")
        room.feed(again, Wake(room.clock()))
        room.settle()
        assert book.reused() == []
    assert {f"after-{i}" for i in range(3)} <= set(texts(bob))
    assert placeholders(bob) == []
    store.close()


@pytest.mark.parametrize("lost", [False, True], ids=["logged", "lost on the way"])
def test_restart_with_our_commit_in_flight(tmp_path: Path, lost: bool) -> None:
    """Alice's self-update goes out (the relay logs it, or it is lost on the way) and she dies
    before its echo. Restarted, she must follow the group: at bob's epoch, able to send, able
    to commit again, with no ratchet key used twice. (Lost: the restored pending commit was
    kept for good, and every later commit of hers refused as "already waiting for its echo".)"""
    room, alice, bob, store, _ = _pair(tmp_path)
    start = bob.machine.epoch
    with send_log() as book:
        room.kill_after[alice.mid] = 1
        if lost:
            room.lose_it.add(alice.mid)
        room.feed(alice, RekeyRequested(room.clock()))
        room.settle()
        assert alice.stopped
        assert bob.machine.epoch == (start if lost else start + 1)
        again, _ = room.restart(alice)
        assert isinstance(again.restored, tuple), again.restored  # type: ignore[attr-defined]
        room.tick()
        assert again.machine.epoch == bob.machine.epoch
        again.machine.queue_text("after the restart")
        room.feed(again, Wake(room.clock()))
        room.settle()
        assert "after the restart" in texts(bob)
        before = bob.machine.epoch
        room.feed(again, RekeyRequested(room.clock()))
        room.settle()
        room.tick()
        assert again.machine.epoch == bob.machine.epoch == before + 1, again.timeline()
        assert book.reused() == []
    assert placeholders(bob) == []
    store.close()


def _state_row(store: Store) -> tuple[object, ...]:
    return tuple(store._db.execute("SELECT relay, room, identity, nonce, sealed FROM state").fetchone())


def test_a_rolled_back_state_row_does_not_reuse_a_key(tmp_path: Path) -> None:
    """Rollback: someone who can write the store (or a restored backup, a file system snapshot)
    puts back an older sealed state row of the same (room, identity). Its AAD is the same, so
    it opens. Restarted from it, alice must not hand out a ratchet key she already used."""
    room, alice, bob, store, _ = _pair(tmp_path)
    old = _state_row(store)
    with send_log() as book:
        for i in range(3):
            alice.machine.queue_text(f"before-{i}")
        room.feed(alice, Wake(room.clock()))
        room.settle()
        assert {f"before-{i}" for i in range(3)} <= set(texts(bob))
        assert _state_row(store) != old
        room.kill(alice)
        with store._db:
            store._db.execute("INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?, ?)", old)
        again, _ = room.restart(alice)
        assert isinstance(again.restored, tuple), again.restored  # type: ignore[attr-defined]
        for i in range(3):
            again.machine.queue_text(f"after-{i}")
        room.feed(again, Wake(room.clock()))
        room.settle()
        assert book.reused() == []
    assert {f"after-{i}" for i in range(3)} <= set(texts(bob))
    assert placeholders(bob) == []
    store.close()


ROLLBACK = (
    "limit (threats.md 15): a rolled-back state row opens (same AAD), and only re-reading our own "
    "messages from the relay's log moves our ratchets past what we sent; a relay that withholds "
    "them on the resume (or lost its log) makes the restored member reuse a generation. Cheap "
    "defence, checked to pass this test: a restored member commits a self-update before its first "
    "message (self._duties.want_update = 'restored' in SessionMachine.resume_stored; costs one "
    "commit per restart, and test_restart_resumes_the_same_leaf_with_scrollback's 'no commit by "
    "anyone' then changes)"
)


@pytest.mark.xfail(strict=True, reason=ROLLBACK)
def test_a_rolled_back_state_row_with_a_relay_withholding_our_messages(tmp_path: Path) -> None:
    """The rollback above, and a relay that leaves alice's own messages out of her resume: she
    restarts at the old ratchet position with nothing to tell her it was used."""
    room, alice, _bob, store, _ = _pair(tmp_path)
    old = _state_row(store)
    with send_log() as book:
        alice.machine.queue_text("before")
        room.feed(alice, Wake(room.clock()))
        room.settle()
        room.kill(alice)
        with store._db:
            store._db.execute("INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?, ?)", old)
        room.withhold_own.add(alice.mid)
        again, _ = room.restart(alice)
        assert isinstance(again.restored, tuple), again.restored  # type: ignore[attr-defined]
        again.machine.queue_text("after")
        room.feed(again, Wake(room.clock()))
        room.settle()
        assert book.reused() == []
    store.close()


# --- a store that cannot be written at a send (real sessions on a real relay) -----------------


@pytest.mark.parametrize("kill", [True, False])
async def test_a_failed_store_write_holds_the_frame_back(tmp_path: Path, kill: bool) -> None:
    """Another process holds the store's write lock (as a full disk would refuse the write):
    alice's store-before-send fails. The frame must not go out over a stale stored state, or a
    restart from that state reuses the generation (bob refuses the second, or worse reads two
    plaintexts under one key)."""
    import asyncio
    import sqlite3

    from session_harness import agree, running_relay, stop_all, wait_until
    from test_session_store import start

    me = Identity.generate()
    async with running_relay() as relay:
        store = Store.open(tmp_path)
        alice = start(relay.port, "alice", me, store)
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start(relay.port, "bob", Identity.generate(), None)
        again = None
        try:
            await wait_until(lambda: agree(alice, bob), what="agree")
            await asyncio.sleep(0.3)  # alice's state after the join is stored
            store._db.execute("PRAGMA busy_timeout=20")
            locker = sqlite3.connect(store.path, isolation_level=None)
            locker.execute("BEGIN IMMEDIATE")  # the write lock, held
            alice.session.send_text("while the store is locked")
            await asyncio.sleep(0.5)
            held = "while the store is locked" not in bob.texts()
            if kill:
                alice.task.cancel()  # killed: nothing more is written
                await asyncio.gather(alice.task, return_exceptions=True)
            locker.execute("ROLLBACK")
            locker.close()
            if kill:
                store.close()
                store = Store.open(tmp_path)
                again = start(relay.port, "alice", me, store)
                await wait_until(lambda: again.ready, what="alice restarted")
                again.session.send_text("after the restart")
                # Had the first frame left, this one would reuse its generation: bob refuses it.
                await wait_until(lambda: "after the restart" in bob.texts(), what="bob reads alice")
            else:  # the store works again: what was held goes out
                alice.session.send_text("after the lock")
                await wait_until(
                    lambda: {"while the store is locked", "after the lock"} <= set(bob.texts()),
                    what="the held message goes out",
                )
            assert held, "the frame left while the store held an older state"
            assert not bob.placeholders(), bob.placeholders()
        finally:
            await stop_all(*(p for p in (again, bob, None if kill else alice) if p is not None))
            store.close()


# --- the history: what is shown again after a restart ------------------------------------------


def test_scrollback_keeps_lookalike_names_apart(tmp_path: Path) -> None:
    """Two members named "bob" (one of them impersonating the other): live, alice sees them as
    ``bob·3f2a`` and ``bob·91c0``. The scrollback after her restart must not show two plain
    "bob" lines, or the impostor's old messages pass for the real bob's."""
    room, alice, bob, store, _ = _pair(tmp_path)
    impostor = room.add("bob")
    room.connect(impostor)
    room.tick()
    room.settle()
    for who, text in ((bob, "from the real bob"), (impostor, "from the other bob")):
        who.machine.queue_text(text)
        room.feed(who, Wake(room.clock()))
        room.settle()
    live = {n.text: n.sender for n in alice.notices() if isinstance(n, ChatLine) and not n.own}
    assert live["from the real bob"] != live["from the other bob"]  # the live labels differ
    room.kill(alice)
    _, scrollback = room.restart(alice)
    shown = {n.text: n.sender for n in scrollback if isinstance(n, ChatLine)}
    assert shown["from the real bob"] == live["from the real bob"]
    assert shown["from the other bob"] == live["from the other bob"]
    store.close()


def test_scrollback_and_export_strip_escape_sequences(tmp_path: Path) -> None:
    """A peer's text with a terminal escape sequence, kept in the history: the scrollback line
    and the text export show it without the escape."""
    from groupchat.client.history_export import format_text

    room, alice, bob, store, me = _pair(tmp_path)
    bob.machine.queue_text("red \x1b[31malert\x1b[0m \x1b]0;owned\x07 done")
    room.feed(bob, Wake(room.clock()))
    room.settle()
    entries, bad = store.history(ROOM, me.public_key, RELAY)
    assert bad == 0 and any("\x1b" in e.text for e in entries)  # kept as it arrived
    room.kill(alice)
    _, scrollback = room.restart(alice)
    lines = [n for n in scrollback if isinstance(n, ChatLine)]
    assert lines and all("\x1b" not in n.text and "\x07" not in n.text for n in lines)
    exported = format_text([(ROOM, RELAY, entries)])
    assert "\x1b" not in exported and "\x07" not in exported and "alert" in exported
    store.close()


# --- damaged files: one clear StoreError each ----------------------------------------------------


def _seeded(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.save_state(at(ROOM), b"state", 2)


def test_a_directory_where_the_key_should_be_is_a_clear_error(tmp_path: Path) -> None:
    from groupchat.client.store import KEY_FILE, StoreError

    (tmp_path / KEY_FILE).mkdir(mode=0o700)
    with pytest.raises(StoreError, match=r"store key file .* is not a regular file"):
        Store.open(tmp_path)


def test_a_directory_where_the_store_should_be_is_a_clear_error(tmp_path: Path) -> None:
    from groupchat.client.store import STORE_FILE, StoreError

    (tmp_path / STORE_FILE).mkdir(mode=0o700)
    with pytest.raises(StoreError, match=r"store file .* is not a regular file"):
        Store.open(tmp_path)


def test_an_empty_key_file_is_a_clear_error(tmp_path: Path) -> None:
    import os

    from groupchat.client.store import KEY_FILE, StoreError

    os.close(os.open(tmp_path / KEY_FILE, os.O_WRONLY | os.O_CREAT, 0o600))
    with pytest.raises(StoreError, match="not a groupchat store key"):
        Store.open(tmp_path)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE state SET nonce = X''",  # a nonce AES-GCM refuses outright
        "UPDATE state SET sealed = substr(sealed, 1, 10)",  # shorter than the tag
        "UPDATE state SET sealed = 'text, not bytes'",  # another type in the cell
        "UPDATE state SET nonce = X'00'",  # a nonce of one byte
    ],
)
def test_a_damaged_state_row_is_one_clear_error(tmp_path: Path, sql: str) -> None:
    import sqlite3

    from groupchat.client.store import STORE_FILE, StoreError

    _seeded(tmp_path)
    db = sqlite3.connect(tmp_path / STORE_FILE)
    with db:
        db.execute(sql)
    db.close()
    with Store.open(tmp_path) as store, pytest.raises(StoreError, match="cannot be decrypted"):
        store.load_state(at(ROOM))


def test_a_truncated_store_file_is_one_clear_error(tmp_path: Path) -> None:
    """A store cut short (a disk that lost its tail): open or read says so, no traceback."""
    import os

    from groupchat.client.store import STORE_FILE, StoreError

    with Store.open(tmp_path) as store:
        for i in range(200):
            store.save_state(at(f"room {i}"), os.urandom(3000), i)
    path = tmp_path / STORE_FILE
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    with pytest.raises(StoreError, match="malformed"), Store.open(tmp_path) as store:
        for i in range(200):
            store.load_state(at(f"room {i}"))


def test_a_full_disk_says_so(tmp_path: Path) -> None:
    """SQLite rolls a transaction back itself when the disk is full; the error must name the full
    disk, not "cannot rollback - no transaction is active" (the ROLLBACK after it)."""
    import os

    from groupchat.client.store import StoreError

    with Store.open(tmp_path) as store:
        store.save_state(at(ROOM), os.urandom(2000), 1)
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        store._db.execute(f"PRAGMA max_page_count={pages}")
        with pytest.raises(StoreError, match="database or disk is full"):
            store.save_state(at(ROOM), os.urandom(20000), 2)
        assert store.load_state(at(ROOM)) is not None  # the old state stands, whole


def test_the_wal_files_and_claims_are_owner_only_and_do_not_pile_up(tmp_path: Path) -> None:
    import stat

    with Store.open(tmp_path) as store:
        store.save_state(at(ROOM), b"state", 1)
        for _ in range(3):
            store.claim(at(ROOM))
        store.claim(at("other"))
        wal = [p for p in tmp_path.iterdir() if p.name.endswith(("-wal", "-shm"))]
        assert wal
        locks = [p for p in tmp_path.iterdir() if p.name.endswith(".lock")]
        assert len(locks) == 2  # one per (room, identity), however often claimed
        for p in [*wal, *locks]:
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p.name
    with Store.open(tmp_path) as store:
        store.claim(at(ROOM))  # a run after a run reuses its lock file
    assert len([p for p in tmp_path.iterdir() if p.name.endswith(".lock")]) == 2


def test_the_same_identity_with_a_copied_data_directory_is_not_refused(tmp_path: Path) -> None:
    """The claim is per store: a copy of the data directory (a backup restored beside, a synced
    folder on a second machine) resumes the same leaf and ratchets as the original, and no lock
    sees it. Documented in docs/protocol.md §12.5; what saves the ratchets is the log (see the
    rollback tests)."""
    import shutil

    _seeded(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    with Store.open(tmp_path / "a") as one, Store.open(tmp_path / "b") as two:
        one.claim(at(ROOM))
        two.claim(at(ROOM))
        first, second = one.load_state(at(ROOM)), two.load_state(at(ROOM))
        assert first is not None and first == second


async def test_sigkill_loses_no_message_that_was_shown(tmp_path: Path) -> None:
    """Bob talks while alice's process (store_crash_client.py) is SIGKILLed at a random point:
    every message of bob's that alice's screen showed (printed as it was shown) is in her store."""
    import asyncio
    import os
    import random
    import signal

    from session_harness import running_relay, stop_all, wait_until
    from test_session_store import ROOM as CRASH_ROOM
    from test_session_store import _client, start

    seed = Identity.generate().private_bytes().hex()
    me = Identity.from_private_bytes(bytes.fromhex(seed))
    rng = random.Random()
    async with running_relay() as relay:
        bob = start(relay.port, "bob", Identity.generate(), None)
        procs = []
        try:
            await wait_until(lambda: bob.ready, what="bob ready")
            for round_ in range(2):
                proc, lines = await _client(relay.port, tmp_path, seed, f"r{round_}", 0)
                procs.append(proc)
                await wait_until(lambda lines=lines: "READY" in lines, timeout=20, what="alice ready")
                await wait_until(lambda: len(bob.session.roster()) == 2, timeout=20, what="bob sees alice")
                for i in range(60):
                    bob.session.send_text(f"bob {round_}-{i}")
                    if i == 30:
                        await asyncio.sleep(rng.uniform(0.0, 0.3))
                        os.kill(proc.pid, signal.SIGKILL)
                    await asyncio.sleep(0.005)
                await asyncio.wait_for(proc.wait(), 10)
                await asyncio.wait_for(proc._reader, 10)
                shown = [x.removeprefix("RECEIVED ") for x in lines if x.startswith("RECEIVED ")]
                assert shown, "alice showed nothing before the kill"
                with Store.open(tmp_path) as store:
                    kept = {e.text for e in store.history(CRASH_ROOM, me.public_key)[0]}
                lost = [t for t in shown if t not in kept]
                assert not lost, f"shown but not kept: {lost[:5]}"
        finally:
            for proc in procs:
                if proc.returncode is None:
                    os.kill(proc.pid, signal.SIGKILL)
                    await proc.wait()
            await stop_all(bob)


@pytest.mark.parametrize("frames", [1, 2, 3, 4])
def test_a_ring_member_killed_during_a_ring_run(tmp_path: Path, frames: int) -> None:
    """Ring groups: alice's rekey starts a ring run (several rounds of frames); she is killed
    after her Nth frame of it. Restarted (resumed or joining afresh, saying why), she and bob
    agree again, chat works, and no ratchet key is handed out twice. Killed inside the run (2, 3),
    her stored state is rightly forgotten (§12.2) and she asks afresh: her newer signed request
    makes bob remove her old leaf from the ring at once (it used to wait for it forever, the
    group frozen) and add her again once the ring is done."""
    clock = ManualClock()
    room = StoredRoom(clock)
    me = Identity.generate()
    store = Store.open(tmp_path)
    alice = room.add_stored("alice", SessionStore(store, RELAY, ROOM, me), me, scheme="ring")
    room.connect(alice)
    bob = room.add("bob")
    room.connect(bob)
    for _ in range(20):
        clock.now += 1
        room.tick()
    assert alice.machine.epoch == bob.machine.epoch == 1
    with send_log() as book:
        room.kill_after[alice.mid] = frames
        room.feed(alice, RekeyRequested(clock()))
        room.settle()
        for _ in range(5):
            clock.now += 0.1
            room.tick()
        assert alice.stopped
        again, _ = room.restart(alice)
        for _ in range(120):
            clock.now += 1
            room.tick()
        assert again.machine.epoch == bob.machine.epoch is not None, (again.timeline(), bob.timeline())
        again.machine.queue_text("after the restart")
        room.feed(again, Wake(clock()))
        for _ in range(10):
            clock.now += 1
            room.tick()
        assert "after the restart" in texts(bob), (again.timeline(), bob.timeline())
        assert book.reused() == []
    store.close()


@pytest.mark.parametrize("lost", [False, True], ids=["logged", "lost on the way"])
def test_our_message_in_flight_at_the_kill_is_kept_confirmed_and_read_once(
    tmp_path: Path, lost: bool
) -> None:
    """We died with our message sent and its echo unread. Logged, it used to be in every other
    member's timeline and nowhere in ours, without a word (only its digest was stored); lost, it
    was gone. Its text is stored with the state before the send and shown again as sending after
    the restart: the log's echo confirms it, or it is sent again; bob reads it exactly once."""
    room, alice, bob, store, me = _pair(tmp_path)
    alice.machine.queue_text("sent before the kill")
    room.kill_after[alice.mid] = 1
    if lost:
        room.lose_it.add(alice.mid)
    room.feed(alice, Wake(room.clock()))
    room.settle()
    assert alice.stopped and ("sent before the kill" in texts(bob)) is not lost
    again, _ = room.restart(alice)
    room.tick()
    room.settle()
    kept = [e.text for e in store.history(ROOM, me.public_key, RELAY)[0]]
    shown = [n for n in again.notices() if isinstance(n, ChatLine) and n.own]
    assert kept.count("sent before the kill") == 1
    assert [n.text for n in shown] == ["sent before the kill"] and shown[0].pending  # then confirmed:
    assert [n.local_id for n in again.notices() if isinstance(n, MessageConfirmed)] == [shown[0].local_id]
    assert texts(bob).count("sent before the kill") == 1
    assert store.load_outbox(at(ROOM, me.public_key)) == b""  # nothing left to send
    store.close()


def test_a_message_typed_but_not_sent_at_the_kill_is_sent_after_the_restart(tmp_path: Path) -> None:
    """Typed while the group was busy (our own commit waiting for its echo holds messages back),
    then killed: the message was only in memory and was lost. It is stored, shown as sending
    after the restart, and sent once the restarted member is back."""
    room, alice, bob, store, me = _pair(tmp_path)
    room.kill_after[alice.mid] = 1
    room.feed(alice, RekeyRequested(room.clock()))  # our commit goes out: messages wait for its echo
    assert alice.stopped  # (the harness stops her here; what follows is her last moment, typed and
    alice.machine.queue_text("typed while the commit flew")  # stored by a step, as the glue does)
    room.stores[alice.mid].persist(alice.machine)
    room.restart(alice)
    room.tick()
    room.settle()
    assert texts(bob).count("typed while the commit flew") == 1
    assert "typed while the commit flew" in [e.text for e in store.history(ROOM, me.public_key, RELAY)[0]]
    store.close()


def test_the_scrollback_shown_at_start_is_bounded(tmp_path: Path) -> None:
    """A long-lived room (or a peer flooding it) grows the history without end; the start must
    not turn every kept row into a timeline line (the TUI keeps 2000 anyway)."""
    import time

    from groupchat.client import session_store
    from groupchat.client.store import HistoryEntry

    me = Identity.generate()
    limit = session_store._SCROLLBACK_LINES
    with Store.open(tmp_path) as store:
        rows = [
            HistoryEntry(f"{i:032x}", 1, "ab" * 32, "bob", f"line {i}", time.time(), False)
            for i in range(limit + 500)
        ]
        store.save(at(ROOM, me.public_key), messages=rows)
        shown = [n for n in SessionStore(store, RELAY, ROOM, me).scrollback() if isinstance(n, ChatLine)]
    assert len(shown) == limit
    assert shown[-1].text == f"line {limit + 499}" and shown[0].text == "line 500"


def test_restart_with_our_commit_in_flight_that_lost_the_race(tmp_path: Path) -> None:
    """Bob's commit is ordered before alice's (she had not read it when she committed); she dies
    before reading either. Restarted, her stored pending commit loses to bob's: she follows bob's
    epoch, rebuilds what she owed, and chat works, with no ratchet key used twice."""
    room, alice, bob, store, me = _pair(tmp_path)
    start = bob.machine.epoch
    with send_log() as book:
        room.feed(bob, RekeyRequested(room.clock()))  # logged; nobody has read it yet
        room.kill_after[alice.mid] = 1
        room.feed(alice, RekeyRequested(room.clock()))  # logged after bob's, on the old epoch
        room.settle()
        assert alice.stopped
        stored = store.load_state(at(ROOM, me.public_key))
        assert stored is not None and Group.restore(stored.state, me).has_pending_commit
        again, _ = room.restart(alice)
        assert isinstance(again.restored, tuple), again.restored  # type: ignore[attr-defined]
        for _ in range(5):
            room.clock.now += 1
            room.tick()
        assert again.machine.epoch == bob.machine.epoch is not None
        assert bob.machine.epoch >= start + 1
        again.machine.queue_text("after the lost race")
        room.feed(again, Wake(room.clock()))
        room.settle()
        assert "after the lost race" in texts(bob)
        assert book.reused() == []
    assert placeholders(bob) == []
    store.close()


def test_restart_with_our_add_in_flight_still_lets_the_joiner_in(tmp_path: Path) -> None:
    """Alice commits carol's Add and dies right after the commit frame, before its echo (so
    before the Welcome goes out). Restarted, she applies her stored commit on its echo and sends
    the Welcome: carol gets in without another commit, and the three agree."""
    room, alice, bob, store, _ = _pair(tmp_path)
    room.kill_after[alice.mid] = 1
    carol = room.add("carol")
    with send_log() as book:
        room.connect(carol)
        room.settle()
        if not alice.stopped:  # bob added carol: this run is not the case under test
            pytest.skip("bob committed the add")
        assert carol.machine.epoch is None  # the Welcome did not go out
        again, _ = room.restart(alice)
        for _ in range(10):
            room.clock.now += 1
            room.tick()
        epochs = {again.machine.epoch, bob.machine.epoch, carol.machine.epoch}
        assert len(epochs) == 1 and None not in epochs, (again.timeline(), carol.timeline())
        again.machine.queue_text("hello carol")
        room.feed(again, Wake(room.clock()))
        room.settle()
        assert "hello carol" in texts(carol)
        assert book.reused() == []
    store.close()
