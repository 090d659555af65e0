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
