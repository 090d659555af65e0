"""A test-only Ed25519 signer that chooses its own nonce (RFC 8032 §5.1.6), to mount one attack.

pyca's Ed25519 is deterministic (the nonce is ``SHA-512(prefix || M)``), so it can make only one
signature of a given content. The protocol must not depend on that: any signer may pick any nonce
``r`` and get another valid signature ``(R = rB, S = r + H(R || A || M) a)`` of the same content
(issue 14: a member that publishes two valid signatures of one round-2 value). This module exists
only so the tests can be that member; it is checked against pyca's ``Ed25519PublicKey.verify``
(``test_ed25519_nonce.py``). Never use it for anything else: it is slow and not constant-time.

:class:`NonceKey` quacks like pyca's ``Ed25519PrivateKey`` for signing (``sign``, ``public_key``),
so it can be handed to code that signs through ``key.sign(data)`` (``RingRound.create``).
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["NonceKey", "sign_with_nonce"]

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = (-121665 * pow(121666, -1, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)

Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z


def _recover_x(y: int, sign: int) -> int:
    x2 = (y * y - 1) * pow(_D * y * y + 1, -1, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    assert (x * x - x2) % _P == 0, "not a curve point"
    return _P - x if x & 1 != sign else x


_BY = 4 * pow(5, -1, _P) % _P
_BX = _recover_x(_BY, 0)
_B: Point = (_BX, _BY, 1, _BX * _BY % _P)
_ZERO: Point = (0, 1, 1, 0)


def _add(p: Point, q: Point) -> Point:
    """RFC 8032 §5.1.4 point addition (extended coordinates, a = -1)."""
    a = (p[1] - p[0]) * (q[1] - q[0]) % _P
    b = (p[1] + p[0]) * (q[1] + q[0]) % _P
    c = 2 * p[3] * q[3] * _D % _P
    d = 2 * p[2] * q[2] % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(k: int, p: Point) -> Point:
    out = _ZERO
    while k:
        if k & 1:
            out = _add(out, p)
        p = _add(p, p)
        k >>= 1
    return out


def _encode(p: Point) -> bytes:
    zinv = pow(p[2], -1, _P)
    x, y = p[0] * zinv % _P, p[1] * zinv % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _h(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little")


def sign_with_nonce(seed: bytes, message: bytes, nonce: int) -> bytes:
    """An Ed25519 signature of ``message`` under the private key ``seed`` with nonce scalar ``nonce``.

    RFC 8032 §5.1.6 with step 2 (``r = SHA-512(prefix || M)``) replaced by the caller's ``nonce``;
    it verifies like any other signature of that key.
    """
    if len(seed) != 32:
        raise ValueError("an Ed25519 seed is 32 bytes")
    digest = hashlib.sha512(seed).digest()
    a = int.from_bytes(digest[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    public = _encode(_mul(a, _B))
    r = nonce % _L
    if r == 0:
        raise ValueError("the nonce must not be 0 mod L")
    big_r = _encode(_mul(r, _B))
    k = _h(big_r, public, message) % _L
    s = (r + k * a) % _L
    return big_r + s.to_bytes(32, "little")


class NonceKey:
    """An Ed25519 signing key whose signatures use ``SHA-512(salt || M)`` as nonce (not pyca's).

    Each ``salt`` gives another valid signature of the same message; all verify under the same
    public key as ``key``.
    """

    def __init__(self, key: Ed25519PrivateKey, salt: bytes) -> None:
        self._key = key
        self._seed = key.private_bytes_raw()
        self._salt = salt

    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def sign(self, data: bytes) -> bytes:
        return sign_with_nonce(self._seed, data, _h(self._salt, data))
