"""PrivateMessage protection (RFC 9420 §6.3): sealing signed content, opening it before it is trusted.

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

import functools
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Generic, NamedTuple, TypeVar, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .codec import Reader, encode_varint, opaque
from .errors import ConfigError, InvalidValueError, UsageError
from .framing import (
    CONFIRMATION_TAG_LEN,
    MEMBER_SENDER,
    MESSAGE_HEADS,
    SENDER_FIELDS,
    SIGNATURE_LEN,
    SIGNATURE_PREFIX,
    ContentType,
    FramedContent,
    WireFormat,
    confirmed_transcript_input,
    framed_content_auth_data,
    framed_content_tbs,
    membership_tag,
    read_message_header,
    sign_framed_content,
    verify_framed_content,
    verify_membership_tag,
)
from .secret_tree import KeyLookup, RatchetKind, SecretTree
from .suite import CipherSuite, KeyedHmac, expand_blocks

# The framing names (groupchat.core.framing) are re-exported: callers of the message layer
# import the content, its signature and its wire format from here, as before the split.
__all__ = [
    "MAX_APPLICATION_DATA",
    "MAX_AUTHENTICATED_DATA",
    "MAX_CIPHERTEXT",
    "MAX_GROUP_ID",
    "ApplicationWire",
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
    "open_application",
    "open_private_message",
    "protect_application",
    "protect_private_message",
    "ratchet_kind",
    "read_application_data",
    "read_message_header",
    "seal_application",
    "sign_framed_content",
    "verify_application",
    "verify_framed_content",
    "verify_membership_tag",
]

T = TypeVar("T")

MAX_GROUP_ID: Final = 255
MAX_AUTHENTICATED_DATA: Final = 4096
MAX_APPLICATION_DATA: Final = 1 << 20
MAX_CIPHERTEXT: Final = (1 << 20) + 4096  # room for the data plus signature, tag and padding
_SENDER_DATA_LEN: Final = 12
_SENDER_DATA_CT_LEN: Final = _SENDER_DATA_LEN + 16  # both AEADs have a 16-byte tag
_ESD_LEN: Final = encode_varint(_SENDER_DATA_CT_LEN)  # the length of V(encrypted_sender_data)
# The per-message encodings below are joined from struct-packed pieces rather than built with a
# Writer: they run on every message (issue 16: message costs near their primitive floor).
_U32: Final = struct.Struct(">I")
_EPOCH_CT: Final = struct.Struct(">QB")  # uint64 epoch || uint8 content_type
_MEMBER_LEAF: Final = struct.Struct(">BI")  # Sender: uint8 sender_type || uint32 leaf
_SENDER_DATA: Final = struct.Struct(">II")  # SenderData: uint32 leaf || uint32 generation (|| guard)


def ratchet_kind(content_type: ContentType) -> RatchetKind:
    """Application messages use the application ratchet; proposals and commits the handshake one."""
    return RatchetKind.APPLICATION if content_type == ContentType.APPLICATION else RatchetKind.HANDSHAKE


def _content_type(value: int) -> ContentType:
    try:
        return ContentType(value)
    except ValueError:
        raise InvalidValueError(f"unknown content type {value} (expected 1, 2 or 3)") from None


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
        aad = _content_aad(self.group_id, self.epoch, self.content_type, self.authenticated_data)
        return _private_message(aad, self.encrypted_sender_data, self.ciphertext)

    @classmethod
    def decode(cls, data: bytes) -> PrivateMessage:
        """Parse ``MLSMessage(PrivateMessage)``, checking version, wire format and field limits."""
        fast = _decode_common(data)
        return fast if fast is not None else _decode_general(data)

    def _sender_data_aad(self) -> bytes:
        """``SenderDataAAD = V(group_id) || uint64 epoch || uint8 content_type`` (§6.3.2)."""
        return _sender_data_aad(self.group_id, self.epoch, self.content_type)


def _decode_general(data: bytes) -> PrivateMessage:
    """The general :meth:`PrivateMessage.decode`: every shape the format allows, every error named."""
    r = Reader(data, "PrivateMessage")
    read_message_header(r, WireFormat.PRIVATE_MESSAGE, "a private message")
    group_id = r.opaque("group_id", MAX_GROUP_ID)
    epoch = r.u64("epoch")
    content_type = _content_type(r.u8("content_type"))
    authenticated_data = r.opaque("authenticated_data", MAX_AUTHENTICATED_DATA)
    esd = r.opaque_exact("encrypted_sender_data", _SENDER_DATA_CT_LEN)
    ciphertext = r.opaque("ciphertext", MAX_CIPHERTEXT)
    r.end()
    return PrivateMessage(group_id, epoch, content_type, authenticated_data, esd, ciphertext)


_PRIVATE_HEAD: Final = MESSAGE_HEADS[WireFormat.PRIVATE_MESSAGE]
_CONTENT_TYPES: Final = {int(t): t for t in ContentType}


def _decode_common(data: bytes) -> PrivateMessage | None:
    """:meth:`PrivateMessage.decode` of the common shape, read straight from the bytes: group id and
    authenticated data under 64 bytes (1-byte lengths), a ciphertext under 16 KiB. ``None`` for
    anything else, valid or not; the general decoder then reads it and names what is wrong."""
    at = _common_offsets(data)
    if at is None:
        return None
    gid_end, ad_end, esd_end, start = at
    epoch, content_type = _EPOCH_CT.unpack_from(data, gid_end)
    return PrivateMessage(
        data[5:gid_end],
        epoch,
        _CONTENT_TYPES[content_type],
        data[gid_end + 10 : ad_end],
        data[ad_end + 1 : esd_end],
        data[start:],
    )


def _common_offsets(data: bytes) -> tuple[int, int, int, int] | None:
    """Where the fields of a common-shape PrivateMessage end (:func:`_decode_common`): group id,
    authenticated data, encrypted sender data, and where the ciphertext starts; ``None`` otherwise."""
    if type(data) is not bytes or data[:4] != _PRIVATE_HEAD or len(data) < 48:
        return None
    gid_end = 5 + data[4]
    if data[4] >= 64 or len(data) < gid_end + 12:
        return None
    at = gid_end + 9
    ad_end = at + 1 + data[at]
    if (
        data[gid_end + 8] not in _CONTENT_TYPES
        or data[at] >= 64
        or len(data) < ad_end + 30
        or data[ad_end] != _SENDER_DATA_CT_LEN
    ):
        return None
    esd_end = ad_end + 1 + _SENDER_DATA_CT_LEN
    first = data[esd_end]
    if first < 0x40:  # 1-byte length
        start, size = esd_end + 1, first
    elif first < 0x80 and len(data) > esd_end + 1:  # 2-byte length, minimal iff ≥ 64
        start, size = esd_end + 2, ((first & 0x3F) << 8) | data[esd_end + 1]
        if size < 0x40:
            return None
    else:
        return None
    if start + size != len(data):
        return None
    return gid_end, ad_end, esd_end, start


class ApplicationWire(NamedTuple):
    """The fields of an application PrivateMessage that opening it needs, with its two AADs (§6.3.1,
    §6.3.2) as they stand in the wire bytes: what :func:`open_application` reads."""

    group_id: bytes
    epoch: int
    authenticated_data: bytes
    sender_data_aad: bytes  # V(group_id) || uint64 epoch || uint8 content_type
    content_aad: bytes  # sender_data_aad || V(authenticated_data)
    encrypted_sender_data: bytes
    ciphertext: bytes

    @classmethod
    def read(cls, data: bytes) -> ApplicationWire | None:
        """The common shape of :meth:`PrivateMessage.decode` holding application content, read
        straight from the bytes, its AADs sliced out of them; ``None`` for anything else (the
        caller decodes that in full, which names what is wrong, and uses :meth:`of`)."""
        at = _common_offsets(data)
        if at is None or data[at[0] + 8] != ContentType.APPLICATION:
            return None
        gid_end, ad_end, esd_end, start = at
        sd_end = gid_end + 9
        return cls(
            data[5:gid_end],
            int.from_bytes(data[gid_end : gid_end + 8], "big"),
            data[sd_end + 1 : ad_end],
            data[4:sd_end],
            data[4:ad_end],
            data[ad_end + 1 : esd_end],
            data[start:],
        )

    @classmethod
    def of(cls, msg: PrivateMessage) -> ApplicationWire:
        """The fields of a decoded application message, its AADs encoded from them."""
        if msg.content_type != ContentType.APPLICATION:
            raise UsageError("an ApplicationWire holds an application message")
        sd_aad = msg._sender_data_aad()
        ad, esd = msg.authenticated_data, msg.encrypted_sender_data
        return cls(msg.group_id, msg.epoch, ad, sd_aad, sd_aad + opaque(ad), esd, msg.ciphertext)


def _private_message(content_aad: bytes, encrypted_sender_data: bytes, ciphertext: bytes) -> bytes:
    """``MLSMessage(PrivateMessage)`` from its PrivateContentAAD, which is exactly the fields from
    ``group_id`` to ``authenticated_data`` (§6.3, §6.3.1), and the two ciphertexts."""
    esd, ct = encrypted_sender_data, ciphertext
    return b"".join((_PRIVATE_HEAD, content_aad, encode_varint(len(esd)), esd, encode_varint(len(ct)), ct))


@functools.lru_cache(maxsize=16)
def _sender_data_aad(group_id: bytes, epoch: int, content_type: int) -> bytes:
    """``SenderDataAAD = V(group_id) || uint64 epoch || uint8 content_type`` (§6.3.2); public, and
    the same for every message of an epoch: kept for the last few (group, epoch, type)."""
    try:
        return opaque(group_id) + _EPOCH_CT.pack(epoch, content_type)
    except struct.error:
        raise ConfigError(f"epoch {epoch} or content type {content_type} does not fit its field") from None


@dataclass(frozen=True, slots=True)
class SenderData:
    """Who sent a PrivateMessage and with which ratchet generation (§6.3.2)."""

    leaf: int
    generation: int
    reuse_guard: bytes


@functools.lru_cache(maxsize=8)
def _sender_data_labels(suite: CipherSuite) -> tuple[bytes, bytes, int]:
    """The constant heads ``uint16 L || V(prefix + label)`` of the "key" and "nonce" KDFLabels (§8)
    under ``suite``'s label prefix, and its key length."""
    key_len, prefix = suite.key_len, suite.label_prefix
    key_head = key_len.to_bytes(2, "big") + opaque(prefix + b"key")
    return key_head, suite.nonce_len.to_bytes(2, "big") + opaque(prefix + b"nonce"), key_len


