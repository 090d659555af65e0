"""The ring against a malicious member (issue 14): each test mounts one attack through the public
``Group`` API with real crypto and asserts the specific outcome.

* one signed message cannot jump the group to another attempt number, nor kill the running one;
* a member or relay that shows members different rounds never gets two honest members into one
  epoch with different keys: round 3 (every member's signed confirmation) shows it;
* nothing is encrypted at an epoch whose successor removes someone;
* a ring commit at the last epoch is refused by its committer.
"""

from __future__ import annotations

import dataclasses

import pytest
from ring_room import Room, forge, grown, rounds

from groupchat.core.epoch.wire import LAST_EPOCH
from groupchat.core.errors import (
    EpochLimitError,
    HoldMessagesError,
    InvalidPublicKeyError,
    RemoteError,
)
from groupchat.core.events import EpochChanged, FailureKind, RekeyFailed, RekeyTimedOut
from groupchat.core.group import Group
from groupchat.core.schemes.ring import MAX_ATTEMPT
from groupchat.core.schemes.ring_errors import RoundOrderError, WrongAttemptError
from groupchat.core.schemes.ring_message import RingRound
from groupchat.core.schemes.ring_scheme import RingScheme

LOW_ORDER = bytes(32)  # the all-zero point


def run_of(g: Group) -> object:
    scheme = g._scheme
    assert isinstance(scheme, RingScheme)
    return scheme._run


def view(g: Group) -> tuple[object, ...]:
    """What a refused input must leave as it was: the run in force, its state, and the outbox."""
    run = run_of(g)
    return (g.phase, g.epoch, run, getattr(run, "attempt", None), getattr(run, "state", None), len(g._outbox))


def waiting_for(name: str, n: int = 3) -> Room:
    """A ring group of ``n`` whose /rekey ring waits for ``name`` (offline since before the commit)."""
    room = grown(n)
    room.offline.add(name)
    room.commit("m0", update=True)
    room.pump()
    return room


# --- attempt numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", [17, 2**32 - 1])
def test_a_signed_jump_to_a_far_attempt_is_refused_and_the_run_goes_on(attempt: int) -> None:
    """Before: a round-1 message of attempt 2^32-1 moved everyone there, and after its timeout no
    retry was possible, so the ring froze. An attempt more than ATTEMPT_WINDOW (16) ahead is now
    refused: one message cannot jump the group, and a member that missed a few still catches up."""
    room = waiting_for("m2")
    m0 = room.members["m0"]
    like = rounds(room, m0.epoch + 1)[0]
    jump = forge(room, "m1", like, attempt=attempt)
    before = view(m0)
    with pytest.raises(WrongAttemptError, match="more than 16 attempts ahead") as info:
        m0.receive(jump)
    assert info.value.signer == room.members["m1"].my_leaf  # named: it signed it
    assert view(m0) == before
    # The timeouts that follow lead to a retry (attempt 1), and once m2 is back all agree.
    room.clock.now += 31
    for name in ("m0", "m1"):
        timed_out = room.members[name].tick()
        assert isinstance(timed_out, RekeyTimedOut) and timed_out.retry and timed_out.attempt == 0
        room.drain(name)
    room.offline.clear()
    room.pump()
    room.assert_agreement()
    assert m0.epoch == 3


def test_at_the_last_attempt_number_a_timeout_is_reported_once_and_never_raises() -> None:
    room = waiting_for("m2")
    m0 = room.members["m0"]
    scheme = m0._scheme
    assert isinstance(scheme, RingScheme) and scheme._run_input is not None
    scheme.start(*scheme._run_input, attempt=MAX_ATTEMPT)  # where +1 steps would end, one day
    m0.data_to_send()
    room.clock.now += 31
    first = m0.tick()
    assert isinstance(first, RekeyTimedOut) and not first.retry and first.attempt == MAX_ATTEMPT
    assert m0.data_to_send() == []  # nothing to propose: a restart commit is the way on
    for _ in range(3):
        room.clock.now += 31
        assert m0.tick() is None  # once per attempt, and never an exception


