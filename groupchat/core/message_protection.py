"""Framing, content signatures and PrivateMessage protection (RFC 9420 §6, §6.1, §6.3).

Sending: build a :class:`FramedContent`, sign it with :func:`sign_framed_content` (bound to the
current GroupContext), then :func:`protect_private_message` encrypts it under the next key of the
sender's ratchet and hides the sender behind the sender-data key.

Receiving is split so that nothing changes state until the message is authenticated:

1. :meth:`PrivateMessage.decode` parses the header; the caller reads ``group_id``, ``epoch`` and
   ``content_type`` to pick the epoch (and so the secret tree and sender-data secret) to use;
2. :func:`decrypt_sender_data` reveals ``(leaf, generation, reuse_guard)``;
3. ``secret_tree.lookup(leaf, ratchet_kind(content_type), generation)`` gives the key and nonce
   without consuming them, and :func:`decrypt_content` opens the content, splits body, signature,
   optional confirmation tag and zero padding;
4. the caller verifies the signature with :func:`verify_framed_content` and the sender's key;
5. only then ``secret_tree.commit(lookup)`` consumes the generation.

:func:`open_private_message` runs steps 2-3 in one call. Every failure raises a typed
:class:`~groupchat.core.errors.GroupChatError` subclass.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final, Generic, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .codec import Reader, Writer, encode_varint
from .errors import InvalidValueError, UnknownVersionError, UsageError
from .secret_tree import KeyLookup, RatchetKind, SecretTree
from .suite import CipherSuite
from .version import PROTOCOL_VERSION

__all__ = [
    "MAX_APPLICATION_DATA",
    "MAX_AUTHENTICATED_DATA",
    "MAX_CIPHERTEXT",
    "MAX_GROUP_ID",
    "ContentType",
    "DecryptedContent",
    "FramedContent",
    "PrivateMessage",
    "SenderData",
    "WireFormat",
    "confirmed_transcript_input",
    "decrypt_content",
    "decrypt_sender_data",
    "framed_content_auth_data",
    "framed_content_tbs",
    "membership_tag",
    "open_private_message",
    "protect_application",
    "protect_private_message",
    "ratchet_kind",
    "read_application_data",
    "read_message_header",
    "sign_framed_content",
    "verify_framed_content",
    "verify_membership_tag",
]

T = TypeVar("T")

MAX_GROUP_ID: Final = 255
MAX_AUTHENTICATED_DATA: Final = 4096
MAX_APPLICATION_DATA: Final = 1 << 20
MAX_CIPHERTEXT: Final = (1 << 20) + 4096  # room for the data plus signature, tag and padding
_SIG_LEN: Final = 64  # Ed25519
_TAG_LEN: Final = 32  # HMAC-SHA256
_SENDER_DATA_LEN: Final = 12
_SENDER_DATA_CT_LEN: Final = _SENDER_DATA_LEN + 16  # both AEADs have a 16-byte tag
_MEMBER: Final = 1  # SenderType.member (§6)


class ContentType(IntEnum):
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


def ratchet_kind(content_type: ContentType) -> RatchetKind:
    """Application messages use the application ratchet; proposals and commits the handshake one."""
    return RatchetKind.APPLICATION if content_type == ContentType.APPLICATION else RatchetKind.HANDSHAKE


def _content_type(value: int) -> ContentType:
    try:
        return ContentType(value)
    except ValueError:
        raise InvalidValueError(f"unknown content type {value} (expected 1, 2 or 3)") from None


# --- framing and signatures (§6, §6.1) ------------------------------------------------------------


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
        return (
            Writer()
            .opaque(self.group_id)
            .u64(self.epoch)
            .u8(_MEMBER)
            .u32(self.sender)
            .opaque(self.authenticated_data)
            .u8(self.content_type)
            .raw(self.body)
            .bytes()
        )


def framed_content_tbs(wire_format: WireFormat, content: FramedContent, group_context: bytes) -> bytes:
    """``FramedContentTBS`` for a member sender: version || wire_format || content || GroupContext."""
    return Writer().u16(PROTOCOL_VERSION).u16(wire_format).raw(content.encode()).raw(group_context).bytes()


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


# --- PrivateMessage (§6.3) ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrivateMessage:
    """A parsed ``MLSMessage(PrivateMessage)``: cleartext header plus the two encrypted parts."""

    group_id: bytes
    epoch: int
    content_type: ContentType
    authenticated_data: bytes
    encrypted_sender_data: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)

    def encode(self) -> bytes:
        """Encode as ``MLSMessage``: uint16 version || uint16 wire_format(2) || PrivateMessage."""
        return (
            Writer()
            .u16(PROTOCOL_VERSION)
            .u16(WireFormat.PRIVATE_MESSAGE)
            .opaque(self.group_id)
            .u64(self.epoch)
            .u8(self.content_type)
            .opaque(self.authenticated_data)
            .opaque(self.encrypted_sender_data)
            .opaque(self.ciphertext)
            .bytes()
        )

    @classmethod
    def decode(cls, data: bytes) -> PrivateMessage:
        """Parse ``MLSMessage(PrivateMessage)``, checking version, wire format and field limits."""
        r = Reader(data, "PrivateMessage")
        read_message_header(r, WireFormat.PRIVATE_MESSAGE, "a private message")
        group_id = r.opaque("group_id", MAX_GROUP_ID)
        epoch = r.u64("epoch")
        content_type = _content_type(r.u8("content_type"))
        authenticated_data = r.opaque("authenticated_data", MAX_AUTHENTICATED_DATA)
        esd = r.opaque_exact("encrypted_sender_data", _SENDER_DATA_CT_LEN)
        ciphertext = r.opaque("ciphertext", MAX_CIPHERTEXT)
        r.end()
        return cls(group_id, epoch, content_type, authenticated_data, esd, ciphertext)

    def _sender_data_aad(self) -> bytes:
        """``SenderDataAAD = V(group_id) || uint64 epoch || uint8 content_type`` (§6.3.2)."""
        return Writer().opaque(self.group_id).u64(self.epoch).u8(self.content_type).bytes()


@dataclass(frozen=True, slots=True)
class SenderData:
    """Who sent a PrivateMessage and with which ratchet generation (§6.3.2)."""

    leaf: int
    generation: int
    reuse_guard: bytes


def _sender_data_key_nonce(
    suite: CipherSuite, sender_data_secret: bytes, ciphertext: bytes
) -> tuple[bytes, bytes]:
    # §6.3.2: the sample is the first Nh bytes of the content ciphertext (all of it if shorter).
    sample = ciphertext[: suite.hash_len]
    key = suite.expand_with_label(sender_data_secret, b"key", sample, suite.key_len)
    nonce = suite.expand_with_label(sender_data_secret, b"nonce", sample, suite.nonce_len)
    return key, nonce


def decrypt_sender_data(suite: CipherSuite, msg: PrivateMessage, sender_data_secret: bytes) -> SenderData:
    """Open the encrypted SenderData with the epoch's sender-data secret (§6.3.2)."""
    key, nonce = _sender_data_key_nonce(suite, sender_data_secret, msg.ciphertext)
    plain = suite.open(key, nonce, msg._sender_data_aad(), msg.encrypted_sender_data, "sender data")
    if len(plain) != _SENDER_DATA_LEN:
        raise InvalidValueError(f"sender data must be {_SENDER_DATA_LEN} bytes, got {len(plain)}")
    return SenderData(int.from_bytes(plain[0:4], "big"), int.from_bytes(plain[4:8], "big"), plain[8:12])


