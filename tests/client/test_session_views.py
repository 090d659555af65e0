"""The session's views (client/session/views.py): a roster built reusing the entries of the
roster before is the roster built afresh."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from groupchat.client.session import member_id
from groupchat.client.session.bounds import RoomPresence
from groupchat.client.session.views import RosterBook, RosterMade, roster_entries
from groupchat.client.trust import TrustStore
from groupchat.core.events import Member


def key(i: int) -> bytes:
    return i.to_bytes(32, "big")


_change = st.one_of(
    st.tuples(st.just("join"), st.integers(0, 9), st.sampled_from(["bob", "alice", "b\u202eob", "carol"])),
    st.tuples(st.just("leave"), st.integers(0, 9), st.just("")),
    st.tuples(st.just("label"), st.integers(0, 9), st.sampled_from(["bob·1a2b", "alice", "x\x1by"])),
    st.tuples(st.just("online"), st.integers(0, 9), st.just("")),
    st.tuples(st.just("trust"), st.integers(0, 9), st.just("")),
    st.tuples(st.just("connected"), st.integers(0, 9), st.just("")),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_change, max_size=20))
def test_a_roster_reusing_unchanged_entries_is_the_roster_built_afresh(
    changes: list[tuple[str, int, str]],
) -> None:
    trust = TrustStore(None)
    me = key(0)
    members = {0: Member(0, "me", me)}
    labels: dict[bytes, str] = {}
    present: set[bytes] = set()
    connected = True
    made: RosterMade = {}
    for what, i, text in changes:
        k = key(i)
        if what == "join" and i not in members:
            members[i] = Member(i, text, k)
        elif what == "leave" and i:
            members.pop(i, None)
        elif what == "label":
            labels[k] = text
        elif what == "online":
            present ^= {member_id(k)}
        elif what == "trust":
            if not trust.untrust(k):
                trust.trust(k, "someone")
        elif what == "connected":
            connected = not connected
        reused = roster_entries(members, me, connected, present, trust, labels, made)
        assert reused == roster_entries(members, me, connected, present, trust, labels)
        assert set(made) == {m.identity_key for m in members.values()}


def test_a_member_whose_join_request_is_unchecked_is_shown_unverified_whatever_the_store_says() -> None:
    """Right after a join the welcome's roster is its signer's claim (core/epoch/roster.py): a
    listed key the user verified elsewhere is not shown verified until the check is done."""
    trust = TrustStore(None)
    me, dave = key(0), key(1)
    trust.trust(dave, "dave")
    members = {0: Member(0, "me", me), 1: Member(1, "dave", dave)}
    made: RosterMade = {}
    checking = roster_entries(members, me, True, set(), trust, {}, made, unchecked={dave})
    assert [e.trust.value for e in checking] == ["verified", "unverified"]
    checked = roster_entries(members, me, True, set(), trust, {}, made)
    assert [e.trust.value for e in checked] == ["verified", "verified"]


_book_change = st.one_of(
    _change,
    st.tuples(st.just("rename"), st.integers(1, 9), st.sampled_from(["bob", "dave", "b\u202eob"])),
    st.tuples(st.just("unchecked"), st.integers(0, 9), st.just("")),
    st.tuples(st.just("nothing"), st.integers(0, 9), st.just("")),
    st.tuples(st.just("cleared"), st.integers(0, 9), st.just("")),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_book_change, max_size=25))
def test_the_roster_book_gives_the_roster_built_afresh(changes: list[tuple[str, int, str]]) -> None:
    """The roster book (made again only where the members or labels changed, the rest kept while
    presence, trust marks, connection and unchecked keys are as before) equals a fresh build. Each
    change replaces the mappings, as the machine does, keeping the Member objects that stay."""
    trust = TrustStore(None)
    me = key(0)
    members: dict[int, Member] = {0: Member(0, "me", me)}
    labels: dict[bytes, str] = {}
    present = RoomPresence(member_id(me))
    connected = True
    unchecked: frozenset[bytes] = frozenset()
    book = RosterBook()
    for what, i, text in changes:
        k = key(i)
        if what == "join" and i not in members:
            members = {**members, i: Member(i, text, k)}
        elif what == "rename" and i in members:
            members = {**members, i: Member(i, text, k)}  # the same key at its leaf, another name
        elif what == "leave" and i:
            members = {leaf: m for leaf, m in members.items() if leaf != i}
        elif what == "label":
            labels = {**labels, k: text}
        elif what == "online":
            if member_id(k) in present:
                present.discard(member_id(k))
            else:
                present.add(member_id(k), member=True)
        elif what == "trust":
            if not trust.untrust(k):
                trust.trust(k, "someone")
        elif what == "connected":
            connected = not connected
        elif what == "unchecked":
            unchecked = unchecked ^ {k}
        elif what == "cleared":  # a reconnect's Joined list
            present.reset([member_id(key(j)) for j in range(i)], set())
        entries = book.entries(members, me, connected, present, trust, labels, unchecked)
        assert entries == roster_entries(members, me, connected, present, trust, labels, unchecked=unchecked)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["add", "member", "discard", "clear", "reset"]), st.integers(0, 9)))
)
def test_the_presence_version_moves_whenever_the_ids_do(ops: list[tuple[str, int]]) -> None:
    """What is kept per presence version (the online leaves, the roster) is right only if every
    change of the ids moves the version, and names the ids it changed (changed_since)."""
    present = RoomPresence(key(5))
    seen: dict[int, set[bytes]] = {present.version: set()}
    for op, i in ops:
        ids, version = set(present), present.version
        if op == "add":
            present.add(key(i))
        elif op == "member":
            present.add(key(i), member=True)
        elif op == "discard":
            present.discard(key(i))
        elif op == "clear":
            present.clear()
        else:
            present.reset([key(j) for j in range(i)], {key(0)})
        assert set(present) == ids or present.version != version
        seen[present.version] = set(present)
        for then, were in seen.items():  # what changed since then is among the ids it names
            moved = present.changed_since(then)
            assert moved is None or set(present) ^ were <= moved
