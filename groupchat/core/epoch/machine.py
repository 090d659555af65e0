"""The epoch machine's phases, inputs and transitions, written down once (like h11's ``_state.py``).

A member is always in exactly one :class:`Phase`, derived by :func:`phase_of` from what it holds
(removed or not, a multi-round joiner or not, an agreement running or done, our commit in flight).
:func:`check` is the one guard: it says whether an :class:`Input` is allowed in a phase and raises
the specific :class:`~groupchat.core.errors.UsageError` if not. :data:`TRANSITIONS` lists, for
every allowed ``(phase, input)``, the phases the input may lead to; ``Group`` asserts every call
against it, and ``tests/core/test_epoch_machine.py`` checks the table cell by cell.

Our commit in flight is orthogonal to the agreement phases: while a multi-round agreement runs,
our pending commit can only be a restart (removals, docs/protocol.md §8.3), and the phase stays
the agreement's. :data:`COMMITTING` is the phase of a commit in flight outside an agreement.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from ..errors import UsageError

__all__ = ["MEMBER_INPUTS", "TRANSITIONS", "Input", "Phase", "check", "check_transition", "phase_of"]


class Phase(enum.Enum):
    """Where one member stands in the life of its group."""

    # Members are singletons: hash by identity, in C, not Enum's hash of the name in Python (the
    # guards look phases and inputs up in TRANSITIONS on every message).
    __hash__ = object.__hash__

    MEMBER = "member"  # at an epoch, nothing of ours in flight
    COMMITTING = "committing"  # our commit awaits the relay's echo (it wins or loses the epoch)
    AGREEING = "agreeing"  # a multi-round scheme's run for the next epoch is under way
    CONFIRMING = "confirming"  # that run derived the next epoch here; every member confirms it
    JOINING = "joining"  # a multi-round joiner before its first epoch: no keys for the current one
    CHECKING = "checking"  # a joiner reading before every member's join request is verified
    REMOVED = "removed"  # a commit removed us; every secret is gone


class Input(enum.Enum):
    """What a caller can ask of the machine (the methods of ``Group``)."""

    __hash__ = object.__hash__  # as Phase's

    ENCRYPT = "encrypt"  # protect an application message
    EXPORT = "export"  # export a secret or read the epoch authenticator (reads, no change)
    COMMIT = "commit"  # build a commit with adds or an update
    COMMIT_REMOVALS = "commit removals"  # a commit of removals only: a restart while agreeing
    RECEIVE_MESSAGE = "receive message"  # an application message (PrivateMessage)
    RECEIVE_COMMIT = "receive commit"  # a commit (PublicMessage), ours or another's
    RECEIVE_HANDSHAKE = "receive handshake"  # a multi-round scheme's round (round 3 confirms)
    RECEIVE_WELCOME = "receive welcome"  # a Welcome: only Group.join takes one
    POLL = "poll"  # the session's timer: check the running agreement's deadline
    DATA_TO_SEND = "data to send"  # drain the outbox (may build a rebuild or our first update)
    DISCARD = "discard"  # forget our pending commit
    CHECK_ROSTER = "check roster"  # the result of verifying a deferred join's roster


M, C, A, F, J, K, R = (
    Phase.MEMBER,
    Phase.COMMITTING,
    Phase.AGREEING,
    Phase.CONFIRMING,
    Phase.JOINING,
    Phase.CHECKING,
    Phase.REMOVED,
)
_LIVE = (M, C, A, F, J, K)
_AGREEMENT = (A, F, J)


def _same(phases: tuple[Phase, ...], inp: Input) -> dict[tuple[Phase, Input], frozenset[Phase]]:
    return {(p, inp): frozenset({p}) for p in phases}


# For every allowed (phase, input): the phases it may lead to. A pair that is not listed is
# refused by check() (every refusal is a UsageError and changes nothing).
TRANSITIONS: Mapping[tuple[Phase, Input], frozenset[Phase]] = {
    **_same((M, C, A, F), Input.ENCRYPT),
    **_same((M, C, A, F, K), Input.EXPORT),
    **_same(_LIVE, Input.RECEIVE_MESSAGE),
    **_same(_LIVE, Input.POLL),
    (M, Input.COMMIT): frozenset({C}),
    (M, Input.COMMIT_REMOVALS): frozenset({C}),
    # A restart: our removal commit is in flight, the phase stays the agreement's.
    **_same(_AGREEMENT, Input.COMMIT_REMOVALS),
    # A one-round commit moves to the next epoch; a multi-round one starts the agreement (or
    # finishes it at once when we are alone); a commit removing us ends everything.
    (M, Input.RECEIVE_COMMIT): frozenset({M, A, R}),
    (C, Input.RECEIVE_COMMIT): frozenset({M, A, R}),
    # While agreeing (or confirming: nobody is in the next epoch until every member confirmed it)
    # only a restart is taken: the run starts over, or ends at once.
    (A, Input.RECEIVE_COMMIT): frozenset({A, F, M, R}),
    (F, Input.RECEIVE_COMMIT): frozenset({A, F, M, R}),
    (J, Input.RECEIVE_COMMIT): frozenset({J, M, R}),
    # A joiner checking its roster reads commits as a member does, and stays checking.
    (K, Input.RECEIVE_COMMIT): frozenset({K, R}),
    # Handshakes: echoes of old ones outside an agreement; rounds and confirmations inside.
    (M, Input.RECEIVE_HANDSHAKE): frozenset({M}),
    (C, Input.RECEIVE_HANDSHAKE): frozenset({C}),
    (A, Input.RECEIVE_HANDSHAKE): frozenset({A, F, M}),
    # Confirming: every confirmation enters the epoch; the next attempt, in force, agrees anew.
    (F, Input.RECEIVE_HANDSHAKE): frozenset({A, F, M}),
    (J, Input.RECEIVE_HANDSHAKE): frozenset({J, M}),
    (K, Input.RECEIVE_HANDSHAKE): frozenset({K}),
    # Draining builds a rebuild of a lost commit, or the first update of a tainted joiner.
    (M, Input.DATA_TO_SEND): frozenset({M, C}),
    **_same((C, A, F, J, K, R), Input.DATA_TO_SEND),
    (M, Input.DISCARD): frozenset({M}),
    (C, Input.DISCARD): frozenset({M}),
    **_same((A, F, J, K, R), Input.DISCARD),
    # The roster checked: a checking joiner becomes a member (or stays checking if the result
    # covered only part of it); elsewhere (its leaves all removed or verified meanwhile) it is
    # stale and changes nothing.
    (K, Input.CHECK_ROSTER): frozenset({K, M}),
    **_same((M, C), Input.CHECK_ROSTER),
}

# What :func:`check` lets through in the MEMBER phase (nothing in flight, no agreement running),
# for the guard's shortcut on every message sent or received (issue 16).
MEMBER_INPUTS: frozenset[Input] = frozenset(
    inp for (phase, inp) in TRANSITIONS if phase is M and inp is not Input.RECEIVE_WELCOME
)

_ACTIONS: Mapping[Input, str] = {
    Input.ENCRYPT: "send a message",
    Input.EXPORT: "export a secret",
}


def phase_of(
    *, removed: bool, joining: bool, agreeing: bool, agreed: bool, in_flight: bool, checking: bool = False
) -> Phase:
    """The phase of a member: ``agreeing`` while a multi-round run is held, ``agreed`` once it
    completed here, ``in_flight`` while our commit awaits its echo, ``checking`` while some join
    requests our welcome listed are not yet verified (``Group.join(..., verify_roster=False)``)."""
    if removed:
        return R
    if joining:
        return J
    if checking:
        return K
    if agreeing:
        return F if agreed else A
    return C if in_flight else M


def check(phase: Phase, inp: Input, *, epoch: int, in_flight: bool = False, action: str = "") -> None:
    """Raise the :class:`UsageError` that refuses ``inp`` in ``phase``; return if it is allowed.

    ``epoch`` is the current epoch (for the message); ``in_flight`` says our commit awaits its
    echo; ``action`` names what an ENCRYPT or EXPORT was for, in words.
    """
    if phase is R and inp not in (Input.DATA_TO_SEND, Input.DISCARD):
        raise UsageError("we are no longer a member of this group")
    if inp is Input.RECEIVE_WELCOME:
        raise UsageError("a welcome is processed with Group.join, not by an existing member")
    if inp in (Input.COMMIT, Input.COMMIT_REMOVALS) and (in_flight or phase is C):
        raise UsageError("a commit is already waiting for the relay's echo")
    if (phase, inp) in TRANSITIONS:
        return
    if inp is Input.COMMIT and phase in _AGREEMENT:
        raise UsageError(
            f"the ring is still agreeing epoch {epoch + 1}: only removals can restart it "
            "(to drop members it waits for); commit anything else once it is done"
        )
    if phase is K and inp in (Input.ENCRYPT, Input.COMMIT, Input.COMMIT_REMOVALS):
        what = action or _ACTIONS.get(inp, "commit")
        raise UsageError(
            f"cannot {what} yet: we just joined and are still verifying the join requests of the "
            "members our welcome lists; send once Group.roster_verified() is done"
        )
    if phase is J and inp in _ACTIONS:
        raise UsageError(
            f"cannot {action or _ACTIONS[inp]} yet: we joined a ring group and are still agreeing our "
            f"first epoch ({epoch + 1}) with the others; wait for its EpochChanged"
        )
    if inp is Input.CHECK_ROSTER:
        raise UsageError(f"no roster check belongs to this group while it is {phase.value}")
    raise AssertionError(f"no rule for {inp.value} in phase {phase.value}")  # pragma: no cover


def check_transition(before: Phase, inp: Input, after: Phase) -> None:
    """Assert that an accepted input moved the machine along :data:`TRANSITIONS` (an internal bug
    otherwise: the table and the code disagree)."""
    allowed = TRANSITIONS.get((before, inp), frozenset())
    assert after in allowed, f"{inp.value} took {before.value} to {after.value}, not in the table"
