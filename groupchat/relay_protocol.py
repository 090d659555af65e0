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
rejected before it is read. This module imports no key-material code: the relay uses it too.

Frames validate when they are built (``__post_init__``), so an unencodable frame cannot exist:
building one with a bad field raises :class:`~groupchat.core.errors.ConfigError` (a local
mistake), and decoding bad bytes raises a :class:`~groupchat.core.errors.DecodeError` (the peer's).
Nothing here raises anything but :class:`~groupchat.core.errors.GroupChatError` subclasses.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from .core.codec import MAX_VARINT, Reader, Writer
from .core.errors import (
    ConfigError,
    DecodeError,
    FieldTooLargeError,
    InvalidValueError,
    UnknownVersionError,
    UsageError,
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

_U64 = struct.Struct(">Q")
_U16_MAX = (1 << 16) - 1
_U32_MAX = (1 << 32) - 1
_U64_MAX = (1 << 64) - 1


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


def _check_uint(value: object, field: str, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise ConfigError(f"{field} must be an integer in 0..{maximum}, got {value!r}")


def _check_id(value: object, field: str, allow_empty: bool = False) -> None:
    if not isinstance(value, bytes):
        raise ConfigError(f"{field} must be bytes, got {type(value).__name__}")
    if len(value) > MAX_ID_LEN or (not value and not allow_empty):
        low = 0 if allow_empty else 1
        raise ConfigError(f"{field} must be {low}..{MAX_ID_LEN} bytes, got {len(value)}")


def _check_payload(value: object) -> None:
    if not isinstance(value, bytes):
        raise ConfigError(f"payload must be bytes, got {type(value).__name__}")
    if len(value) > MAX_VARINT:
        raise ConfigError(f"payload of {len(value)} bytes is over the format's {MAX_VARINT}")


def _check_text(value: object, field: str) -> None:
    # Texts over their limit are truncated on encode, not refused: they are for humans.
    if not isinstance(value, str):
        raise ConfigError(f"{field} must be a str, got {type(value).__name__}")


# --- frames ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """Client → relay, first frame on a connection. ``agent`` is a free-form client name."""

    agent: str = ""

    def __post_init__(self) -> None:
        _check_text(self.agent, "agent")


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
            _check_uint(getattr(self, name), name, maximum)


@dataclass(frozen=True, slots=True)
class ServerHello:
    """Relay → client, the welcome: the version the relay speaks and its limits."""

    version: int
    limits: ServerLimits
    server: str = ""

    def __post_init__(self) -> None:
        _check_uint(self.version, "version", 0xFF)
        if not isinstance(self.limits, ServerLimits):
            raise ConfigError("limits must be a ServerLimits")
        _check_text(self.server, "server")


@dataclass(frozen=True, slots=True)
class Join:
    """Join ``room`` as ``member``. With ``resume_after`` = N, first replay every seq > N."""

    req_id: int
    room: bytes
    member: bytes
    resume_after: int | None = None

    def __post_init__(self) -> None:
        _check_uint(self.req_id, "req_id", _U32_MAX)
        _check_id(self.room, "room")
        _check_id(self.member, "member")
        if self.resume_after is not None:
            _check_uint(self.resume_after, "resume_after", _U64_MAX)


@dataclass(frozen=True, slots=True)
class Leave:
    """Leave ``room``."""

    req_id: int
    room: bytes

    def __post_init__(self) -> None:
        _check_uint(self.req_id, "req_id", _U32_MAX)
        _check_id(self.room, "room")


@dataclass(frozen=True, slots=True)
class Publish:
    """Send ``payload`` to every member of ``room``, the sender included (the echo)."""

    req_id: int
    room: bytes
    payload: bytes

    def __post_init__(self) -> None:
        _check_uint(self.req_id, "req_id", _U32_MAX)
        _check_id(self.room, "room")
        _check_payload(self.payload)


@dataclass(frozen=True, slots=True)
class SendTo:
    """Send ``payload`` to the member ``to`` of ``room`` only (and echo it to the sender)."""

    req_id: int
    room: bytes
    to: bytes
    payload: bytes

    def __post_init__(self) -> None:
        _check_uint(self.req_id, "req_id", _U32_MAX)
        _check_id(self.room, "room")
        _check_id(self.to, "to")
        _check_payload(self.payload)


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
        _check_uint(self.req_id, "req_id", _U32_MAX)
        _check_id(self.room, "room")
        _check_uint(self.head_seq, "head_seq", _U64_MAX)
        if not isinstance(self.members, tuple) or len(self.members) > MAX_MEMBERS_LISTED:
            raise ConfigError(f"members must be a tuple of at most {MAX_MEMBERS_LISTED} ids")
        for m in self.members:
            _check_id(m, "member")


@dataclass(frozen=True, slots=True)
class Ack:
    """Relay → client: request ``req_id`` succeeded; ``seq`` is the seq it got (0 for a leave)."""

    req_id: int
    seq: int

    def __post_init__(self) -> None:
        _check_uint(self.req_id, "req_id", _U32_MAX)
        _check_uint(self.seq, "seq", _U64_MAX)


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
        _check_uint(self.seq, "seq", _U64_MAX)
        _check_id(self.room, "room")
        _check_id(self.sender, "sender")
        if self.to is not None:
            _check_id(self.to, "to")
        _check_payload(self.payload)


@dataclass(frozen=True, slots=True)
class Presence:
    """Relay → client: ``member`` joined or left ``room`` (not logged, not sequenced)."""

    room: bytes
    member: bytes
    event: PresenceEvent

    def __post_init__(self) -> None:
        _check_id(self.room, "room")
        _check_id(self.member, "member")
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
        _check_text(self.code, "code")
        _check_text(self.reason, "reason")
        _check_uint(self.req_id, "req_id", _U32_MAX)
        _check_id(self.room, "room", allow_empty=True)


# The wire width of each announced limit (see encode()).
_LIMIT_WIDTHS: tuple[tuple[str, int], ...] = (
    ("max_frame", _U32_MAX),
    ("max_payload", _U32_MAX),
    ("max_rooms_per_connection", _U16_MAX),
    ("max_members_per_room", _U32_MAX),
    ("rate_per_second", _U32_MAX),
    ("burst", _U32_MAX),
    ("log_max_count", _U32_MAX),
    ("log_max_bytes", _U64_MAX),
    ("log_max_age_seconds", _U32_MAX),
    ("idle_timeout_seconds", _U32_MAX),
)

ClientFrame = Hello | Join | Leave | Publish | SendTo
ServerFrame = ServerHello | Joined | Ack | Deliver | Presence | Error
Frame = ClientFrame | ServerFrame


# --- encoding ---------------------------------------------------------------------------------


def _header(ftype: FrameType) -> Writer:
    return Writer().u8(ENVELOPE_VERSION).u8(ftype)


def _text(value: str, limit: int) -> bytes:
    data = value.encode("utf-8")
    if len(data) > limit:
        # Truncate on a character boundary rather than refuse: these are human-readable texts.
        data = data[:limit].decode("utf-8", "ignore").encode("utf-8")
    return data


def deliver_rest(room: bytes, sender: bytes, to: bytes | None, payload: bytes) -> bytes:
    """The part of a Deliver envelope after its seq; the relay stores and forwards this."""
    _check_id(room, "room")
    _check_id(sender, "sender")
    if to is not None:
        _check_id(to, "to")
    _check_payload(payload)
    w = Writer().opaque(room).opaque(sender)
    if to is None:
        w.u8(0)
    else:
        w.u8(1).opaque(to)
    return w.opaque(payload).bytes()


def deliver_prefix(seq: int) -> bytes:
    """Version, type and seq of a Deliver envelope: ``deliver_prefix(seq) + rest`` is the frame."""
    _check_uint(seq, "seq", _U64_MAX)
    return bytes((ENVELOPE_VERSION, FrameType.DELIVER)) + _U64.pack(seq)


def encode(frame: Frame) -> bytes:
    """Encode ``frame`` as one envelope.

    Frames validate when built, so every frame encodes; anything else is a :class:`UsageError`.
    """
    match frame:
        case Hello(agent):
            return _header(FrameType.HELLO).opaque(_text(agent, MAX_AGENT_LEN)).bytes()
        case Join(req_id, room, member, resume_after):
            w = _header(FrameType.JOIN).u32(req_id).opaque(room).opaque(member)
            if resume_after is None:
                w.u8(0)
            else:
                w.u8(1).u64(resume_after)
            return w.bytes()
        case Leave(req_id, room):
            return _header(FrameType.LEAVE).u32(req_id).opaque(room).bytes()
        case Publish(req_id, room, payload):
            return _header(FrameType.PUBLISH).u32(req_id).opaque(room).opaque(payload).bytes()
        case SendTo(req_id, room, to, payload):
            w = _header(FrameType.SEND_TO).u32(req_id).opaque(room).opaque(to)
            return w.opaque(payload).bytes()
        case ServerHello(version, limits, server):
            w = _header(FrameType.SERVER_HELLO).u8(version)
            w.u32(limits.max_frame).u32(limits.max_payload)
            w.u16(limits.max_rooms_per_connection).u32(limits.max_members_per_room)
            w.u32(limits.rate_per_second).u32(limits.burst)
            w.u32(limits.log_max_count).u64(limits.log_max_bytes)
            w.u32(limits.log_max_age_seconds).u32(limits.idle_timeout_seconds)
            return w.opaque(_text(server, MAX_AGENT_LEN)).bytes()
        case Joined(req_id, room, head_seq, members):
            w = _header(FrameType.JOINED).u32(req_id).opaque(room).u64(head_seq)
            return w.vector([Writer().opaque(m).bytes() for m in members]).bytes()
        case Ack(req_id, seq):
            return _header(FrameType.ACK).u32(req_id).u64(seq).bytes()
        case Deliver(seq, room, sender, to, payload):
            return deliver_prefix(seq) + deliver_rest(room, sender, to, payload)
        case Presence(room, member, event):
            return _header(FrameType.PRESENCE).opaque(room).opaque(member).u8(event).bytes()
        case Error(code, reason, req_id, room):
            w = _header(FrameType.ERROR).u32(req_id)
            w.opaque(_text(code, MAX_CODE_LEN))
            w.opaque(_text(reason, MAX_REASON_LEN))
            return w.opaque(room).bytes()
    raise UsageError(f"not a relay frame: {type(frame).__name__}")


# --- decoding ---------------------------------------------------------------------------------


def _id(r: Reader, field: str) -> bytes:
    return r.opaque(field, MAX_ID_LEN, min_len=1)


def _utf8(r: Reader, field: str, limit: int) -> str:
    raw = r.opaque(field, limit)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidValueError(f"envelope: {field} is not valid UTF-8") from None


def _flag(r: Reader, field: str) -> bool:
    v = r.u8(field)
    if v > 1:
        raise InvalidValueError(f"envelope: presence flag of {field} is {v}, not 0/1")
    return v == 1


def _decode_body(ftype: int, r: Reader, max_payload: int) -> Frame:
    # The branches mirror encode(); each reads exactly its fields and the caller checks the end.
    if ftype == FrameType.HELLO:
        return Hello(_utf8(r, "agent", MAX_AGENT_LEN))
    if ftype == FrameType.JOIN:
        req_id, room, member = r.u32("req_id"), _id(r, "room"), _id(r, "member")
        resume = r.u64("resume_after") if _flag(r, "resume_after") else None
        return Join(req_id, room, member, resume)
    if ftype == FrameType.LEAVE:
        return Leave(r.u32("req_id"), _id(r, "room"))
    if ftype == FrameType.PUBLISH:
        return Publish(r.u32("req_id"), _id(r, "room"), r.opaque("payload", max_payload))
    if ftype == FrameType.SEND_TO:
        req_id, room, to = r.u32("req_id"), _id(r, "room"), _id(r, "to")
        return SendTo(req_id, room, to, r.opaque("payload", max_payload))
    if ftype == FrameType.SERVER_HELLO:
        version = r.u8("version")
        limits = ServerLimits(
            max_frame=r.u32("max_frame"),
            max_payload=r.u32("max_payload"),
            max_rooms_per_connection=r.u16("max_rooms_per_connection"),
            max_members_per_room=r.u32("max_members_per_room"),
            rate_per_second=r.u32("rate_per_second"),
            burst=r.u32("burst"),
            log_max_count=r.u32("log_max_count"),
            log_max_bytes=r.u64("log_max_bytes"),
            log_max_age_seconds=r.u32("log_max_age_seconds"),
            idle_timeout_seconds=r.u32("idle_timeout_seconds"),
        )
        return ServerHello(version, limits, _utf8(r, "server", MAX_AGENT_LEN))
    if ftype == FrameType.JOINED:
        req_id, room, head = r.u32("req_id"), _id(r, "room"), r.u64("head_seq")
        members = r.vector(
            "members",
            MAX_MEMBERS_LISTED * (MAX_ID_LEN + 1),
            lambda sub: _id(sub, "member"),
            MAX_MEMBERS_LISTED,
        )
        return Joined(req_id, room, head, tuple(members))
    if ftype == FrameType.ACK:
        return Ack(r.u32("req_id"), r.u64("seq"))
    if ftype == FrameType.DELIVER:
        seq, room, sender = r.u64("seq"), _id(r, "room"), _id(r, "sender")
        addressee = _id(r, "to") if _flag(r, "to") else None
        return Deliver(seq, room, sender, addressee, r.opaque("payload", max_payload))
    if ftype == FrameType.PRESENCE:
        room, member, ev = _id(r, "room"), _id(r, "member"), r.u8("event")
        try:
            event = PresenceEvent(ev)
        except ValueError:
            raise InvalidValueError(f"envelope: unknown presence event {ev}") from None
        return Presence(room, member, event)
    if ftype == FrameType.ERROR:
        req_id = r.u32("req_id")
        code = _utf8(r, "code", MAX_CODE_LEN)
        reason = _utf8(r, "reason", MAX_REASON_LEN)
        room = r.opaque("room", MAX_ID_LEN)
        return Error(code, reason, req_id, room)
    raise UnknownFrameTypeError(f"envelope: unknown frame type {ftype}")


_CLIENT_TYPES = frozenset(t for t in FrameType if t < 64)
_SERVER_TYPES = frozenset(t for t in FrameType if t >= 64)
_ALL_TYPES = _CLIENT_TYPES | _SERVER_TYPES


def _decode(data: bytes, max_frame: int, allowed: frozenset[int], side: str) -> Frame:
    if len(data) > max_frame:
        raise FieldTooLargeError(f"envelope: {len(data)} bytes, more than the limit {max_frame}")
    r = Reader(data, "envelope")
    version = r.u8("version")
    if version != ENVELOPE_VERSION:
        raise UnknownVersionError(
            f"envelope: version {version} is not supported (this relay speaks {ENVELOPE_VERSION})"
        )
    ftype = r.u8("type")
    if ftype not in allowed:
        raise UnknownFrameTypeError(f"envelope: type {ftype} is not a known {side} frame")
    # The whole envelope is already within max_frame, so that also bounds every payload.
    try:
        frame = _decode_body(ftype, r, max_frame)
    except ConfigError as exc:
        # The reads above bound every field, so a frame should never refuse what they return;
        # if one does, it is still the peer's bytes that are bad, never a local mistake.
        raise InvalidValueError(f"envelope: {exc}") from None
    r.end()
    return frame


def decode(data: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> Frame:
    """Decode one envelope of either direction; raise a :class:`DecodeError` on bad input.

    ``max_frame`` bounds the whole envelope and so every payload inside it.
    """
    return _decode(data, max_frame, _ALL_TYPES, "relay")


def decode_client(data: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> ClientFrame:
    """Decode a client → relay envelope; a relay → client type is an unknown type here."""
    frame = _decode(data, max_frame, _CLIENT_TYPES, "client")
    assert isinstance(frame, Hello | Join | Leave | Publish | SendTo)
    return frame


def decode_server(data: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> ServerFrame:
    """Decode a relay → client envelope; a client → relay type is an unknown type here."""
    frame = _decode(data, max_frame, _SERVER_TYPES, "server")
    assert isinstance(frame, ServerHello | Joined | Ack | Deliver | Presence | Error)
    return frame


def error_code_for(exc: DecodeError) -> ErrorCode:
    """The stable error code that reports ``exc`` in an :class:`Error` frame."""
    if isinstance(exc, UnknownVersionError):
        return ErrorCode.UNSUPPORTED_VERSION
    if isinstance(exc, UnknownFrameTypeError):
        return ErrorCode.UNKNOWN_TYPE
    if isinstance(exc, FieldTooLargeError):
        return ErrorCode.TOO_LARGE
    return ErrorCode.BAD_FRAME
