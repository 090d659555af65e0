"""A member that vanishes during a ring rekey is removed by a *restart* commit (docs/protocol.md
§8.3): a commit on the ring's epoch that only removes, signed over the commit whose ring it
restarts. The ring reruns without the removed; every member confirms in round 3; everyone agrees,
and the removed member's kept state derives nothing of the new epoch."""

from __future__ import annotations

import copy
import time

import pytest
from ring_room import GROUP_ID, Room, grown

from groupchat.core.admission import Admissibility, RemovalCode, RemovalReason
from groupchat.core.errors import EpochError, InvalidCommitError, UsageError
from groupchat.core.events import EpochChanged, RekeyTimedOut, RemovedFromGroup
from groupchat.core.identity import JoinRequest
from groupchat.core.key_schedule import derive_epoch_secrets
from groupchat.lab.keeper import harvest


def _stalled(n: int, silent: str, committer: str = "m0") -> Room:
    """A group of ``n`` whose ring (after ``committer``'s /rekey) waits for ``silent``, timed out."""
    room = grown(n)
    room.offline.add(silent)
    room.commit(committer, update=True)
    room.pump()
    room.clock.now += 31
    for name, group in room.live().items():
        if name != silent:
            timed_out = group.tick()
            assert isinstance(timed_out, RekeyTimedOut)
            assert silent in [m.display_name for m in timed_out.missing]
            room.drain(name)  # the retries: they wait for the silent member too
    room.pump()
    return room


def last_epoch(room: Room, name: str) -> EpochChanged:
    ev = [e for e in room.events[name] if isinstance(e, EpochChanged)][-1]
    return ev


def _restart(room: Room, by: str, remove: list[str]) -> bytes:
    data = room.members[by].commit(remove=[room.members[r].my_leaf for r in remove])
    room.send(by, data)
    return data


def test_a_silent_member_is_removed_by_a_restart_and_the_others_agree() -> None:
    room = _stalled(4, "m3")
    epoch = room.members["m0"].epoch
    _restart(room, "m1", ["m3"])
    silent = room.members.pop("m3")  # it never comes back
    room.pump()
    room.assert_agreement()
    for name in ("m0", "m1", "m2"):
        ev = last_epoch(room, name)
        assert ev.epoch == epoch + 1
        assert [m.display_name for m in ev.removed] == ["m3"] and ev.updated
        assert ev.committer.display_name == "m1"  # the restarter confirms
        assert ev.own == (name == "m1")
    assert [m.display_name for m in room.members["m0"].members()] == ["m0", "m1", "m2"]
    assert silent.epoch == epoch


def test_the_removed_member_keeps_nothing_that_derives_the_new_epoch() -> None:
    room = grown(3)
    victim = room.members["m2"]
    shared = {id(x): x for x in (victim.suite, victim._identity, victim.config)}
    kept: set[bytes] = set()
    room.watch = lambda name: (
        kept.update(harvest(copy.deepcopy(victim, dict(shared)))) if name == "m2" else None
    )
    room.commit("m0", update=True)
    room.pump()
    init_before = victim._secrets.init_secret
    kept.update(harvest(copy.deepcopy(victim, dict(shared))))
    assert init_before in kept  # control: it holds the init secret the next epoch starts from
    # m2 takes the next commit (and sends its round 1), then goes silent and is restarted out.
    room.commit("m1", update=True)
    while room.cursor["m2"] < len(room.log):
        victim.receive(room.log[room.cursor["m2"]])
        room.cursor["m2"] += 1
        room.drain("m2")
        room.watch("m2")
    room.offline.add("m2")
    room.pump()
    assert room.members["m0"]._ring is not None  # the ring waits for m2's round 2
    _restart(room, "m0", ["m2"])
    room.pump()
    room.members.pop("m2")
    room.assert_agreement()
    traffic = {d[i : i + 32] for d in room.log for i in range(len(d) - 31)}
    alive = room.members["m0"]
    real = alive.epoch_authenticator
    for cs in kept | traffic:
        secrets = derive_epoch_secrets(alive.suite, init_before, cs, alive._ctx_bytes)
        assert secrets.epoch_authenticator != real


def test_the_rings_committer_can_be_the_one_removed() -> None:
    room = grown(3)
    room.commit("m2", update=True)  # m2 commits, then vanishes before the ring
    room.offline.add("m2")
    room.pump()
    _restart(room, "m0", ["m2"])
    room.members.pop("m2")
    room.pump()
    room.assert_agreement()
    assert last_epoch(room, "m1").committer.display_name == "m0"


