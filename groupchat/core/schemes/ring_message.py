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
      uint8  round;                  /* 1, 2, 3, or 4 (a reveal, only to blame) */
      uint32 sender;                 /* the sender's leaf */
      opaque value<V>;               /* 32: round 1 = ephemeral X25519 key, round 2 = X_i,
                                        round 3 = the new epoch's confirmation tag,
                                        round 4 = the dead attempt's ephemeral private key */
      opaque view<V>;                /* round 1: empty; round 2: 32, hash of round 1;
                                        round 3: 32, hash of rounds 1 and 2 (the transcript);
                                        round 4: 32, hash of round 1 */
      opaque signature<V>;           /* 64: SignWithLabel(identity, "RingRoundTBS", all above) */
    } RingRound;

Every field a receiver checks is inside the signature, so neither the relay nor another member
can move a message to another group, epoch, attempt, roster, round or sender. A round-2 message
signs the sender's view of round 1 and a round-3 message its view of round 2, so a member who saw
another round (an equivocating member or relay) is caught at the next round instead of silently
deriving another key. The hashes cover each message's *signed content* (:attr:`RingRound.content`),
never its signature bytes: Ed25519 lets a signer make many valid signatures of one content, and
none of them may steer or split the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..codec import Reader, Writer, encode_varint
from ..errors import InvalidValueError, UnknownVersionError, UsageError
from ..identity import MAX_GROUP_ID
from ..suite import CipherSuite
from ..version import PROTOCOL_VERSION

__all__ = ["ATTEMPT_WINDOW", "MAX_CONTEXT", "RING_WIRE_FORMAT", "ROUNDS", "RingRound"]

RING_WIRE_FORMAT: Final = 0xF001
MAX_CONTEXT: Final = 64
_HASH_LEN: Final = 32
_VALUE_LEN: Final = 32
_SIGNATURE_LEN: Final = 64
_SIGNATURE_VECTOR: Final = len(encode_varint(_SIGNATURE_LEN)) + _SIGNATURE_LEN
_SIGN_LABEL: Final = b"RingRoundTBS"
_MAX_U32: Final = 2**32 - 1
_MAX_U64: Final = 2**64 - 1
#: The rounds of one attempt: ephemeral keys, ring values, confirmations.
ROUNDS: Final = (1, 2, 3, 4)  # 4: the key reveal of an attempt whose values did not add up
#: How far ahead of ours an attempt may be for its first signed message to put it in force: a
#: member that missed a few attempts catches up, and one message can never jump the group to the
#: last attempt number (it would take 2^32 / 16 of them).
ATTEMPT_WINDOW: Final = 16


def _view_len(round_: int) -> int:
    """Round 1 signs no view; rounds 2 and 3 sign the hash of the rounds before them."""
    return 0 if round_ == 1 else _HASH_LEN


def _check_fields(
    group_id: bytes,
    epoch: int,
    attempt: int,
    roster_hash: bytes,
    context: bytes,
    round_: int,
    sender: int,
    value: bytes,
    view: bytes,
) -> None:
    """Raise :class:`UsageError` unless every field fits the wire format."""
    if not 0 < len(group_id) <= MAX_GROUP_ID:
        raise UsageError(f"ring message: group id must be 1..{MAX_GROUP_ID} bytes")
    if not (0 <= epoch <= _MAX_U64 and 0 <= attempt <= _MAX_U32 and 0 <= sender <= _MAX_U32):
        raise UsageError("ring message: epoch, attempt or sender leaf out of range")
    if round_ not in ROUNDS:
        raise UsageError(f"ring message: round must be 1 to 4, not {round_}")
    if len(roster_hash) != _HASH_LEN or len(value) != _VALUE_LEN:
        raise UsageError("ring message: roster hash and value must be 32 bytes")
    if len(context) > MAX_CONTEXT:
        raise UsageError(f"ring message: context is longer than {MAX_CONTEXT} bytes")
    if len(view) != _view_len(round_):
        raise UsageError(f"ring message: a round-{round_} message carries a view of the wrong size")


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
    view: bytes
    signature: bytes
    encoded: bytes

    def __post_init__(self) -> None:
        # Decoding checks every field first (a DecodeError for remote bytes), so this only fires
        # for a message built locally with bad fields: the caller's mistake.
        _check_fields(
            self.group_id, self.epoch, self.attempt, self.roster_hash, self.context, self.round,
            self.sender, self.value, self.view,
        )  # fmt: skip
        if len(self.signature) != _SIGNATURE_LEN:
            raise UsageError("ring message: signature must be 64 bytes")

    @property
    def content(self) -> bytes:
        """The signed content: the wire bytes without the signature. The hashes bind this, so a
        second valid signature of the same content changes nothing (Ed25519 signers choose nonces)."""
        return self.encoded[: len(self.encoded) - _SIGNATURE_VECTOR]

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
        view: bytes,
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
            .opaque(view)
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
        view: bytes = b"",
    ) -> RingRound:
        """Build and sign a round message."""
        _check_fields(group_id, epoch, attempt, roster_hash, context, round_, sender, value, view)
        tbs = cls._tbs(group_id, epoch, attempt, roster_hash, context, round_, sender, value, view)
        signature = suite.sign_with_label(signing_key, _SIGN_LABEL, tbs)
        encoded = Writer().raw(tbs).opaque(signature).bytes()
        return cls(
            group_id, epoch, attempt, roster_hash, context, round_, sender, value, view,
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
        if round_ not in ROUNDS:
            raise InvalidValueError(f"ring message: round must be 1 to 4, not {round_}")
        sender = r.u32("sender")
        value = r.opaque_exact("value", _VALUE_LEN)
        view = r.opaque_exact("view", _view_len(round_))
        signature = r.opaque_exact("signature", _SIGNATURE_LEN)
        r.end()
        return cls(
            group_id, epoch, attempt, roster_hash, context, round_, sender, value, view,
            signature, bytes(data),
        )  # fmt: skip

    def verify(self, suite: CipherSuite, identity_key: bytes, who: str) -> None:
        """Check the signature under the sender's identity key; raise :class:`SignatureError`."""
        tbs = self._tbs(
            self.group_id, self.epoch, self.attempt, self.roster_hash, self.context, self.round,
            self.sender, self.value, self.view,
        )  # fmt: skip
        what = f"ring round {self.round} from {who}"
        suite.verify_with_label(identity_key, _SIGN_LABEL, tbs, self.signature, what)
