"""The session's views (client/session/views.py): a roster built reusing the entries of the
roster before is the roster built afresh."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from groupchat.client.session import member_id
from groupchat.client.session.views import RosterMade, roster_entries
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


def test_the_tree_snapshot_names_each_leaf_node_of_a_member() -> None:
    """The names the /tree view draws, derived from the members, are the tree's names at its leaf
    nodes, blank leaves included (a member removed)."""
    from groupchat.client.session.core_calls import snapshot
    from groupchat.core import tree_math as tm
    from groupchat.core.group import Group
    from groupchat.core.identity import Identity, JoinRequest

    gid = b"groupchat room:tree"
    alice = Group.create(Identity.generate(), gid, "alice")
    pendings = [JoinRequest.create(alice.suite, Identity.generate(), gid, f"m{n}") for n in range(5)]
    alice.receive(alice.commit(add=[p.request for p in pendings]))
    alice.receive(alice.commit(remove=[2]))
    tree = alice._tree
    expected = tuple(
        (m.display_name if x % 2 == 0 and (m := tree.member(x // 2)) is not None else "")
        for x in range(tm.node_width(tree.capacity))
    )
    assert snapshot(alice).labels == expected
    assert "" in expected[:12:2] and sum(1 for name in expected if name) == 5
