"""The core's outbox, bytes in and bytes out: what the protocol requires to be sent comes out of
``Group.data_to_send()``, addressed to the room or to one joiner, and nothing else does.

Each test drives real groups through a list standing in for the relay's total order; the session
would send exactly the drained items. (In the style of h11's tests: no I/O, no mocks.)
"""

from __future__ import annotations

import pytest
from group_harness import Harness

from groupchat.core.commit import CommitMessage, OpType
from groupchat.core.errors import UsageError
from groupchat.core.events import EpochChanged
from groupchat.core.group import Group
from groupchat.core.outbox import ROOM, Joiner, Outbound, OutboundKind


def ops(data: bytes) -> list[OpType]:
    return [op.type for op in CommitMessage.decode(data).commit.operations]


def drained_everywhere(h: Harness) -> None:
    """After any drain, a settled group has nothing left to send."""
    for name, group in h.members.items():
        assert group.data_to_send() == [], name


def settled(n: int) -> Harness:
    """n members, every joiner's first update applied (the harness does not drain)."""
    h = Harness()
    if n > 1:
        h.add("m0", n - 1)
    for name in list(h.members):
        if h.members[name].tainted_by(h.leaf(name)) is not None:
            h.update(name)
    for group in h.members.values():  # the harness delivered the welcomes itself
        assert {o.kind for o in group.data_to_send()} <= {OutboundKind.WELCOME}
    drained_everywhere(h)
    return h


def test_welcome_is_released_by_the_echo_and_addressed_to_each_joiner() -> None:
    h = settled(2)
    a = h.members["m0"]
    j1, j2 = h.join_request("j1"), h.join_request("j2")
    commit = a.commit(add=[j1.request, j2.request])
    # Not before the echo: the commit might still lose its epoch (RFC 9420 §14).
    assert a.data_to_send() == []
    h.deliver(commit)
    out = a.data_to_send()
    assert [(o.to, o.kind) for o in out] == [
        (Joiner.of(j1.request), OutboundKind.WELCOME),
        (Joiner.of(j2.request), OutboundKind.WELCOME),
    ]
    assert out[0].data == out[1].data  # one Welcome, sealed to both init keys
    assert a.data_to_send() == []  # drained exactly once
    for pj, item in zip((j1, j2), out, strict=True):
        assert isinstance(item.to, Joiner) and item.to.identity_key == pj.request.identity_key
        joined = Group.join(pj, item.data, h.config)
        assert joined.epoch == a.epoch and joined.epoch_authenticator == a.epoch_authenticator


def test_joiners_first_update_comes_out_after_join_and_heals_the_taint() -> None:
    h = settled(2)
    pj = h.join_request("j")
    commit = h.members["m0"].commit(add=[pj.request])
    h.deliver(commit)
    (welcome,) = h.members["m0"].data_to_send()
    j = Group.join(pj, welcome.data, h.config)
    assert j.tainted_by(j.my_leaf) == 0
    out = j.data_to_send()
    assert len(out) == 1 and out[0].to is ROOM and out[0].kind is OutboundKind.COMMIT
    assert ops(out[0].data) == [OpType.UPDATE]
    assert j.has_pending_commit and j.data_to_send() == []  # one update in flight, not two
    h.members["j"] = j
    events = h.deliver(out[0].data)
    assert all(isinstance(ev, EpochChanged) for ev in events.values())
    assert j.tainted_by(j.my_leaf) is None and not j.holds_init_key
    drained_everywhere(h)
    h.assert_consistent(["j", "m0"])


def test_lost_add_is_rebuilt_on_the_new_epoch() -> None:
    h = settled(3)
    a, b = h.members["m0"], h.members["m1"]
    pj = h.join_request("j")
    lost = a.commit(add=[pj.request])
    won = b.commit(update=True)
    events = h.deliver(won)
    assert isinstance(events["m0"], EpochChanged) and events["m0"].superseded_own_commit
    assert not a.has_pending_commit  # nothing is built until the session drains
    (rebuilt,) = a.data_to_send()
    assert rebuilt.to is ROOM and rebuilt.kind is OutboundKind.COMMIT and rebuilt.data != lost
    assert CommitMessage.decode(rebuilt.data).content.epoch == a.epoch
    assert ops(rebuilt.data) == [OpType.ADD]
    h.deliver(rebuilt.data)
    (welcome,) = a.data_to_send()
    assert welcome.to == Joiner.of(pj.request)
    h.members["j"] = Group.join(pj, welcome.data, h.config)
    h.assert_consistent(["j", "m1"])


def test_nothing_is_rebuilt_when_the_winner_did_all_of_it() -> None:
    h = settled(4)
    a, b = h.members["m0"], h.members["m1"]
    a.commit(remove=[h.leaf("m3")])
    won = b.commit(remove=[h.leaf("m3")])
    events = h.deliver(won)
    del h.members["m3"]
    assert isinstance(events["m0"], EpochChanged) and events["m0"].superseded_own_commit
    assert a.data_to_send() == []
    assert not a.has_pending_commit


def test_only_what_the_winner_left_undone_is_rebuilt() -> None:
    h = settled(4)
    a, b = h.members["m0"], h.members["m1"]
    a.commit(remove=[h.leaf("m2"), h.leaf("m3")])
    h.deliver(b.commit(remove=[h.leaf("m3")]))
    del h.members["m3"]
    (rebuilt,) = a.data_to_send()
    message = CommitMessage.decode(rebuilt.data)
    assert [(op.type, op.leaf) for op in message.commit.operations if op.type != OpType.REKEY] == [
        (OpType.REMOVE, h.leaf("m2"))
    ]
    h.deliver(rebuilt.data)
    del h.members["m2"]
    h.assert_consistent(["m0", "m1"])


def test_an_explicit_commit_replaces_an_undrained_rebuild() -> None:
    h = settled(3)
    a, b = h.members["m0"], h.members["m1"]
    a.commit(update=True)
    h.deliver(b.commit(update=True))
    explicit = a.commit(remove=[h.leaf("m2")])
    assert a.data_to_send() == []  # the rebuild is gone: the caller chose what to commit
    h.deliver(explicit)
    del h.members["m2"]
    assert a.data_to_send() == []


def test_a_removed_member_has_nothing_to_send() -> None:
    h = settled(3)
    h.members["m2"].commit(update=True)
    h.remove("m0", "m2")
    assert h.members["m0"].data_to_send() == []


def test_outbound_is_frozen_and_hides_its_bytes() -> None:
    item = Outbound(ROOM, b"secret-ish", OutboundKind.COMMIT)
    assert "secret-ish" not in repr(item) and repr(item.to) == "ROOM"
    with pytest.raises(AttributeError):
        item.data = b"x"  # type: ignore[misc]


def test_commit_still_returns_its_bytes_and_does_not_queue_them() -> None:
    h = settled(2)
    data = h.members["m0"].commit(update=True)
    assert ops(data) == [OpType.UPDATE]
    assert h.members["m0"].data_to_send() == []
    with pytest.raises(UsageError):
        h.members["m0"].commit(update=True)
