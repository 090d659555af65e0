"""Typed messages on their way out: queued until the session is ready, in flight until echoed.

Every typed message keeps its local id (the UI's handle) and its ``msg_id`` (the receivers'
de-duplication key) for life. A copy in flight is known by the core's message id (the hash of
the exact bytes sent), which the relay's echo returns. A message whose copy was lost or refused
goes back to the queue in its original order and is encrypted again, so nothing typed is lost.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["OutboundQueue", "Outgoing"]


@dataclass(slots=True)
class Outgoing:
    local_id: int
    msg_id: bytes
    text: str
    attempts: int = 0
    digest: bytes | None = field(default=None, repr=False)
    epoch: int | None = None
    req_id: int | None = None
    sent_at: float = 0.0  # when this copy went out (its echo is expected soon after)


class OutboundQueue:
    """Queued messages in typing order, and the ones in flight by core message id."""

    def __init__(self, new_msg_id: Callable[[], bytes]) -> None:
        self._new_msg_id = new_msg_id
        self._next_local = 1
        self._queued: list[tuple[int, Outgoing]] = []  # sorted by local id
        self._in_flight: dict[bytes, Outgoing] = {}

    def add(self, text: str) -> Outgoing:
        entry = Outgoing(self._next_local, self._new_msg_id(), text)
        self._next_local += 1
        self._queued.append((entry.local_id, entry))
        return entry

    def __len__(self) -> int:
        return len(self._queued) + len(self._in_flight)

    @property
    def queued(self) -> int:
        return len(self._queued)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def peek(self) -> Outgoing | None:
        return self._queued[0][1] if self._queued else None

    def mark_sent(self, entry: Outgoing, digest: bytes, epoch: int, req_id: int, now: float = 0.0) -> None:
        """``entry`` (the head of the queue) went out as the core message ``digest`` at ``now``."""
        if not self._queued or self._queued[0][1] is not entry:
            raise ValueError("only the head of the queue can be sent")
        self._queued.pop(0)
        entry.digest, entry.epoch, entry.req_id, entry.sent_at = digest, epoch, req_id, now
        entry.attempts += 1
        self._in_flight[digest] = entry

    def echoed(self, digest: bytes) -> Outgoing | None:
        """The relay echoed the copy ``digest``: it is no longer in flight."""
        return self._in_flight.pop(digest, None)

    def by_request(self, req_id: int) -> Outgoing | None:
        for entry in self._in_flight.values():
            if entry.req_id == req_id:
                return entry
        return None

    def requeue(self, entry: Outgoing) -> None:
        """Send ``entry`` again (re-encrypted), in its original place among the queued ones."""
        if entry.digest is not None:
            self._in_flight.pop(entry.digest, None)
        entry.digest = entry.epoch = entry.req_id = None
        bisect.insort(self._queued, (entry.local_id, entry), key=lambda item: item[0])

    def oldest_sent(self) -> float | None:
        """When the oldest copy in flight went out (None: none is). Copies enter ``_in_flight`` in
        the order they are sent, so the first is the oldest: O(1) after every input."""
        first = next(iter(self._in_flight.values()), None)
        return first.sent_at if first is not None else None

    def overdue(self, before: float) -> list[Outgoing]:
        """The copies in flight sent before ``before`` (their echo is overdue), oldest first: the
        scan stops at the first that is not."""
        out = []
        for entry in self._in_flight.values():
            if entry.sent_at >= before:
                break
            out.append(entry)
        return out

    def requeue_in_flight(self) -> int:
        """Every copy in flight is lost (its echo will never come): queue them all again."""
        lost = list(self._in_flight.values())
        for entry in lost:
            self.requeue(entry)
        return len(lost)

    def entries(self) -> list[Outgoing]:
        """Every message not yet echoed, queued or in flight, in typing order."""
        return sorted([*(e for _, e in self._queued), *self._in_flight.values()], key=lambda e: e.local_id)

    def restore(self, msg_id: bytes, text: str, digest: bytes | None, epoch: int | None) -> Outgoing:
        """A message stored before a restart, under its old ``msg_id``: in flight as ``digest`` (its
        echo may still come from the relay's log), or queued if it had not gone out."""
        entry = Outgoing(self._next_local, msg_id, text)
        self._next_local += 1
        if digest is None or epoch is None:
            self._queued.append((entry.local_id, entry))
        else:
            entry.digest, entry.epoch, entry.attempts = digest, epoch, 1
            self._in_flight[digest] = entry
        return entry

    def drop(self, entry: Outgoing) -> None:
        if entry.digest is not None:
            self._in_flight.pop(entry.digest, None)
        self._queued = [item for item in self._queued if item[1] is not entry]
