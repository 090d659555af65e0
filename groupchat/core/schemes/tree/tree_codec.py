"""The public tree's byte layout (docs/protocol.md §4.3): what a Welcome and a stored state carry.

The compact encoding (format 1) says each fact once. Every member's join request is for this
group, in this suite and protocol version (a welcome listing another is refused), so the group id
is written once and each request's version, suite, group id and length prefixes are left out; the
decoder rebuilds the exact request bytes the member signed and hashed. Whether a parent holds a
key follows from the tree rule (keyed iff both children have an effective key, §5.1), so parents
carry no presence flag: leaves come first, then the keyed parents level by level. A chooser is a
uint16 (a tree has at most 2^16 leaves), and a member's taint is in its kind byte.

The legacy encoding (before issue 16: ``uint32 capacity`` then every node in array order) is
still read, so a state stored by an earlier version restores; it is never written.

Only the layout lives here; :class:`~.ratchet_tree.RatchetTree` builds and checks the tree.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Final

from ... import tree_math as tm
from ...codec import Reader, Writer
from ...errors import DuplicateKeyError, InvalidValueError, UsageError
from ...identity import JoinRequest
from ...suite import CipherSuite, check_x25519_public, is_x25519_public

__all__ = [
    "FORMAT",
    "MAX_CAPACITY",
    "PublicTree",
    "TreeRecords",
    "decode_public_tree",
    "encode_public_tree",
]

MAX_CAPACITY: Final = 1 << 16
FORMAT: Final = 1  # the first byte of a compact encoding (a legacy one starts with 0)

# Leaf kinds of the compact encoding.
_BLANK, _VACANT, _MEMBER, _TAINTED_MEMBER = 0, 1, 2, 3
_BLANK_LEAF: Final = bytes((_BLANK,))
_BLOCK: Final = 16  # leaf records or parent keys kept joined together (TreeRecords)
_JOIN_CHUNK: Final = 512  # parts per bytes.join (_join)
# Leaf kinds of the legacy encoding.
_LEGACY_BLANK, _LEGACY_VACANT, _LEGACY_MEMBER = 0, 1, 2
_MAX_JOIN_REQUEST: Final = 4096
_SIG_LEN: Final = 64


@dataclass(slots=True)
class PublicTree:
    """A decoded public tree: every node's own key, every leaf's member and chooser."""

    capacity: int
    own: list[bytes | None]  # per node, in array order
    members: list[JoinRequest | None]  # per leaf
    choosers: list[int | None]  # per leaf


def _effective(own: Sequence[bytes | None], capacity: int) -> list[bytes | None]:
    """Effective keys bottom-up: a parent passes a child's key through when it owns none."""
    eff = list(own)
    for x, left, right in tm.parents_bottom_up(capacity):
        eff[x] = own[x] or eff[left] or eff[right]
    return eff


@functools.cache
def _parents_bottom_up(capacity: int) -> tuple[int, ...]:
    """Every parent node, level 1 first, left to right within a level (kept per capacity)."""
    return tuple(x for x, _, _ in tm.parents_bottom_up(capacity))


def _header(capacity: int, group_ids: Collection[bytes]) -> bytes:
    """``uint8 format || uint8 log2(capacity) || V(group_id)``: the one group id of every member."""
    if len(group_ids) > 1:
        raise UsageError("a public tree holds join requests for more than one group")
    group_id = next(iter(group_ids), b"")
    return Writer().u8(FORMAT).u8(capacity.bit_length() - 1).opaque(group_id).bytes()


def _encode_leaf(own: bytes | None, member: JoinRequest | None, chooser: int | None) -> bytes:
    """One leaf's record in the compact encoding (the layout is :func:`encode_public_tree`'s)."""
    if own is None:
        return _BLANK_LEAF
    w = Writer()
    if member is None:
        assert chooser is not None, "a vacated slot is always tainted by its remover"
        return w.u8(_VACANT).raw(own).u16(chooser).bytes()
    w.u8(_MEMBER if chooser is None else _TAINTED_MEMBER).raw(own)
    w.raw(member.identity_key).opaque(member.display_name.encode()).raw(member.init_key)
    w.u64(member.not_after).raw(member.signature)
    if chooser is not None:
        w.u16(chooser)
    return w.bytes()