def test_a_joiner_of_the_rings_commit_follows_the_restart() -> None:
    room = grown(3)
    room.offline.add("m2")
    room.commit("m0", add=["j"])
    room.pump()
    assert room.members["j"].joining
    _restart(room, "m1", ["m2"])
    room.members.pop("m2")
    room.pump()
    room.assert_agreement()
    assert not room.members["j"].joining
    assert sorted(m.display_name for m in room.members["j"].members()) == ["j", "m0", "m1"]


def test_a_restart_that_removes_a_joiner_of_the_rings_commit_removes_it() -> None:
    room = grown(2)
    room.commit("m0", add=["j"])
    room.offline.add("m1")  # the ring waits for m1 ...
    room.pump()
    joiner = room.members["j"]
    _restart(room, "m0", ["m1", "j"])  # ... and the restart drops m1 and the joiner
    room.offline.clear()
    room.pump()
    assert any(isinstance(ev, RemovedFromGroup) for ev in room.events["j"])
    assert any(isinstance(ev, RemovedFromGroup) for ev in room.events["m1"])
    ev = last_epoch(room, "m0")
    assert ev.added == () and [m.display_name for m in ev.removed] == ["m1"]
    assert joiner.state.value != "member" and room.members["m0"].members()[0].display_name == "m0"


def test_a_commit_built_before_the_ring_is_not_taken_for_a_restart() -> None:
    room = grown(4)
    stale = room.members["m2"].commit(remove=[room.members["m3"].my_leaf])  # built on the epoch...
    room.members["m2"].discard_pending_commit()
    room.commit("m0", update=True)  # ... that m0's ring commit wins
    room.offline.add("m3")
    room.pump()
    before = room.members["m1"].epoch
    with pytest.raises(EpochError, match="another commit already won this epoch"):
        room.members["m1"].receive(stale)
    assert [m.display_name for m in room.members["m1"].members()] == ["m0", "m1", "m2", "m3"]
    assert room.members["m1"].epoch == before


def test_only_removals_restart_a_ring_and_two_restarts_first_wins() -> None:
    room = _stalled(4, "m3")
    with pytest.raises(UsageError, match="only removals can restart it"):
        room.members["m0"].commit(update=True)
    first = room.members["m1"].commit(remove=[room.members["m3"].my_leaf])
    second = room.members["m2"].commit(remove=[room.members["m3"].my_leaf])
    room.post("m1", first)
    room.post("m2", second)
    room.drain("m1")
    room.drain("m2")
    room.members.pop("m3")
    room.pump()
    room.assert_agreement()
    assert last_epoch(room, "m0").committer.display_name == "m1"
    assert last_epoch(room, "m2").superseded_own_commit


def test_a_restart_with_anything_but_removals_is_refused() -> None:
    room = _stalled(3, "m2")
    group = room.members["m0"]
    with pytest.raises(UsageError, match="only removals"):
        group.commit(add=[room.request("x").request], remove=[2])

def test_a_signed_restart_that_adds_is_refused_by_receivers() -> None:
    """A member that signs a 'restart' carrying an Add (which honest code never builds) is refused."""
    room = _stalled(3, "m2")
    m0, m1 = room.members["m0"], room.members["m1"]
    ring = m0._ring
    assert ring is not None
    from groupchat.core.commit import Commit, CommitMessage, Operation, OpType
    from groupchat.core.message_protection import ContentType, FramedContent, WireFormat, sign_framed_content

    request = room.request("x").request
    ops = (Operation(OpType.REMOVE, 2, ()), Operation(OpType.ADD, 3, (), request))
    content = FramedContent(m0.group_id, m0.epoch, m0.my_leaf, b"", ContentType.COMMIT, Commit(ops).encode())
    sig = sign_framed_content(m0.suite, m0._identity.signing_key, WireFormat.PUBLIC_MESSAGE, content,
                              m0._restart_context(ring))
    forged = CommitMessage(content, Commit(ops), sig, bytes(32)).encode()
    before = [m.display_name for m in m1.members()]
    with pytest.raises(InvalidCommitError, match="may only remove members"):
        m1.receive(forged)
    assert [m.display_name for m in m1.members()] == before


