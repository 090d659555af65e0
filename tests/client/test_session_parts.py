"""The session's small parts without a network: payload framing, application content, the
commit coordinator's turn rule, backoff and the outbound queue."""

from __future__ import annotations

import contextlib
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from groupchat.client.app_content import AppContent, ContentKind, UnknownContentKindError
from groupchat.client.backoff import Backoff
from groupchat.client.coordinator import AddDuty, RemoveDuty, is_my_turn, plan_commit
from groupchat.client.outbound_queue import OutboundQueue
from groupchat.client.room_payload import PayloadKind, RoomPayload, UnknownPayloadKindError
from groupchat.client.session import SessionSettings, group_id_for_room, member_id
from groupchat.core.errors import (
    GroupChatError,
    InvalidValueError,
    TrailingDataError,
    TruncatedError,
    UsageError,
)
from groupchat.core.group import GroupConfig
from groupchat.core.identity import Identity, JoinRequest

# --- room payloads ----------------------------------------------------------------------------


@given(st.sampled_from(list(PayloadKind)), st.binary(min_size=1, max_size=64))
def test_room_payload_round_trips(kind: PayloadKind, body: bytes) -> None:
    if kind is PayloadKind.GROUP_CREATED:
        body = (body * 16)[:16]
    if kind is PayloadKind.SYNC:
        body = (body * 8)[:8]
    assert RoomPayload.decode(RoomPayload(kind, body).encode()) == RoomPayload(kind, body)


@given(st.binary(max_size=40))
def test_room_payload_decode_raises_only_groupchat_errors(data: bytes) -> None:
    with contextlib.suppress(GroupChatError):  # anything else escapes and fails the test
        RoomPayload.decode(data)


def test_room_payload_rejections() -> None:
    with pytest.raises(UnknownPayloadKindError, match="kind 200 is unknown"):
        RoomPayload.decode(b"\xc8abc")
    with pytest.raises(TruncatedError, match="empty"):
        RoomPayload.decode(b"")
    with pytest.raises(TruncatedError, match="CORE has an empty body"):
        RoomPayload.decode(bytes([PayloadKind.CORE]))
    with pytest.raises(InvalidValueError, match="16 bytes"):
        RoomPayload.decode(bytes([PayloadKind.GROUP_CREATED]) + b"short")


# --- application content ----------------------------------------------------------------------


@given(st.binary(min_size=8, max_size=8), st.text(max_size=50))
def test_chat_content_round_trips(msg_id: bytes, text: str) -> None:
    assert AppContent.decode(AppContent.chat(msg_id, text).encode()) == AppContent.chat(msg_id, text)


def test_app_content_rejections() -> None:
    assert AppContent.decode(AppContent.leave().encode()).kind is ContentKind.LEAVE
    with pytest.raises(UnknownContentKindError, match="type 9 is unknown"):
        AppContent.decode(b"\x09hi")
    with pytest.raises(TrailingDataError):
        AppContent.decode(bytes([ContentKind.LEAVE]) + b"x")
    with pytest.raises(TruncatedError):
        AppContent.decode(bytes([ContentKind.CHAT]) + b"1234")
    with pytest.raises(InvalidValueError, match="UTF-8"):
        AppContent.decode(bytes([ContentKind.CHAT]) + b"12345678\xff")


# --- who commits -------------------------------------------------------------------------------


def test_turns_go_by_leaf_then_fall_back_one_step_at_a_time() -> None:
    online = [7, 2, 4]
    assert is_my_turn(2, online, since=10.0, now=10.0, step=3.0)
    assert not is_my_turn(4, online, since=10.0, now=12.9, step=3.0)
    assert is_my_turn(4, online, since=10.0, now=13.0, step=3.0)
    assert not is_my_turn(7, online, since=10.0, now=15.9, step=3.0)
    assert is_my_turn(7, online, since=10.0, now=16.0, step=3.0)
    assert not is_my_turn(5, online, since=0.0, now=100.0, step=3.0)  # offline members never act
    # The subject of a removal is not in line for it.
    assert is_my_turn(4, online, since=10.0, now=10.0, step=3.0, exclude=2)
    # A duty that is not due yet (an eviction's grace period) is nobody's turn.
    assert not is_my_turn(2, online, since=11.0, now=10.0, step=3.0)


