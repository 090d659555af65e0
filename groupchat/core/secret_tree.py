"""The per-epoch secret tree and its hash ratchets (RFC 9420 §9, §9.1, §9.2, §15.3).

``tree_secret[root] = encryption_secret`` and each node's children are derived from it with the
labels "tree"/"left"|"right". A leaf's secret seeds two ratchets (handshake and application); every
generation ``j`` yields one (key, nonce) pair and the next ratchet secret.

Secrets are derived lazily: the first use of a leaf walks down from the nearest stored ancestor and
deletes each consumed node secret (§9.2). Ratchet secrets below the next generation are deleted;
keys for skipped generations are kept in a bounded window (oldest evicted) so that out-of-order
messages can still be read, and a generation may not jump more than ``max_forward`` ahead (§15.3).

Receiving is two-phase so a failed decryption never changes state: :meth:`SecretTree.lookup`
computes the key without mutating anything, and :meth:`SecretTree.commit` applies it once the
message has been authenticated. A lookup made stale by another commit in between is re-resolved
against the current state at commit time (keys are deterministic), so it either yields the same
key or raises :class:`ReplayError`.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from itertools import islice
from typing import Final

from . import tree_math
from .codec import Reader, Writer, opaque
from .errors import GenerationError, InvalidValueError, ReplayError, UnknownMemberError, UsageError
from .suite import CipherSuite, expand_block, expand_blocks, expand_three

__all__ = ["KeyLookup", "RatchetKind", "SecretTree"]

# Stored state (docs/protocol.md §12): at most this many stored node secrets or ratchets.
_MAX_STORED: Final = 1 << 17

# Generation is a uint32 in SenderData (§6.3.2). The last value is never used, on sending or
# receiving, so the next generation (generation + 1) always still fits in a uint32.
_MAX_GENERATION: Final = 0xFFFFFFFF
_GENERATION: Final = struct.Struct(">BI")  # V(uint32 generation), the ratchet's KDF context: 0x04 || gen


class RatchetKind(IntEnum):
    """Which of a leaf's two ratchets: handshake (proposals, commits) or application."""

    # Hashed as the int it equals, in C, not by Enum's hash of the name in Python: the ratchets
    # are looked up by (leaf, kind) on every message (issue 16).
    __hash__ = int.__hash__

    HANDSHAKE = 0
    APPLICATION = 1


@dataclass(frozen=True, slots=True)
class KeyLookup:
    """The key and nonce for one received generation, plus what :meth:`SecretTree.commit` applies."""

    leaf: int
    kind: RatchetKind
    generation: int
    key: bytes = field(repr=False)
    nonce: bytes = field(repr=False)
    # Private to SecretTree: the ratchet version the lookup was computed against, the ratchet
    # secret for generation + 1 (None if the key came from the skipped window) and the skipped
    # keys to store, as (generation, key, nonce).
    _owner: object = field(repr=False, compare=False)
    _version: int = field(repr=False)
    _next_secret: bytes | None = field(repr=False)
    _skipped: tuple[tuple[int, bytes, bytes], ...] = field(repr=False)


class _Ratchet:
    """One hash ratchet: the secret of generation ``next_gen`` and the window of skipped keys."""

    __slots__ = ("next_gen", "secret", "skipped", "version")

    def __init__(self, secret: bytes) -> None:
        self.next_gen = 0
        self.secret = secret
        self.skipped: dict[int, tuple[bytes, bytes]] = {}  # insertion order = ascending generation
        self.version = 0


@functools.cache
def _labels(
    p: bytes, nh: int, nk: int, nn: int
) -> tuple[tuple[bytes, bytes, bytes], tuple[bytes, bytes, bytes, bytes]]:
    """The KDFLabel heads of a secret tree under label prefix ``p``: the ratchet's "key", "nonce"
    and "secret" (its V(generation) context appended per step), and the full labels of the
    tree's "left" and "right" children and a leaf's "handshake" and "application" ratchets."""
    return (
        (
            nk.to_bytes(2, "big") + opaque(p + b"key"),
            nn.to_bytes(2, "big") + opaque(p + b"nonce"),
            nh.to_bytes(2, "big") + opaque(p + b"secret"),
        ),
        (
            nh.to_bytes(2, "big") + opaque(p + b"tree") + opaque(b"left"),
            nh.to_bytes(2, "big") + opaque(p + b"tree") + opaque(b"right"),
            nh.to_bytes(2, "big") + opaque(p + b"handshake") + opaque(b""),
            nh.to_bytes(2, "big") + opaque(p + b"application") + opaque(b""),
        ),
    )


