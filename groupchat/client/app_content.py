"""What travels inside an encrypted application message: one type octet, then the content.

::

    struct {
        uint8 type;          // ContentKind
        select (type) {
            case CHAT:  opaque msg_id[8]; opaque text[..];   // UTF-8, the rest of the plaintext
            case LEAVE: ;                                    // empty: "please remove me"
            case BEACON: opaque body[..];                    // session/beacons.py, the rest
        }
    } AppContent;

Chat text and control requests share the application channel on purpose: the core encrypts and
signs the whole plaintext, so a leave request is authenticated by the group key and the sender's
own signature, with no new cryptography. ``msg_id`` is chosen once per typed message and kept
when the session re-encrypts it after a lost race, so a receiver that somehow gets both copies
shows it once. A beacon (what its sender sent and received, session/beacons.py) travels the same
way, so it is signed and readable by members only; it is never shown as a chat line.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from ..core.errors import InvalidValueError, TrailingDataError, TruncatedError

__all__ = ["MSG_ID_LEN", "AppContent", "ContentKind", "UnknownContentKindError"]

MSG_ID_LEN: Final = 8


class UnknownContentKindError(InvalidValueError):
    """An application plaintext whose type octet names nothing this client knows."""


class ContentKind(enum.IntEnum):
    CHAT = 1
    LEAVE = 2
    BEACON = 3


@dataclass(frozen=True, slots=True)
class AppContent:
    kind: ContentKind
    msg_id: bytes = b""
    text: str = ""
    body: bytes = b""

    @classmethod
    def chat(cls, msg_id: bytes, text: str) -> AppContent:
        if len(msg_id) != MSG_ID_LEN:
            raise InvalidValueError(f"message id must be {MSG_ID_LEN} bytes")
        return cls(ContentKind.CHAT, msg_id, text)

    @classmethod
    def leave(cls) -> AppContent:
        return cls(ContentKind.LEAVE)

    @classmethod
    def beacon(cls, body: bytes) -> AppContent:
        return cls(ContentKind.BEACON, body=body)

    def encode(self) -> bytes:
        if self.kind is ContentKind.CHAT:
            return bytes((self.kind,)) + self.msg_id + self.text.encode("utf-8")
        return bytes((self.kind,)) + self.body

    @classmethod
    def decode(cls, data: bytes) -> AppContent:
        if not data:
            raise TruncatedError("application message is empty: it has no type octet")
        try:
            kind = ContentKind(data[0])
        except ValueError:
            raise UnknownContentKindError(f"application message type {data[0]} is unknown") from None
        if kind is ContentKind.LEAVE:
            if len(data) != 1:
                raise TrailingDataError("a leave request carries no content")
            return cls(kind)
        if kind is ContentKind.BEACON:
            return cls(kind, body=data[1:])
        if len(data) < 1 + MSG_ID_LEN:
            raise TruncatedError("chat message is shorter than its message id")
        try:
            text = data[1 + MSG_ID_LEN :].decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidValueError("chat message text is not valid UTF-8") from None
        return cls(kind, data[1 : 1 + MSG_ID_LEN], text)