def _request(name: str) -> JoinRequest:
    cfg = GroupConfig()
    return JoinRequest.create(cfg.suite(), Identity.generate(), b"g", name, os.urandom).request


def test_plan_commit_skips_members_and_self_removal() -> None:
    me, other = Identity.generate(), Identity.generate()
    members = {0: me.public_key, 1: other.public_key}
    carol, dave = _request("carol"), _request("dave")
    plan = plan_commit(
        my_leaf=0,
        members=members,
        online_leaves=[0, 1],
        adds=[AddDuty(carol, 0.0), AddDuty(carol, 0.0), AddDuty(dave, 5.0)],
        removes=[RemoveDuty(0, 0.0, "left"), RemoveDuty(1, 0.0, "left"), RemoveDuty(3, 0.0, "left")],
        now=1.0,
        step=3.0,
    )
    assert tuple(d.request for d in plan.add) == (carol,)  # dave's is not due for us yet; carol's once only
    assert [d.leaf for d in plan.remove] == [1]  # never ourselves, never an empty leaf
    other_view = plan_commit(
        my_leaf=1,
        members=members,
        online_leaves=[0, 1],
        adds=[AddDuty(carol, 0.0)],
        removes=[],
        now=1.0,
        step=3.0,
    )
    assert not other_view  # leaf 1 waits for leaf 0 first


# --- backoff and the queue -----------------------------------------------------------------------


def test_backoff_grows_with_jitter_and_resets() -> None:
    b = Backoff(0.2, 10.0)
    delays = [b.next() for _ in range(12)]
    assert all(0.1 <= d <= 10.0 for d in delays)
    assert max(delays[6:]) > 1.0  # the range grew
    b.reset()
    assert b.next() <= 0.2
    with pytest.raises(ValueError):
        Backoff(1.0, 0.5)


