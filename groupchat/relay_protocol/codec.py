"""Encoding and decoding of relay envelopes: one encoding per frame, every length bounded on read.

:func:`encode` writes any frame; :func:`decode_client` / :func:`decode_server` read what each side
may receive and raise a :class:`~groupchat.core.errors.DecodeError` subclass on bad bytes;
:func:`error_code_for` names the :class:`~.frames.ErrorCode` that reports such an error. The relay
stores a Deliver as :func:`deliver_prefix` + :func:`deliver_rest`, so it never re-encodes a payload.
"""

from __future__ import annotations

from ..core.codec import Reader, Writer
from ..core.errors import (
    ConfigError,
    DecodeError,
    FieldTooLargeError,
    InvalidValueError,
    UnknownVersionError,
    UsageError,
)
from .frames import (
    DEFAULT_MAX_FRAME,
    ENVELOPE_VERSION,
    MAX_AGENT_LEN,
    MAX_CODE_LEN,
    MAX_ID_LEN,
    MAX_MEMBERS_LISTED,
    MAX_REASON_LEN,
    U64,
    U64_MAX,
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
    check_id,
    check_payload,
    check_uint,
)

__all__ = [
    "decode",
    "decode_client",
    "decode_server",
    "deliver_prefix",
    "deliver_rest",
    "encode",
    "error_code_for",
]


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
    check_id(room, "room")
    check_id(sender, "sender")
    if to is not None:
        check_id(to, "to")
    check_payload(payload)
    w = Writer().opaque(room).opaque(sender)
    if to is None:
        w.u8(0)
    else:
        w.u8(1).opaque(to)
    return w.opaque(payload).bytes()


def deliver_prefix(seq: int) -> bytes:
    """Version, type and seq of a Deliver envelope: ``deliver_prefix(seq) + rest`` is the frame."""
    check_uint(seq, "seq", U64_MAX)
    return bytes((ENVELOPE_VERSION, FrameType.DELIVER)) + U64.pack(seq)


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


CLIENT_TYPES = frozenset(t for t in FrameType if t < 64)
SERVER_TYPES = frozenset(t for t in FrameType if t >= 64)
_ALL_TYPES = CLIENT_TYPES | SERVER_TYPES


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
    frame = _decode(data, max_frame, CLIENT_TYPES, "client")
    assert isinstance(frame, Hello | Join | Leave | Publish | SendTo)
    return frame


def decode_server(data: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> ServerFrame:
    """Decode a relay → client envelope; a client → relay type is an unknown type here."""
    frame = _decode(data, max_frame, SERVER_TYPES, "server")
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
