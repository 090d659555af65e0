"""Key-agreement schemes: how the members of a new epoch agree on its ``commit_secret``.

The interface is described once, in :mod:`.base` (``KeyAgreementScheme``). The tree scheme is in
:mod:`.tree`, the ring in :mod:`.ring_scheme` (behind the interface) and :mod:`.ring` (one run);
:mod:`.registry` names them. This package re-exports the ring's run and its errors.
"""

from __future__ import annotations

from .ring import RingRekey, RingResult, RingState, RingStep
from .ring_errors import (
    AttemptFailedError,
    EquivocationError,
    RingTimeoutError,
    RosterMismatchError,
    RoundOrderError,
    WrongAttemptError,
)
from .ring_message import RING_WIRE_FORMAT, RingRound

__all__ = [
    "RING_WIRE_FORMAT",
    "AttemptFailedError",
    "EquivocationError",
    "RingRekey",
    "RingResult",
    "RingRound",
    "RingState",
    "RingStep",
    "RingTimeoutError",
    "RosterMismatchError",
    "RoundOrderError",
    "WrongAttemptError",
]
