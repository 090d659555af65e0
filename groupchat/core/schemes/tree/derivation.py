"""What the tree derives from its nodes, stated once: node secrets, commit_secret, the tree hash.

* A keyed parent's secret comes from one child's private key and the other child's public key (the
  TGDH rule); binding both public keys into the label context ties it to its place and inputs.
* ``commit_secret`` is derived from the root's secret and feeds the RFC 9420 key schedule.
* The tree hash is a Merkle hash over leaves (key, member, chooser) and parents (own key, children).

The formulas are in :mod:`.ratchet_tree`'s theory of operation and ``docs/protocol.md`` §5; the
keeper adversary in ``groupchat/lab/keeper.py`` re-derives them independently from that text.
"""

from __future__ import annotations

import functools
from typing import Final

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ...codec import opaque
from ...identity import JoinRequest
from ...suite import CipherSuite, expand_block, extract_unsalted, x25519_exchange

__all__ = ["BlankHashes", "commit_secret_of", "hash_leaf", "hash_parent", "node_secret"]

_NODE_LABEL: Final = b"tgdh node"
_COMMIT_LABEL: Final = b"tgdh commit"


def node_secret(suite: CipherSuite, sk: X25519PrivateKey, other: bytes, left: bytes, right: bytes) -> bytes:
    """secret(P) from one child's private key and the other child's public key."""
    dh = x25519_exchange(sk, other)
    prk = extract_unsalted(dh)  # suite.extract(b"", dh), from a pre-keyed HMAC
    if len(left) == len(right) == 32:
        # The KDFLabel written out (one per tree level of every commit): V(V(left) || V(right))
        # is 0x4042 (a 2-byte varint of 66) || 0x20 || left || 0x20 || right.
        return expand_block(
            prk, _node_label_head(suite.label_prefix) + b"\x40\x42\x20" + left + b"\x20" + right
        )
    return suite.expand_with_label(prk, _NODE_LABEL, opaque(left) + opaque(right), 32)


@functools.cache
def _node_label_head(prefix: bytes) -> bytes:
    """``uint16 32 || V(prefix + "tgdh node")``: the constant head of every node secret's KDFLabel."""
    return (32).to_bytes(2, "big") + opaque(prefix + _NODE_LABEL)


def commit_secret_of(suite: CipherSuite, root_secret: bytes) -> bytes:
    """The scheme's output for the key schedule: ``DeriveSecret(secret(root), "tgdh commit")``."""
    return suite.derive_secret(root_secret, _COMMIT_LABEL)


def hash_leaf(
    suite: CipherSuite, key: bytes | None, member: JoinRequest | None, chooser: int | None
) -> bytes:
    """``0x01 || optional<V(key) || optional<V(join_request)> || optional<uint32 chooser>>``,
    written out (a joiner hashes every leaf of its welcome's tree)."""
    if key is None:
        return suite.hash(b"\x01\x00")
    head = b"\x01\x01" + opaque(key)
    body = b"\x00" if member is None else b"\x01" + opaque(member.encoded)
    tail = b"\x00" if chooser is None else b"\x01" + chooser.to_bytes(4, "big")
    return suite.hash(head + body + tail)


def hash_parent(suite: CipherSuite, own: bytes | None, left: bytes, right: bytes) -> bytes:
    """``0x02 || optional<V(own)> || V(left) || V(right)``, written out: keys and hashes are 32
    bytes, so every V() prefix is the one-byte varint 0x20 (the hot path of a commit)."""
    assert len(left) == len(right) == 32 and (own is None or len(own) == 32)
    head = b"\x02\x00" if own is None else b"\x02\x01\x20" + own
    return suite.hash(head + b"\x20" + left + b"\x20" + right)


class BlankHashes:
    """The hash of an all-blank subtree of each height, computed once per height and kept."""

    def __init__(self, suite: CipherSuite) -> None:
        self._suite = suite
        self._by_level = [hash_leaf(suite, None, None, None)]

    def at(self, level: int) -> bytes:
        while len(self._by_level) <= level:
            h = self._by_level[-1]
            self._by_level.append(hash_parent(self._suite, None, h, h))
        return self._by_level[level]
