"""The ring's derivations: pure functions of public values and edge keys (docs/protocol.md §8.1).

Shared by every member's run (:mod:`.ring`), the keeper test and the bench. Messages enter the
hashes by their *signed content* in roster order, never by their signature bytes or arrival order:
every member that accepted the same signed contents derives the same secret, and a signer that
makes a second valid signature of the same content (Ed25519 lets it choose the nonce) changes
nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ..codec import Writer, encode_varint
from ..events import Member
from ..suite import CipherSuite

__all__ = [
    "KEY_LEN",
    "commit_secret",
    "edge_key",
    "message_size",
    "revealed_value",
    "ring_id",
    "roster_hash",
    "round1_hash",
    "transcript_hash",
    "walk_ring",
    "xor",
]

KEY_LEN: Final = 32
_SIGNATURE_LEN: Final = 64


def roster_hash(suite: CipherSuite, roster: Sequence[Member]) -> bytes:
    """Hash of the roster in leaf order: ``RefHash("ring roster", (uint32 leaf || V(identity))*)``."""
    w = Writer()
    for m in sorted(roster, key=lambda m: m.leaf):
        w.u32(m.leaf).opaque(m.identity_key)
    return suite.ref_hash(suite.label_prefix + b"ring roster", w.bytes())


def ring_id(
    suite: CipherSuite, group_id: bytes, epoch: int, attempt: int, roster: bytes, context: bytes
) -> bytes:
    """The name of one rekey attempt; it salts every edge key and labels the commit secret."""
    body = Writer().opaque(group_id).u64(epoch).u32(attempt).opaque(roster).opaque(context).bytes()
    return suite.ref_hash(suite.label_prefix + b"ring id", body)


def edge_key(suite: CipherSuite, rid: bytes, index: int, dh: bytes, left: bytes, right: bytes) -> bytes:
    """``k_index`` from the raw X25519 output of its two endpoints' ephemeral keys ``left``, ``right``."""
    context = Writer().u32(index).opaque(left).opaque(right).bytes()
    return suite.expand_with_label(suite.extract(rid, dh), b"ring edge", context, KEY_LEN)


def round1_hash(suite: CipherSuite, rid: bytes, contents: Sequence[bytes]) -> bytes:
    """Hash of every round-1 message's signed content in roster order: round 2's signed view."""
    w = Writer().raw(rid)
    for m in contents:
        w.opaque(m)
    return suite.ref_hash(suite.label_prefix + b"ring round 1", w.bytes())


def transcript_hash(suite: CipherSuite, r1_hash: bytes, contents: Sequence[bytes]) -> bytes:
    """The round-1 hash, then every round-2 signed content in roster order: round 3's signed view."""
    w = Writer().raw(r1_hash)
    for m in contents:
        w.opaque(m)
    return suite.ref_hash(suite.label_prefix + b"ring transcript", w.bytes())


def commit_secret(suite: CipherSuite, rid: bytes, edges: Sequence[bytes], transcript: bytes) -> bytes:
    """``ExpandWithLabel(Extract(transcript_hash, k_0 || ... || k_{n-1}), "ring commit", ring_id)``."""
    return suite.expand_with_label(suite.extract(transcript, b"".join(edges)), b"ring commit", rid, KEY_LEN)


def revealed_value(
    suite: CipherSuite, rid: bytes, pos: int, private: bytes, publics: Sequence[bytes]
) -> bytes | None:
    """The round-2 value ``X_pos`` the revealed ephemeral key ``private`` gives, from everyone's
    round-1 keys; ``None`` if it is not the private key of ``publics[pos]``."""
    key = X25519PrivateKey.from_private_bytes(private)
    if key.public_key().public_bytes_raw() != publics[pos]:
        return None
    n = len(publics)
    left, right = (pos - 1) % n, (pos + 1) % n
    dh_right = key.exchange(X25519PublicKey.from_public_bytes(publics[right]))
    dh_left = dh_right if left == right else key.exchange(X25519PublicKey.from_public_bytes(publics[left]))
    k_left = edge_key(suite, rid, left, dh_left, publics[left], publics[pos])
    k_right = edge_key(suite, rid, pos, dh_right, publics[pos], publics[right])
    return xor(k_left, k_right)


def xor(a: bytes, b: bytes) -> bytes:
    """XOR of two equal-length byte strings."""
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def walk_ring(values: Sequence[bytes], start: int, start_key: bytes) -> list[bytes]:
    """Every edge key from one: ``k_start`` is known, and ``k_j = X_j XOR k_{j-1}`` around the ring.

    ``values[j]`` is ``X_j = k_{j-1} XOR k_j``. The result is indexed by edge.
    """
    n = len(values)
    edges = [b""] * n
    edges[start] = start_key
    for step in range(1, n):
        j = (start + step) % n
        edges[j] = xor(values[j], edges[j - 1])
    return edges


def _vector_size(length: int) -> int:
    return len(encode_varint(length)) + length


def message_size(group_id_len: int, context_len: int, round_: int) -> int:
    """Exact size in bytes of one ring round message (for the bench and capacity planning)."""
    fixed = 2 + 2 + 8 + 4 + 1 + 4  # version, wire format, epoch, attempt, round, sender
    vectors = (group_id_len, KEY_LEN, context_len, KEY_LEN, 0 if round_ == 1 else KEY_LEN, _SIGNATURE_LEN)
    return fixed + sum(_vector_size(k) for k in vectors)