def _sender_data_key_nonce(
    suite: CipherSuite, sender_data_secret: bytes | KeyedHmac, ciphertext: bytes
) -> tuple[bytes, bytes]:
    """``ExpandWithLabel(sender_data_secret, "key"|"nonce", sample, Nk|Nn)`` (§6.3.2); both fit one
    HKDF block under the same secret: one keyed HMAC (:func:`~groupchat.core.suite.expand_blocks`)."""
    key_head, nonce_head, key_len = _sender_data_labels(suite)
    # §6.3.2: the sample is the first Nh bytes of the content ciphertext (all of it if shorter);
    # under 64 bytes, its V() length is the one byte len(sample).
    sample = ciphertext[: suite.hash_len]
    context = bytes((len(sample),)) + sample
    if isinstance(sender_data_secret, KeyedHmac):  # an epoch's: keyed once (the per-message path)
        key, nonce = sender_data_secret.expand_pair(key_head + context, nonce_head + context)
    else:
        key, nonce = expand_blocks(sender_data_secret, (key_head + context, nonce_head + context))
    return key[:key_len], nonce[: suite.nonce_len]


def decrypt_sender_data(
    suite: CipherSuite, msg: PrivateMessage, sender_data_secret: bytes | KeyedHmac
) -> SenderData:
    """Open the encrypted SenderData with the epoch's sender-data secret (§6.3.2)."""
    key, nonce = _sender_data_key_nonce(suite, sender_data_secret, msg.ciphertext)
    plain = suite.open(key, nonce, msg._sender_data_aad(), msg.encrypted_sender_data, "sender data")
    if len(plain) != _SENDER_DATA_LEN:
        raise InvalidValueError(f"sender data must be {_SENDER_DATA_LEN} bytes, got {len(plain)}")
    leaf, generation = _SENDER_DATA.unpack_from(plain)
    return SenderData(leaf, generation, plain[8:12])


