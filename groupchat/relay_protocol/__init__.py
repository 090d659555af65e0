"""The relay envelope codec: sans-I/O, bytes in, typed frozen frames out, and back.

Every websocket message between a client and the relay is one binary *envelope*::

    struct {
        uint8 version;          // ENVELOPE_VERSION
        uint8 type;             // FrameType
        select (type) { ... }   // the frame body, see docs/relay-protocol.md
    } Envelope;

Payloads are opaque to the relay and travel byte for byte. Rooms and member ids are short opaque
byte strings chosen by clients. The encoding uses :mod:`groupchat.core.codec` (minimal varints,
``max_len`` on every vector), so each frame has exactly one encoding and an oversized field is
rejected before it is read. This package imports no key-material code: the relay uses it too.
:mod:`.frames` holds the frames and their checks, :mod:`.codec` their encoding.

Frames validate when they are built (``__post_init__``), so an unencodable frame cannot exist:
building one with a bad field raises :class:`~groupchat.core.errors.ConfigError` (a local
mistake), and decoding bad bytes raises a :class:`~groupchat.core.errors.DecodeError` (the peer's).
Nothing here raises anything but :class:`~groupchat.core.errors.GroupChatError` subclasses.
"""

from __future__ import annotations

from .codec import decode, decode_client, decode_server, deliver_prefix, deliver_rest, encode, error_code_for
from .frames import (
    DEFAULT_MAX_FRAME,
    ENVELOPE_VERSION,
    MAX_CODE_LEN,
    MAX_ID_LEN,
    MAX_MEMBERS_LISTED,
    MAX_REASON_LEN,
    Ack,
    ClientFrame,
    Deliver,
    Error,
    ErrorCode,
    Frame,
    FrameType,
    Hello,
    Join,
    Joined,
    Leave,
    Presence,
    PresenceEvent,
    Publish,
    SendTo,
    ServerFrame,
    ServerHello,
    ServerLimits,
    UnknownFrameTypeError,
    max_payload_for,
)

__all__ = [
    "DEFAULT_MAX_FRAME",
    "ENVELOPE_VERSION",
    "MAX_CODE_LEN",
    "MAX_ID_LEN",
    "MAX_MEMBERS_LISTED",
    "MAX_REASON_LEN",
    "Ack",
    "ClientFrame",
    "Deliver",
    "Error",
    "ErrorCode",
    "Frame",
    "FrameType",
    "Hello",
    "Join",
    "Joined",
    "Leave",
    "Presence",
    "PresenceEvent",
    "Publish",
    "SendTo",
    "ServerFrame",
    "ServerHello",
    "ServerLimits",
    "UnknownFrameTypeError",
    "decode",
    "decode_client",
    "decode_server",
    "deliver_prefix",
    "deliver_rest",
    "encode",
    "error_code_for",
    "max_payload_for",
]
