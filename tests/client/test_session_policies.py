"""The session's policy modules, pure: the rejection table, updates, rejoin, the phase table."""

from __future__ import annotations

import pytest

from groupchat.client.notices import UnreadableReason
from groupchat.client.session.bounds import MAX_PRESENT, RoomPresence
from groupchat.client.session.phases import TRANSITIONS, Fresh, Phase, Trigger
from groupchat.client.session.rejections import Outcome, commit_rejection, message_rejection, ring_rejection
from groupchat.client.session.rejoin import (
    AfterRemoval,
    after_removal,
    creation_turn,
    join_republish_delay,
    should_create,
)
from groupchat.client.session.updates import UpdateSchedule
from groupchat.core.admission import RemovalCode
from groupchat.core.errors import (
    ConfirmationError,
    DecryptionError,
    EpochError,
    GroupChatError,
    InconsistentPathError,
    InvalidCommitError,
    RemoteError,
    RemovedSenderError,
    ReplayError,
    SignatureError,
    UnknownMemberError,
)
from groupchat.core.schemes.ring_errors import AttemptFailedError, WrongAttemptError

# --- the rejection table (docs/session.md, "Forks and rejections") ----------------------------


def _at(exc: GroupChatError, epoch: int) -> GroupChatError:
    """The refusal as Group.receive raises it: carrying the epoch the message claimed."""
    assert isinstance(exc, RemoteError)
    if exc.epoch is None:
        exc.epoch = epoch
    return exc


def test_commit_rejections_follow_the_table() -> None:
    assert commit_rejection(_at(ReplayError("x"), 3), 5, False, False).outcome is Outcome.IGNORE
    assert commit_rejection(_at(EpochError("x"), 3), 5, False, False).outcome is Outcome.IGNORE  # a lost race
    assert commit_rejection(_at(EpochError("x"), 9), 5, True, False).outcome is Outcome.IGNORE  # one of ours
    assert (
        commit_rejection(_at(EpochError("x"), 5), 5, False, True).outcome is Outcome.IGNORE
    )  # the ring's winner
    # A later epoch is only the header's claim: a hint (behind.py), never a rejoin.
    later = commit_rejection(_at(EpochError("x"), 7), 5, False, False)
    assert later.outcome is Outcome.BEHIND and later.behind_epoch == 7
    assert "claims epoch 7, we are at 5" in later.text and "we keep our group" in later.text
    for exc in (InconsistentPathError("p"), ConfirmationError("c")):
        r = commit_rejection(_at(exc, 5), 5, False, False)
        assert r.outcome is Outcome.BEHIND and r.behind_epoch == 6
        assert r.text.startswith("cannot follow the last change to the group")
    r = commit_rejection(_at(InvalidCommitError("bad"), 5), 5, False, False)
    assert r.outcome is Outcome.WARN and r.text == "ignored an invalid change to the group: bad"


def test_ring_rejections_follow_the_table() -> None:
    assert ring_rejection(WrongAttemptError(1, 2, "bob")).outcome is Outcome.IGNORE
    assert ring_rejection(AttemptFailedError("stale")).outcome is Outcome.IGNORE
    # Every confirmation is signed now (round 3): a refused one changed nothing and hints nothing.
    assert ring_rejection(SignatureError("s")).outcome is Outcome.WARN


@pytest.mark.parametrize(
    ("exc", "epoch", "reason", "hint"),
    [
        (EpochError("e"), 1, UnreadableReason.BEFORE_JOIN, False),
        (EpochError("e"), 3, UnreadableReason.EXPIRED_EPOCH, False),
        (EpochError("e"), 9, UnreadableReason.POSSIBLE_FORK, True),
        (DecryptionError("d"), 5, UnreadableReason.POSSIBLE_FORK, True),
        (UnknownMemberError("u"), 5, UnreadableReason.UNKNOWN_SENDER, False),
        (SignatureError("s"), 5, UnreadableReason.TAMPERED, False),
        (ReplayError("r"), 5, UnreadableReason.REPLAYED, False),
        (DecryptionError("d"), 4, UnreadableReason.TAMPERED, False),
    ],
)
def test_message_rejections_follow_the_table(
    exc: Exception, epoch: int, reason: UnreadableReason, hint: bool
) -> None:
    r = message_rejection(_at(exc, epoch), ours=5, joined=2, code="1234")  # type: ignore[arg-type]
    assert r.outcome is Outcome.PLACEHOLDER and r.reason is reason
    assert r.behind_epoch == (epoch if hint else None)


def test_a_removed_sender_is_named() -> None:
    exc = RemovedSenderError("gone", 2, "carol")
    r = message_rejection(_at(exc, 4), ours=5, joined=0, code="")
    assert r.reason is UnreadableReason.AFTER_REMOVAL and r.sender == "carol" and r.detail == "epoch 4"


# --- updates ---------------------------------------------------------------------------------


def test_updates_are_due_by_reason_age_or_count() -> None:
    u = UpdateSchedule(interval=600.0, every=3, last_update=100.0)
    assert not u.due(200.0, wanted=False)
    assert u.due(200.0, wanted=True)
    assert u.due(700.0, wanted=False)
    u.sent_since = 3
    assert u.due(200.0, wanted=False) and u.hold_messages()
    u.committed(250.0, update=True)
    assert u.last_update == 250.0 and u.sent_since == 0 and not u.hold_messages()


