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

The room also knows the outbox (:mod:`groupchat.core.outbox`): :meth:`Room.flush` drains one
member's ``data_to_send()`` and publishes each item in order, as a session does after every call
into its group: a ``to=ROOM`` item goes to the whole room, a ``to=Joiner(...)`` item (the Welcome)
to the joiner registered with :meth:`Room.expect`, which becomes a member when it arrives.
:meth:`Room.send` publishes a member's own message (a commit, an application message) and then
flushes every member the hand-over gave something to send.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from ..core.errors import UsageError
from ..core.events import Event
from ..core.outbox import ROOM, Joiner, Outbound

__all__ = ["Delivery", "Receiver", "Room"]  # pinned in tests/test_exports.py; Flushed, Outboxed importable

class Receiver(Protocol):
    """A room member: anything that takes the relay's bytes and returns one event."""

    def receive(self, data: bytes) -> Event: ...


class Outboxed(Receiver, Protocol):
    """A member with an outbox (a Group): what :meth:`Room.flush` drains."""

    def data_to_send(self) -> Sequence[Outbound]: ...


K = TypeVar("K", bound=Hashable)
M = TypeVar("M", bound=Receiver)


@dataclass(frozen=True, slots=True)
class Delivery(Generic[K]):
    """One sequenced message, as the relay's ``Deliver`` frame carries it."""

    seq: int
    payload: bytes
    sender: K | None = None
    to: K | None = None  # None: the whole room


@dataclass(frozen=True, slots=True)
class Flushed(Generic[K]):
    """One outbox item as :meth:`Room.flush` published it, and what its hand-over returned."""

    outbound: Outbound
    delivery: Delivery[K]
    events: dict[K, Event] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Expected(Generic[K, M]):
    key: K
    make: Callable[[bytes], M]  # the Welcome's bytes -> the joined member


class Room(Generic[K, M]):
    """Members of type ``M`` (a Group) keyed by ``K`` (a name, a leaf) and one total order of
    everything sent to them."""

    def __init__(self) -> None:
        self.members: dict[K, M] = {}
        self.log: list[Delivery[K]] = []
        self._expected: dict[bytes, _Expected[K, M]] = {}  # joiner identity key -> who it becomes

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
        if to is not None and to not in self.members and not self._awaits(to):
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

    # --- the outbox -----------------------------------------------------------------------------

    def expect(self, key: K, identity_key: bytes, make: Callable[[bytes], M]) -> None:
        """A joiner (its join request's ``identity_key``) is waiting for its Welcome as ``key``:
        when a member's outbox addresses the Welcome to it, the room calls ``make(welcome)`` and
        the result joins the room (it sees what is sequenced after its Welcome)."""
        if key in self.members or self._awaits(key):
            raise UsageError(f"{key!r} is already in the room")
        self._expected[identity_key] = _Expected(key, make)

    def _awaits(self, key: K) -> bool:
        return any(e.key == key for e in self._expected.values())

    def flush(self, key: K, *, hand_over: bool = True, cascade: bool = False) -> list[Flushed[K]]:
        """Drain ``key``'s ``data_to_send()`` and publish each item in order.

        ``to=ROOM`` items are published from ``key`` and, with ``hand_over``, handed to everyone
        present (like :meth:`deliver`); a Welcome is published directed to its expected joiner,
        which is then made and joined (a joiner nobody expects is a :class:`UsageError`: the
        outbox named someone the room cannot reach). With ``hand_over=False`` the room only
        sequences and logs (a harness that hands over from its own cursors). With ``cascade``,
        every member a hand-over gave something to send is flushed too, until the room is quiet.
        """
        member = self.members[key]
        if not hasattr(member, "data_to_send"):
            raise UsageError(f"{key!r} has no outbox")
        out: list[Flushed[K]] = []
        for item in member.data_to_send():
            if item.to is ROOM:
                delivery = self.publish(item.data, key)
                events = self._hand_over(delivery) if hand_over else {}
                out.append(Flushed(item, delivery, events))
                if cascade:
                    for k in events:
                        if k in self.members:
                            out.extend(self.flush(k, hand_over=hand_over, cascade=True))
                continue
            assert isinstance(item.to, Joiner)
            expected = self._expected.get(item.to.identity_key)
            if expected is None:
                raise UsageError(f"no joiner {item.to.display_name!r} is expected in the room")
            delivery = self.publish(item.data, key, to=expected.key)
            del self._expected[item.to.identity_key]
            self.join(expected.key, expected.make(item.data))
            out.append(Flushed(item, delivery))
            if cascade:
                out.extend(self.flush(expected.key, hand_over=hand_over, cascade=True))
        return out

    def send(self, payload: bytes, sender: K, *, only: Iterable[K] | None = None) -> dict[K, Event]:
        """What a session does: publish ``payload`` from ``sender``, hand it over (like
        :meth:`deliver`), then flush the sender's and every recipient's outbox (cascading)."""
        events = self.deliver(payload, sender, only=only)
        for k in dict.fromkeys([sender, *events]):
            if k in self.members and hasattr(self.members[k], "data_to_send"):
                self.flush(k, cascade=True)
        return events

    def _hand_over(self, delivery: Delivery[K]) -> dict[K, Event]:
        return {k: self.receive(k, delivery) for k in self.recipients(delivery)}
