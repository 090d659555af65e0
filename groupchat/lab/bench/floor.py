"""The floor the bench ratios are measured against: X25519, Ed25519 and AEAD costs per operation.

Measured with pyca/cryptography directly in the same run, so load drift cancels out of the ratios.
Its own module so that the tree bench (``scene``, ``tree``, reported by ``rekey``) and the ring
bench (``ring``) both build on it without importing each other.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

__all__ = ["CLOCKS", "MESSAGE_BYTES", "Clock", "Floor", "depth", "measure_floor", "median", "per_op_us"]

MESSAGE_BYTES: Final = 100

Clock = Callable[[], int]
CLOCKS: Final[dict[str, tuple[Clock, str]]] = {
    "cpu": (time.process_time_ns, "process CPU time (time.process_time_ns)"),
    "wall": (time.perf_counter_ns, "wall time (time.perf_counter_ns)"),
}


def median(xs: Sequence[float]) -> float:
    """The median, or NaN for no samples (a report cell with nothing measured)."""
    return float(statistics.median(xs)) if xs else math.nan


def depth(n: int) -> int:
    """d = ceil(log2 n): the number of parent levels above a leaf in an n-leaf tree."""
    return max(1, (n - 1).bit_length())


# --- the floor -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Floor:
    """Median primitive costs in µs per operation, measured with pyca/cryptography in this run."""

    x25519_exchange: float
    x25519_keypair: float  # from_private_bytes + public_key (+ public_bytes_raw)
    ed25519_sign: float
    ed25519_verify: float
    aead_seal: float  # including the AEAD object's construction: every message key is fresh
    aead_open: float
    aead_name: str

    @property
    def dh_level(self) -> float:
        """One tree level: one exchange plus deriving the node's key pair from its secret."""
        return self.x25519_exchange + self.x25519_keypair

    def committer_us(self, d: int) -> float:
        return d * self.dh_level + self.ed25519_sign

    def receiver_us(self, levels: int) -> float:
        return levels * self.dh_level + self.ed25519_verify

    @staticmethod
    def commit_bytes(d: int) -> int:
        return 32 * d + 64

    @property
    def encrypt_us(self) -> float:
        return self.ed25519_sign + self.aead_seal

    @property
    def decrypt_us(self) -> float:
        return self.ed25519_verify + self.aead_open

    @classmethod
    def median_of(cls, floors: Sequence[Floor]) -> Floor:
        """Component-wise median of several floor measurements."""
        return cls(
            x25519_exchange=median([f.x25519_exchange for f in floors]),
            x25519_keypair=median([f.x25519_keypair for f in floors]),
            ed25519_sign=median([f.ed25519_sign for f in floors]),
            ed25519_verify=median([f.ed25519_verify for f in floors]),
            aead_seal=median([f.aead_seal for f in floors]),
            aead_open=median([f.aead_open for f in floors]),
            aead_name=floors[0].aead_name,
        )

    def rows(self) -> list[tuple[str, float]]:
        return [
            ("X25519 exchange", self.x25519_exchange),
            ("X25519 from_private_bytes + public_key", self.x25519_keypair),
            (f"Ed25519 sign ({MESSAGE_BYTES} B)", self.ed25519_sign),
            (f"Ed25519 verify ({MESSAGE_BYTES} B)", self.ed25519_verify),
            (f"{self.aead_name} seal ({MESSAGE_BYTES} B, with key setup)", self.aead_seal),
            (f"{self.aead_name} open ({MESSAGE_BYTES} B, with key setup)", self.aead_open),
        ]


def per_op_us(fn: Callable[[], object], clock: Clock, batch: int, rounds: int) -> float:
    """Median over ``rounds`` of the mean time of ``batch`` back-to-back calls, in µs.

    Timing a batch keeps the clock's own cost (≈1 µs for the CPU clock) out of a 30 µs primitive.
    """
    fn()  # warm up
    per_op: list[float] = []
    for _ in range(rounds):
        t0 = clock()
        for _ in range(batch):
            fn()
        per_op.append((clock() - t0) / batch / 1000)
    return median(per_op)


def measure_floor(clock: Clock, suite_id: int = 1, batch: int = 100, rounds: int = 15) -> Floor:
    """Measure the primitives every rekey and message must pay for, with GC off (then restored)."""
    secret = os.urandom(32)
    sk = X25519PrivateKey.generate()
    peer = X25519PrivateKey.generate().public_key()
    sig_key = Ed25519PrivateKey.generate()
    ver_key = sig_key.public_key()
    msg = os.urandom(MESSAGE_BYTES)
    signature = sig_key.sign(msg)
    aead_cls: type[AESGCM] | type[ChaCha20Poly1305] = AESGCM if suite_id == 1 else ChaCha20Poly1305
    key = os.urandom(16 if suite_id == 1 else 32)
    nonce = os.urandom(12)
    sealed = aead_cls(key).encrypt(nonce, msg, b"")

    def keypair() -> bytes:
        return X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes_raw()

    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        return Floor(
            x25519_exchange=per_op_us(lambda: sk.exchange(peer), clock, batch, rounds),
            x25519_keypair=per_op_us(keypair, clock, batch, rounds),
            ed25519_sign=per_op_us(lambda: sig_key.sign(msg), clock, batch, rounds),
            ed25519_verify=per_op_us(lambda: ver_key.verify(signature, msg), clock, batch, rounds),
            aead_seal=per_op_us(lambda: aead_cls(key).encrypt(nonce, msg, b""), clock, batch * 10, rounds),
            aead_open=per_op_us(
                lambda: aead_cls(key).decrypt(nonce, sealed, b""), clock, batch * 10, rounds
            ),
            aead_name="AES-128-GCM" if suite_id == 1 else "ChaCha20-Poly1305",
        )
    finally:
        if was_enabled:
            gc.enable()
