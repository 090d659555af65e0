"""The relay envelope's frames: typed, frozen, validated when built (see :mod:`groupchat.relay_protocol`).

Limits and codes of the envelope, then one dataclass per frame; every ``__post_init__`` runs the
field checks below, so a frame that could not be encoded cannot exist (:class:`ConfigError`).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from ..core.codec import MAX_VARINT
from ..core.errors import (
    ConfigError,
    InvalidValueError,
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
    "max_payload_for",
]

#: The version octet that opens every relay envelope. It is not the end-to-end protocol version
#: (``groupchat.core.version.ENVELOPE_VERSION``, a uint16 inside the opaque payloads the relay
#: never reads): the relay's framing and the group's wire format evolve independently, so a relay
#: can be upgraded without groups changing their messages, and the other way round.
ENVELOPE_VERSION = 1

#: Room names and member ids are 1..64 opaque bytes (a group id or a key fingerprint fits).
MAX_ID_LEN = 64
MAX_CODE_LEN = 32
MAX_REASON_LEN = 256
MAX_AGENT_LEN = 64
#: A ``Joined`` frame lists at most this many members currently present.
MAX_MEMBERS_LISTED = 4096
#: The default largest websocket message the relay accepts (1 MiB, the websockets default).
DEFAULT_MAX_FRAME = 1 << 20

# Worst-case bytes a Publish/SendTo/Deliver spends around its payload: version, type, req/seq,
# room, member ids with their 1-byte-or-more varint lengths, the payload's 4-byte varint.
_ENVELOPE_OVERHEAD = 2 + 8 + 3 * (2 + MAX_ID_LEN) + 1 + 4

U64 = struct.Struct(">Q")
_U16_MAX = (1 << 16) - 1
_U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1


def max_payload_for(max_frame: int) -> int:
    """The largest payload that fits in a ``max_frame``-byte envelope in every frame type."""
    return max(0, max_frame - _ENVELOPE_OVERHEAD)


class UnknownFrameTypeError(InvalidValueError):
    """The envelope's type octet names no frame we know, or one not valid in this direction."""


class FrameType(enum.IntEnum):
    """The envelope ``type`` octet. Client-to-relay types are below 64, relay-to-client above."""

    HELLO = 1
    JOIN = 2
    LEAVE = 3
    PUBLISH = 4
    SEND_TO = 5
    SERVER_HELLO = 64
    JOINED = 65
    ACK = 66
    DELIVER = 67
    PRESENCE = 68
    ERROR = 69


class ErrorCode(enum.StrEnum):
    """Stable machine-readable codes carried by :class:`Error` frames and close reasons."""

    BAD_FRAME = "bad_frame"  # garbage bytes, a text frame, a malformed envelope
    TOO_LARGE = "too_large"  # a field or the whole frame over its limit
    UNKNOWN_TYPE = "unknown_type"  # a type octet we do not know (or the wrong direction)
    UNSUPPORTED_VERSION = "unsupported_version"  # an envelope version we do not speak
    HELLO_REQUIRED = "hello_required"  # the first frame was not a Hello / Hello sent twice
    UNKNOWN_ROOM = "unknown_room"  # the room does not exist on this relay
    NOT_JOINED = "not_joined"  # the connection has not joined that room
    ALREADY_JOINED = "already_joined"  # join twice on one connection
    FUTURE_SEQ = "future_seq"  # resume from a seq the room has not reached: rejoin the group
    GAP = "gap"  # resume from a seq that fell out of the log: rejoin the group
    RATE_LIMITED = "rate_limited"  # the per-connection token bucket is empty; frame dropped
    FLOOD = "flood"  # rate-limited for too long: disconnected
    ROOM_FULL = "room_full"  # members per room reached
    TOO_MANY_ROOMS = "too_many_rooms"  # rooms per connection, or rooms on the relay, reached
    SERVER_FULL = "server_full"  # total connections reached
    SLOW_CONSUMER = "slow_consumer"  # the send queue overflowed: disconnected
    IDLE_TIMEOUT = "idle_timeout"  # nothing received for too long: disconnected
    REPLACED = "replaced"  # another connection joined the room with the same member id
    SHUTTING_DOWN = "shutting_down"  # the relay is stopping (close 1001 follows)
    INTERNAL = "internal"  # a relay bug; the relay keeps serving