def _guarded(nonce: bytes, reuse_guard: bytes) -> bytes:
    """XOR the 4-byte reuse_guard into the first 4 bytes of the ratchet nonce (§6.3.1)."""
    head = int.from_bytes(nonce[:4], "big") ^ int.from_bytes(reuse_guard, "big")
    return head.to_bytes(4, "big") + nonce[4:]


def _content_aad(msg_group_id: bytes, epoch: int, content_type: int, authenticated_data: bytes) -> bytes:
    """``PrivateContentAAD`` (§6.3.1)."""
    return Writer().opaque(msg_group_id).u64(epoch).u8(content_type).opaque(authenticated_data).bytes()


@dataclass(frozen=True, slots=True)
class DecryptedContent(Generic[T]):
    """An opened PrivateMessage: the content (not yet signature-checked) and its auth data."""

    content: FramedContent
    parsed: T  # whatever the body reader returned (for application messages: the data)
    signature: bytes
    confirmation_tag: bytes | None  # present exactly for commits


def read_application_data(r: Reader) -> bytes:
    """Body reader for application content: ``opaque application_data<V>`` of at most 1 MiB."""
    return r.opaque("application_data", MAX_APPLICATION_DATA)


def decrypt_content(
    suite: CipherSuite,
    msg: PrivateMessage,
    sender_data: SenderData,
    key: bytes,
    nonce: bytes,
    body_reader: Callable[[Reader], T],
) -> DecryptedContent[T]:
    """AEAD-open the content and split ``body || V(signature) || [V(confirmation_tag)] || padding``.

    ``body_reader`` must consume exactly the content body; the encoded body bytes become
    ``content.body``. Non-zero padding raises :class:`InvalidValueError` (§6.3.1).
    """
    aad = _content_aad(msg.group_id, msg.epoch, msg.content_type, msg.authenticated_data)
    plain = suite.open(key, _guarded(nonce, sender_data.reuse_guard), aad, msg.ciphertext, "message content")
    r = Reader(plain, "PrivateMessageContent")
    parsed = body_reader(r)
    body = plain[: r.position]
    signature = r.opaque_exact("signature", _SIG_LEN)
    tag = r.opaque_exact("confirmation_tag", _TAG_LEN) if msg.content_type == ContentType.COMMIT else None
    padding = r.fixed(r.remaining, "padding")
    if padding.count(0) != len(padding):
        raise InvalidValueError("message padding contains non-zero bytes")
    content = FramedContent(
        msg.group_id, msg.epoch, sender_data.leaf, msg.authenticated_data, msg.content_type, body
    )
    return DecryptedContent(content, parsed, signature, tag)


