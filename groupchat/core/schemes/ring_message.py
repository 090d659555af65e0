"""The one wire message of the ring scheme: a signed round value, bound to its rekey.

::

    struct {
      uint16 version = 1;
      uint16 wire_format = 0xF001;   /* private-use range of RFC 9420 §17.3: "ring round" */
      opaque group_id<V>;            /* 1..255 bytes */
      uint64 epoch;                  /* the epoch this rekey creates */
      uint32 attempt;                /* 0, then +1 on every retry */
      opaque roster_hash<V>;         /* 32: hash of the ordered (leaf, identity key) roster */
      opaque context<V>;             /* 0..64: the group state the epoch machine binds to */
      uint8  round;                  /* 1 or 2 */
      uint32 sender;                 /* the sender's leaf */
      opaque value<V>;               /* 32: round 1 = ephemeral X25519 key, round 2 = X_i */
      opaque round1_hash<V>;         /* round 1: empty; round 2: 32, hash of all round-1 messages */
      opaque signature<V>;           /* 64: SignWithLabel(identity, "RingRoundTBS", all above) */
    } RingRound;

Every field a receiver checks is inside the signature, so neither the relay nor another member
can move a message to another group, epoch, attempt, roster, round or sender. A round-2 message
also signs the sender's view of round 1, so a member who saw a different round 1 (an equivocating
member or relay) is caught at round 2 instead of silently deriving another key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..codec import Reader, Writer
from ..errors import InvalidValueError, UnknownVersionError, UsageError
from ..identity import MAX_GROUP_ID
from ..suite import CipherSuite
from ..version import PROTOCOL_VERSION

__all__ = ["MAX_CONTEXT", "RING_WIRE_FORMAT", "RingRound"]

RING_WIRE_FORMAT: Final = 0xF001
MAX_CONTEXT: Final = 64
_HASH_LEN: Final = 32
_VALUE_LEN: Final = 32
_SIGNATURE_LEN: Final = 64
_SIGN_LABEL: Final = b"RingRoundTBS"
_MAX_U32: Final = 2**32 - 1
_MAX_U64: Final = 2**64 - 1


def _check_fields(
    group_id: bytes,
    epoch: int,
    attempt: int,
    roster_hash: bytes,
    context: bytes,
    round_: int,
    sender: int,
    value: bytes,
    round1_hash: bytes,
) -> None:
    """Raise :class:`UsageError` unless every field fits the wire format."""
    if not 0 < len(group_id) <= MAX_GROUP_ID:
        raise UsageError(f"ring message: group id must be 1..{MAX_GROUP_ID} bytes")
    if not (0 <= epoch <= _MAX_U64 and 0 <= attempt <= _MAX_U32 and 0 <= sender <= _MAX_U32):
        raise UsageError("ring message: epoch, attempt or sender leaf out of range")
    if round_ not in (1, 2):
        raise UsageError(f"ring message: round must be 1 or 2, not {round_}")
    if len(roster_hash) != _HASH_LEN or len(value) != _VALUE_LEN:
        raise UsageError("ring message: roster hash and value must be 32 bytes")
    if len(context) > MAX_CONTEXT:
        raise UsageError(f"ring message: context is longer than {MAX_CONTEXT} bytes")
    if len(round1_hash) != (0 if round_ == 1 else _HASH_LEN):
        raise UsageError(f"ring message: a round-{round_} message carries a round-1 hash of the wrong size")


@dataclass(frozen=True, slots=True)
class RingRound:
    """One decoded (or built) ring round message; ``encoded`` is its exact wire bytes."""

    group_id: bytes
    epoch: int
    attempt: int
    roster_hash: bytes
    context: bytes
    round: int
    sender: int
    value: bytes
    round1_hash: bytes
    signature: bytes
    encoded: bytes

    def __post_init__(self) -> None:
        # Decoding checks every field first (a DecodeError for remote bytes), so this only fires
        # for a message built locally with bad fields: the caller's mistake.
        _check_fields(
            self.group_id, self.epoch, self.attempt, self.roster_hash, self.context, self.round,
            self.sender, self.value, self.round1_hash,
        )  # fmt: skip
        if len(self.signature) != _SIGNATURE_LEN:
            raise UsageError("ring message: signature must be 64 bytes")

    @staticmethod
    def _tbs(
        group_id: bytes,
        epoch: int,
        attempt: int,
        roster_hash: bytes,
        context: bytes,
        round_: int,
        sender: int,
        value: bytes,
        round1_hash: bytes,
    ) -> bytes:
        return (
            Writer()
            .u16(PROTOCOL_VERSION)
            .u16(RING_WIRE_FORMAT)
            .opaque(group_id)
            .u64(epoch)
            .u32(attempt)
            .opaque(roster_hash)
            .opaque(context)
            .u8(round_)
            .u32(sender)
            .opaque(value)
            .opaque(round1_hash)
            .bytes()
        )

    @classmethod
    def create(
        cls,
        suite: CipherSuite,
        signing_key: Ed25519PrivateKey,
        *,
        group_id: bytes,
        epoch: int,
        attempt: int,
        roster_hash: bytes,
        context: bytes,
        round_: int,
        sender: int,
        value: bytes,
        round1_hash: bytes = b"",
    ) -> RingRound:
        """Build and sign a round message."""
        _check_fields(group_id, epoch, attempt, roster_hash, context, round_, sender, value, round1_hash)
        tbs = cls._tbs(group_id, epoch, attempt, roster_hash, context, round_, sender, value, round1_hash)
        signature = suite.sign_with_label(signing_key, _SIGN_LABEL, tbs)
        encoded = Writer().raw(tbs).opaque(signature).bytes()
        return cls(
            group_id, epoch, attempt, roster_hash, context, round_, sender, value, round1_hash,
            signature, encoded,
        )  # fmt: skip

    @classmethod
    def decode(cls, data: bytes) -> RingRound:
        """Parse a ring message completely; raise a :class:`DecodeError` subclass if malformed."""
        r = Reader(data, "ring message")
        version = r.u16("version")
        if version != PROTOCOL_VERSION:
            raise UnknownVersionError(f"ring message has protocol version {version}, we speak only 1")
        wire_format = r.u16("wire_format")
        if wire_format != RING_WIRE_FORMAT:
            raise InvalidValueError(f"wire format {wire_format:#06x} is not a ring message")
        group_id = r.opaque("group_id", MAX_GROUP_ID, 1)
        epoch = r.u64("epoch")
        attempt = r.u32("attempt")
        roster_hash = r.opaque_exact("roster_hash", _HASH_LEN)
        context = r.opaque("context", MAX_CONTEXT)
        round_ = r.u8("round")
        if round_ not in (1, 2):
            raise InvalidValueError(f"ring message: round must be 1 or 2, not {round_}")
        sender = r.u32("sender")
        value = r.opaque_exact("value", _VALUE_LEN)
        round1_hash = r.opaque_exact("round1_hash", 0 if round_ == 1 else _HASH_LEN)
        signature = r.opaque_exact("signature", _SIGNATURE_LEN)
        r.end()
        return cls(
            group_id, epoch, attempt, roster_hash, context, round_, sender, value, round1_hash,
            signature, bytes(data),
        )  # fmt: skip

    def verify(self, suite: CipherSuite, identity_key: bytes, who: str) -> None:
        """Check the signature under the sender's identity key; raise :class:`SignatureError`."""
        tbs = self._tbs(
            self.group_id, self.epoch, self.attempt, self.roster_hash, self.context, self.round,
            self.sender, self.value, self.round1_hash,
        )  # fmt: skip
        what = f"ring round {self.round} from {who}"
        suite.verify_with_label(identity_key, _SIGN_LABEL, tbs, self.signature, what)