class PresenceEvent(enum.IntEnum):
    """What happened to a member of a room."""

    JOINED = 1
    LEFT = 2


# --- field checks, run by every frame's __post_init__ --------------------------------------------


def check_uint(value: object, field: str, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise ConfigError(f"{field} must be an integer in 0..{maximum}, got {value!r}")


def check_id(value: object, field: str, allow_empty: bool = False) -> None:
    if not isinstance(value, bytes):
        raise ConfigError(f"{field} must be bytes, got {type(value).__name__}")
    if len(value) > MAX_ID_LEN or (not value and not allow_empty):
        low = 0 if allow_empty else 1
        raise ConfigError(f"{field} must be {low}..{MAX_ID_LEN} bytes, got {len(value)}")


def check_payload(value: object) -> None:
    if not isinstance(value, bytes):
        raise ConfigError(f"payload must be bytes, got {type(value).__name__}")
    if len(value) > MAX_VARINT:
        raise ConfigError(f"payload of {len(value)} bytes is over the format's {MAX_VARINT}")


def check_text(value: object, field: str) -> None:
    # Texts over their limit are truncated on encode, not refused: they are for humans.
    if not isinstance(value, str):
        raise ConfigError(f"{field} must be a str, got {type(value).__name__}")


# --- frames ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """Client → relay, first frame on a connection. ``agent`` is a free-form client name."""

    agent: str = ""

    def __post_init__(self) -> None:
        check_text(self.agent, "agent")


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """The relay's limits, announced in the welcome so clients can stay within them."""

    max_frame: int
    max_payload: int
    max_rooms_per_connection: int
    max_members_per_room: int
    rate_per_second: int
    burst: int
    log_max_count: int
    log_max_bytes: int
    log_max_age_seconds: int
    idle_timeout_seconds: int

    def __post_init__(self) -> None:
        for name, maximum in _LIMIT_WIDTHS:
            check_uint(getattr(self, name), name, maximum)


@dataclass(frozen=True, slots=True)
class ServerHello:
    """Relay → client, the welcome: the version the relay speaks and its limits."""

    version: int
    limits: ServerLimits
    server: str = ""

    def __post_init__(self) -> None:
        check_uint(self.version, "version", 0xFF)
        if not isinstance(self.limits, ServerLimits):
            raise ConfigError("limits must be a ServerLimits")
        check_text(self.server, "server")


@dataclass(frozen=True, slots=True)
class Join:
    """Join ``room`` as ``member``. With ``resume_after`` = N, first replay every seq > N."""

    req_id: int
    room: bytes
    member: bytes
    resume_after: int | None = None

    def __post_init__(self) -> None:
        check_uint(self.req_id, "req_id", _U32_MAX)
        check_id(self.room, "room")
        check_id(self.member, "member")
        if self.resume_after is not None:
            check_uint(self.resume_after, "resume_after", U64_MAX)


@dataclass(frozen=True, slots=True)
class Leave:
    """Leave ``room``."""

    req_id: int
    room: bytes

    def __post_init__(self) -> None:
        check_uint(self.req_id, "req_id", _U32_MAX)
        check_id(self.room, "room")


@dataclass(frozen=True, slots=True)
class Publish:
    """Send ``payload`` to every member of ``room``, the sender included (the echo)."""

    req_id: int
    room: bytes
    payload: bytes

    def __post_init__(self) -> None:
        check_uint(self.req_id, "req_id", _U32_MAX)
        check_id(self.room, "room")
        check_payload(self.payload)


@dataclass(frozen=True, slots=True)
class SendTo:
    """Send ``payload`` to the member ``to`` of ``room`` only (and echo it to the sender)."""

    req_id: int
    room: bytes
    to: bytes
    payload: bytes

    def __post_init__(self) -> None:
        check_uint(self.req_id, "req_id", _U32_MAX)
        check_id(self.room, "room")
        check_id(self.to, "to")
        check_payload(self.payload)


@dataclass(frozen=True, slots=True)
class Joined:
    """Relay → client: the join succeeded. ``head_seq`` is the room's last seq at join time.

    With a resume, every logged message after ``resume_after`` follows this frame, in order.
    ``members`` lists the member ids present when the join happened (self included).
    """

    req_id: int
    room: bytes
    head_seq: int
    members: tuple[bytes, ...]

    def __post_init__(self) -> None:
        check_uint(self.req_id, "req_id", _U32_MAX)
        check_id(self.room, "room")
        check_uint(self.head_seq, "head_seq", U64_MAX)
        if not isinstance(self.members, tuple) or len(self.members) > MAX_MEMBERS_LISTED:
            raise ConfigError(f"members must be a tuple of at most {MAX_MEMBERS_LISTED} ids")
        for m in self.members:
            check_id(m, "member")


@dataclass(frozen=True, slots=True)
class Ack:
    """Relay → client: request ``req_id`` succeeded; ``seq`` is the seq it got (0 for a leave)."""

    req_id: int
    seq: int

    def __post_init__(self) -> None:
        check_uint(self.req_id, "req_id", _U32_MAX)
        check_uint(self.seq, "seq", U64_MAX)


@dataclass(frozen=True, slots=True)
class Deliver:
    """Relay → client: a room message with its per-room sequence number.

    ``to`` is None for a room-wide publish and the addressee for a directed send. ``sender`` is
    the member id the sender joined with: the relay does not authenticate it.
    """

    seq: int
    room: bytes
    sender: bytes
    to: bytes | None
    payload: bytes

    def __post_init__(self) -> None:
        check_uint(self.seq, "seq", U64_MAX)
        check_id(self.room, "room")
        check_id(self.sender, "sender")
        if self.to is not None:
            check_id(self.to, "to")
        check_payload(self.payload)


@dataclass(frozen=True, slots=True)
class Presence:
    """Relay → client: ``member`` joined or left ``room`` (not logged, not sequenced)."""

    room: bytes
    member: bytes
    event: PresenceEvent

    def __post_init__(self) -> None:
        check_id(self.room, "room")
        check_id(self.member, "member")
        if not isinstance(self.event, PresenceEvent):
            raise ConfigError(f"event must be a PresenceEvent, got {self.event!r}")


@dataclass(frozen=True, slots=True)
class Error:
    """Relay → client: a request failed or the connection is about to close.

    ``req_id`` is the failed request's id, or 0 when the error is about no request.
    """

    code: str
    reason: str
    req_id: int = 0
    room: bytes = b""

    def __post_init__(self) -> None:
        check_text(self.code, "code")
        check_text(self.reason, "reason")
        check_uint(self.req_id, "req_id", _U32_MAX)
        check_id(self.room, "room", allow_empty=True)


# The wire width of each announced limit (see encode()).
_LIMIT_WIDTHS: tuple[tuple[str, int], ...] = (
    ("max_frame", _U32_MAX),
    ("max_payload", _U32_MAX),
    ("max_rooms_per_connection", _U16_MAX),
    ("max_members_per_room", _U32_MAX),
    ("rate_per_second", _U32_MAX),
    ("burst", _U32_MAX),
    ("log_max_count", _U32_MAX),
    ("log_max_bytes", U64_MAX),
    ("log_max_age_seconds", _U32_MAX),
    ("idle_timeout_seconds", _U32_MAX),
)

ClientFrame = Hello | Join | Leave | Publish | SendTo
ServerFrame = ServerHello | Joined | Ack | Deliver | Presence | Error
Frame = ClientFrame | ServerFrame
