"""What the core asks the session to send: :class:`Outbound` items from :meth:`Group.data_to_send`.

Like websockets' ``data_to_send()``: the protocol decides *what* must go out and *to whom*; the
session only moves the bytes. The session sends what an explicit call returns
(:meth:`Group.commit`, :meth:`Group.encrypt`) and, after every call into the group, drains
:meth:`Group.data_to_send` and sends each item in order: ``to=ROOM`` is a relay publish to the
group's room, ``to=Joiner(...)`` is a direct delivery to the member whose join request it names.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

from .identity import JoinRequest, fingerprint

__all__ = ["ROOM", "Joiner", "Outbound", "OutboundKind", "Recipient", "Room"]


class OutboundKind(enum.Enum):
    COMMIT = "commit"  # a commit the protocol requires (a rebuilt one, a joiner's first update)
    WELCOME = "welcome"  # the Welcome for one joiner, released by our commit's echo
    HANDSHAKE = "handshake"  # a multi-round scheme's message (ring rounds, confirmation)


@dataclass(frozen=True, slots=True)
class Room:
    """Everyone in the group's room on the relay (a publish)."""

    def __repr__(self) -> str:
        return "ROOM"


ROOM: Final = Room()


@dataclass(frozen=True, slots=True)
class Joiner:
    """One joiner, named by the join request it sent us (deliver to its identity key)."""

    identity_key: bytes = field(repr=False)
    display_name: str
    request: JoinRequest = field(repr=False, compare=False)

    @classmethod
    def of(cls, request: JoinRequest) -> Joiner:
        return cls(request.identity_key, request.display_name, request)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.identity_key)


Recipient = Room | Joiner


@dataclass(frozen=True, slots=True)
class Outbound:
    """One message to send: ``data`` to ``to``; ``kind`` says why (for logs and the UI)."""

    to: Recipient
    data: bytes = field(repr=False)
    kind: OutboundKind
