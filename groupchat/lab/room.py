"""The one in-process stand-in for the relay's total order, shared by the lab and the tests.

A real relay (``server/``) gives every message in a room a sequence number, logs it, and delivers
it in that order to every member present, the sender included (the echo); a directed send goes to
its addressee and echoes to its sender. :class:`Room` does exactly that with no sockets, no clock
and no threads, so the demo, the benchmarks, the tests' group harness and the simulator all drive
real :class:`~groupchat.core.group.Group` objects through the same order.

Sans-I/O: :meth:`Room.publish` only sequences and logs (it returns the :class:`Delivery` and who
gets it); :meth:`Room.deliver` also hands the bytes to each recipient's ``receive`` and returns the
events. Subclasses may override :meth:`Room.receive` to observe each hand-over (the benchmark
times it there).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from ..core.errors import UsageError
from ..core.events import Event

__all__ = ["Delivery", "Receiver", "Room"]

class Receiver(Protocol):
    """A room member: anything that takes the relay's bytes and returns one event."""

    def receive(self, data: bytes) -> Event: ...


K = TypeVar("K", bound=Hashable)
M = TypeVar("M", bound=Receiver)


@dataclass(frozen=True, slots=True)
class Delivery(Generic[K]):
    """One sequenced message, as the relay's ``Deliver`` frame carries it."""

    seq: int
    payload: bytes
    sender: K | None = None
    to: K | None = None  # None: the whole room


class Room(Generic[K, M]):
    """Members of type ``M`` (a Group) keyed by ``K`` (a name, a leaf) and one total order of
    everything sent to them."""

    def __init__(self) -> None:
        self.members: dict[K, M] = {}
        self.log: list[Delivery[K]] = []

    # --- roster -------------------------------------------------------------------------------

    def join(self, key: K, member: M) -> None:
        """``member`` is present from now on (a relay Join); it sees messages sequenced after this."""
        if key in self.members:
            raise UsageError(f"{key!r} is already in the room")
        self.members[key] = member

    def leave(self, key: K) -> M:
        """``key`` is no longer present (a relay Leave or disconnect); returns its member."""
        try:
            return self.members.pop(key)
        except KeyError:
            raise UsageError(f"{key!r} is not in the room") from None

    # --- ordering -------------------------------------------------------------------------------

    @property
    def head(self) -> int:
        """The last sequence number given out (0 before the first message)."""
        return len(self.log)

    def publish(self, payload: bytes, sender: K | None = None, to: K | None = None) -> Delivery[K]:
        """Sequence and log ``payload``; nothing is handed to anyone yet."""
        if to is not None and to not in self.members:
            raise UsageError(f"{to!r} is not in the room")
        delivery = Delivery(len(self.log) + 1, payload, sender, to)
        self.log.append(delivery)
        return delivery

    def recipients(self, delivery: Delivery[K]) -> list[K]:
        """Who the relay hands ``delivery`` to now, in roster order: everyone present, or the
        addressee and the sender (its echo) for a directed send."""
        if delivery.to is None:
            return list(self.members)
        return [k for k in self.members if k == delivery.to or k == delivery.sender]

    def since(self, seq: int) -> list[Delivery[K]]:
        """Every logged delivery after ``seq`` (what a resume replays)."""
        return self.log[seq:]

    # --- delivery -------------------------------------------------------------------------------

    def receive(self, key: K, delivery: Delivery[K]) -> Event:
        """Hand one delivery to one member; override to observe (the benchmark times this)."""
        return self.members[key].receive(delivery.payload)

    def deliver(
        self,
        payload: bytes,
        sender: K | None = None,
        to: K | None = None,
        *,
        only: Iterable[K] | None = None,
    ) -> dict[K, Event]:
        """Publish ``payload`` and hand it to its recipients; returns each recipient's event.

        ``only`` restricts the hand-over to some recipients (a test holding messages back from
        the others); the message is sequenced and logged all the same.
        """
        delivery = self.publish(payload, sender, to)
        keys = self.recipients(delivery)
        if only is not None:
            wanted = set(only)
            keys = [k for k in keys if k in wanted]
        return {k: self.receive(k, delivery) for k in keys}
