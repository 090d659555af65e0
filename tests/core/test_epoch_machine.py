"""The epoch machine itself: every phase x input of the transition table (allowed, or the specific
UsageError), how the phase is derived, and real groups walking through the phases the table names.
"""

from __future__ import annotations

import pytest
from ring_room import Room

from groupchat.core.commit import CommitMessage
from groupchat.core.epoch.machine import TRANSITIONS, Input, Phase, check, check_transition, phase_of
from groupchat.core.errors import ConfirmationError, EpochError, InvalidValueError, UsageError
from groupchat.core.events import EpochChanged, RekeyTimedOut, RemovedFromGroup
from groupchat.core.group import Group, GroupConfig, GroupState
from groupchat.core.identity import Identity, JoinRequest, PendingJoin
from groupchat.core.outbox import OutboundKind
from groupchat.lab.clock import ManualClock

M, C, A, F, J, K, R = (
    Phase.MEMBER,
    Phase.COMMITTING,
    Phase.AGREEING,
    Phase.CONFIRMING,
    Phase.JOINING,
    Phase.CHECKING,
    Phase.REMOVED,
)
OK = ""
GONE = "no longer a member"
WELCOME = "processed with Group.join"
RING = "the ring is still agreeing epoch 8"
SEND = "cannot send a message yet"
EXPORT = "cannot export a secret yet"
BUSY = "a commit is already waiting for the relay's echo"
VERIFYING = "still verifying the join requests"
NO_CHECK = "no roster check belongs to this group"

# Expected answer of check(phase, input) at epoch 7 with nothing in flight: "" = allowed.
EXPECTED: dict[Input, dict[Phase, str]] = {
    Input.ENCRYPT: {M: OK, C: OK, A: OK, F: OK, J: SEND, K: VERIFYING, R: GONE},
    Input.EXPORT: {M: OK, C: OK, A: OK, F: OK, J: EXPORT, K: OK, R: GONE},
    Input.COMMIT: {M: OK, C: BUSY, A: RING, F: RING, J: RING, K: VERIFYING, R: GONE},
    Input.COMMIT_REMOVALS: {M: OK, C: BUSY, A: OK, F: OK, J: OK, K: VERIFYING, R: GONE},
    Input.RECEIVE_MESSAGE: {M: OK, C: OK, A: OK, F: OK, J: OK, K: OK, R: GONE},
    Input.RECEIVE_COMMIT: {M: OK, C: OK, A: OK, F: OK, J: OK, K: OK, R: GONE},
    Input.RECEIVE_HANDSHAKE: {M: OK, C: OK, A: OK, F: OK, J: OK, K: OK, R: GONE},
    Input.RECEIVE_WELCOME: {M: WELCOME, C: WELCOME, A: WELCOME, F: WELCOME, J: WELCOME, K: WELCOME, R: GONE},
    Input.POLL: {M: OK, C: OK, A: OK, F: OK, J: OK, K: OK, R: GONE},
    Input.DATA_TO_SEND: {M: OK, C: OK, A: OK, F: OK, J: OK, K: OK, R: OK},
    Input.DISCARD: {M: OK, C: OK, A: OK, F: OK, J: OK, K: OK, R: OK},
    Input.CHECK_ROSTER: {M: OK, C: OK, A: NO_CHECK, F: NO_CHECK, J: NO_CHECK, K: OK, R: GONE},
}


def test_the_expected_table_covers_every_phase_and_input() -> None:
    assert set(EXPECTED) == set(Input)
    assert all(set(row) == set(Phase) for row in EXPECTED.values())


@pytest.mark.parametrize("inp", list(Input), ids=lambda i: i.value)
@pytest.mark.parametrize("phase", list(Phase), ids=lambda p: p.value)
def test_every_phase_and_input(phase: Phase, inp: Input) -> None:
    want = EXPECTED[inp][phase]
    if want == OK:
        check(phase, inp, epoch=7)
        assert (phase, inp) in TRANSITIONS, "allowed but missing from the transition table"
    else:
        with pytest.raises(UsageError, match=want):
            check(phase, inp, epoch=7)
        assert (phase, inp) not in TRANSITIONS


@pytest.mark.parametrize("phase", [M, C, A, F, J])
@pytest.mark.parametrize("inp", [Input.COMMIT, Input.COMMIT_REMOVALS])
def test_a_second_commit_while_one_is_in_flight_is_refused(phase: Phase, inp: Input) -> None:
    """In an agreement phase our commit in flight is a restart: the phase does not show it."""
    with pytest.raises(UsageError, match=BUSY):
        check(phase, inp, epoch=7, in_flight=True)


def test_removed_outranks_every_other_refusal() -> None:
    with pytest.raises(UsageError, match=GONE):
        check(R, Input.COMMIT, epoch=7, in_flight=True)
    with pytest.raises(UsageError, match=GONE):
        check(R, Input.RECEIVE_WELCOME, epoch=7)


def test_an_action_names_what_the_joiner_cannot_do_yet() -> None:
    with pytest.raises(UsageError, match="cannot compare epoch authenticators yet"):
        check(J, Input.EXPORT, epoch=7, action="compare epoch authenticators")


def test_phase_is_derived_with_a_fixed_precedence() -> None:
    def phase(**kw: bool) -> Phase:
        args = {"removed": False, "joining": False, "agreeing": False, "agreed": False, "in_flight": False}
        return phase_of(**{**args, **kw})

    assert phase() is M
    assert phase(in_flight=True) is C
    assert phase(agreeing=True) is A
    assert phase(agreeing=True, in_flight=True) is A  # a restart of ours in flight
    assert phase(agreeing=True, agreed=True) is F
    assert phase(joining=True, agreeing=True, agreed=True) is J
    assert phase(removed=True, joining=True, in_flight=True) is R
    assert phase(checking=True) is K
    assert phase(checking=True, joining=True) is J
    assert phase(checking=True, removed=True) is R


