"""The session's framing inside a relay room: one kind octet, then the body.

The relay forwards opaque payloads; every payload a groupchat session publishes in a room is::

    struct {
        uint8 kind;        // PayloadKind
        opaque body[..];   // the rest of the payload, by kind:
    } RoomPayload;

    GROUP_CREATED  16 random bytes: a fresh marker, so that the relay's order settles which of two
                   members who found the room empty at once created the group (the first wins)
    CORE           a protocol-core message: a commit (PublicMessage) or an application message
                   (PrivateMessage); the core authenticates it
    JOIN_REQUEST   a join ask, published by a joiner: ``V(JoinRequest) || optional<invite_key[32]
                   || proof[64]>``: the signed request (groupchat.core.identity) and, when the
                   joiner holds an invite, the invite's public key and its proof over the request
                   (groupchat.core.invite); the relay sees neither the invite's secret nor more
    WELCOME        a Welcome, sent with SendTo to the joiner alone
    SYNC           8 random bytes a member sends to itself after joining the room: its echo marks
                   the end of the relay's backlog (the relay skips SendTo messages meant for
                   others, so the backlog's last seq cannot be predicted from ``head_seq``)

Nothing here is trusted: the kind only routes the body to the code that verifies it. The kind
octet is outside the core's authentication, so a relay that flips it only makes a payload fail
to parse where it lands, which changes liveness, never the group state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from ..core.codec import Reader, Writer
from ..core.errors import InvalidValueError, TruncatedError

__all__ = [
    "CREATION_NONCE_LEN",
    "SYNC_NONCE_LEN",
    "JoinAsk",
    "PayloadKind",
    "RoomPayload",
    "UnknownPayloadKindError",
]

CREATION_NONCE_LEN: Final = 16
SYNC_NONCE_LEN: Final = 8
_MAX_REQUEST: Final = 4096  # as the core reads an Add's request
_INVITE_KEY: Final = 32
_PROOF: Final = 64


class UnknownPayloadKindError(InvalidValueError):
    """A room payload whose kind octet names nothing this client knows."""


class PayloadKind(enum.IntEnum):
    GROUP_CREATED = 1
    CORE = 2
    JOIN_REQUEST = 3
    WELCOME = 4
    SYNC = 5


@dataclass(frozen=True, slots=True)
class RoomPayload:
    kind: PayloadKind
    body: bytes

    def encode(self) -> bytes:
        return bytes((self.kind,)) + self.body

    @classmethod
    def decode(cls, data: bytes) -> RoomPayload:
        """Parse a payload; raise a GroupChatError (never anything else) on bad bytes."""
        if not data:
            raise TruncatedError("room payload is empty: it has no kind octet")
        try:
            kind = PayloadKind(data[0])
        except ValueError:
            raise UnknownPayloadKindError(f"room payload kind {data[0]} is unknown") from None
        body = data[1:]
        if kind is PayloadKind.GROUP_CREATED and len(body) != CREATION_NONCE_LEN:
            raise InvalidValueError(
                f"group-created marker must carry {CREATION_NONCE_LEN} bytes, not {len(body)}"
            )
        if kind is PayloadKind.SYNC and len(body) != SYNC_NONCE_LEN:
            raise InvalidValueError(f"sync marker must carry {SYNC_NONCE_LEN} bytes, not {len(body)}")
        if not body:
            raise TruncatedError(f"room payload of kind {kind.name} has an empty body")
        return cls(kind, body)


@dataclass(frozen=True, slots=True)
class JoinAsk:
    """A JOIN_REQUEST payload's body: the signed request's bytes and, with an invite, its public
    key and proof. Decoding checks only the shape; the core checks the signatures."""

    request: bytes
    invite_key: bytes | None = None
    proof: bytes | None = None

    def encode(self) -> bytes:
        w = Writer().opaque(self.request)
        if self.invite_key is None or self.proof is None:
            return w.u8(0).bytes()
        return w.u8(1).raw(self.invite_key).raw(self.proof).bytes()

    @classmethod
    def decode(cls, body: bytes) -> JoinAsk:
        r = Reader(body, "join ask")
        request = r.opaque("join request", _MAX_REQUEST, 1)
        present = r.u8("invite present")
        if present not in (0, 1):
            raise InvalidValueError(f"join ask: invite presence octet must be 0 or 1, not {present}")
        key = proof = None
        if present:
            key = r.fixed(_INVITE_KEY, "invite key")
            proof = r.fixed(_PROOF, "invite proof")
        r.end()
        return cls(request, key, proof)