def _guarded(nonce: bytes, reuse_guard: bytes) -> bytes:
    """XOR the 4-byte reuse_guard into the first 4 bytes of the ratchet nonce (§6.3.1)."""
    head = _U32.unpack_from(nonce)[0] ^ _U32.unpack(reuse_guard)[0]
    return _U32.pack(head) + nonce[4:]


def _content_aad(msg_group_id: bytes, epoch: int, content_type: int, authenticated_data: bytes) -> bytes:
    """``PrivateContentAAD = SenderDataAAD || V(authenticated_data)`` (§6.3.1)."""
    return _sender_data_aad(msg_group_id, epoch, content_type) + opaque(authenticated_data)


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


def _application_data(plain: bytes) -> tuple[bytes, int] | None:
    """``opaque application_data<V>`` at the start of ``plain`` with a minimal 1- or 2-byte length
    (data under 16 KiB), as ``(data, end)``; ``None`` for anything else, which
    :func:`read_application_data` then reads and, if wrong, names."""
    if not plain:
        return None
    first = plain[0]
    if first < 0x40:
        start, size = 1, first
    elif first < 0x80 and len(plain) > 1:
        start, size = 2, ((first & 0x3F) << 8) | plain[1]
        if size < 0x40:
            return None
    else:
        return None
    end = start + size
    if end > len(plain):
        return None
    return plain[start:end], end


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
    commit = msg.content_type == ContentType.COMMIT
    parsed, body_end, signature, tag = _split_content(plain, commit, body_reader)
    content = FramedContent(
        msg.group_id, msg.epoch, sender_data.leaf, msg.authenticated_data, msg.content_type, plain[:body_end]
    )
    return DecryptedContent(content, parsed, signature, tag)


