"""The epoch key schedule, GroupContext, PSKs, exporter and transcript hashes (RFC 9420 §8).

Everything here is a pure function of its inputs. The key schedule turns the previous epoch's
``init_secret``, the new ``commit_secret`` and the encoded new :class:`GroupContext` into the
secrets of one epoch (§8); the transcript hashes chain every commit into the next context (§8.2),
and the confirmation tag proves that sender and receiver derived the same epoch (§6.1).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from .codec import Reader, Writer, opaque
from .errors import InvalidValueError, UnknownVersionError, UsageError
from .suite import CipherSuite, expand_block, expand_blocks
from .version import PROTOCOL_VERSION

__all__ = [
    "EpochSecrets",
    "GroupContext",
    "confirmation_tag",
    "confirmed_transcript_hash",
    "derive_epoch_secrets",
    "epoch_secrets_from_joiner",
    "expand_with_label_short",
    "exporter",
    "external_psk_id",
    "interim_transcript_hash",
    "psk_secret",
    "public_state_key_nonce",
    "verify_confirmation_tag",
    "welcome_key_nonce",
]

_NH: Final = 32  # both suites use SHA-256
_CTX_HEAD: Final = struct.Struct(">HH")  # uint16 version || uint16 cipher_suite
_U64: Final = struct.Struct(">Q")
MAX_GROUP_ID: Final = 255
MAX_EXTENSIONS: Final = 64 * 1024


def expand_with_label_short(
    suite: CipherSuite, secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """``suite.expand_with_label``, kept under this name for its callers.

    The one-block fast path and the cached KDFLabel head now live in :mod:`.suite` itself.
    """
    return suite.expand_with_label(secret, label, context, length)


# --- GroupContext (§8.1) ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GroupContext:
    """The shared view of the group that every epoch secret and member signature binds to (§8.1)."""

    cipher_suite: int
    group_id: bytes
    epoch: int
    tree_hash: bytes
    confirmed_transcript_hash: bytes
    extensions: bytes = b""  # the encoded body of ``Extension extensions<V>``

    def encode(self) -> bytes:
        """``GroupContext`` as RFC 9420 §8.1 encodes it (packed directly: twice per commit)."""
        try:
            head, epoch = _CTX_HEAD.pack(PROTOCOL_VERSION, self.cipher_suite), _U64.pack(self.epoch)
        except struct.error:
            return self._encode_general()  # raises the Writer's error naming the field
        fields = (self.group_id, self.tree_hash, self.confirmed_transcript_hash, self.extensions)
        gid, tree_hash, confirmed, extensions = (opaque(f) for f in fields)
        return b"".join((head, gid, epoch, tree_hash, confirmed, extensions))

    def _encode_general(self) -> bytes:
        return (
            Writer()
            .u16(PROTOCOL_VERSION)
            .u16(self.cipher_suite)
            .opaque(self.group_id)
            .u64(self.epoch)
            .opaque(self.tree_hash)
            .opaque(self.confirmed_transcript_hash)
            .opaque(self.extensions)
            .bytes()
        )

    @classmethod
    def read(cls, r: Reader) -> GroupContext:
        """Read one GroupContext; hashes are SHA-256 sized (the confirmed hash is empty at epoch 0)."""
        version = r.u16("GroupContext.version")
        if version != PROTOCOL_VERSION:
            raise UnknownVersionError(f"GroupContext has protocol version {version}, we speak only 1")
        suite = r.u16("GroupContext.cipher_suite")
        group_id = r.opaque("GroupContext.group_id", MAX_GROUP_ID)
        epoch = r.u64("GroupContext.epoch")
        tree_hash = r.opaque_exact("GroupContext.tree_hash", _NH)
        confirmed = r.opaque("GroupContext.confirmed_transcript_hash", _NH)
        if len(confirmed) not in (0, _NH):
            raise InvalidValueError(
                f"GroupContext.confirmed_transcript_hash must be empty or {_NH} bytes, got {len(confirmed)}"
            )
        extensions = r.opaque("GroupContext.extensions", MAX_EXTENSIONS)
        return cls(suite, group_id, epoch, tree_hash, confirmed, extensions)

    @classmethod
    def decode(cls, data: bytes) -> GroupContext:
        r = Reader(data, "GroupContext")
        gc = cls.read(r)
        r.end()
        return gc


# --- epoch secrets (§8) -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EpochSecrets:
    """All secrets of one epoch (§8 table "Epoch-Derived Secrets"), plus joiner/welcome secrets."""

    joiner_secret: bytes
    welcome_secret: bytes
    epoch_secret: bytes
    sender_data_secret: bytes
    encryption_secret: bytes
    exporter_secret: bytes
    epoch_authenticator: bytes
    external_secret: bytes
    confirmation_key: bytes
    membership_key: bytes
    resumption_psk: bytes
    init_secret: bytes

    def __repr__(self) -> str:  # never print key material
        return "EpochSecrets(<redacted>)"


def derive_epoch_secrets(
    suite: CipherSuite,
    init_secret: bytes,
    commit_secret: bytes,
    group_context: bytes,
    psk_secret: bytes | None = None,
) -> EpochSecrets:
    """Run the §8 key schedule for the epoch whose encoded GroupContext is ``group_context``."""
    joiner = suite.expand_with_label(
        suite.extract(init_secret, commit_secret), b"joiner", group_context, suite.hash_len
    )
    return epoch_secrets_from_joiner(suite, joiner, group_context, psk_secret)


def epoch_secrets_from_joiner(
    suite: CipherSuite, joiner_secret: bytes, group_context: bytes, psk_secret: bytes | None = None
) -> EpochSecrets:
    """The rest of the §8 schedule from ``joiner_secret``: what a Welcome recipient can compute."""
    nh = suite.hash_len
    member = _member_secret(suite, joiner_secret, psk_secret)
    epoch = suite.expand_with_label(member, b"epoch", group_context, nh)
    infos = _derive_infos(suite.label_prefix)
    # DeriveSecret is one HKDF-Expand block (Nh = 32); the nine from epoch_secret share one key.
    (sender_data, encryption, exporter_, authentication, external, confirm, membership, resumption, init) = (
        expand_blocks(epoch, infos[1:])
    )
    return EpochSecrets(
        joiner_secret=joiner_secret,
        welcome_secret=expand_block(member, infos[0]),
        epoch_secret=epoch,
        sender_data_secret=sender_data,
        encryption_secret=encryption,
        exporter_secret=exporter_,
        epoch_authenticator=authentication,
        external_secret=external,
        confirmation_key=confirm,
        membership_key=membership,
        resumption_psk=resumption,
        init_secret=init,
    )


_DERIVED_LABELS: Final = (
    b"welcome",
    b"sender data",
    b"encryption",
    b"exporter",
    b"authentication",
    b"external",
    b"confirm",
    b"membership",
    b"resumption",
    b"init",
)


@functools.cache
def _derive_infos(prefix: bytes) -> tuple[bytes, ...]:
    """The KDFLabel of ``DeriveSecret(secret, label) = ExpandWithLabel(secret, label, "", Nh)`` for
    each label of the schedule (§8), in the order of ``_DERIVED_LABELS``, built once per prefix:
    ``uint16 Nh || V(prefix + label) || V("")``."""
    return tuple(_NH.to_bytes(2, "big") + opaque(prefix + label) + opaque(b"") for label in _DERIVED_LABELS)


def _member_secret(suite: CipherSuite, joiner_secret: bytes, psk_secret: bytes | None) -> bytes:
    # member_secret = Extract(salt=joiner_secret, ikm=psk_secret); "0" is Nh zero bytes (§8).
    return suite.extract(joiner_secret, psk_secret if psk_secret is not None else bytes(suite.hash_len))


def welcome_secret(suite: CipherSuite, joiner_secret: bytes, psk_secret: bytes | None = None) -> bytes:
    """The welcome_secret alone: a joiner needs it before it can read the GroupContext (§8)."""
    return suite.derive_secret(_member_secret(suite, joiner_secret, psk_secret), b"welcome")


def welcome_key_nonce(suite: CipherSuite, welcome_secret: bytes) -> tuple[bytes, bytes]:
    """The AEAD key and nonce that encrypt the GroupInfo in a Welcome (§12.4.3.1)."""
    key = suite.expand_with_label(welcome_secret, b"key", b"", suite.key_len)
    nonce = suite.expand_with_label(welcome_secret, b"nonce", b"", suite.nonce_len)
    return key, nonce


def public_state_key_nonce(suite: CipherSuite, welcome_secret: bytes) -> tuple[bytes, bytes]:
    """The AEAD key and nonce that encrypt a Welcome's public state (the tree), which travels beside
    the GroupInfo: labels of their own, so they never equal the GroupInfo's key and nonce."""
    key = suite.expand_with_label(welcome_secret, b"public state key", b"", suite.key_len)
    nonce = suite.expand_with_label(welcome_secret, b"public state nonce", b"", suite.nonce_len)
    return key, nonce


