"""What goes into the session machine: relay frames, connection changes, timer ticks, commands.

Every input carries ``now`` (the session's monotonic clock, seconds) so that the machine never
reads a clock itself. Which inputs are *evidence* and which are *claims* (architecture.md, "The
relay's claims are not evidence"): a :class:`FrameReceived` whose payload is a core message is
signed by a member and checked by the core; everything else the relay says (presence, seqs,
``Joined`` lists, errors, markers, timing) may only prompt, delay or be shown as its claim.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...relay_protocol import ServerFrame, ServerHello

__all__ = [
    "ApproveRequested",
    "CloseRequested",
    "Connected",
    "Disconnected",
    "DropRequested",
    "FrameReceived",
    "Input",
    "InviteRequested",
    "KickRequested",
    "LeaveRequested",
    "RekeyRequested",
    "RevokeRequested",
    "Tick",
    "Wake",
]


@dataclass(frozen=True, slots=True)
class Connected:
    """A websocket is open and the relay said hello (with its limits)."""

    hello: ServerHello
    now: float


@dataclass(frozen=True, slots=True)
class FrameReceived:
    """One decoded frame from the relay."""

    frame: ServerFrame
    now: float


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection ended (or an attempt failed: ``reason`` says why, in words for the user);
    the glue makes attempt number ``attempt`` in ``retry_in`` seconds."""

    reason: str
    retry_in: float | None
    now: float
    attempt: int = 0


@dataclass(frozen=True, slots=True)
class Tick:
    """The timer the machine asked for (``Machine.next_wakeup``) fired."""

    now: float


@dataclass(frozen=True, slots=True)
class Wake:
    """Something was queued outside a step (a typed message): see whether it can go out."""

    now: float


@dataclass(frozen=True, slots=True)
class RekeyRequested:
    """``/rekey``: commit a self-Update as soon as possible."""

    now: float


@dataclass(frozen=True, slots=True)
class KickRequested:
    """``/kick NAME``: commit the removal of ``identity_key`` ourselves."""

    identity_key: bytes
    now: float


@dataclass(frozen=True, slots=True)
class LeaveRequested:
    """``/leave``: ask the others to remove us, and end once they did (or after a deadline)."""

    now: float


@dataclass(frozen=True, slots=True)
class CloseRequested:
    """Stop; with ``leave`` first publish a leave request (quitting)."""

    leave: bool
    now: float


@dataclass(frozen=True, slots=True)
class DropRequested:
    """Close the connection as a network failure would (demos and tests)."""

    now: float


@dataclass(frozen=True, slots=True)
class InviteRequested:
    """``/invite``: commit a new invite (``uses`` joins, valid ``lifetime`` seconds, 0 = no
    expiry); its code is shown once our commit is in."""

    uses: int
    lifetime: float
    label: str
    now: float


@dataclass(frozen=True, slots=True)
class RevokeRequested:
    """``/revoke``: commit the withdrawal of a live invite."""

    invite_key: bytes
    now: float


@dataclass(frozen=True, slots=True)
class ApproveRequested:
    """``/approve``: let in a joiner whose request needs a member's approval (we commit it)."""

    identity_key: bytes
    now: float


Input = (
    Connected
    | FrameReceived
    | Disconnected
    | Tick
    | Wake
    | RekeyRequested
    | KickRequested
    | LeaveRequested
    | CloseRequested
    | DropRequested
    | InviteRequested
    | RevokeRequested
    | ApproveRequested
)