def _parent_keys(capacity: int, own: Sequence[bytes | None]) -> list[bytes]:
    """The keyed parents' keys, level 1 first, left to right (a key is never empty)."""
    return [key for key in map(own.__getitem__, _parents_bottom_up(capacity)) if key is not None]


def encode_public_tree(tree: PublicTree) -> bytes:
    """The compact encoding::

        uint8 format = 1 || uint8 log2(capacity) || V(group_id)      (empty iff no member)
        per leaf: uint8 kind, then blank (0): nothing;
                  vacated slot (1): key[32] || uint16 chooser;
                  member (2): key[32] || identity_key[32] || V(display_name) || init_key[32]
                              || uint64 not_after || signature[64];
                  tainted member (3): as a member, then uint16 chooser
        per keyed parent, level 1 first, left to right: key[32]

    Every leaf is encoded afresh here; :class:`TreeRecords` gives the same bytes from records
    kept between encodings.
    """
    capacity = tree.capacity
    parts = [_header(capacity, {m.group_id for m in tree.members if m is not None})]
    for leaf in range(capacity):
        parts.append(_encode_leaf(tree.own[2 * leaf], tree.members[leaf], tree.choosers[leaf]))
    parts += _parent_keys(capacity, tree.own)
    return _join(parts)


def _join(parts: Sequence[bytes]) -> bytes:
    """``b"".join(parts)``, a few hundred parts at a time: ``bytes.join`` allocates a buffer
    descriptor per part, and for thousands of parts that block is fresh (page-faulted) memory."""
    if len(parts) <= _JOIN_CHUNK:
        return b"".join(parts)
    return b"".join([b"".join(parts[i : i + _JOIN_CHUNK]) for i in range(0, len(parts), _JOIN_CHUNK)])


def _parent_position(x: int, capacity: int) -> int:
    """Where parent ``x`` stands in :func:`_parents_bottom_up`: after the capacity >> j parents of
    each level j below its level k, and x >> (k + 1) of its own level."""
    k = tm.level(x)
    return capacity - (capacity >> (k - 1)) + (x >> (k + 1))


