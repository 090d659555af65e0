"""Framing and content authentication (RFC 9420 §6, §6.1, §6.2): what a member signs and tags.

A :class:`FramedContent` is the content of one message from a member; its FramedContentTBS is
what :func:`sign_framed_content` signs and :func:`verify_framed_content` checks, bound to the
GroupContext of the epoch it was sent in. PublicMessages (commits) add a membership tag
(:func:`membership_tag`); PrivateMessages encrypt the signed content
(:mod:`groupchat.core.message_protection`). Also the MLSMessage header both wire formats open with.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .codec import Reader, Writer, encode_varint, opaque
from .errors import ConfigError, InvalidValueError, UnknownVersionError
from .suite import CipherSuite
from .version import PROTOCOL_VERSION

__all__ = [
    "CONFIRMATION_TAG_LEN",
    "MEMBER_SENDER",
    "MESSAGE_HEADS",
    "SENDER_FIELDS",
    "SIGNATURE_LEN",
    "SIGNATURE_PREFIX",
    "ContentType",
    "FramedContent",
    "WireFormat",
    "confirmed_transcript_input",
    "framed_content_auth_data",
    "framed_content_tbs",
    "membership_tag",
    "read_message_header",
    "sign_framed_content",
    "verify_framed_content",
    "verify_membership_tag",
]

SIGNATURE_LEN: Final = 64  # Ed25519
CONFIRMATION_TAG_LEN: Final = 32  # HMAC-SHA256
SIGNATURE_PREFIX: Final = encode_varint(SIGNATURE_LEN)  # the length of V(signature): 0x4040
MEMBER_SENDER: Final = 1  # SenderType.member (§6)
# uint64 epoch || uint8 sender_type || uint32 leaf: packed in one call on the per-message paths.
SENDER_FIELDS: Final = struct.Struct(">QBI")


class ContentType(IntEnum):
    # Hashed as the int it equals, in C, not by Enum's hash of the name in Python (issue 16).
    __hash__ = int.__hash__

    APPLICATION = 1
    PROPOSAL = 2
    COMMIT = 3


class WireFormat(IntEnum):
    PUBLIC_MESSAGE = 1
    PRIVATE_MESSAGE = 2
    WELCOME = 3
    GROUP_INFO = 4
    KEY_PACKAGE = 5


def read_message_header(r: Reader, expected: WireFormat, what: str) -> None:
    """Read ``uint16 version || uint16 wire_format`` of an MLSMessage and require ``expected``."""
    version = r.u16("version")
    if version != PROTOCOL_VERSION:
        raise UnknownVersionError(f"{what} has protocol version {version}, we speak only {PROTOCOL_VERSION}")
    wire_format = r.u16("wire_format")
    if wire_format != expected:
        raise InvalidValueError(
            f"expected {what} (wire format {int(expected)}), got wire format {wire_format}"
        )


@dataclass(frozen=True, slots=True)
class FramedContent:
    """Content from a member sender; ``body`` is the already-encoded content body (§6)."""

    group_id: bytes
    epoch: int
    sender: int  # member leaf index
    authenticated_data: bytes
    content_type: ContentType
    body: bytes = field(repr=False)

    def encode(self) -> bytes:
        try:
            sender = SENDER_FIELDS.pack(self.epoch, MEMBER_SENDER, self.sender)
            content_type = bytes((self.content_type,))
        except (struct.error, ValueError):
            raise ConfigError(f"epoch {self.epoch} or leaf {self.sender} does not fit its field") from None
        return b"".join(
            (opaque(self.group_id), sender, opaque(self.authenticated_data), content_type, self.body)
        )


MESSAGE_HEADS: Final = {wf: PROTOCOL_VERSION.to_bytes(2, "big") + wf.to_bytes(2, "big") for wf in WireFormat}


def framed_content_tbs(wire_format: WireFormat, content: FramedContent, group_context: bytes) -> bytes:
    """``FramedContentTBS`` for a member sender: version || wire_format || content || GroupContext."""
    return MESSAGE_HEADS[wire_format] + content.encode() + group_context


def sign_framed_content(
    suite: CipherSuite,
    signing_key: Ed25519PrivateKey,
    wire_format: WireFormat,
    content: FramedContent,
    group_context: bytes,
) -> bytes:
    """SignWithLabel(sk, "FramedContentTBS", tbs) (§6.1)."""
    return suite.sign_with_label(
        signing_key, b"FramedContentTBS", framed_content_tbs(wire_format, content, group_context)
    )


def verify_framed_content(
    suite: CipherSuite,
    public_key: bytes,
    wire_format: WireFormat,
    content: FramedContent,
    group_context: bytes,
    signature: bytes,
) -> None:
    """Raise :class:`SignatureError` unless ``signature`` is the sender's over this content and context."""
    suite.verify_with_label(
        public_key,
        b"FramedContentTBS",
        framed_content_tbs(wire_format, content, group_context),
        signature,
        f"message from leaf {content.sender}",
    )


def framed_content_auth_data(signature: bytes, confirmation_tag: bytes | None = None) -> bytes:
    """``FramedContentAuthData = V(signature) || [V(confirmation_tag) for commits]`` (§6.1)."""
    w = Writer().opaque(signature)
    if confirmation_tag is not None:
        w.opaque(confirmation_tag)
    return w.bytes()


def membership_tag(
    suite: CipherSuite,
    membership_key: bytes,
    content: FramedContent,
    group_context: bytes,
    signature: bytes,
    confirmation_tag: bytes | None = None,
) -> bytes:
    """PublicMessage ``membership_tag = MAC(membership_key, FramedContentTBS || AuthData)`` (§6.2)."""
    tbm = framed_content_tbs(WireFormat.PUBLIC_MESSAGE, content, group_context)
    return suite.mac(membership_key, tbm + framed_content_auth_data(signature, confirmation_tag))


def verify_membership_tag(
    suite: CipherSuite,
    membership_key: bytes,
    content: FramedContent,
    group_context: bytes,
    signature: bytes,
    confirmation_tag: bytes | None,
    tag: bytes,
) -> None:
    """Raise :class:`ConfirmationError` unless ``tag`` is this PublicMessage's membership tag."""
    tbm = framed_content_tbs(WireFormat.PUBLIC_MESSAGE, content, group_context)
    suite.verify_mac(
        membership_key,
        tbm + framed_content_auth_data(signature, confirmation_tag),
        tag,
        f"membership tag of the public message from leaf {content.sender}",
    )


def confirmed_transcript_input(wire_format: WireFormat, content: FramedContent, signature: bytes) -> bytes:
    """``ConfirmedTranscriptHashInput = wire_format || FramedContent || V(signature)`` (§8.2)."""
    return Writer().u16(wire_format).raw(content.encode()).opaque(signature).bytes()
