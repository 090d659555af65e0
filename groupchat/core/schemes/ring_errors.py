"""Errors of the ring scheme, each a subclass of the core error it refines.

They subclass the existing branches of :mod:`groupchat.core.errors` so that a caller that catches
``ProtocolError`` or ``CryptoError`` keeps working; the subclass says exactly which ring rule broke.
Errors about a message name only what the receiver can know: the member who *signed* it (a
signature proves that), never a member it merely suspects.

Hierarchy (new classes only)::

    ProtocolError
    ├── WrongAttemptError        a message of another rekey attempt (``.attempt`` is theirs)
    ├── RosterMismatchError      a message bound to another roster or group state
    ├── EquivocationError        a second, different, validly signed message from one member and round
    ├── RoundOrderError          a round-2 message before our round 1 was complete
    └── RingTimeoutError         a round did not complete in time (``.missing`` names who)
    ConfirmationError
    └── DivergentViewError       a member signed round 2 over a round 1 different from ours (fatal)
    InconsistentPathError
    └── RingInconsistentError    the round-2 values do not XOR to zero (fatal)
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConfirmationError, InconsistentPathError, ProtocolError
from ..events import Member

__all__ = [
    "AttemptFailedError",
    "DivergentViewError",
    "EquivocationError",
    "RingInconsistentError",
    "RingTimeoutError",
    "RosterMismatchError",
    "RoundOrderError",
    "WrongAttemptError",
]


def describe(member: Member) -> str:
    """How errors name a member: display name, leaf and fingerprint (names can collide)."""
    return f"{member.display_name!r} (leaf {member.leaf}, {member.fingerprint})"


class WrongAttemptError(ProtocolError):
    """A ring message for another attempt of this rekey; ``attempt`` is the message's attempt.

    Raised only for a correctly signed message of a roster member, so the caller may act on it: a
    later attempt means the others gave up on ours and retried (start that attempt and feed the
    message again); an earlier one is stale and can be dropped.
    """

    def __init__(self, attempt: int, ours: int, sender: str) -> None:
        when = "a later" if attempt > ours else "an earlier"
        hint = "start that attempt to take part" if attempt > ours else "it is stale; drop it"
        super().__init__(
            f"ring message from {sender} is for {when} attempt ({attempt}) than ours ({ours}): {hint}"
        )
        self.attempt = attempt
        self.ours = ours


class RosterMismatchError(ProtocolError):
    """A ring message bound to another roster, or to another group state (``context``)."""


class EquivocationError(ProtocolError):
    """A member signed two different messages for the same round of the same attempt."""


class RoundOrderError(ProtocolError):
    """A round-2 message arrived before we had every round-1 message.

    The relay's total order puts every round-1 message before any round-2 message: a member
    sends round 2 only after the relay delivered it every other round-1 message, and after its
    own round-1 message on the same connection. So this is a misbehaving sender or relay; the
    message is refused and the state is unchanged.
    """


class AttemptFailedError(ProtocolError):
    """A ring message for an attempt that already failed here (a fatal check, or its timeout):
    it cannot complete any more; the next attempt, once the order reaches it, replaces it."""


class RingTimeoutError(ProtocolError):
    """A round did not complete before its deadline; ``missing`` lists who did not send."""

    def __init__(self, round_: int, attempt: int, missing: Sequence[Member]) -> None:
        names = ", ".join(describe(m) for m in missing)
        super().__init__(
            f"ring round {round_} of attempt {attempt} timed out waiting for {names}; "
            f"every member must take part: retry with attempt {attempt + 1} once they are back, "
            "or remove them"
        )
        self.round = round_
        self.attempt = attempt
        self.missing = tuple(missing)


class DivergentViewError(ConfirmationError):
    """A member signed its round-2 value over a different set of round-1 messages than ours.

    Fatal to the attempt: that member can never send another round-2 message for it (that would
    be equivocation), so no agreement is possible. A member or the relay equivocated in round 1.
    """


class RingInconsistentError(InconsistentPathError):
    """The round-2 values of an attempt do not XOR to zero. Fatal to the attempt.

    The check cannot tell which member (or the relay) is at fault, so the error names no one.
    """