class TreeRecords:
    """The encoded tree's pieces, kept between encodings of the same (changing) tree.

    A leaf's record is public data and changes only with its key, member or chooser, a parent's
    only with its key, so the tree's owner marks a node :meth:`stale` on every such write (and on
    its rollback), and :meth:`encode` re-encodes only those leaves, and re-joins only the blocks
    of :data:`_BLOCK` leaf records or parent keys that hold a stale node: the Welcome of an Add,
    which carries the whole tree, costs O(changed nodes) of encoding and one copy of the tree,
    not O(n) pieces.
    """

    __slots__ = ("_leaf_blocks", "_leaves", "_parent_blocks", "_stale")

    def __init__(self, capacity: int) -> None:
        self._leaves: list[bytes] = [_BLANK_LEAF] * capacity
        self._leaf_blocks: list[bytes] = []  # leaf records [i * _BLOCK, (i + 1) * _BLOCK) joined
        self._parent_blocks: list[bytes] = []  # keys of parents [i * _BLOCK, ...) bottom-up, joined
        self._stale: set[int] = set(range(tm.node_width(capacity)))  # nodes

    def stale(self, node: int) -> None:
        """``node``'s key (or a leaf's member or chooser) changed: encode it again."""
        self._stale.add(node)

    def resize(self, capacity: int) -> None:
        """Follow a grown or shrunk tree: new leaves are stale, dropped nodes forgotten, and every
        parent is stale (each level's place in the layout moves)."""
        old = len(self._leaves)
        width = tm.node_width(capacity)
        if capacity > old:
            self._leaves.extend([_BLANK_LEAF] * (capacity - old))
            self._stale.update(range(2 * old, width, 2))
        else:
            del self._leaves[capacity:]
            self._stale = {x for x in self._stale if x < width}
            self._stale.add(width - 1)  # the last leaf's block now ends at the new capacity
        self._stale.update(range(1, width, 2))

    def encode(self, tree: PublicTree, group_ids: Collection[bytes]) -> tuple[bytes, ...]:
        """:func:`encode_public_tree` of ``tree``, whose members' distinct group ids are
        ``group_ids``, in pieces (their concatenation): the caller copies them once, where needed."""
        leaves, own, capacity = self._leaves, tree.own, tree.capacity
        assert len(leaves) == capacity
        leaf_blocks: set[int] = set()
        parent_blocks: set[int] = set()
        for x in self._stale:
            if x & 1:
                parent_blocks.add(_parent_position(x, capacity) // _BLOCK)
            else:
                leaf = x // 2
                leaves[leaf] = _encode_leaf(own[x], tree.members[leaf], tree.choosers[leaf])
                leaf_blocks.add(leaf // _BLOCK)
        self._stale.clear()
        _fit(self._leaf_blocks, -(-capacity // _BLOCK))
        for b in leaf_blocks:
            self._leaf_blocks[b] = b"".join(leaves[b * _BLOCK : (b + 1) * _BLOCK])
        order = _parents_bottom_up(capacity)
        _fit(self._parent_blocks, -(-len(order) // _BLOCK))
        for b in parent_blocks:
            keys = map(own.__getitem__, order[b * _BLOCK : (b + 1) * _BLOCK])
            self._parent_blocks[b] = b"".join([key for key in keys if key is not None])
        return (_header(capacity, group_ids), *self._leaf_blocks, *self._parent_blocks)


def _fit(blocks: list[bytes], count: int) -> None:
    """Give ``blocks`` exactly ``count`` entries (a new block holds only stale nodes)."""
    del blocks[count:]
    blocks.extend([b""] * (count - len(blocks)))


class _Checks:
    """Per-tree uniqueness of node keys, identity keys and init keys while decoding."""

    def __init__(self) -> None:
        self.keys: set[bytes] = set()
        self.identities: set[bytes] = set()
        self.init_keys: set[bytes] = set()

    def key(self, key: bytes, x: int) -> bytes:
        check_x25519_public(key, f"node {x} key")
        if key in self.keys:
            raise DuplicateKeyError(f"node {x} repeats a public key used elsewhere in the tree")
        self.keys.add(key)
        return key

    def member(self, suite: CipherSuite, member: JoinRequest, leaf: int) -> JoinRequest:
        if member.cipher_suite != suite.id:
            raise InvalidValueError(f"leaf {leaf} uses another cipher suite")
        if member.identity_key in self.identities:
            raise DuplicateKeyError("public tree lists the same identity key twice")
        if member.init_key in self.init_keys:
            raise DuplicateKeyError("public tree lists the same init key twice")
        self.identities.add(member.identity_key)
        self.init_keys.add(member.init_key)
        return member


def _capacity(value: int) -> int:
    if value < 1 or value & (value - 1) or value > MAX_CAPACITY:
        raise InvalidValueError(f"public tree capacity {value} is not a power of two ≤ {MAX_CAPACITY}")
    return value


def decode_public_tree(suite: CipherSuite, data: bytes) -> PublicTree:
    """Parse either encoding and check what the layout can: keys valid and unique, identities and
    init keys unique, every request well formed and in our suite, the keyed-iff-both rule."""
    if data[:1] == bytes((FORMAT,)):
        return _decode_compact(suite, data)
    return _decode_legacy(suite, data)


def _decode_compact(suite: CipherSuite, data: bytes, *, fast: bool = True) -> PublicTree:
    """The compact encoding: by :func:`_decode_body_fast` when it takes the tree (``fast``), else
    field by field, with every check's own error."""
    r = Reader(data, "public tree")
    r.u8("format")
    log2 = r.u8("log2 capacity")
    if log2 > MAX_CAPACITY.bit_length() - 1:
        raise InvalidValueError(f"public tree capacity 2^{log2} is more than {MAX_CAPACITY}")
    capacity = 1 << log2
    group_id = r.opaque("group_id", 255)
    quick = _decode_body_fast(suite, data, r.position, capacity, group_id) if fast else None
    if quick is not None:
        return quick
    tree = PublicTree(capacity, [None] * tm.node_width(capacity), [None] * capacity, [None] * capacity)
    checks = _Checks()
    for leaf in range(capacity):
        kind = r.u8(f"leaf {leaf} kind")
        if kind == _BLANK:
            continue
        if kind > _TAINTED_MEMBER:
            raise InvalidValueError(f"leaf {leaf} has unknown kind {kind}")
        tree.own[2 * leaf] = checks.key(r.fixed(32, f"leaf {leaf} key"), 2 * leaf)
        if kind != _VACANT:
            identity = r.fixed(32, f"leaf {leaf} identity key")
            name = r.opaque(f"leaf {leaf} display name", 255)
            init_key = r.fixed(32, f"leaf {leaf} init key")
            not_after = r.u64(f"leaf {leaf} not_after")
            signature = r.fixed(_SIG_LEN, f"leaf {leaf} signature")
            tbs = JoinRequest.tbs(suite.id, group_id, identity, name, init_key, not_after)
            member = JoinRequest.decode(tbs + Writer().opaque(signature).bytes())
            tree.members[leaf] = checks.member(suite, member, leaf)
        if kind != _MEMBER:
            tree.choosers[leaf] = r.u16(f"leaf {leaf} chooser")
    if group_id and all(m is None for m in tree.members):
        raise InvalidValueError("public tree names a group id but holds no member")
    eff = list(tree.own)
    for x, left, right in tm.parents_bottom_up(capacity):
        if eff[left] is not None and eff[right] is not None:
            tree.own[x] = checks.key(r.fixed(32, f"node {x} key"), x)
        eff[x] = tree.own[x] or eff[left] or eff[right]
    r.end()
    return tree


def _decode_body_fast(
    suite: CipherSuite, data: bytes, pos: int, capacity: int, group_id: bytes
) -> PublicTree | None:
    """The leaves and parents of a compact encoding, by slicing, for the common case: every name
    ASCII text of at most 63 bytes (a one-byte length) and every check passing.

    Returns ``None`` at the first thing it does not take (anything malformed, repeated or unusual),
    and :func:`_decode_compact` then decodes the whole tree again field by field, which raises the
    precise error or accepts it: this path accepts only what that one accepts, with equal results
    (``tests/core/test_tree_decoding.py``). A joiner decodes the whole tree before it reads.
    """
    end = len(data)
    own: list[bytes | None] = [None] * tm.node_width(capacity)
    members: list[JoinRequest | None] = [None] * capacity
    choosers: list[int | None] = [None] * capacity
    keys: set[bytes] = set()
    identities: set[bytes] = set()
    init_keys: set[bytes] = set()
    head = JoinRequest.tbs_head(suite.id, group_id)
    for leaf in range(capacity):
        if pos >= end:
            return None
        kind = data[pos]
        if kind == _BLANK:
            pos += 1
            continue
        key = data[pos + 1 : pos + 33]
        if kind > _TAINTED_MEMBER or len(key) != 32 or key in keys or not is_x25519_public(key):
            return None
        keys.add(key)
        own[2 * leaf] = key
        pos += 33
        if kind != _VACANT:
            length = data[pos + 32] if pos + 32 < end else 0
            if not group_id or not 0 < length < 0x40:  # a one-byte V(display_name) of 1..63 bytes
                return None
            at = pos + 33 + length  # just past the name
            identity, name_field = data[pos : pos + 32], data[pos + 32 : at]  # V(name): length || name
            init_key, not_after = data[at : at + 32], data[at + 32 : at + 40]
            signature = data[at + 40 : at + 104]
            if len(signature) != _SIG_LEN:  # so every field before it was whole too
                return None
            pos = at + 104
            raw_name = name_field[1:]
            if not raw_name.isascii():
                return None
            name = raw_name.decode("ascii")
            # ASCII that is printable and not all spaces is a valid display name, already NFC.
            if not name.isprintable() or not name.strip() or not is_x25519_public(init_key):
                return None
            if identity in identities or init_key in init_keys:
                return None
            identities.add(identity)
            init_keys.add(init_key)
            # The request's exact bytes: its TBS (version, suite, V(group_id), V(identity_key),
            # V(display_name), V(init_key), uint64 not_after), then V(signature) (0x4040: 64).
            tbs = (head, b"\x20", identity, name_field, b"\x20", init_key, not_after)
            encoded = b"".join((*tbs, b"\x40\x40", signature))
            members[leaf] = JoinRequest(
                suite.id, group_id, identity, name, init_key, int.from_bytes(not_after), signature, encoded
            )
        if kind != _MEMBER:
            chooser = data[pos : pos + 2]
            if len(chooser) != 2:
                return None
            choosers[leaf] = int.from_bytes(chooser)
            pos += 2
    if group_id and not identities:
        return None
    eff = list(own)
    for x, left, right in tm.parents_bottom_up(capacity):
        below_left, below_right = eff[left], eff[right]
        if below_left is not None and below_right is not None:
            key = data[pos : pos + 32]
            if len(key) != 32 or key in keys or not is_x25519_public(key):
                return None
            keys.add(key)
            own[x] = eff[x] = key
            pos += 32
        else:
            eff[x] = below_left or below_right
    if pos != end:
        return None
    return PublicTree(capacity, own, members, choosers)


def _decode_legacy(suite: CipherSuite, data: bytes) -> PublicTree:
    """The encoding before issue 16: ``uint32 capacity || nodes`` in array order; parents:
    ``optional<key[32]>``; leaves: ``uint8 kind`` then blank: nothing; vacant: ``key[32] ||
    uint32 chooser``; member: ``key[32] || V(join_request) || optional<uint32 chooser>``."""
    r = Reader(data, "public tree")
    capacity = _capacity(r.u32("capacity"))
    tree = PublicTree(capacity, [None] * tm.node_width(capacity), [None] * capacity, [None] * capacity)
    checks = _Checks()
    for x in range(tm.node_width(capacity)):
        if x & 1:
            flag = r.u8(f"node {x} presence")
            if flag > 1:
                raise InvalidValueError(f"node {x} presence flag is {flag}, not 0 or 1")
            if flag:
                tree.own[x] = checks.key(r.fixed(32, f"node {x} key"), x)
            continue
        leaf = x // 2
        kind = r.u8(f"leaf {leaf} kind")
        if kind == _LEGACY_BLANK:
            continue
        if kind not in (_LEGACY_VACANT, _LEGACY_MEMBER):
            raise InvalidValueError(f"leaf {leaf} has unknown kind {kind}")
        tree.own[x] = checks.key(r.fixed(32, f"leaf {leaf} key"), x)
        if kind == _LEGACY_VACANT:
            tree.choosers[leaf] = r.u32(f"leaf {leaf} chooser")
        else:
            body = r.opaque(f"leaf {leaf} join request", _MAX_JOIN_REQUEST)
            tree.members[leaf] = checks.member(suite, JoinRequest.decode(body), leaf)
            tree.choosers[leaf] = r.optional(f"leaf {leaf} chooser", lambda rr: rr.u32("chooser"))
    r.end()
    eff = _effective(tree.own, capacity)
    for x, left, right in tm.parents_bottom_up(capacity):
        both = eff[left] is not None and eff[right] is not None
        if both != (tree.own[x] is not None):
            state = "unkeyed" if both else "keyed"
            raise InvalidValueError(f"node {x} is {state} against the tree rules")
    return tree
