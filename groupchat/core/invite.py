"""Invites: an Ed25519 key pair whose public half the group commits and whose seed a joiner holds.

An inviter makes an :class:`InviteSecret`, commits its :attr:`~InviteSecret.public_key` (an
``invite`` admission change, docs/protocol.md "Admission") and passes :attr:`~InviteSecret.code`
out of band. The joiner proves it holds the seed with :func:`prove`, a signature bound to the
group and to its one join request; every member checks it with :func:`verify_proof` against the
agreed invite key. The relay sees public keys and proofs, never the seed.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .codec import Writer
from .errors import CryptoError, InvalidInviteCodeError, InvalidInviteError, InvalidValueError
from .identity import JoinRequest
from .suite import CipherSuite

__all__ = [
    "INVITE_CODE_PREFIX",
    "INVITE_PROOF_LABEL",
    "InviteSecret",
    "prove",
    "verify_proof",
]

INVITE_CODE_PREFIX: Final = "gci1-"
INVITE_PROOF_LABEL: Final = b"InviteProof"
_SEED: Final = 16  # bytes of secret: 128 bits, a short code
_KEY_INFO: Final = b"groupchat v1 invite key"
_CHECK: Final = 3  # checksum bytes: a mistyped code is refused, never read as another invite
_CHECK_LABEL: Final = b"groupchat invite code"
_DEFAULT_SUITE: Final = CipherSuite()


def _key_seed(secret: bytes) -> bytes:
    """The Ed25519 seed of an invite: HKDF-SHA256 of its 16-byte secret (so the code stays short)."""
    return HKDF(SHA256(), 32, salt=None, info=_KEY_INFO).derive(secret)


def _checksum(seed: bytes) -> bytes:
    return CipherSuite.hash(_CHECK_LABEL + seed)[:_CHECK]


@dataclass(frozen=True, slots=True)
class InviteSecret:
    """The secret of one invite (128 bits): whoever holds it may prove the invite (keep it out of
    logs). Its Ed25519 key is derived from it with HKDF, so the code to pass on stays short."""

    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.seed) != _SEED:
            raise InvalidInviteCodeError(f"an invite secret is {_SEED} bytes, not {len(self.seed)}")

    @classmethod
    def generate(cls, rand: Callable[[int], bytes]) -> InviteSecret:
        """A fresh invite from the injected random source."""
        return cls(rand(_SEED))

    @classmethod
    def from_code(cls, text: str) -> InviteSecret:
        """Read an invite code (:attr:`code`); surrounding spaces and letter case are ignored."""
        code = text.strip().lower()
        if not code.startswith(INVITE_CODE_PREFIX):
            raise InvalidInviteCodeError(
                f"an invite code starts with {INVITE_CODE_PREFIX!r}; check that it was copied whole"
            )
        body = code[len(INVITE_CODE_PREFIX) :].upper()
        try:
            raw = base64.b32decode(body + "=" * (-len(body) % 8))
        except (binascii.Error, ValueError):
            raise InvalidInviteCodeError(
                "this invite code has characters an invite code never has; check it for typos"
            ) from None
        if len(raw) != _SEED + _CHECK:
            raise InvalidInviteCodeError(
                "this invite code is too short or too long; check that it was copied whole"
            )
        seed, check = raw[:_SEED], raw[_SEED:]
        if not hmac.compare_digest(check, _checksum(seed)):
            raise InvalidInviteCodeError(
                "this invite code does not check out (a typo?); ask the inviter for it again"
            )
        return cls(seed)

    @property
    def code(self) -> str:
        """The short text form to pass out of band: ``gci1-`` and lowercase base32 with a checksum."""
        raw = base64.b32encode(self.seed + _checksum(self.seed)).decode("ascii")
        return INVITE_CODE_PREFIX + raw.rstrip("=").lower()

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(_key_seed(self.seed))

    @property
    def public_key(self) -> bytes:
        """The invite key the group commits (32 bytes, Ed25519)."""
        return self.signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _proof_content(group_id: bytes, request: JoinRequest, suite: CipherSuite) -> bytes:
    return Writer().opaque(group_id).opaque(suite.hash(request.encoded)).bytes()


def prove(
    secret: InviteSecret, group_id: bytes, request: JoinRequest, suite: CipherSuite = _DEFAULT_SUITE
) -> bytes:
    """SignWithLabel(invite, "InviteProof", V(group_id) || V(Hash(request))): one request, one group."""
    return suite.sign_with_label(
        secret.signing_key, INVITE_PROOF_LABEL, _proof_content(group_id, request, suite)
    )


def verify_proof(
    invite_key: bytes,
    group_id: bytes,
    request: JoinRequest,
    proof: bytes,
    suite: CipherSuite = _DEFAULT_SUITE,
) -> None:
    """Refuse (:class:`InvalidInviteError`) a proof not made with ``invite_key`` for this request."""
    who = f"invite proof of {request.display_name!r} ({request.fingerprint})"
    if len(proof) != 64:
        raise InvalidInviteError(f"{who} is {len(proof)} bytes, not a 64-byte signature")
    try:
        suite.verify_with_label(
            invite_key, INVITE_PROOF_LABEL, _proof_content(group_id, request, suite), proof, who
        )
    except (CryptoError, InvalidValueError) as exc:
        raise InvalidInviteError(
            f"{exc}: it was not made with this invite for this group and this join request"
        ) from None
