"""The ring behind the Group: joins, leaves and /rekey rerun the ring at every member of the new
roster, rounds and the confirmation go out through the outbox, a missing member times out by
name and a retry completes once it is back, and the other scheme's messages are refused.

A tiny in-memory room stands in for the relay: one total order, every member reads it from its
own cursor, and the session's only job (send what ``data_to_send()`` returns) is ``Room.pump``.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
from group_harness import Harness
from ring_room import Room, grown

from groupchat.core.commit import CommitMessage
from groupchat.core.errors import (
    ConfigError,
    EpochError,
    GroupChatError,
    UsageError,
    WrongSchemeError,
)
from groupchat.core.events import EpochChanged, RekeyProgress, RekeyTimedOut, RemovedFromGroup
from groupchat.core.group import Group, GroupConfig
from groupchat.core.key_schedule import derive_epoch_secrets
from groupchat.core.message_protection import WireFormat, sign_framed_content
from groupchat.core.schemes.ring_message import RING_WIRE_FORMAT
from groupchat.lab.keeper import harvest


def test_adds_rerun_the_ring_and_everyone_agrees() -> None:
    room = grown(4)
    assert all(g.scheme == "ring" and g.epoch == 3 for g in room.members.values())
    last = room.events["m1"][-1]
    assert isinstance(last, EpochChanged) and last.epoch == 3
    assert any(isinstance(ev, RekeyProgress) for ev in room.events["m1"])


def test_rekey_and_remove_and_the_removed_member_cannot_read() -> None:
    room = grown(4)
    before = room.members["m0"].epoch_authenticator
    room.commit("m1", update=True)
    room.pump()
    room.assert_agreement()
    assert room.members["m0"].epoch_authenticator != before
    gone = room.members["m3"]
    room.commit("m0", remove=["m3"])
    room.pump()
    assert isinstance(room.events["m3"][-1], RemovedFromGroup)
    room.assert_agreement()
    data = room.members["m1"].encrypt(b"after the removal")
    with pytest.raises(UsageError):
        gone.receive(data)  # it deleted its state; and the ring ran without it:
    assert room.members["m1"].member(room.members["m1"].my_leaf)
    assert all(m.display_name != "m3" for m in room.members["m1"].members())


def test_a_missing_member_times_out_by_name_and_a_retry_completes_when_it_is_back() -> None:
    room = grown(3)
    room.offline.add("m2")
    room.commit("m0", update=True)
    room.pump()
    assert room.members["m0"].epoch == 2  # the ring cannot finish without m2
    room.clock.now += 31
    timed_out = room.members["m0"].tick()
    assert isinstance(timed_out, RekeyTimedOut) and timed_out.epoch == 3  # the epoch being agreed
    assert [m.display_name for m in timed_out.missing] == ["m2"]
    room.drain("m0")  # the retry's round 1 (attempt 1, fresh ephemerals)
    room.offline.clear()
    room.pump()
    room.assert_agreement()
    assert room.members["m0"].epoch == 3
    assert room.stale > 0  # m2's attempt-0 messages reached members already on attempt 1


def test_a_tree_commit_is_refused_by_a_ring_group_and_the_reverse() -> None:
    room = grown(2)
    h = Harness()
    h.add("m0", 1)
    tree_commit = h.members["m1"].commit(update=True)
    with pytest.raises(WrongSchemeError, match="built for a tree group"):
        room.members["m0"].receive(_resigned(tree_commit, room.members["m1"]))
    ring_commit = room.members["m1"].commit(update=True)
    with pytest.raises(WrongSchemeError, match="built for a ring group"):
        h.members["m0"].receive(_resigned(ring_commit, h.members["m1"]))
    room.send("m1", ring_commit)  # the real one: its ring's round messages go to the room
    room.pump()
    rounds = [d for d in room.log if int.from_bytes(d[2:4], "big") == RING_WIRE_FORMAT]
    with pytest.raises(WrongSchemeError, match="ring handshake message"):
        h.members["m0"].receive(rounds[-1])


def _resigned(data: bytes, signer: Group) -> bytes:
    """The operations of ``data`` in a commit signed by ``signer`` on its own group's epoch."""
    msg = CommitMessage.decode(data)
    content = dataclasses.replace(
        msg.content, group_id=signer.group_id, epoch=signer.epoch, sender=signer.my_leaf
    )
    sig = sign_framed_content(
        signer.suite, signer._identity.signing_key, WireFormat.PUBLIC_MESSAGE, content, signer._ctx_bytes
    )
    return CommitMessage(content, msg.commit, sig, msg.confirmation_tag).encode()