def _offline_after_round2(room: Room, name: str) -> None:
    """Take ``name`` offline once its round-2 message of the ring making epoch 3 is on the log."""
    from groupchat.core.schemes.ring_message import RING_WIRE_FORMAT, RingRound

    leaf = room.members[name].my_leaf

    def watch(who: str) -> None:
        rounds = [RingRound.decode(d) for d in room.log if int.from_bytes(d[2:4], "big") == RING_WIRE_FORMAT]
        if who == name and any(r.epoch == 3 and r.round == 2 and r.sender == leaf for r in rounds):
            room.offline.add(name)

    room.watch = watch


def test_a_restart_ordered_while_members_confirm_restarts_the_ring_for_everyone() -> None:
    """Nobody enters the next epoch before every member's confirmation came through (the same point
    of the order for all), so a restart ordered in round 3 is a restart for everyone."""
    room = grown(3)
    m0, m1 = room.members["m0"], room.members["m1"]
    _offline_after_round2(room, "m0")
    room.commit("m0", update=True)
    room.pump()
    room.watch = None
    assert m1._ring is not None and m1._ring.done is not None and m1.epoch == 2  # confirming
    assert m1.phase.value == "confirming"
    restart = m1.commit(remove=[room.members["m2"].my_leaf])  # ordered before m0's confirmation
    room.send("m1", restart)
    room.offline.clear()
    room.pump()
    room.assert_agreement()
    assert sorted(room.live()) == ["m0", "m1"] and m0.epoch == 3
    assert [m.display_name for m in last_epoch(room, "m0").removed] == ["m2"]


def test_a_member_that_never_confirms_holds_the_epoch_until_a_retry_completes() -> None:
    """The ring's committer speaks in round 2 and vanishes. The others derive the epoch and
    confirm, but nobody enters it on fewer than every member's confirmation: round 3 times out
    naming the committer, the retry is in force where its first message is ordered, and once the
    committer is back everyone completes the retry and agrees."""
    room = grown(3)
    m0, m1, m2 = (room.members[k] for k in ("m0", "m1", "m2"))
    _offline_after_round2(room, "m0")
    room.commit("m0", update=True)
    room.pump()
    room.watch = None
    assert m1.epoch == 2 and m1.phase.value == "confirming"
    assert m1.tick() is None and m1.data_to_send() == []  # not yet past the deadline
    room.clock.now += 31
    for name in ("m1", "m2"):
        timed_out = room.members[name].tick()
        assert isinstance(timed_out, RekeyTimedOut) and timed_out.round == 3 and timed_out.retry
        assert [m.display_name for m in timed_out.missing] == ["m0"]
        room.drain(name)  # the proposal of attempt 1
    room.pump()
    assert m1.epoch == 2 and m2.epoch == 2  # still waiting: the retry needs m0 too
    room.offline.clear()
    room.pump()  # m0 confirms attempt 0 too late (ordered after the retry), then takes part in 1
    room.assert_agreement()
    assert m0.epoch == 3 and m1.epoch == 3




@pytest.mark.parametrize("code", [RemovalCode.REJOINING, RemovalCode.KICKED])
def test_a_restart_removing_a_rejoining_member_lists_it_as_returning(code: RemovalCode) -> None:
    """A restart may only remove, so a member that lost its state inside the ring (its newer
    request is REJOINING) is removed by it and let in again after: removed as rejoining it is on
    the returning list, and its newer request is RETURNING (no invite, no approval); removed as
    kicked it is not, and needs an approval again."""
    room = _stalled(4, "m3")
    lost = room.members["m3"]
    newer = JoinRequest.create(
        lost.suite, lost._identity, GROUP_ID, "m3", wall_clock=lambda: time.time() + 60
    ).request  # a new process's request: strictly newer than the one in the roster
    assert room.members["m1"].classify_request(newer, None, None, time.time()).admissibility is (
        Admissibility.REJOINING
    )
    data = room.members["m1"].commit(remove=[lost.my_leaf], reasons={lost.my_leaf: RemovalReason(code)})
    room.send("m1", data)
    room.members.pop("m3")
    room.pump()
    room.assert_agreement()
    for name in ("m0", "m1", "m2"):
        group = room.members[name]
        assert last_epoch(room, name).removal_reasons[lost._identity.public_key] == RemovalReason(code)
        how = group.classify_request(newer, None, None, time.time()).admissibility
        want = Admissibility.RETURNING if code is RemovalCode.REJOINING else Admissibility.NEEDS_APPROVAL
        assert how is want, name
