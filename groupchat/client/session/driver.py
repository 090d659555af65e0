"""A synchronous driver for the session machine: every effect performed inline, no I/O.

For sans-I/O tests and simulations: :func:`drive` runs one step of a
:class:`~.machine.SessionMachine`, runs each core call right here, answers each frame send with
``send_ok`` (recording the frame), and returns every action in the order the machine produced it.
The clock is the caller's (``groupchat.lab.clock.ManualClock`` in the tests).
"""

from __future__ import annotations

from collections.abc import Callable

from ...core.errors import GroupChatError
from .actions import Action, CallCore, Reply, SendFrame, resume
from .inputs import Input
from .machine import SessionMachine

__all__ = ["drive"]


def drive(
    machine: SessionMachine, item: Input, clock: Callable[[], float], *, send_ok: bool = True
) -> list[Action]:
    """Run one step of ``machine`` on ``item`` and return its actions, effects included."""
    out: list[Action] = []
    step = machine.step(item)
    reply: Reply | None = None
    error: GroupChatError | None = None
    while True:
        try:
            effect = resume(step, reply, error)
        finally:
            out.extend(machine.take_actions())
        if effect is None:
            break
        out.append(effect)
        error, value = None, None
        if isinstance(effect, CallCore):
            try:
                value = effect.call.run()
            except GroupChatError as exc:
                error = exc
                continue
        elif isinstance(effect, SendFrame):
            value = send_ok
        reply = Reply(value, clock())
    out.extend(machine.take_actions())
    return out