def test_lost_races_pause_within_a_doubling_window() -> None:
    u = UpdateSchedule(interval=600.0, every=200, last_update=0.0)
    windows = []
    for _ in range(9):
        u.lost(10.0, lambda n: b"\xff" * n)  # the top of each window
        windows.append(round(u.not_before - 10.0, 3))
    assert windows[:3] == [0.1, 0.2, 0.4] and max(windows) <= 5.0
    assert not u.may_commit(10.0) and u.may_commit(10.0 + windows[-1])
    u.committed(20.0, update=False)
    assert u.losses == 0


# --- rejoin ------------------------------------------------------------------------------------


def _present(me: bytes, *ids: bytes) -> RoomPresence:
    present = RoomPresence(me)
    for mid in ids:
        present.add(mid)
    return present


def test_creators_take_turns_by_member_id() -> None:
    assert should_create(False, _present(b"m"), 0.0, 0.0, 3.0)  # alone
    assert should_create(False, _present(b"m", b"m"), 0.0, 0.0, 3.0)  # alone, ourselves listed
    assert not should_create(True, _present(b"m"), 0.0, 0.0, 3.0)  # the room had traffic
    assert creation_turn(_present(b"m", b"a", b"z"), 10.0, 3.0) == 13.0  # second in line
    assert not should_create(False, _present(b"m", b"a"), 10.0, 12.9, 3.0)
    assert should_create(False, _present(b"m", b"a"), 10.0, 13.0, 3.0)


def test_the_creation_rank_follows_presence_changes() -> None:
    present = _present(b"m", b"a", b"b", b"z", b"m")
    assert present.below_me == 2 and len(present) == 4
    present.discard(b"a")
    present.discard(b"a")  # twice: counted once
    present.discard(b"z")
    assert present.below_me == 1
    present.reset([b"c", b"d", b"y"], members=set())
    assert present.below_me == 2 and set(present) == {b"c", b"d", b"y"}
    present.clear()
    assert present.below_me == 0 and present.only_me


def test_presence_is_capped_but_members_are_always_noted() -> None:
    present = RoomPresence(b"m")
    for n in range(MAX_PRESENT + 500):
        present.add(b"fake%05d" % n)
    assert len(present) == MAX_PRESENT and present.ignored == 500
    assert present.add(b"bob", member=True) and b"bob" in present
    present.reset([b"fake%05d" % n for n in range(4096)] + [b"carol"], members={b"carol"})
    assert b"carol" in present and len(present) == MAX_PRESENT  # the member first, then the rest
    assert present.below_me == sum(1 for p in present if p < b"m")


def test_join_requests_are_published_again_with_backoff() -> None:
    assert [join_republish_delay(3.0, n) for n in range(6)] == [3.0, 6.0, 12.0, 24.0, 30.0, 30.0]


def test_what_a_removal_means() -> None:
    # By the reason in the signed commit (None: an older client's commit with no reason).
    assert after_removal(True, True, None, False) is AfterRemoval.LEFT
    assert after_removal(False, True, RemovalCode.LEFT, False) is AfterRemoval.LEFT
    assert after_removal(False, False, None, False) is AfterRemoval.REJOIN
    assert after_removal(False, True, None, False) is AfterRemoval.ENDED
    # Kicked stays out even when it happened while we were away.
    assert after_removal(False, False, RemovalCode.KICKED, False) is AfterRemoval.ENDED
    # Evicted as offline while connected: the relay hid our traffic; we come back (no invite).
    assert after_removal(False, True, RemovalCode.OFFLINE, False) is AfterRemoval.REJOIN
    assert after_removal(False, True, RemovalCode.UNRESPONSIVE, False) is AfterRemoval.REJOIN
    # Removed to be re-added: ours if we asked; otherwise we ask again.
    assert after_removal(False, True, RemovalCode.REJOINING, True) is AfterRemoval.READD
    assert after_removal(False, True, RemovalCode.REJOINING, False) is AfterRemoval.REJOIN


# --- the phase table ----------------------------------------------------------------------------


def test_every_live_phase_can_rejoin_and_finish_and_only_rejoin_forgets_duties() -> None:
    for phase in (Phase.ARRIVING, Phase.CREATING, Phase.JOINING, Phase.MEMBER):
        assert TRANSITIONS[(phase, Trigger.REJOIN)].target is Phase.ARRIVING
        assert TRANSITIONS[(phase, Trigger.FINISH)].target is Phase.ENDED
    with_duties = [key for key, t in TRANSITIONS.items() if t.fresh & Fresh.DUTIES]
    assert {trigger for _, trigger in with_duties} == {Trigger.REJOIN}
    assert (Phase.ENDED, Trigger.REJOIN) not in TRANSITIONS
    # A lost creation race keeps what we saw while arriving; a welcome consumes it.
    assert not TRANSITIONS[(Phase.CREATING, Trigger.CREATION_LOST)].fresh & Fresh.ARRIVAL
    assert TRANSITIONS[(Phase.JOINING, Trigger.WELCOMED)].fresh & Fresh.ARRIVAL