def _split_content(
    plain: bytes, commit: bool, body_reader: Callable[[Reader], T]
) -> tuple[T, int, bytes, bytes | None]:
    """Split opened content into ``(parsed body, end of the body, signature, confirmation tag)``,
    refusing non-zero padding; what :func:`decrypt_content` and :func:`open_application` share."""
    fast = _application_data(plain) if body_reader is read_application_data else None
    if fast is not None:  # the common case, read directly; anything else goes through the reader
        parsed, at = cast(T, fast[0]), fast[1]
    else:
        r = Reader(plain, "PrivateMessageContent")
        parsed = body_reader(r)
        at = r.position
    body_end = at
    end = at + 2 + SIGNATURE_LEN
    if not commit and plain[at : at + 2] == SIGNATURE_PREFIX and len(plain) >= end:
        signature, tag, at = plain[at + 2 : end], None, end  # the common case, read directly
    else:
        r = Reader(plain, "PrivateMessageContent")
        r.fixed(at, "content")  # the body, read above
        signature = r.opaque_exact("signature", SIGNATURE_LEN)
        tag = r.opaque_exact("confirmation_tag", CONFIRMATION_TAG_LEN) if commit else None
        at = r.position
    if plain.count(0, at) != len(plain) - at:
        raise InvalidValueError("message padding contains non-zero bytes")
    return parsed, body_end, signature, tag