def test_backoff_delays_grow_steadily_whatever_the_jitter() -> None:
    """Issue 15: the delays jumped around (full jitter: 9.1 s, then 0.3 s). Whatever the random
    draws (here the extremes, alternating), each delay is in the top quarter below its cap, so the
    delays never fall while the cap doubles, and stay within 25 % of the maximum once there."""
    draws = iter([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00"] * 20)
    b = Backoff(0.2, 10.0, rand=lambda _n: next(draws))
    delays = [b.next() for _ in range(12)]
    caps = [min(10.0, 0.2 * 2**n) for n in range(12)]
    assert all(0.75 * cap <= d <= cap for d, cap in zip(delays, caps, strict=True)), delays
    growing = [d for d, cap in zip(delays, caps, strict=True) if cap < 10.0]
    assert growing == sorted(growing) and len(growing) == 6, delays
    assert min(delays[6:]) >= 7.5
    assert b.attempts == 12


def test_outbound_queue_keeps_typing_order_through_requeues() -> None:
    ids = iter(bytes([i]) * 8 for i in range(100))
    q = OutboundQueue(lambda: next(ids))
    a, b, c = q.add("a"), q.add("b"), q.add("c")
    q.mark_sent(a, b"da", 1, 10)
    q.mark_sent(b, b"db", 1, 11)
    assert q.peek() is c and q.in_flight == 2
    assert q.echoed(b"da") is a and q.echoed(b"da") is None
    assert q.by_request(11) is b
    q.requeue(b)  # refused: back in front of c
    assert q.peek() is b and q.in_flight == 0
    q.mark_sent(b, b"db2", 2, 12)
    assert q.requeue_in_flight() == 1
    assert [q.peek()] == [b] and b.msg_id == bytes([1]) * 8 and b.attempts == 2
    with pytest.raises(ValueError):
        q.mark_sent(c, b"dc", 2, 13)


def test_outbound_queue_finds_overdue_echoes_oldest_first() -> None:
    ids = iter(bytes([i]) * 8 for i in range(100))
    q = OutboundQueue(lambda: next(ids))
    a, b, c = q.add("a"), q.add("b"), q.add("c")
    assert q.oldest_sent() is None and q.overdue(99.0) == []
    q.mark_sent(a, b"da", 1, 10, now=1.0)
    q.mark_sent(b, b"db", 1, 11, now=2.0)
    q.mark_sent(c, b"dc", 1, 12, now=3.0)
    assert q.oldest_sent() == 1.0
    assert q.overdue(2.5) == [a, b]
    q.echoed(b"da")
    assert q.oldest_sent() == 2.0 and q.overdue(2.5) == [b] and q.overdue(2.0) == []


# --- settings and names ----------------------------------------------------------------------------


def test_settings_are_checked_with_clear_errors() -> None:
    ok = {"relay_url": "ws://127.0.0.1:1", "room": "r", "name": "alice"}
    SessionSettings(**ok)
    with pytest.raises(UsageError, match="ws:// or wss://"):
        SessionSettings(**{**ok, "relay_url": "http://x"})
    assert SessionSettings(**ok, scheme="ring").scheme == "ring"
    with pytest.raises(UsageError, match="unknown scheme 'star': choose tree or ring"):
        SessionSettings(**ok, scheme="star")
    with pytest.raises(UsageError, match="room name"):
        SessionSettings(**{**ok, "room": "x" * 65})
    with pytest.raises(UsageError, match="cannot be used"):
        SessionSettings(**{**ok, "name": "a\nb"})
    with pytest.raises(UsageError, match="add_timeout"):
        SessionSettings(**ok, add_timeout=0)
    with pytest.raises(UsageError, match="reconnect_min"):
        SessionSettings(**ok, reconnect_min=5, reconnect_max=1)
    with pytest.raises(UsageError, match="update_every"):
        SessionSettings(**ok, update_every=0)


def test_ids() -> None:
    key = Identity.generate().public_key
    assert len(member_id(key)) == 32 and member_id(key) == member_id(key)
    assert member_id(key) != member_id(Identity.generate().public_key)
    assert group_id_for_room("a") != group_id_for_room("b")


# --- the /tree snapshot -------------------------------------------------------------------------------


def test_the_tree_snapshot_names_who_chose_a_joiners_leaf_until_its_update() -> None:
    from groupchat.client.core_worker import snapshot
    from groupchat.core.events import EpochChanged
    from groupchat.core.group import Group
    from groupchat.core.identity import Identity, JoinRequest
    from groupchat.core.outbox import OutboundKind

    gid = b"groupchat room:tree"
    alice = Group.create(Identity.generate(), gid, "alice")
    pending = JoinRequest.create(alice.suite, Identity.generate(), gid, "bob")
    ev = alice.receive(alice.commit(add=[pending.request]))
    assert isinstance(ev, EpochChanged) and ev.own
    (welcome,) = [o.data for o in alice.data_to_send() if o.kind is OutboundKind.WELCOME]
    bob = Group.join(pending, welcome)
    # alice chose bob's first leaf secret (the taint rule): the view says so at both members.
    assert snapshot(alice).taints == ((1, "alice"),) == snapshot(bob).taints
    update = bob.commit(update=True)
    alice.receive(update)
    bob.receive(update)
    assert snapshot(alice).taints == () == snapshot(bob).taints


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


@given(
    st.integers(0, 20),
    st.lists(st.integers(0, 20), max_size=30),
    st.floats(0, 1e6),
    st.floats(0.01, 100),
    st.integers(-1, 20),
)
def test_a_turn_is_the_rank_among_the_online_leaves_in_leaf_order(
    me: int, online: list[int], since: float, step: float, exclude: int
) -> None:
    """turn_at counts our rank without sorting: the same as the index in the sorted leaves."""
    from groupchat.client.coordinator import turn_at

    ranked = sorted(leaf for leaf in set(online) if leaf != exclude)
    expected = since + ranked.index(me) * step if me in ranked else None
    assert turn_at(me, online, since, step, exclude) == expected