@pytest.mark.parametrize("bad", ["low-order key", "round 2 first"])
def test_a_bad_message_of_the_next_attempt_leaves_the_running_attempt(bad: str) -> None:
    """Before: the member abandoned the running attempt on seeing the next one's first message,
    then refused it, and never sent its own round 1 of either: the run died until its timeout."""
    room = waiting_for("m2")
    m0 = room.members["m0"]
    like = dataclasses.replace(rounds(room, m0.epoch + 1)[0], attempt=1)
    if bad == "low-order key":
        data, error = forge(room, "m1", like, value=LOW_ORDER), InvalidPublicKeyError
    else:
        data, error = forge(room, "m1", like, round_=2, view=bytes(32)), RoundOrderError
    before = view(m0)
    with pytest.raises(error) as info:
        m0.receive(data)
    assert info.value.signer == room.members["m1"].my_leaf
    assert view(m0) == before  # attempt 0 is still the one in force, nothing queued
    room.offline.clear()
    room.pump()  # m2's round messages complete attempt 0
    room.assert_agreement()
    assert m0.epoch == 3 and room.stale == 0


# --- no silent split -----------------------------------------------------------------------------


def test_colluders_showing_two_halves_different_rounds_never_split_the_group() -> None:
    """Two colluders change their round-2 values by the same amount for half of the group (the
    relay delivers per recipient): the values still XOR to zero on both sides, and each half
    derives its own key. Round 3 exposes it: no honest member enters epoch 3 from that attempt,
    each is told by a signed confirmation from another member (its deadline then retries)."""
    room = grown(5)
    honest_a, honest_b = ["m0"], ["m2", "m4"]
    colluders = ["m1", "m3"]
    groups = room.members
    old = groups["m0"].epoch
    # Everyone takes part, but the relay holds every round-2 message back to route it per recipient.
    room.commit("m0", update=True)
    for _ in range(50):  # deliver until every round-2 message is out, rounds 1 and 2 only
        if len([r for r in rounds(room, old + 1) if r.round == 2]) == 5:
            break
        _step_rounds_1_and_2(room)
    r2 = {r.sender: r for r in rounds(room, old + 1) if r.round == 2}
    assert len(r2) == 5
    delta = bytes([0x5A] * 32)
    altered = {
        groups[c].my_leaf: forge(
            room, c, r2[groups[c].my_leaf], round_=2, value=_xor(r2[groups[c].my_leaf].value, delta),
            view=r2[groups[c].my_leaf].view,
        )
        for c in colluders
    }
    told: dict[str, list[RekeyFailed]] = {}
    # Deliver every round-2 message: the originals to half A, the altered ones to half B.
    for name in honest_a + honest_b:
        for leaf, msg in sorted(r2.items()):
            data = altered[leaf] if (name in honest_b and leaf in altered) else msg.encoded
            _take(room, name, data, told)
    keyed = {n: groups[n]._ring.done for n in honest_a + honest_b}  # type: ignore[union-attr]
    assert all(v is not None for v in keyed.values())
    tags = {n: v[3] for n, v in keyed.items() if v is not None}
    # Without round 3 this is a silent split: half A's key differs from half B's (and within half
    # B, members on either arc between the colluders walk to different edges as well).
    assert tags["m0"] != tags["m2"] and tags["m0"] != tags["m4"]
    # Round 3: every honest member's confirmation reaches every other honest member.
    queued = [o.data for n in honest_a + honest_b for o in groups[n]._outbox]
    confirmations = [RingRound.decode(d) for d in queued if d[2:4] == b"\xf0\x01"]
    confirmations = [c for c in confirmations if c.round == 3]
    assert len(confirmations) == 3
    for name in honest_a + honest_b:
        for c in confirmations:
            _take(room, name, c.encoded, told)
    diverged = {FailureKind.ROUND2_DIVERGED, FailureKind.CONFIRMATION_MISMATCH}
    for name in honest_a + honest_b:
        assert groups[name].epoch == old, f"{name} entered an epoch not every member confirmed"
        (failure,) = told[name]  # told once: the attempt failed there, later ones are stale
        assert failure.kind in diverged and failure.signer is not None
        assert failure.signer.display_name in set(honest_a + honest_b) - {name}
    # m0 (half A) is told by a confirmation over another round 2: the cross-check round 2 lacked.
    assert told["m0"][0].kind is FailureKind.ROUND2_DIVERGED


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _take(room: Room, name: str, data: bytes, told: dict[str, list[RekeyFailed]]) -> None:
    """Give ``data`` to ``name`` only (the relay's delivery to one recipient); keep its outbox."""
    try:
        ev = room.members[name].receive(data)
    except RemoteError:
        return
    if isinstance(ev, RekeyFailed):
        told.setdefault(name, []).append(ev)