def open_private_message(
    suite: CipherSuite,
    msg: PrivateMessage,
    *,
    sender_data_secret: bytes | KeyedHmac,
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


def open_application(
    suite: CipherSuite,
    wire: ApplicationWire,
    *,
    sender_data_secret: bytes | KeyedHmac,
    secret_tree: SecretTree,
) -> tuple[int, bytes, bytes, bytes, KeyLookup]:
    """:func:`open_private_message` of application content read with :func:`read_application_data`,
    as ``(leaf, data, body, signature, lookup)``: the same steps, checks and errors in the same
    order, without the intermediate objects (the per-message receive path, issue 16). Nothing is
    consumed: the caller checks the signature (:func:`verify_application`), then commits ``lookup``."""
    ciphertext = wire.ciphertext
    sd_key, sd_nonce = _sender_data_key_nonce(suite, sender_data_secret, ciphertext)
    esd = wire.encrypted_sender_data
    sender_data = suite.open(sd_key, sd_nonce, wire.sender_data_aad, esd, "sender data")
    if len(sender_data) != _SENDER_DATA_LEN:
        raise InvalidValueError(f"sender data must be {_SENDER_DATA_LEN} bytes, got {len(sender_data)}")
    leaf, generation = _SENDER_DATA.unpack_from(sender_data)
    lookup = secret_tree.lookup(leaf, RatchetKind.APPLICATION, generation)
    nonce = _guarded(lookup.nonce, sender_data[8:12])
    plain = suite.open(lookup.key, nonce, wire.content_aad, ciphertext, "message content")
    data, body_end, signature, _ = _split_content(plain, False, read_application_data)
    return leaf, data, plain[:body_end], signature, lookup


def verify_application(
    suite: CipherSuite,
    public_key: bytes,
    group_context: bytes,
    wire: ApplicationWire,
    leaf: int,
    body: bytes,
    signature: bytes,
) -> None:
    """:func:`verify_framed_content` of the application content :func:`open_application` opened
    from ``leaf``: its FramedContentTBS is joined once, straight into the signed SignContent, from
    the pieces of the AADs that are also pieces of the FramedContent (§6: V(group_id) || epoch, and
    V(authenticated_data)), rather than encoded again through a :class:`FramedContent`."""
    sd_aad = wire.sender_data_aad
    tbs = (
        _PRIVATE_HEAD,
        sd_aad[:-1],  # V(group_id) || uint64 epoch
        _MEMBER_LEAF.pack(MEMBER_SENDER, leaf),
        wire.content_aad[len(sd_aad) :],  # V(authenticated_data)
        sd_aad[-1:],  # content_type (application)
        body,
        group_context,
    )
    what = f"message from leaf {leaf}"
    suite.verify_parts_with_label(public_key, b"FramedContentTBS", tbs, signature, what)


def protect_private_message(
    suite: CipherSuite,
    *,
    content: FramedContent,
    signature: bytes,
    confirmation_tag: bytes | None = None,
    secret_tree: SecretTree,
    sender_data_secret: bytes | KeyedHmac,
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
    auth = (
        framed_content_auth_data(signature, confirmation_tag)
        if confirmation_tag is not None
        else encode_varint(len(signature)) + signature
    )
    group_id, ad = content.group_id, content.authenticated_data
    plain = _padded(group_id, ad, content.body + auth, padding_block)
    sd_aad = _sender_data_aad(group_id, content.epoch, ct)
    kind = ratchet_kind(ct)
    return _protect(
        suite, sd_aad, opaque(ad), content.sender, kind, plain, secret_tree, sender_data_secret, rand
    )


def _padded(group_id: bytes, ad: bytes, plain: bytes, padding_block: int) -> bytes:
    """``body || FramedContentAuthData`` zero-padded to ``padding_block``, once the fields fit."""
    if len(ad) > MAX_AUTHENTICATED_DATA or len(group_id) > MAX_GROUP_ID:
        raise UsageError("group id or authenticated data is longer than the wire format allows")
    if padding_block > 1:
        plain += bytes(-len(plain) % padding_block)
    if len(plain) + 16 > MAX_CIPHERTEXT:
        raise UsageError(f"message of {len(plain)} bytes is too large to send")
    return plain


def _protect(
    suite: CipherSuite,
    sender_data_aad: bytes,
    authenticated_data: bytes,
    sender: int,
    kind: RatchetKind,
    plain: bytes,
    secret_tree: SecretTree,
    sender_data_secret: bytes | KeyedHmac,
    rand: Callable[[int], bytes],
) -> bytes:
    """Seal the padded ``plain`` under the sender's next ratchet key and hide the sender behind the
    sender-data key (§6.3.1, §6.3.2). ``sender_data_aad`` is the SenderDataAAD and
    ``authenticated_data`` its already encoded ``V(authenticated_data)``: together the
    PrivateContentAAD."""
    aad = sender_data_aad + authenticated_data
    generation, key, nonce = secret_tree.next_send(sender, kind)
    guard = rand(4)
    if len(guard) != 4:
        raise UsageError("rand(4) must return 4 bytes")
    ciphertext = suite.seal(key, _guarded(nonce, guard), aad, plain)
    sd_key, sd_nonce = _sender_data_key_nonce(suite, sender_data_secret, ciphertext)
    esd = suite.seal(sd_key, sd_nonce, sender_data_aad, _SENDER_DATA.pack(sender, generation) + guard)
    # _private_message(aad, esd, ciphertext), joined here: V(esd) has the fixed length 28.
    return b"".join((_PRIVATE_HEAD, aad, _ESD_LEN, esd, encode_varint(len(ciphertext)), ciphertext))


def protect_application(
    suite: CipherSuite,
    *,
    content: FramedContent,
    signature: bytes,
    secret_tree: SecretTree,
    sender_data_secret: bytes | KeyedHmac,
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


def seal_application(
    suite: CipherSuite,
    signing_key: Ed25519PrivateKey,
    group_context: bytes,
    *,
    group_id: bytes,
    epoch: int,
    sender: int,
    authenticated_data: bytes,
    data: bytes,
    secret_tree: SecretTree,
    sender_data_secret: bytes | KeyedHmac,
    padding_block: int = 32,
    rand: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """Sign and protect application ``data`` in one pass; exactly :func:`protect_application` of
    ``FramedContent(group_id, epoch, sender, authenticated_data, APPLICATION, V(data))`` with its
    :func:`sign_framed_content` signature, but with the FramedContentTBS joined once from its
    pieces instead of through the content object (the per-message hot path, issue 16)."""
    try:
        sender_field = SENDER_FIELDS.pack(epoch, MEMBER_SENDER, sender)
    except struct.error:
        raise ConfigError(f"epoch {epoch} or leaf {sender} does not fit its field") from None
    sd_aad = _sender_data_aad(group_id, epoch, ContentType.APPLICATION)  # the epoch fitted above
    gid, body = sd_aad[:-9], encode_varint(len(data)) + data
    ad = opaque(authenticated_data) if authenticated_data else b"\x00"  # V(authenticated_data)
    tbs = b"".join((_PRIVATE_HEAD, gid, sender_field, ad, b"\x01", body, group_context))
    signature = suite.sign_with_label(signing_key, b"FramedContentTBS", tbs)
    plain = _padded(group_id, authenticated_data, body + SIGNATURE_PREFIX + signature, padding_block)
    return _protect(
        suite, sd_aad, ad, sender, RatchetKind.APPLICATION, plain, secret_tree, sender_data_secret, rand
    )
