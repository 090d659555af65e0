"""What the relay's input may cost us: every bound on a collection it feeds, in one place.

The relay chooses how many member ids it calls present, how many join requests and frames it
delivers, and the limits it announces. None of that may grow our memory without bound or make one
input cost more than the last (issue 13 item 6). Sizes of decoded fields are bounded by the relay
protocol itself (``relay_protocol.frames``: ids of 64 bytes, 4,096 ids in a ``Joined``, reasons of
256 bytes); here are the session's own bounds:

* :class:`RoomPresence`: at most :data:`MAX_PRESENT` ids that are not group members (members are
  always noted: the signed roster bounds them), with our creation rank kept as ids come and go.
* :data:`MAX_PENDING_JOINERS` join requests waiting for an Add (the oldest goes first).
* :data:`MAX_BUFFERED` frames and :data:`MAX_BUFFERED_BYTES` bytes kept while we wait for a
  welcome (the oldest go first; each dropped one is counted in the "cannot be shown" placeholder).
* :data:`MAX_PENDING_ACKS` of our frames waiting for the relay's ``Ack`` (the oldest is forgotten).
* :func:`sane_max_payload`: the relay's announced payload limit, clamped to what our frames hold.

Pure: no clock, no I/O.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Iterator, Set
from typing import Final

from ...relay_protocol import ServerLimits, max_payload_for
from .settings import MAX_FRAME

__all__ = [
    "MAX_BUFFERED",
    "MAX_BUFFERED_BYTES",
    "MAX_PENDING_ACKS",
    "MAX_PENDING_JOINERS",
    "MAX_PRESENT",
    "RoomPresence",
    "sane_max_payload",
]

MAX_PRESENT: Final = 1024
MAX_PENDING_JOINERS: Final = 256
MAX_PENDING_ACKS: Final = 1024
MAX_BUFFERED: Final = 4096
MAX_BUFFERED_BYTES: Final = 16 << 20
_CHANGES_KEPT: Final = 64  # presence changes remembered (RoomPresence.changed_since)


class RoomPresence(Set[bytes]):
    """The member ids the relay says are in the room (its claim), bounded, ranked against ours.

    :meth:`add` notes at most :data:`MAX_PRESENT` ids that are not group members: past that, the
    oldest such id gives way (counted in :attr:`ignored`), so a flood of made-up ids never keeps
    a real joiner out for good. :attr:`below_me` (how many present ids sort before our own id: our
    turn to create, rejoin.py) is kept on every change, so reading it costs nothing however many
    ids the relay announced.
    """

    __slots__ = ("_below", "_changes", "_cleared_at", "_ids", "_me", "_others", "ignored", "version")

    def __init__(self, me: bytes) -> None:
        self._me = me
        self._ids: set[bytes] = set()
        self._others: dict[bytes, None] = {}  # the ids noted as not members, oldest first
        self._below = 0
        self.ignored = 0  # ids not noted because the set was full (cumulative, for the log)
        self.version = 0  # grows at every change of the ids: what is derived from them is kept per version
        self._changes: deque[bytes] = deque(maxlen=_CHANGES_KEPT)  # the id of each step since the clear
        self._cleared_at = 0  # the version the last clear made

    def __contains__(self, mid: object) -> bool:
        return mid in self._ids

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    @classmethod
    def _from_iterable(cls, it: Iterable[bytes]) -> set[bytes]:  # type: ignore[override]
        return set(it)  # ``present | {x}`` and the like are plain sets

    @property
    def me(self) -> bytes:
        return self._me

    @property
    def below_me(self) -> int:
        """How many present ids sort before ours."""
        return self._below

    @property
    def only_me(self) -> bool:
        """Nobody but us (or nobody) is present."""
        return len(self._ids) == (1 if self._me in self._ids else 0)

    def add(self, mid: bytes, *, member: bool = False) -> bool:
        """Note ``mid`` as present; past the cap a non-member makes the oldest non-member give
        way (none left to give way: it is ignored). False: an id was dropped."""
        if mid in self._ids:
            return True
        dropped = False
        if not member and mid != self._me:
            if len(self._ids) >= MAX_PRESENT:
                self.ignored += 1
                dropped = True
                if not self._others:
                    return False
                self.discard(next(iter(self._others)))
            self._others[mid] = None
        self._ids.add(mid)
        self.version += 1
        self._changes.append(mid)
        if mid < self._me:
            self._below += 1
        return not dropped

    def discard(self, mid: bytes) -> None:
        if mid in self._ids:
            self._ids.remove(mid)
            self._others.pop(mid, None)
            self.version += 1
            self._changes.append(mid)
            if mid < self._me:
                self._below -= 1

    def clear(self) -> None:
        self._ids.clear()
        self._others.clear()
        self._below = 0
        self.version += 1
        self._changes.clear()
        self._cleared_at = self.version

    def changed_since(self, version: int) -> set[bytes] | None:
        """The ids added or discarded since ``version`` (None: not known, a clear came since or
        more changes than are kept): what was derived from the ids then needs only these redone."""
        steps = self.version - version
        if version < self._cleared_at or steps > len(self._changes) or steps < 0:
            return None
        return set(itertools.islice(reversed(self._changes), steps))

    def reset(self, ids: Iterable[bytes], members: Set[bytes]) -> None:
        """Replace the whole set (a ``Joined`` list): group ``members`` first, then the rest."""
        self.clear()
        rest = []
        for mid in ids:
            if mid in members:
                self.add(mid, member=True)
            else:
                rest.append(mid)
        for mid in rest:
            self.add(mid)


def sane_max_payload(limits: ServerLimits) -> int:
    """The payload limit to use: the relay's, but never more than our own largest frame holds."""
    return min(limits.max_payload, max_payload_for(MAX_FRAME))
