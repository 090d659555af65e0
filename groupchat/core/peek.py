"""What a message from the relay claims to be, read from its public header: kind and epoch.

Every message the core takes starts ``uint16 version || uint16 wire_format``; all but a Welcome
go on with ``V(group_id) || uint64 epoch``. :func:`peek` reads that far and no further, so the
core routes each message to one handler, and a caller (the chat session) can tell what it got
without knowing wire-format numbers. Nothing here is authenticated: a peek is the sender's (or the
relay's) claim, good for routing and for wording a rejection, never for changing the group.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from .codec import Reader
from .errors import GroupChatError, InvalidValueError
from .identity import MAX_GROUP_ID
from .message_protection import WireFormat
from .schemes.ring_message import RING_WIRE_FORMAT

__all__ = ["MessageKind", "Peek", "peek"]

class MessageKind(enum.Enum):
    """Which of the core's inputs a message is."""

    COMMIT = "commit"  # a PublicMessage: a signed commit
    APPLICATION = "application"  # a PrivateMessage: chat
    ROUND = "round"  # a multi-round scheme's round message (its round 3 confirms the epoch)
    WELCOME = "welcome"  # for Group.join, not for a member


_KINDS: Final = {
    WireFormat.PUBLIC_MESSAGE: MessageKind.COMMIT,
    WireFormat.PRIVATE_MESSAGE: MessageKind.APPLICATION,
    RING_WIRE_FORMAT: MessageKind.ROUND,
    WireFormat.WELCOME: MessageKind.WELCOME,
}


@dataclass(frozen=True, slots=True)
class Peek:
    """A message's claimed kind and epoch (``None``: a Welcome, or a header cut short)."""

    kind: MessageKind
    epoch: int | None


def peek(data: bytes) -> Peek:
    """Read a message's public header; raise :class:`InvalidValueError` if it names no known kind."""
    if len(data) < 4:
        raise InvalidValueError(f"message of {len(data)} bytes is too short to have a header")
    wire_format = int.from_bytes(data[2:4], "big")
    kind = _KINDS.get(wire_format)
    if kind is None:
        raise InvalidValueError(f"unknown wire format {wire_format}")
    if kind is MessageKind.WELCOME:
        return Peek(kind, None)
    n = data[4] if len(data) > 4 else 0x40
    if n < 0x40 and len(data) >= 13 + n:  # a group id under 64 bytes (1-byte length): read directly
        return Peek(kind, int.from_bytes(data[5 + n : 13 + n], "big"))
    try:
        r = Reader(data, "message header")
        r.u16("version")
        r.u16("wire_format")
        r.opaque("group_id", MAX_GROUP_ID)
        epoch: int | None = r.u64("epoch")
    except GroupChatError:
        epoch = None  # the full decode will say what is wrong with it
    return Peek(kind, epoch)
