"""What comes out of the session machine: effects the glue performs, and what it reports.

A machine step is a generator (:data:`Step`). It *yields* an :data:`Effect` when it needs its
outcome before going on (a frame sent or not, a core call's result) and is resumed with a
:class:`Reply` carrying that outcome and the clock after it; the core's exceptions are thrown
back in. Everything else it has to say (a notice for the UI, stop, abort the connection, reset
the reconnect backoff) it *queues*, and the driver takes it with ``Machine.take_actions()``
before performing each effect, so the order of notices and sends is kept.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from ...relay_protocol import Join, Leave, Publish, SendTo
from ..notices import Notice
from .core_calls import CoreCall

__all__ = [
    "AbortConnection",
    "Action",
    "CallCore",
    "CloseConnection",
    "Effect",
    "Notify",
    "Queued",
    "Reply",
    "ResetBackoff",
    "SendFrame",
    "Step",
    "Stop",
    "resume",
]

T = TypeVar("T")

ClientFrame = Join | Leave | Publish | SendTo


@dataclass(frozen=True, slots=True)
class SendFrame:
    """Send ``frame`` on the current connection; the reply is True if it went out."""

    frame: ClientFrame


@dataclass(frozen=True, slots=True)
class CallCore:
    """Run ``call`` (:mod:`.core_calls`); the reply is its result, or its error is thrown in."""

    call: CoreCall[Any]


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """Close the websocket cleanly (the relay refused us the room); the reply is None."""


Effect = SendFrame | CallCore | CloseConnection


@dataclass(frozen=True, slots=True)
class Notify:
    """Give ``notice`` to the UI."""

    notice: Notice


@dataclass(frozen=True, slots=True)
class AbortConnection:
    """Drop the connection without a close handshake, as a network failure would."""


@dataclass(frozen=True, slots=True)
class ResetBackoff:
    """A join succeeded: the next reconnect starts from the shortest delay again."""


@dataclass(frozen=True, slots=True)
class Stop:
    """The session is over (left, removed, closed): ``run()`` ends."""


Queued = Notify | AbortConnection | ResetBackoff | Stop
Action = Effect | Queued


@dataclass(frozen=True, slots=True)
class Reply:
    """The outcome of an effect, and the clock once it was done."""

    value: object
    now: float


Step = Generator[Effect, Reply, T]


def resume(step: Step[object], reply: Reply | None, error: BaseException | None) -> Effect | None:
    """Advance ``step`` once: start it, send it ``reply``, or throw ``error`` (an effect that failed)
    into it. Returns the next effect it asks for, or ``None`` when the step is done. The one loop
    body every driver of the machine shares (the asyncio glue and :mod:`.driver`)."""
    try:
        if error is not None:
            return step.throw(error)
        return step.send(reply) if reply is not None else next(step)
    except StopIteration:
        return None