def test_commits_wait_for_the_running_ring() -> None:
    room = grown(2)
    room.commit("m0", update=True)
    assert room.members["m0"].data_to_send() == []
    room.pump()  # done: but while it runs, a second commit is refused
    room.offline.add("m1")
    room.commit("m0", update=True)
    room.pump()
    with pytest.raises(UsageError, match="still agreeing"):
        room.members["m0"].commit(update=True)
    stale = room.log[-1]
    room.offline.clear()
    room.pump()
    room.assert_agreement()
    with pytest.raises((EpochError, GroupChatError)):
        room.members["m1"].receive(stale)


def test_removed_member_keeps_nothing_that_derives_the_next_epoch() -> None:
    """A keeper: every 32-byte value of the removed member's state after every message it took in
    (ephemerals and edge keys included, while they existed), and every 32-byte window of the room's
    traffic, tried as the new epoch's commit_secret on top of the init secret it starts from."""
    room = grown(3)
    victim = room.members["m2"]
    shared = {
        id(victim.suite): victim.suite,
        id(victim._identity): victim._identity,
        id(victim.config): victim.config,
    }
    kept: set[bytes] = set()
    room.watch = lambda name: (
        kept.update(harvest(copy.deepcopy(victim, dict(shared)))) if name == "m2" else None
    )
    for _ in range(2):  # two rekeys with the victim in the ring
        room.commit("m0", update=True)
        room.pump()
    init_before = victim._secrets.init_secret
    assert init_before in kept  # control: it holds the init secret the next epoch starts from
    room.commit("m0", remove=["m2"])
    room.pump()
    room.assert_agreement()
    traffic = {d[i : i + 32] for d in room.log for i in range(len(d) - 31)}
    alive = room.members["m0"]
    real = alive.epoch_authenticator
    for cs in kept | traffic:
        assert (
            derive_epoch_secrets(alive.suite, init_before, cs, alive._ctx_bytes).epoch_authenticator != real
        )


def test_the_round_deadline_is_each_members_own_config_and_survives_a_restore() -> None:
    """GroupConfig.ring_round_timeout (the demo and the attack tests use a short one): a round
    missing m2 times out after that many seconds, not before; a restored member takes the deadline
    of the config it is restored with."""
    room = Room(ring_round_timeout=5.0)
    room.create("m0")
    for name in ("m1", "m2"):
        room.commit("m0", add=[name])
        room.pump()
    m0 = room.members["m0"]
    stored = m0.export_state()
    assert Group.restore(stored, m0._identity, room.config)._scheme.timeout == 5.0
    assert Group.restore(stored, m0._identity, GroupConfig(clock=room.clock))._scheme.timeout == 30.0
    room.offline.add("m2")
    room.commit("m0", update=True)
    room.pump()
    room.clock.now += 4.5
    assert m0.tick() is None  # within the deadline
    room.clock.now += 1.0
    timed_out = m0.tick()
    assert isinstance(timed_out, RekeyTimedOut) and [m.display_name for m in timed_out.missing] == ["m2"]


@pytest.mark.parametrize("value", [0, -1.0, 3600.5, True, float("nan"), "30"])
def test_a_bad_round_deadline_is_a_config_error(value: object) -> None:
    with pytest.raises(ConfigError, match="ring_round_timeout must be a number of seconds"):
        GroupConfig(ring_round_timeout=value)  # type: ignore[arg-type]
