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
    ├── RoundOrderError          a message of a round whose previous round is not complete here
    ├── AttemptFailedError       a message of an attempt that already failed here
    └── RingTimeoutError         a round did not complete in time (``.missing`` names who)

A signed message that shows an attempt can never complete (another view, values that do not add
up, another confirmation) is not refused but taken: the outcome is the event
:class:`~groupchat.core.events.RekeyFailed`, since the state changed.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ProtocolError
from ..events import Member
from .ring_message import ATTEMPT_WINDOW

__all__ = [
    "AttemptFailedError",
    "EquivocationError",
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
    later attempt within :data:`~.ring_message.ATTEMPT_WINDOW` of ours means the others gave up on
    ours and retried (start that attempt and feed the message again, if it is acceptable to it);
    one further ahead is refused (so one message cannot jump the group to the last attempt
    number); an earlier one is stale and can be dropped.
    """

    def __init__(self, attempt: int, ours: int, sender: str) -> None:
        if ours < attempt <= ours + ATTEMPT_WINDOW:
            hint = "a later attempt, in force from here: start it to take part"
        elif attempt > ours:
            hint = f"more than {ATTEMPT_WINDOW} attempts ahead of ours, so it is refused"
        else:
            hint = "an earlier attempt: stale, drop it"
        super().__init__(f"ring message from {sender} is for attempt {attempt}, ours is {ours}: {hint}")
        self.attempt = attempt
        self.ours = ours


class RosterMismatchError(ProtocolError):
    """A ring message bound to another roster, or to another group state (``context``)."""


class EquivocationError(ProtocolError):
    """A member signed two different messages for the same round of the same attempt."""


class RoundOrderError(ProtocolError):
    """A message of round r arrived before round r - 1 was complete here.

    The relay's total order puts every message of a round before any of the next: a member sends
    round r only after the relay delivered it every message of round r - 1, and after its own on
    the same connection. So this is a misbehaving sender or relay; the message is refused and the
    state is unchanged.
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
