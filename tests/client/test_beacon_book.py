"""The pure beacon module (session/beacons.py): the encoding, and the reports it decides."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groupchat.client import wording
from groupchat.client.session.beacons import (
    DIGEST_LEN,
    MAX_ENTRIES,
    Beacon,
    BeaconBook,
    Tally,
    authenticator_digest,
    is_speaker,
    speakers,
)
from groupchat.core.codec import Writer
from groupchat.core.errors import DecodeError, FieldTooLargeError, GroupChatError
from groupchat.core.events import Member

ALICE = Member(0, "alice", b"a" * 32)
BOB = Member(1, "bob", b"b" * 32)
AUTH = b"\x07" * 32

u32 = st.integers(0, 2**32 - 1)


@st.composite
def tallies(draw: st.DrawFn) -> Tally:
    leaves = sorted(draw(st.sets(u32, max_size=MAX_ENTRIES)))
    heard = tuple((leaf, draw(u32)) for leaf in leaves)
    return Tally(draw(u32), heard, draw(st.booleans()))


beacons = st.builds(
    Beacon,
    st.integers(0, 2**64 - 1),
    st.binary(min_size=DIGEST_LEN, max_size=DIGEST_LEN),
    st.integers(0, 2**64 - 1),
    tallies(),
    st.none() | tallies(),
    st.booleans(),
    st.none() | u32,
)


@given(beacons)
def test_a_beacon_survives_its_encoding(b: Beacon) -> None:
    data = b.encode()
    assert Beacon.decode(data) == b
    assert len(data) <= 8 + DIGEST_LEN + 8 + 2 * (4 + 1 + 2 + MAX_ENTRIES * 8) + 1 + 4


@given(beacons, st.data())
def test_a_damaged_beacon_is_refused_with_a_decode_error(b: Beacon, data: st.DataObject) -> None:
    raw = b.encode()
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(GroupChatError):
        Beacon.decode(raw[:cut])
    with pytest.raises(DecodeError):
        Beacon.decode(raw + b"\x00")


def _beacon_with(heard: list[tuple[int, int]], flag: int = 1) -> bytes:
    entries = [Writer().u32(leaf).u32(n).bytes() for leaf, n in heard]
    w = Writer().u64(1).raw(b"d" * DIGEST_LEN).u64(0).u32(0).u8(flag).vector(entries).u8(0)
    return w.bytes()


def test_malformed_tallies_are_refused() -> None:
    with pytest.raises(GroupChatError, match="complete flag"):
        Beacon.decode(_beacon_with([], flag=2))
    with pytest.raises(GroupChatError, match="once each in order"):
        Beacon.decode(_beacon_with([(2, 1), (1, 1)]))
    with pytest.raises(GroupChatError, match="once each in order"):
        Beacon.decode(_beacon_with([(1, 1), (1, 2)]))
    with pytest.raises(FieldTooLargeError):
        Beacon.decode(_beacon_with([(i, 1) for i in range(MAX_ENTRIES + 1)]))


def test_a_tally_lists_the_busiest_senders_and_says_when_it_is_not_complete() -> None:
    book = BeaconBook()
    book.enter(3, AUTH, 0, 10, 0.0, 2)
    for leaf in range(1, MAX_ENTRIES + 6):
        for gen in range(leaf % 4 + 1):
            book.received(Member(leaf, f"m{leaf}", leaf.to_bytes(32, "big")), 3, gen, True, 0.0)
    b = book.beacon(10, 0.0)
    assert b is not None and not b.current.complete and len(b.current.heard) == MAX_ENTRIES
    assert b.current.count_from(MAX_ENTRIES + 100) is None  # not listed: unknown, not zero
    assert b.digest == authenticator_digest(AUTH) and Beacon.decode(b.encode()) == b


def _pair() -> tuple[BeaconBook, BeaconBook]:
    a, b = BeaconBook(fraction=lambda: 0.5), BeaconBook(fraction=lambda: 0.5)
    a.enter(1, AUTH, ALICE.leaf, 5, 0.0, 2)
    b.enter(1, AUTH, BOB.leaf, 5, 0.0, 2)
    a.watch([ALICE, BOB], ALICE.identity_key, 0.0)
    b.watch([ALICE, BOB], BOB.identity_key, 0.0)
    return a, b


def _online(_: bytes) -> bool:
    return True


def _names(key: bytes) -> str | None:
    return {ALICE.identity_key: "alice", BOB.identity_key: "bob"}.get(key)


def test_a_beacon_claiming_more_than_we_got_is_a_loss_reported_once() -> None:
    alice, bob = _pair()
    for _ in range(3):
        alice.echoed_chat(1, 1.0)
    bob.received(ALICE, 1, 0, True, 1.0)  # generations 1 and 2 never came
    beacon = alice.beacon(9, 1.0)
    assert beacon is not None
    bob.received(ALICE, 1, 3, False, 2.0)
    assert bob.read_beacon(ALICE, beacon, 2.0) == [wording.messages_lost(2, "alice")]
    assert bob.read_beacon(ALICE, beacon, 3.0) == []
    assert bob.poll(60.0, _names, _online) == []  # the gap was the beacon's to explain: told once


def test_a_beacon_at_our_epoch_with_another_digest_is_a_fork_naming_its_signer() -> None:
    _, bob = _pair()
    other = BeaconBook()
    other.enter(1, b"\x08" * 32, ALICE.leaf, 5, 0.0, 2)
    beacon = other.beacon(6, 0.0)
    assert beacon is not None
    bob.received(ALICE, 1, 0, False, 1.0)
    assert bob.read_beacon(ALICE, beacon, 1.0) == [wording.fork_view("alice")]
    assert bob.read_beacon(ALICE, beacon, 2.0) == []  # named once per epoch


def test_a_beacon_refusing_the_commit_that_took_us_on_is_a_split_naming_its_committer() -> None:
    # alice could not follow carol's commit on epoch 1 (cut off, session/behind.py); bob took it.
    alice, bob = _pair()
    bob.enter(2, b"\x08" * 32, BOB.leaf, 9, 1.0, 3, by="carol", by_leaf=2)
    alice.cut_off(2, 1.0)
    assert alice.beacon_due(2.2)  # within about a second: the others keep epoch 1's keys a while
    beacon = alice.beacon(9, 2.2)
    assert beacon is not None and beacon.refused == 2 and beacon.epoch == 1
    assert Beacon.decode(beacon.encode()) == beacon
    bob.received(ALICE, 1, 0, False, 2.5)
    assert bob.read_beacon(ALICE, beacon, 2.5) == [wording.split_seen("alice", "carol", 2)]
    assert bob.read_beacon(ALICE, beacon, 3.0) == []  # told once
    assert wording.split_seen("alice", "carol", 2).startswith("split: alice could not follow carol's change")
    # A refusal of another member's commit than the one that took us on is not this split.
    other = BeaconBook(fraction=lambda: 0.5)
    other.enter(1, AUTH, ALICE.leaf, 5, 0.0, 2)
    other.cut_off(3, 1.0)
    stale = other.beacon(5, 2.2)  # and it had not processed the log as far as the commit
    assert stale is not None and stale.refused == 3
    carol = BeaconBook(fraction=lambda: 0.5)
    carol.enter(1, AUTH, 2, 5, 0.0, 3)
    carol.enter(2, b"\x08" * 32, 2, 9, 1.0, 3, by="", by_leaf=2)
    carol.received(ALICE, 1, 0, False, 2.5)
    assert carol.read_beacon(ALICE, stale, 2.5) == []
    assert carol.read_beacon(ALICE, beacon, 2.5) == [wording.split_seen("alice", "", 2)]
    assert "could not follow your change" in wording.split_seen("alice", "", 2)
    # Reaching a new epoch (re-added) ends what we say we refused.
    alice.enter(3, b"\x09" * 32, ALICE.leaf, 12, 4.0, 3, fresh=True)
    later = alice.beacon(12, 9.0)
    assert later is not None and later.refused is None


def test_receivers_whose_news_others_already_told_stand_down() -> None:
    """One chat message in a room of four: its sender and the first receiver due send beacons;
    the other two, seeing that one count all they got, wait (until their silence bound nears)."""
    members = [Member(i, f"m{i}", bytes([i]) * 32) for i in range(4)]
    books = [BeaconBook(fraction=lambda i=i: i / 4) for i in range(4)]
    for book, m in zip(books, members, strict=True):
        book.enter(1, AUTH, m.leaf, 5, 0.0, 4)
        book.watch(members, m.identity_key, 0.0)
    books[0].echoed_chat(1, 1.0)
    for j in (1, 2, 3):
        books[j].received(members[0], 1, 0, True, 1.0)
    spoke = []
    for step in range(1, 700):
        now = 1.0 + step / 10
        for i, book in enumerate(books):
            if book.beacon_due(now):
                b = book.beacon(6, now)
                assert b is not None
                spoke.append((i, now))
                for j, other in enumerate(books):
                    if j != i:
                        other.received(members[i], 1, 1, False, now)
                        assert other.read_beacon(members[i], b, now) == []
    assert [i for i, t in spoke if t < 40] == [0, 1]  # the sender, then the first receiver
    assert {i for i, t in spoke if t >= 40} == {2, 3}  # the others, before the silence bound
    assert all(t < 60 for _, t in spoke)


# --- no false report when nothing is dropped --------------------------------------------------------

CAROL = Member(2, "carol", b"c" * 32)
WHO = st.sampled_from([0, 1, 2])
ops = st.lists(
    st.one_of(
        st.tuples(st.just("chat"), WHO),
        st.tuples(st.just("burn"), WHO),  # a chat message the relay refused, sent again
        st.tuples(st.just("refused"), WHO),  # a beacon the relay refused
        st.tuples(st.just("wait"), st.integers(1, 40)),
        st.tuples(st.just("commit"), WHO),  # a commit, applied by everyone in the relay's order
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops, st.lists(st.floats(0, 0.999), min_size=1, max_size=16))
def test_no_report_at_all_when_the_relay_delivers_everything(
    script: list[tuple[str, int]], draws: list[float]
) -> None:
    """Three books exchange chat and beacons in order, as an honest relay would; a refused
    encryption uses a generation and is sent again (what the session does). Nobody reports."""
    members = (ALICE, BOB, CAROL)
    spin = iter(draws * 1000)
    books = [BeaconBook(fraction=lambda: next(spin)) for _ in members]
    for book, m in zip(books, members, strict=True):
        book.enter(1, AUTH, m.leaf, 5, 0.0, 3)
        book.watch(members, m.identity_key, 0.0)
    gens = [0, 0, 0]
    now = 1.0
    epoch, seq = 1, 5
    reports: list[str] = []

    def names(key: bytes) -> str | None:
        return next((m.display_name for m in members if m.identity_key == key), None)

    def send(i: int, chat: bool, body: Beacon | None = None, to: bytes | None = None) -> None:
        nonlocal seq
        seq += 1
        gen, gens[i] = gens[i], gens[i] + 1
        if chat:
            books[i].echoed_chat(epoch, now)
        for j, other in enumerate(books):
            if j != i and to in (None, members[j].identity_key):
                other.received(members[i], epoch, gen, chat, now)
                if body is not None:
                    reports.extend(other.read_beacon(members[i], body, now))

    def beacons_due() -> None:
        for i, book in enumerate(books):
            if book.beacon_due(now):
                to = book.addressee
                send(i, False, book.beacon(seq, now), to)
            reports.extend(book.poll(now, names, _online))

    for op, arg in [*script, ("wait", 120)]:
        if op == "wait":
            for _ in range(arg):
                now += 1.0
                beacons_due()
            continue
        if op == "commit":
            seq += 1
            epoch += 1
            gens[:] = [0, 0, 0]
            chosen = speakers([m.leaf for m in members], arg)
            for j, book in enumerate(books):
                confirm = members[arg].identity_key if j in chosen else None
                book.enter(epoch, AUTH + bytes([epoch]), j, seq, now, 3, confirm=confirm)
                if j == arg:
                    book.own_commit(epoch, True, now)
                else:
                    book.commit_from(members[arg], epoch, now)
            beacons_due()
            continue
        gens[arg] += op in ("burn", "refused")  # the generation is used all the same
        if op == "refused":
            books[arg].beacon(0, now)
            books[arg].retry(now)
            continue
        send(arg, True)
        beacons_due()
    assert reports == []


@settings(max_examples=400, deadline=None)
@given(
    st.sets(st.integers(0, 40), min_size=1, max_size=20),
    st.sets(st.integers(0, 40), max_size=20),
    st.integers(0, 41),
    st.integers(0, 41),
    st.integers(1, 4),
)
def test_is_speaker_says_what_speakers_lists(
    leaves: set[int], offline: set[int], committer: int, me: int, k: int
) -> None:
    """The walk to our leaf decides as the list of every online leaf does, committer and ours in
    the roster or not, online or not."""

    def online(lf: int) -> bool:
        return lf not in offline

    listed = speakers((lf for lf in leaves if online(lf)), committer, k)
    assert is_speaker(me, committer, leaves, online, k) == (me in listed)


def test_watching_a_roster_follows_its_members_and_skips_the_same_one() -> None:
    carol = Member(2, "carol", b"c" * 32)
    book = BeaconBook()
    roster = {0: ALICE, 1: BOB, 2: carol}
    book.watch_roster(roster, ALICE.identity_key, 1.0)
    assert book._watched == {BOB.identity_key: 1.0, carol.identity_key: 1.0}
    book.watch_roster(roster, ALICE.identity_key, 5.0)  # the same roster: counting goes on
    assert book._watched == {BOB.identity_key: 1.0, carol.identity_key: 1.0}
    smaller = {0: ALICE, 2: carol}
    book.watch_roster(smaller, ALICE.identity_key, 6.0)
    fresh = BeaconBook()
    fresh.watch([ALICE, BOB, carol], ALICE.identity_key, 1.0)
    fresh.watch(smaller.values(), ALICE.identity_key, 6.0)
    assert book._watched == fresh._watched == {carol.identity_key: 1.0}
