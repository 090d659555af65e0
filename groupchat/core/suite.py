"""Cipher suites and the labelled primitives of RFC 9420 §5.1 and §8.

Every primitive comes from pyca/cryptography; this module only wires them together and adds
domain separation. Each labelled function prefixes its label with ``label_prefix``: production
uses ``b"groupchat v1 "`` so our keys and signatures can never be confused with MLS ones, while
the interop tests use ``b"MLS 1.0 "`` to check every formula against the RFC 9420 vectors.

Two suites are supported, both with X25519, HKDF-SHA256 and Ed25519 (RFC 9420 §17.1):
1 = AES-128-GCM, 3 = ChaCha20-Poly1305.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives import hmac as _hmac_objects
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from .codec import encode_varint, opaque
from .errors import (
    ConfigError,
    ConfirmationError,
    DecryptionError,
    InvalidPublicKeyError,
    SignatureError,
)

__all__ = [
    "GROUPCHAT_PREFIX",
    "MLS_PREFIX",
    "CipherSuite",
    "KeyedHmac",
    "check_x25519_public",
    "expand_block",
    "expand_blocks",
    "expand_three",
    "extract_unsalted",
    "is_x25519_public",
    "x25519_exchange",
]

GROUPCHAT_PREFIX: Final = b"groupchat v1 "
MLS_PREFIX: Final = b"MLS 1.0 "

_HASH_LEN: Final = 32
_SHA256: Final = hashes.SHA256()

# The u-coordinates of the points of small order on Curve25519 (and their encodings mod p that
# X25519 would accept). A DH with any of them yields a predictable shared secret, so a peer that
# publishes one could fix a node secret. cryptography only notices when an exchange produces the
# all-zero output, which happens at the *receiver* of such a key; we refuse it at decode time so
# every member rejects the same commit (see threats.md §1.4 and libsodium's has_small_order).
_P25519: Final = 2**255 - 19
_SMALL_ORDER_U: Final = frozenset(
    {
        0,
        1,
        325606250916557431795983626356110631294008115727848805560023387167927233504,
        39382357235489614581723060781553021112529911719440698176882885853963445705823,
        _P25519 - 1,
        _P25519,
        _P25519 + 1,
    }
)


def check_x25519_public(key: bytes, what: str = "X25519 public key") -> bytes:
    """Return ``key`` if it is a canonical X25519 public key not of small order, else raise."""
    if len(key) != 32:
        raise InvalidPublicKeyError(f"{what} must be 32 bytes, got {len(key)}")
    u = int.from_bytes(key, "little")
    if u >= 1 << 255:
        raise InvalidPublicKeyError(f"{what} has its top bit set (non-canonical encoding)")
    if u in _SMALL_ORDER_U:
        raise InvalidPublicKeyError(f"{what} is a low-order point")
    if u >= _P25519:
        raise InvalidPublicKeyError(f"{what} is not reduced modulo p (non-canonical encoding)")
    return key


def is_x25519_public(key: bytes) -> bool:
    """Whether :func:`check_x25519_public` accepts ``key``, without building its error: every key
    of a received path is checked, and only a refused one needs the words (issue 16)."""
    if len(key) != 32:
        return False
    u = int.from_bytes(key, "little")
    return u < _P25519 and u not in _SMALL_ORDER_U  # u < p < 2^255: canonical, top bit clear


def x25519_exchange(private_key: X25519PrivateKey, public_key: bytes) -> bytes:
    """Raw X25519 of our key with a peer's 32-byte public key; a low-order peer key is refused.

    pyca raises a bare ValueError when the shared secret is all zero (the peer key has small
    order) or the key is malformed; this is the one place that maps it to
    :class:`InvalidPublicKeyError`. Callers feed the output to a labelled KDF, never use it as is.
    """
    try:
        return private_key.exchange(_x25519_public(public_key))
    except ValueError as exc:
        raise InvalidPublicKeyError("X25519 exchange with a low-order or malformed public key") from exc


def expand_block(prk: bytes, info: bytes) -> bytes:
    """HKDF-SHA256-Expand of exactly one output block: ``T(1) = HMAC(prk, info || 0x01)``.

    RFC 5869 §2.3 defines T(1) so; calling the HMAC directly skips building a KDF object on the
    per-message hot path (the secret tree, sender data). Truncate the result for shorter outputs.
    The RFC 9420 vectors check this branch against the generic one.
    """
    return hmac.digest(prk, info + b"\x01", "sha256")


_UNSALTED: Final = _hmac_objects.HMAC(b"", _SHA256)  # a public constant key: nothing secret kept


def extract_unsalted(ikm: bytes) -> bytes:
    """HKDF-Extract with the empty salt (RFC 5869 §2.2: Nh zero bytes, as HMAC pads it), from a copy
    of the HMAC keyed once with that constant: every tree level of a commit extracts so."""
    h = _UNSALTED.copy()
    h.update(ikm)
    return h.finalize()


def expand_blocks(prk: bytes | KeyedHmac, infos: Sequence[bytes]) -> list[bytes]:
    """:func:`expand_block` of each of ``infos`` under the one key ``prk``, in order.

    The HMAC is keyed once and its keyed state copied for each info: a one-shot HMAC pays the
    key setup and the digest lookup every time, which is most of its cost for short inputs (the
    secret tree's key, nonce and next secret; the key schedule's secrets of one epoch). A
    :class:`KeyedHmac` brings its key already set up.
    """
    if isinstance(prk, KeyedHmac):
        return prk.expand_blocks(infos)
    base = _hmac_objects.HMAC(prk, _SHA256)
    out: list[bytes] = []
    last = len(infos) - 1
    for i, info in enumerate(infos):
        h = base if i == last else base.copy()
        h.update(info + b"\x01")
        out.append(h.finalize())
    return out


def expand_three(prk: bytes, first: bytes, second: bytes, third: bytes) -> tuple[bytes, bytes, bytes]:
    """:func:`expand_blocks` of exactly three infos, unrolled: a secret-tree ratchet step (its
    key, nonce and next secret) runs on every message sent or received (issue 16)."""
    h3 = _hmac_objects.HMAC(prk, _SHA256)
    h1, h2 = h3.copy(), h3.copy()
    h1.update(first + b"\x01")
    h2.update(second + b"\x01")
    h3.update(third + b"\x01")
    return h1.finalize(), h2.finalize(), h3.finalize()


class KeyedHmac:
    """HMAC-SHA256 keyed once with ``key``, for HKDF blocks under a key that many messages use (an
    epoch's sender-data secret). It lives exactly as long as its holder keeps ``key`` itself."""

    __slots__ = ("_base", "key")

    def __init__(self, key: bytes) -> None:
        self.key = key
        self._base = _hmac_objects.HMAC(key, _SHA256)

    def expand_blocks(self, infos: Sequence[bytes]) -> list[bytes]:
        """:func:`expand_blocks` under ``key``: each block from a copy of the keyed state."""
        out: list[bytes] = []
        for info in infos:
            h = self._base.copy()
            h.update(info + b"\x01")
            out.append(h.finalize())
        return out

    def expand_pair(self, first: bytes, second: bytes) -> tuple[bytes, bytes]:
        """:meth:`expand_blocks` of exactly two infos, unrolled (the sender data's key and nonce)."""
        h1, h2 = self._base.copy(), self._base.copy()
        h1.update(first + b"\x01")
        h2.update(second + b"\x01")
        return h1.finalize(), h2.finalize()

    def __repr__(self) -> str:  # never print key material
        return "KeyedHmac(<redacted>)"

    # pyca's HMAC state cannot be copied by copy.deepcopy; a copy keys its own from ``key``.
    def __copy__(self) -> KeyedHmac:
        return KeyedHmac(self.key)

    def __deepcopy__(self, memo: dict[int, object]) -> KeyedHmac:
        return KeyedHmac(self.key)


@dataclass(frozen=True, slots=True)
class _AeadSpec:
    name: str
    cls: type[AESGCM] | type[ChaCha20Poly1305]
    key_len: int
    hpke_aead: hpke.AEAD


_SUITES: Final = {
    1: _AeadSpec("MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519", AESGCM, 16, hpke.AEAD.AES_128_GCM),
    3: _AeadSpec(
        "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519",
        ChaCha20Poly1305,
        32,
        hpke.AEAD.CHACHA20_POLY1305,
    ),
}


class CipherSuite:
    """One cipher suite bound to one label prefix; all methods are pure functions of their inputs."""

    __slots__ = ("_aead", "_hpke", "id", "label_prefix", "name")

    hash_len: Final = _HASH_LEN  # Nh
    nonce_len: Final = 12  # Nn

    def __init__(self, suite_id: int = 1, label_prefix: bytes = GROUPCHAT_PREFIX) -> None:
        spec = _SUITES.get(suite_id)
        if spec is None:
            raise ConfigError(f"unsupported cipher suite {suite_id} (supported: 1, 3)")
        self.id = suite_id
        self.name = spec.name
        self.label_prefix = label_prefix
        self._aead = spec
        self._hpke = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, spec.hpke_aead)

    def __repr__(self) -> str:
        return f"CipherSuite({self.id}, {self.label_prefix!r})"

    # A suite is immutable; copies of group state (tests keep a removed member's old state)
    # share it, which also sidesteps pyca's unpicklable HPKE objects.
    def __copy__(self) -> CipherSuite:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> CipherSuite:
        return self

    @property
    def key_len(self) -> int:  # Nk
        return self._aead.key_len

    # --- hash, MAC, KDF ----------------------------------------------------------------------

    @staticmethod
    def hash(data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    @staticmethod
    def mac(key: bytes, data: bytes) -> bytes:
        return hmac.new(key, data, "sha256").digest()

    def verify_mac(self, key: bytes, data: bytes, tag: bytes, what: str) -> None:
        """Check an HMAC tag in constant time; raise :class:`ConfirmationError` on mismatch."""
        if not hmac.compare_digest(self.mac(key, data), tag):
            raise ConfirmationError(f"{what} does not match")

    @staticmethod
    def extract(salt: bytes, ikm: bytes) -> bytes:
        """HKDF-Extract (RFC 5869 §2.2); an empty salt means Nh zero bytes (HMAC pads it so)."""
        return HKDF.extract(_SHA256, salt, ikm)

    @staticmethod
    def expand(prk: bytes, info: bytes, length: int) -> bytes:
        """HKDF-Expand (RFC 5869 §2.3)."""
        if length <= _HASH_LEN:
            return expand_block(prk, info)[:length]
        return HKDFExpand(_SHA256, length, info).derive(prk)

    def expand_with_label(self, secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
        """RFC 9420 §8: HKDF-Expand(secret, uint16 L || V(prefix+label) || V(context), L)."""
        info = _kdf_label_head(self.label_prefix, label, length) + opaque(context)
        return self.expand(secret, info, length)

    def derive_secret(self, secret: bytes, label: bytes) -> bytes:
        return self.expand_with_label(secret, label, b"", _HASH_LEN)

    def derive_tree_secret(self, secret: bytes, label: bytes, generation: int, length: int) -> bytes:
        return self.expand_with_label(secret, label, generation.to_bytes(4, "big"), length)

    def ref_hash(self, label: bytes, value: bytes) -> bytes:
        """RFC 9420 §5.2 RefHash; the label is used verbatim (callers include the prefix)."""
        return self.hash(opaque(label) + opaque(value))

    # --- signatures --------------------------------------------------------------------------

    def _sign_content(self, label: bytes, content: bytes) -> bytes:
        """``SignContent = V(prefix + label) || V(content)`` (§5.1.2)."""
        return _label_vector(self.label_prefix, label) + encode_varint(len(content)) + content

    def sign_with_label(self, key: Ed25519PrivateKey, label: bytes, content: bytes) -> bytes:
        return key.sign(self._sign_content(label, content))

    def sign_parts_with_label(
        self, key: Ed25519PrivateKey, label: bytes, parts: Sequence[bytes]
    ) -> tuple[memoryview, bytes]:
        """``sign_with_label`` of ``content = b"".join(parts)``, with the content copied once, into
        the signed SignContent; returns a view of the content inside it, and the signature."""
        head = _label_vector(self.label_prefix, label) + encode_varint(sum(map(len, parts)))
        signed = b"".join([head, *parts])
        return memoryview(signed)[len(head) :], key.sign(signed)

    def verify_with_label(
        self, public_key: bytes, label: bytes, content: bytes, signature: bytes, what: str
    ) -> None:
        """Verify an Ed25519 SignWithLabel signature; raise :class:`SignatureError` if it fails."""
        try:
            pk = _ed25519_public(public_key)
        except ValueError as exc:
            raise InvalidPublicKeyError(f"{what}: malformed Ed25519 public key") from exc
        try:
            pk.verify(signature, self._sign_content(label, content))
        except InvalidSignature:
            raise SignatureError(f"{what}: signature does not verify") from None

    def verify_parts_with_label(
        self, public_key: bytes, label: bytes, parts: Sequence[bytes], signature: bytes, what: str
    ) -> None:
        """:meth:`verify_with_label` of ``content = b"".join(parts)``, with the content copied once,
        into the SignContent that is checked (the per-message receive path, issue 16)."""
        try:
            pk = _ed25519_public(public_key)
        except ValueError as exc:
            raise InvalidPublicKeyError(f"{what}: malformed Ed25519 public key") from exc
        head = _label_vector(self.label_prefix, label) + encode_varint(sum(map(len, parts)))
        try:
            pk.verify(signature, b"".join([head, *parts]))
        except InvalidSignature:
            raise SignatureError(f"{what}: signature does not verify") from None

    # --- X25519 and HPKE ---------------------------------------------------------------------

    @staticmethod
    def x25519_public(private: bytes) -> bytes:
        return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()

    @staticmethod
    def x25519(private: bytes, public: bytes) -> bytes:
        """Raw X25519; callers must feed the output to a labelled KDF, never use it directly."""
        return x25519_exchange(X25519PrivateKey.from_private_bytes(private), public)

    def derive_key_pair(self, ikm: bytes) -> tuple[bytes, bytes]:
        """RFC 9180 §7.1.3 DeriveKeyPair for DHKEM(X25519, HKDF-SHA256); returns (sk, pk)."""
        suite_id = b"KEM" + (0x0020).to_bytes(2, "big")
        prk = self.extract(b"", b"HPKE-v1" + suite_id + b"dkp_prk" + ikm)
        sk = self.expand(prk, (32).to_bytes(2, "big") + b"HPKE-v1" + suite_id + b"sk", 32)
        return sk, self.x25519_public(sk)

    def _hpke_info(self, label: bytes, context: bytes) -> bytes:
        """``EncryptContext = V(prefix + label) || V(context)``, in one copy of ``context`` (a
        Welcome's context is its encrypted GroupInfo, which holds the whole tree)."""
        return b"".join((opaque(self.label_prefix + label), encode_varint(len(context)), context))

    def encrypt_with_label(
        self, public_key: bytes, label: bytes, context: bytes, plaintext: bytes
    ) -> tuple[bytes, bytes]:
        """RFC 9420 §5.1.3 EncryptWithLabel (HPKE base mode); returns (kem_output, ciphertext)."""
        pk = X25519PublicKey.from_public_bytes(check_x25519_public(public_key, "HPKE init key"))
        out = self._hpke.encrypt(plaintext, pk, self._hpke_info(label, context))
        return out[:32], out[32:]

    def decrypt_with_label(
        self, private_key: bytes, label: bytes, context: bytes, kem_output: bytes, ciphertext: bytes
    ) -> bytes:
        sk = X25519PrivateKey.from_private_bytes(private_key)
        try:
            return self._hpke.decrypt(kem_output + ciphertext, sk, self._hpke_info(label, context))
        except (InvalidTag, ValueError):
            raise DecryptionError("HPKE open failed: not sealed to our init key, or tampered") from None

    # --- AEAD --------------------------------------------------------------------------------

    def seal(self, key: bytes, nonce: bytes, aad: bytes, plaintext: bytes) -> bytes:
        return self._aead.cls(key).encrypt(nonce, plaintext, aad)

    def open(self, key: bytes, nonce: bytes, aad: bytes, ciphertext: bytes, what: str) -> bytes:
        try:
            return self._aead.cls(key).decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise DecryptionError(f"{what}: authentication failed (wrong key or tampered)") from None


@functools.cache
def _label_vector(prefix: bytes, label: bytes) -> bytes:
    """``V(prefix + label)``, the constant head of a SignContent."""
    return opaque(prefix + label)


@functools.lru_cache(maxsize=4096)
def _ed25519_public(key: bytes) -> Ed25519PublicKey:
    """The parsed key of a signer: members' identity keys recur on every message they send, and a
    parsed key is immutable. A malformed key raises ValueError (and is not cached)."""
    return Ed25519PublicKey.from_public_bytes(key)


@functools.lru_cache(maxsize=4096)
def _x25519_public(key: bytes) -> X25519PublicKey:
    """The parsed key of a tree node: a copath's keys recur in every path computed beside them,
    and a parsed key is immutable. A malformed key raises ValueError (and is not cached)."""
    return X25519PublicKey.from_public_bytes(key)


@functools.cache
def _kdf_label_head(prefix: bytes, label: bytes, length: int) -> bytes:
    """``uint16(L) || V(prefix + label)``: the constant head of a KDFLabel (RFC 9420 §8)."""
    return length.to_bytes(2, "big") + opaque(prefix + label)


def varint_len(n: int) -> int:
    """Bytes used by the varint length prefix of an ``n``-byte vector."""
    return len(encode_varint(n))
