"""Where rooms' order and logs live: the embedded in-memory backend and the interface it shares
with the Redis backend (:mod:`server.redis_backend`).

A backend assigns each room message its sequence number, keeps the bounded room log, tracks who
is in a room, and hands every sequenced message back to the relay through ``Hooks.fanout`` (in
memory at once; with Redis when the pub/sub message comes back, so every process sees the same
order). It only ever sees opaque payloads.
"""

from __future__ import annotations

import abc
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from itertools import islice
from typing import Protocol

from groupchat.relay_protocol import (
    ErrorCode,
    Presence,
    PresenceEvent,
    deliver_prefix,
    deliver_rest,
    encode,
)

from .config import Limits

__all__ = ["Backend", "Hooks", "JoinRefused", "JoinResult", "MemoryBackend"]


class JoinRefused(Exception):
    """The backend refused a join or a resume; ``code`` goes into the Error frame."""

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class JoinResult:
    """A successful join: the room's last seq at join time and the members present."""

    head: int
    members: tuple[bytes, ...]


class Hooks(Protocol):
    """What a backend calls back into the relay for."""

    def fanout(self, room: bytes, seq: int, frame: bytes, to: bytes | None, sender: bytes) -> None:
        """Deliver a sequenced frame to the local members it is for."""

    def presence(self, room: bytes, frame: bytes, member: bytes) -> None:
        """Send a presence frame about ``member`` to the room's other local members."""

    def kick(self, room: bytes, member: bytes, token: str) -> None:
        """Remove the local membership ``token`` of ``member`` (it was replaced elsewhere)."""


class Backend(abc.ABC):
    """Order, log and membership for rooms. Every method is safe to call concurrently."""

    def __init__(self, limits: Limits, hooks: Hooks) -> None:
        self.limits = limits
        self.hooks = hooks

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect to whatever backs the rooms."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; called once on shutdown."""

    def sweep(self, now: float) -> None:  # noqa: B027 - optional hook
        """Periodic housekeeping (age-based log trimming)."""

    @abc.abstractmethod
    async def join(
        self, room: bytes, member: bytes, token: str, resume_after: int | None
    ) -> JoinResult:
        """Add ``member`` (connection ``token``) to ``room``; raise JoinRefused to refuse.

        With ``resume_after`` = N, refuse with ``future_seq`` if N is past the head and with
        ``gap`` if seq N+1 is no longer logged.
        """

    @abc.abstractmethod
    async def leave(self, room: bytes, member: bytes, token: str) -> None:
        """Remove ``member`` from ``room`` if ``token`` still holds it; announce the departure."""

    @abc.abstractmethod
    async def append(self, room: bytes, sender: bytes, to: bytes | None, payload: bytes) -> int:
        """Sequence and log a message, fan it out through the hooks, and return its seq."""

    @abc.abstractmethod
    def backlog(self, room: bytes, after: int, member: bytes) -> AsyncIterator[tuple[int, bytes]]:
        """Yield (seq, Deliver frame) for every logged message after ``after`` that ``member``
        may see, in order. Raise JoinRefused(gap) if the log no longer starts at ``after`` + 1.
        """

    @abc.abstractmethod
    async def room_exists(self, room: bytes) -> bool:
        """Whether the relay knows ``room`` (for ``unknown_room`` versus ``not_joined``)."""


def presence_frame(room: bytes, member: bytes, event: PresenceEvent) -> bytes:
    """The encoded Presence frame announcing ``member``'s ``event`` in ``room``."""
    return encode(Presence(room, member, event))


# --- embedded in-memory backend ------------------------------------------------------------------


class _Entry:
    __slots__ = ("frame", "sender", "seq", "to", "ts")

    def __init__(self, seq: int, ts: float, frame: bytes, sender: bytes, to: bytes | None) -> None:
        self.seq = seq
        self.ts = ts
        self.frame = frame
        self.sender = sender
        self.to = to