def test_every_listed_transition_starts_from_an_allowed_cell_and_stays_live_unless_removed() -> None:
    for (before, inp), after in TRANSITIONS.items():
        assert after, (before, inp)
        check(before, inp, epoch=0)
        if before is R:
            assert after == {R}


def test_a_transition_outside_the_table_is_an_internal_error() -> None:
    check_transition(M, Input.COMMIT, C)
    with pytest.raises(AssertionError, match="not in the table"):
        check_transition(M, Input.ENCRYPT, C)


# --- real groups walk the phases --------------------------------------------------------------


def _config(clock: ManualClock) -> GroupConfig:
    return GroupConfig(clock=clock)


def _request(config: GroupConfig, group_id: bytes, name: str) -> PendingJoin:
    return JoinRequest.create(config.suite(), Identity.generate(), group_id, name)


def test_tree_group_phases() -> None:
    config = _config(ManualClock())
    a = Group.create(Identity.generate(), b"g", "a", config)
    assert a.phase is M and a.state is GroupState.MEMBER
    pj = _request(config, b"g", "b")
    commit = a.commit(add=[pj.request])
    assert a.phase is C
    with pytest.raises(UsageError, match="already waiting"):
        a.commit(update=True)
    a.discard_pending_commit()
    assert a.phase is M
    commit = a.commit(add=[pj.request])
    ev = a.receive(commit)
    assert isinstance(ev, EpochChanged) and ev.own and a.phase is M
    (welcome,) = [o.data for o in a.data_to_send() if o.kind is OutboundKind.WELCOME]
    # From the relay, a Welcome given to a member is bad input (a peer's mix-up, or one flipped
    # bit in the wire format: the ring fuzz test found it), refused as such, not a caller mistake.
    with pytest.raises(InvalidValueError, match="a Welcome came where"):
        a.receive(welcome)
    b = Group.join(pj, welcome, config)
    assert b.phase is M
    (first_update,) = [o.data for o in b.data_to_send() if o.kind is OutboundKind.COMMIT]
    assert b.phase is C
    a.receive(first_update)
    b.receive(first_update)
    removal = b.commit(remove=[a.my_leaf])
    assert isinstance(a.receive(removal), RemovedFromGroup)
    assert a.phase is R and a.state is GroupState.REMOVED
    assert a.data_to_send() == []
    with pytest.raises(UsageError, match=GONE):
        a.encrypt(b"x")


def _ring_pair(room: Room) -> tuple[Group, Group]:
    """a creates a ring group and adds b, stepping the room by hand to see each phase."""
    a = room.create("a")
    room.commit("a", add=["b"])  # sequenced; a has not read its echo yet
    assert a.phase is C and "b" not in room.members
    room.cursor["a"] = 1
    a.receive(room.log[0])
    assert a.phase is A
    room.drain("a")  # its Welcome: b joins (reading from after the commit) and sends its round 1
    b = room.members["b"]
    assert b.phase is J and b.joining
    return a, b


def test_ring_group_phases_agree_then_member() -> None:
    room = Room()
    a, b = _ring_pair(room)
    with pytest.raises(UsageError, match="cannot send a message yet"):
        b.encrypt(b"x")
    with pytest.raises(UsageError, match="the ring is still agreeing"):
        a.commit(update=True)
    room.pump()
    assert a.phase is M and b.phase is M and a.epoch == b.epoch == 1
    assert a.epoch_authenticator == b.epoch_authenticator


def test_tick_returns_the_timeout_as_an_event_once_per_attempt() -> None:
    room = Room()
    a, _ = _ring_pair(room)
    assert a.tick() is None  # before the deadline
    room.clock.now += 3600
    ev = a.tick()
    assert isinstance(ev, RekeyTimedOut) and ev.epoch == 1 and ev.attempt == 0
    assert [m.display_name for m in ev.missing] == ["b"]
    assert [o.kind for o in a.data_to_send()] == [OutboundKind.HANDSHAKE]  # our next attempt
    assert a.tick() is None  # once per attempt
    assert a.phase is A


def test_a_refused_commit_names_the_member_who_signed_it_and_epoch_errors_carry_both_epochs() -> None:
    config = _config(ManualClock())
    a = Group.create(Identity.generate(), b"g", "a", config)
    pj = _request(config, b"g", "b")
    a.receive(a.commit(add=[pj.request]))
    (welcome,) = [o.data for o in a.data_to_send() if o.kind is OutboundKind.WELCOME]
    b = Group.join(pj, welcome, config)
    early = b.encrypt(b"sent at epoch 1")
    commit = b.commit(update=True)
    msg = CommitMessage.decode(commit)
    # The tag is outside the signature: anyone on the path could have altered it, so its refusal
    # names no one (naming b would let the relay frame an honest member).
    forged = CommitMessage(msg.content, msg.commit, msg.signature, bytes(32)).encode()
    with pytest.raises(ConfirmationError) as info:
        a.receive(forged)
    assert (info.value.signer, info.value.signer_name) == (None, "")
    assert a.epoch == 1 and isinstance(a.receive(commit), EpochChanged)  # nothing had changed
    b.receive(commit)
    second = a.commit(update=True)
    a.receive(second)
    with pytest.raises(EpochError, match="message is for epoch 1") as stale:
        a.receive(early)
    assert (stale.value.epoch, stale.value.current) == (1, 3)