def exporter(suite: CipherSuite, exporter_secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """MLS-Exporter (§8.5): ExpandWithLabel(DeriveSecret(exporter_secret, label), "exported", H(ctx), L)."""
    return suite.expand_with_label(
        suite.derive_secret(exporter_secret, label), b"exported", suite.hash(context), length
    )


# --- pre-shared keys (§8.4) ------------------------------------------------------------------------


def external_psk_id(psk_id: bytes, psk_nonce: bytes) -> bytes:
    """Encode ``PreSharedKeyID`` for an external PSK: ``uint8(1) || V(psk_id) || V(psk_nonce)``."""
    return Writer().u8(1).opaque(psk_id).opaque(psk_nonce).bytes()


def psk_secret(suite: CipherSuite, psks: Sequence[tuple[bytes, bytes, bytes]]) -> bytes:
    """Combine external PSKs ``(psk_id, psk, psk_nonce)`` into ``psk_secret`` (§8.4).

    The chaining uses salt = psk_input, ikm = the previous psk_secret, as the §8.4 pseudocode and
    the interop vectors do (the figure in §8.4 suggests the opposite order).
    """
    nh = suite.hash_len
    acc = bytes(nh)
    count = len(psks)
    if count > 0xFFFF:
        raise UsageError(f"{count} pre-shared keys; PSKLabel counts them in a uint16")
    for index, (psk_id, psk, psk_nonce) in enumerate(psks):
        label = external_psk_id(psk_id, psk_nonce) + index.to_bytes(2, "big") + count.to_bytes(2, "big")
        psk_input = suite.expand_with_label(suite.extract(b"", psk), b"derived psk", label, nh)
        acc = suite.extract(psk_input, acc)
    return acc


# --- transcript hashes and confirmation (§8.2, §6.1) -------------------------------------------------


def confirmed_transcript_hash(suite: CipherSuite, interim_before: bytes, confirmed_input: bytes) -> bytes:
    """``Hash(interim[n-1] || ConfirmedTranscriptHashInput)``, where the input is
    ``wire_format || FramedContent(commit) || V(signature)``."""
    return suite.hash(interim_before + confirmed_input)


def interim_transcript_hash(suite: CipherSuite, confirmed: bytes, confirmation_tag: bytes) -> bytes:
    """``Hash(confirmed[n] || V(confirmation_tag))``."""
    return suite.hash(confirmed + opaque(confirmation_tag))


def confirmation_tag(suite: CipherSuite, confirmation_key: bytes, confirmed: bytes) -> bytes:
    """``MAC(confirmation_key, confirmed_transcript_hash)`` with the new epoch's key."""
    return suite.mac(confirmation_key, confirmed)


def verify_confirmation_tag(
    suite: CipherSuite, confirmation_key: bytes, confirmed: bytes, tag: bytes
) -> None:
    """Raise :class:`ConfirmationError` unless ``tag`` confirms our view of the new epoch."""
    suite.verify_mac(
        confirmation_key, confirmed, tag, "confirmation tag (the sender's view of the new epoch differs)"
    )