class _Room:
    """One room's bounded log (count, bytes, age) and its member table."""

    __slots__ = ("bytes", "head", "log", "members")

    def __init__(self) -> None:
        self.log: deque[_Entry] = deque()
        self.head = 0  # last seq assigned; seqs start at 1
        self.bytes = 0
        self.members: dict[bytes, str] = {}  # member id -> connection token

    @property
    def first_seq(self) -> int:
        """The oldest logged seq, or head + 1 when the log is empty."""
        return self.log[0].seq if self.log else self.head + 1

    def trim(self, limits: Limits, now: float) -> None:
        log = self.log
        oldest_ok = now - limits.log_max_age
        while log and (
            len(log) > limits.log_max_count
            or self.bytes > limits.log_max_bytes
            or log[0].ts < oldest_ok
        ):
            self.bytes -= len(log.popleft().frame)


def may_see(member: bytes, to: bytes | None, sender: bytes) -> bool:
    """Whether ``member`` receives a message: room-wide, addressed to it, or its own echo."""
    return to is None or to == member or sender == member


class MemoryBackend(Backend):
    """The embedded default: everything in this process, no setup.

    ``now`` is the relay's clock (log entries are stamped and aged with it).
    """

    def __init__(self, limits: Limits, hooks: Hooks, now: Callable[[], float] = time.monotonic) -> None:
        super().__init__(limits, hooks)
        self.rooms: dict[bytes, _Room] = {}
        self._now = now

    def sweep(self, now: float) -> None:
        # Trim by age, and forget rooms that have neither members nor a log left: their
        # history is gone, so a resume would be a gap anyway.
        for key in list(self.rooms):
            r = self.rooms[key]
            r.trim(self.limits, now)
            if not r.members and not r.log:
                del self.rooms[key]

    async def join(
        self, room: bytes, member: bytes, token: str, resume_after: int | None
    ) -> JoinResult:
        r = self.rooms.get(room)
        if r is None:
            if len(self.rooms) >= self.limits.max_rooms:
                raise JoinRefused(ErrorCode.TOO_MANY_ROOMS, "the relay holds too many rooms")
            r = _Room()
        if member not in r.members and len(r.members) >= self.limits.max_members_per_room:
            raise JoinRefused(
                ErrorCode.ROOM_FULL, f"the room has {self.limits.max_members_per_room} members"
            )
        if resume_after is not None:
            r.trim(self.limits, self._now())
            if resume_after > r.head:
                raise JoinRefused(
                    ErrorCode.FUTURE_SEQ,
                    f"resume from {resume_after} but the room is at {r.head}: rejoin the group",
                )
            if resume_after + 1 < r.first_seq:
                raise JoinRefused(
                    ErrorCode.GAP,
                    f"seqs {resume_after + 1}..{r.first_seq - 1} are no longer logged: "
                    "rejoin the group",
                )
        self.rooms[room] = r
        r.members[member] = token
        self.hooks.presence(room, presence_frame(room, member, PresenceEvent.JOINED), member)
        return JoinResult(r.head, tuple(r.members))

    async def leave(self, room: bytes, member: bytes, token: str) -> None:
        r = self.rooms.get(room)
        if r is None or r.members.get(member) != token:
            return
        del r.members[member]
        self.hooks.presence(room, presence_frame(room, member, PresenceEvent.LEFT), member)

    async def append(self, room: bytes, sender: bytes, to: bytes | None, payload: bytes) -> int:
        r = self.rooms[room]  # the relay only appends to rooms the sender has joined
        r.head += 1
        seq = r.head
        frame = deliver_prefix(seq) + deliver_rest(room, sender, to, payload)
        r.log.append(_Entry(seq, self._now(), frame, sender, to))
        r.bytes += len(frame)
        if len(r.log) > self.limits.log_max_count or r.bytes > self.limits.log_max_bytes:
            r.trim(self.limits, self._now())
        self.hooks.fanout(room, seq, frame, to, sender)
        return seq

    async def backlog(
        self, room: bytes, after: int, member: bytes
    ) -> AsyncIterator[tuple[int, bytes]]:
        r = self.rooms.get(room)
        if r is None:
            return
        if after + 1 < r.first_seq:
            raise JoinRefused(ErrorCode.GAP, f"seq {after + 1} is no longer logged")
        start = after + 1 - r.first_seq
        # Snapshot first: the log keeps changing while the caller awaits between frames.
        entries = list(islice(r.log, max(0, start), None))
        for e in entries:
            if may_see(member, e.to, e.sender):
                yield e.seq, e.frame

    async def room_exists(self, room: bytes) -> bool:
        return room in self.rooms