class SecretTree:
    """The secret tree of one epoch: per-leaf ratchets derived from ``encryption_secret``."""

    __slots__ = (
        "_key_len",
        "_leaf_count",
        "_max_forward",
        "_max_skipped",
        "_nodes",
        "_ratchets",
        "_suite",
        "_tree_info",
        "_tree_pfx",
    )

    def __init__(
        self,
        suite: CipherSuite,
        encryption_secret: bytes,
        leaf_count: int,
        *,
        max_forward: int = 1000,
        max_skipped: int = 256,
    ) -> None:
        if leaf_count < 1 or leaf_count & (leaf_count - 1):
            raise UsageError(f"a secret tree needs a power-of-two leaf count, got {leaf_count}")
        if max_forward < 0 or max_skipped < 0:
            raise UsageError("max_forward and max_skipped must be non-negative")
        self._suite = suite
        self._leaf_count = leaf_count
        self._max_forward = max_forward
        self._max_skipped = max_skipped
        self._key_len = suite.key_len
        self._nodes: dict[int, bytes] = {tree_math.root(leaf_count): encryption_secret}
        self._ratchets: dict[tuple[int, int], _Ratchet] = {}
        # Precomputed KDFLabel prefixes (§8, §9.1): uint16(L) || V(prefix + label), to which
        # V(context) is appended. All outputs fit one SHA-256 block, so HKDF-Expand is one
        # expand_block (one HMAC) on the hot path. Built once per suite (every epoch has a tree).
        self._tree_pfx, self._tree_info = _labels(
            suite.label_prefix, suite.hash_len, suite.key_len, suite.nonce_len
        )

    def __repr__(self) -> str:
        return f"SecretTree(leaf_count={self._leaf_count})"

    @property
    def leaf_count(self) -> int:
        return self._leaf_count

    # --- derivation ---------------------------------------------------------------------------

    def _step(self, secret: bytes, generation: int) -> tuple[bytes, bytes, bytes]:
        """DeriveTreeSecret for "key", "nonce" and "secret" at ``generation`` (§9.1).

        Each is one HKDF-Expand block under the same ratchet secret (:func:`expand_blocks`):
        this runs once per message sent or received.
        """
        ctx = _GENERATION.pack(4, generation)
        kp, np_, sp = self._tree_pfx
        key, nonce, nxt = expand_three(secret, kp + ctx, np_ + ctx, sp + ctx)
        return key[: self._key_len], nonce[:12], nxt

    def _next_secret(self, secret: bytes, generation: int) -> bytes:
        ctx = _GENERATION.pack(4, generation)
        return expand_block(secret, self._tree_pfx[2] + ctx)

    def _ratchet(self, leaf: int, kind: RatchetKind) -> _Ratchet:
        """The ratchet of ``leaf``, deriving the leaf's secrets from the tree on first use (§9.2)."""
        r = self._ratchets.get((leaf, kind))
        if r is not None:
            return r
        if not 0 <= leaf < self._leaf_count:
            raise UnknownMemberError(f"leaf {leaf} is outside this epoch's tree of {self._leaf_count} leaves")
        n = self._leaf_count
        target = 2 * leaf
        # Walk up to the nearest ancestor whose secret is still stored, then derive back down,
        # deleting each consumed parent secret and keeping the copath siblings.
        path = [target]
        while path[-1] not in self._nodes:
            path.append(tree_math.parent(path[-1], n))
        nodes = self._nodes
        info = self._tree_info
        for i in range(len(path) - 1, 0, -1):
            node = path[i]
            nodes[tree_math.left(node)], nodes[tree_math.right(node)] = expand_blocks(
                nodes.pop(node), info[:2]
            )
        hs_secret, app_secret = expand_blocks(nodes.pop(target), info[2:])
        hs, app = _Ratchet(hs_secret), _Ratchet(app_secret)
        self._ratchets[(leaf, RatchetKind.HANDSHAKE)] = hs
        self._ratchets[(leaf, RatchetKind.APPLICATION)] = app
        return hs if kind == RatchetKind.HANDSHAKE else app

    # --- sending --------------------------------------------------------------------------------

    def next_send(self, leaf: int, kind: RatchetKind) -> tuple[int, bytes, bytes]:
        """Consume the next generation of our own ratchet; returns (generation, key, nonce)."""
        r = self._ratchet(leaf, kind)
        gen = r.next_gen
        if gen >= _MAX_GENERATION:
            raise GenerationError(
                f"the {kind.name.lower()} ratchet of leaf {leaf} is exhausted ({gen} messages in one "
                "epoch); commit an update to start a new epoch"
            )
        key, nonce, nxt = self._step(r.secret, gen)
        r.secret = nxt
        r.next_gen = gen + 1
        r.version += 1
        return gen, key, nonce

    # --- receiving ------------------------------------------------------------------------------

    def lookup(self, leaf: int, kind: RatchetKind, generation: int) -> KeyLookup:
        """Compute the key for ``generation`` of ``leaf``'s ratchet without consuming it.

        Raises :class:`UnknownMemberError`, :class:`ReplayError` (already used or evicted) or
        :class:`GenerationError` (more than ``max_forward`` ahead). Deriving a leaf's initial
        ratchet secrets on first use is deterministic and does not change what any later call
        returns; no generation is consumed until :meth:`commit`.
        """
        r = self._ratchet(leaf, kind)
        nxt = r.next_gen
        if generation == nxt and generation < _MAX_GENERATION:  # in order: the common case
            key, nonce, after = self._step(r.secret, generation)
            return KeyLookup(leaf, kind, generation, key, nonce, self, r.version, after, ())
        if generation < nxt:
            hit = r.skipped.get(generation)
            if hit is None:
                raise ReplayError(f"generation {generation} of leaf {leaf} was already used or has expired")
            return KeyLookup(leaf, kind, generation, hit[0], hit[1], self, r.version, None, ())
        if generation >= _MAX_GENERATION:
            raise GenerationError(
                f"generation {generation} of leaf {leaf} is the end of the uint32 range, which no sender uses"
            )
        if generation - nxt > self._max_forward:
            raise GenerationError(
                f"generation {generation} of leaf {leaf} is too far ahead "
                f"(next expected {nxt}, at most {self._max_forward} may be skipped)"
            )
        secret = r.secret
        # Only the last max_skipped skipped generations could be retained; older ones would be
        # evicted at once, so their keys are never derived.
        keep_from = generation - self._max_skipped
        skipped: list[tuple[int, bytes, bytes]] = []
        for g in range(nxt, generation):
            if g >= keep_from:
                k, nn, secret = self._step(secret, g)
                skipped.append((g, k, nn))
            else:
                secret = self._next_secret(secret, g)
        key, nonce, after = self._step(secret, generation)
        return KeyLookup(leaf, kind, generation, key, nonce, self, r.version, after, tuple(skipped))

    def commit(self, lookup: KeyLookup) -> None:
        """Consume the generation of ``lookup``: advance the ratchet, keep skipped keys, drop the key."""
        if lookup._owner is not self:
            raise UsageError("this key lookup belongs to another secret tree")
        r = self._ratchets[(lookup.leaf, lookup.kind)]
        if lookup._version != r.version:
            # Another commit changed this ratchet since the lookup; redo it against the current
            # state, which either finds the same (deterministic) key or rejects a replay.
            lookup = self.lookup(lookup.leaf, lookup.kind, lookup.generation)
        r.version += 1
        if lookup._next_secret is None:
            del r.skipped[lookup.generation]
            return
        skipped = r.skipped
        for g, k, nn in lookup._skipped:
            skipped[g] = (k, nn)
        excess = len(skipped) - self._max_skipped
        if excess > 0:  # evict the oldest generations (§15.3: bound the retained keys)
            for g in list(islice(skipped, excess)):
                del skipped[g]
        r.secret = lookup._next_secret
        r.next_gen = lookup.generation + 1

    # --- stored state (docs/protocol.md §12) ---------------------------------------------------

    def encode_state(self) -> bytes:
        """Everything this tree still holds: its width, the node secrets not yet consumed, and each
        derived ratchet's next generation, secret and skipped keys (no key already used is kept).

        ``uint32 leaf_count || (uint32 node, V(secret))<V> ||
        (uint32 leaf, uint8 kind, uint32 next_gen, V(secret), (uint32 gen, V(key), V(nonce))<V>)<V>``,
        every list strictly ascending.
        """
        nodes = [Writer().u32(node).opaque(secret).bytes() for node, secret in sorted(self._nodes.items())]
        ratchets = []
        for (leaf, kind), r in sorted(self._ratchets.items()):
            skipped = [Writer().u32(g).opaque(k).opaque(n).bytes() for g, (k, n) in sorted(r.skipped.items())]
            w = Writer().u32(leaf).u8(kind).u32(r.next_gen).opaque(r.secret).vector(skipped)
            ratchets.append(w.bytes())
        return Writer().u32(self._leaf_count).vector(nodes).vector(ratchets).bytes()

    @classmethod
    def read_state(
        cls, r: Reader, suite: CipherSuite, *, max_forward: int = 1000, max_skipped: int = 256
    ) -> SecretTree:
        """Read :meth:`encode_state`'s output, checking it is a tree this class could have reached:
        every leaf is covered by exactly one stored ancestor secret or by its pair of ratchets.

        A window of skipped keys longer than ``max_skipped`` keeps its newest keys (as eviction would).
        """
        nh, nk, nn = suite.hash_len, suite.key_len, suite.nonce_len
        leaf_count = r.u32("leaf count")
        if leaf_count < 1 or leaf_count & (leaf_count - 1) or leaf_count > 1 << 16:
            raise InvalidValueError(f"stored secret tree has {leaf_count} leaves, not a power of two ≤ 65536")
        width = tree_math.node_width(leaf_count)
        limit = _MAX_STORED * (8 + nh)

        def node(rr: Reader) -> tuple[int, bytes]:
            x = rr.u32("node")
            if x >= width:
                raise InvalidValueError(f"stored node {x} is outside a tree of {leaf_count} leaves")
            return x, rr.opaque_exact("node secret", nh)

        def skipped(rr: Reader) -> tuple[int, bytes, bytes]:
            return rr.u32("generation"), rr.opaque_exact("key", nk), rr.opaque_exact("nonce", nn)

        def ratchet(rr: Reader) -> tuple[int, int, _Ratchet]:
            leaf, kind, next_gen = rr.u32("leaf"), rr.u8("kind"), rr.u32("next generation")
            if leaf >= leaf_count or kind > RatchetKind.APPLICATION or next_gen > _MAX_GENERATION:
                raise InvalidValueError(f"stored ratchet ({leaf}, {kind}, {next_gen}) is out of range")
            rat = _Ratchet(rr.opaque_exact("ratchet secret", nh))
            rat.next_gen = next_gen
            window = rr.vector("skipped keys", _MAX_STORED * (20 + nk + nn), skipped, _MAX_STORED)
            gens = [g for g, _, _ in window]
            if gens != sorted(set(gens)) or (gens and gens[-1] >= next_gen):
                raise InvalidValueError(
                    f"stored skipped generations of leaf {leaf} are not ascending below {next_gen}"
                )
            for g, k, n in window[max(0, len(window) - max_skipped) :]:
                rat.skipped[g] = (k, n)
            return leaf, kind, rat

        nodes = r.vector("node secrets", limit, node, _MAX_STORED)
        ratchets = r.vector("ratchets", limit * 4, ratchet, _MAX_STORED)
        if [x for x, _ in nodes] != sorted({x for x, _ in nodes}):
            raise InvalidValueError("stored node secrets are not strictly ascending")
        keys = [(leaf, kind) for leaf, kind, _ in ratchets]
        if keys != sorted(set(keys)):
            raise InvalidValueError("stored ratchets are not strictly ascending")
        held = {x for x, _ in nodes}
        derived = {leaf for leaf, _ in keys}
        if len(keys) != 2 * len(derived):
            raise InvalidValueError("a stored leaf has one ratchet without the other")
        root = tree_math.root(leaf_count)
        for leaf in range(leaf_count):
            x, cover = 2 * leaf, int(leaf in derived)
            while True:
                cover += x in held
                if x == root:
                    break
                x = tree_math.parent(x, leaf_count)
            if cover != 1:
                raise InvalidValueError(f"stored secret tree covers leaf {leaf} {cover} times, not once")
        tree = cls(suite, bytes(nh), leaf_count, max_forward=max_forward, max_skipped=max_skipped)
        tree._nodes = dict(nodes)
        tree._ratchets = {(leaf, RatchetKind(kind)): rat for leaf, kind, rat in ratchets}
        return tree
