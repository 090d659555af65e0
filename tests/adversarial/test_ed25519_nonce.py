"""The test-only nonce-choosing Ed25519 signer (``ed25519_nonce.py``) makes signatures that pyca
accepts, different from pyca's own for the same content, and that pyca refuses once altered."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ed25519_nonce import NonceKey, sign_with_nonce


@pytest.mark.parametrize("message", [b"", b"ring round 2", bytes(range(256)) * 3])
def test_chosen_nonce_signatures_verify_under_pyca_and_differ_from_pycas(message: bytes) -> None:
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    ours = {NonceKey(key, salt).sign(message) for salt in (b"a", b"b", b"c")}
    ours.add(sign_with_nonce(key.private_bytes_raw(), message, 1))
    assert len(ours) == 4 and key.sign(message) not in ours
    for signature in ours:
        public.verify(signature, message)  # raises if the signer is wrong
    bad = bytearray(next(iter(ours)))
    bad[40] ^= 1
    with pytest.raises(InvalidSignature):
        public.verify(bytes(bad), message)
    with pytest.raises(InvalidSignature):
        public.verify(next(iter(ours)), message + b"x")


def test_the_public_key_is_pycas() -> None:
    key = Ed25519PrivateKey.generate()
    assert NonceKey(key, b"s").public_key().public_bytes_raw() == key.public_key().public_bytes_raw()