def open_private_message(
    suite: CipherSuite,
    msg: PrivateMessage,
    *,
    sender_data_secret: bytes,
    secret_tree: SecretTree,
    body_reader: Callable[[Reader], T],
) -> tuple[DecryptedContent[T], KeyLookup]:
    """Decrypt sender data and content without consuming the key.

    The caller must verify the signature (:func:`verify_framed_content`) and then call
    ``secret_tree.commit(lookup)``; until then the secret tree is unchanged.
    """
    sd = decrypt_sender_data(suite, msg, sender_data_secret)
    lookup = secret_tree.lookup(sd.leaf, ratchet_kind(msg.content_type), sd.generation)
    return decrypt_content(suite, msg, sd, lookup.key, lookup.nonce, body_reader), lookup


def protect_private_message(
    suite: CipherSuite,
    *,
    content: FramedContent,
    signature: bytes,
    confirmation_tag: bytes | None = None,
    secret_tree: SecretTree,
    sender_data_secret: bytes,
    padding_block: int = 32,
    rand: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """Encrypt signed content as ``MLSMessage(PrivateMessage)`` under the sender's next ratchet key.

    The plaintext is zero-padded to a multiple of ``padding_block`` (0 or 1: no padding).
    Commits must carry a ``confirmation_tag``; other content types must not.
    """
    ct = content.content_type
    if (ct == ContentType.COMMIT) != (confirmation_tag is not None):
        raise UsageError("a confirmation tag is required for commits and forbidden otherwise")
    if len(content.authenticated_data) > MAX_AUTHENTICATED_DATA or len(content.group_id) > MAX_GROUP_ID:
        raise UsageError("group id or authenticated data is longer than the wire format allows")
    parts = [content.body, encode_varint(len(signature)), signature]
    if confirmation_tag is not None:
        parts += (encode_varint(len(confirmation_tag)), confirmation_tag)
    plain = b"".join(parts)
    if padding_block > 1:
        plain += bytes(-len(plain) % padding_block)
    if len(plain) + 16 > MAX_CIPHERTEXT:
        raise UsageError(f"message of {len(plain)} bytes is too large to send")
    generation, key, nonce = secret_tree.next_send(content.sender, ratchet_kind(ct))
    guard = rand(4)
    if len(guard) != 4:
        raise UsageError("rand(4) must return 4 bytes")
    aad = _content_aad(content.group_id, content.epoch, ct, content.authenticated_data)
    ciphertext = suite.seal(key, _guarded(nonce, guard), aad, plain)
    sd_key, sd_nonce = _sender_data_key_nonce(suite, sender_data_secret, ciphertext)
    sd_plain = content.sender.to_bytes(4, "big") + generation.to_bytes(4, "big") + guard
    sd_aad = Writer().opaque(content.group_id).u64(content.epoch).u8(ct).bytes()
    esd = suite.seal(sd_key, sd_nonce, sd_aad, sd_plain)
    return PrivateMessage(
        content.group_id, content.epoch, ct, content.authenticated_data, esd, ciphertext
    ).encode()


def protect_application(
    suite: CipherSuite,
    *,
    content: FramedContent,
    signature: bytes,
    secret_tree: SecretTree,
    sender_data_secret: bytes,
    padding_block: int = 32,
    rand: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """:func:`protect_private_message` for application content (no confirmation tag)."""
    if content.content_type != ContentType.APPLICATION:
        raise UsageError("protect_application needs application content")
    return protect_private_message(
        suite,
        content=content,
        signature=signature,
        secret_tree=secret_tree,
        sender_data_secret=sender_data_secret,
        padding_block=padding_block,
        rand=rand,
    )