def _step_rounds_1_and_2(room: Room) -> None:
    """Deliver the room's log to everyone, holding back round-2 messages (the relay re-routes them)."""
    for name, g in room.members.items():
        while room.cursor[name] < len(room.log):
            data = room.log[room.cursor[name]]
            room.cursor[name] += 1
            if data[2:4] == b"\xf0\x01" and RingRound.decode(data).round == 2:
                continue
            try:
                g.receive(data)
            except RemoteError:
                continue
            for out in g.data_to_send():
                room.post(name, out.data)


# --- holding messages, the last epoch --------------------------------------------------------------


def test_nothing_is_encrypted_at_an_epoch_whose_successor_removes_someone() -> None:
    """Before: after a ring commit removing R was applied, members went on encrypting at the old
    epoch until the ring finished, and R's kept keys read it all."""
    room = grown(3)
    room.offline.add("m1")  # the ring waits for m1, so it runs for a while
    room.commit("m0", remove=["m2"])
    room.pump()
    m0 = room.members["m0"]
    assert m0.phase.value == "agreeing" and m0.holding_messages
    with pytest.raises(HoldMessagesError, match="removes 'm2'"):
        m0.encrypt(b"m2 must not read this")
    room.offline.clear()
    room.pump()
    assert not m0.holding_messages and m0.epoch == 3
    m0.encrypt(b"now it may be sent")
    # A ring that only adds holds nothing: everyone at the old epoch may read on.
    room.offline.add("m1")
    room.commit("m0", add=["m5"])
    room.pump()
    assert m0.phase.value == "agreeing" and not m0.holding_messages
    m0.encrypt(b"fine")


def test_a_ring_commit_at_the_last_epoch_is_refused_by_its_committer() -> None:
    room = grown(2)
    m0 = room.members["m0"]
    m0._ctx = dataclasses.replace(m0._ctx, epoch=LAST_EPOCH)
    m0._ctx_bytes = m0._ctx.encode()
    with pytest.raises(EpochLimitError, match="start a new group"):
        m0.commit(update=True)
    assert m0.phase.value == "member" and not m0.has_pending_commit
    assert not [e for e in room.events.get("m1", []) if isinstance(e, EpochChanged) and e.epoch > 2]


def test_a_joiner_given_a_wrong_transcript_hash_never_enters_a_solo_epoch() -> None:
    """Before: a ring joiner whose Welcome carried a wrong interim transcript hash refused the
    committer's tag and then, after the deadline, confirmed its own secret: a fork of one. Now its
    round-3 confirmation differs from everyone's: nobody enters with it, each side is told naming
    the other, and a restart that removes it lets the others go on."""
    room = grown(3)
    m0 = room.members["m0"]
    old = m0.epoch
    pj = room.request("j")
    honest = m0._interim
    m0._interim = bytes(32)  # a malicious committer: the Welcome it builds now carries this
    data = m0.commit(add=[pj.request])
    m0._interim = honest
    room.relay.expect("j", pj.request.identity_key, room._joiner(pj, len(room.log) + 1))
    room.send("m0", data)
    room.pump()
    joiner = room.members["j"]
    assert joiner.joining and joiner.epoch == old  # never entered anything
    assert all(g.epoch == old for g in room.members.values())
    failures = {
        name: [e for e in room.events.get(name, []) if isinstance(e, RekeyFailed)] for name in room.members
    }
    (seen_by_joiner,) = failures["j"]
    assert seen_by_joiner.kind is FailureKind.CONFIRMATION_MISMATCH and seen_by_joiner.signer is not None
    for name in ("m0", "m1", "m2"):
        (failure,) = failures[name]
        assert failure.kind is FailureKind.CONFIRMATION_MISMATCH
        assert failure.signer is not None and failure.signer.display_name == "j"  # the only one differing
    # A restart removing the joiner: the others agree the epoch without it.
    restart = room.members["m1"].commit(remove=[joiner.my_leaf])
    room.send("m1", restart)
    room.pump()
    assert all(room.members[n].epoch == old + 1 for n in ("m0", "m1", "m2"))
    assert sorted(m.display_name for m in m0.members()) == ["m0", "m1", "m2"]
