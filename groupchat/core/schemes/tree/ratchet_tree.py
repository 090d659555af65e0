"""The TGDH/ART key tree over X25519 on an RFC 9420 left-balanced array tree.

Theory of operation
-------------------
Leaf ``i`` sits at node ``2i`` and the leaf count is always a power of two. Every node is in
one of three states:

* **keyed**: it owns an X25519 key pair. A leaf is keyed once it has ever held a member
  (a removed member's slot stays keyed with a secret its remover chose, see "Taint" below). A
  parent is keyed iff *both* of its children have an effective key.
* **pass-through**: a parent with exactly one child that has an effective key. Its effective key
  *is* that child's key; it owns none. This only happens next to never-used (blank) leaves.
* **blank**: no effective key at all (a subtree of never-used leaves).

The secret of a keyed parent ``P`` with children ``L``, ``R`` is (both sides compute it)::

    dh        = X25519(sk_of_my_child, pk_of_other_child)
    secret(P) = ExpandWithLabel(Extract(0, dh), "tgdh node", V(pk_L) || V(pk_R), 32)
    sk(P)     = secret(P) used as the X25519 scalar; pk(P) = X25519 base-mult of it

The raw DH output never leaves this derivation, and binding both public keys into the label
context ties each node secret to its exact position and inputs.
``commit_secret = DeriveSecret(secret(root), "tgdh commit")`` feeds the RFC 9420 key schedule.

Every change is one uniform operation: *give leaf i a fresh secret and recompute i's path*.
Whoever knows that secret computes the path from the public keys of i's copath; the commit
carries the new public keys of the keyed nodes on it. A member ``r`` learns the new root by
one DH at the lowest node where the changed paths meet its own, and climbs from there,
recomputing and checking each public key the committer sent (an inconsistent path is rejected).

Taint
-----
Anyone who knows *any* current leaf secret computes the root. So every leaf records, publicly,
who chose its current secret: ``chooser(leaf)`` is ``None`` when the leaf's own member chose it
(its Update, or the group's creator), and otherwise the leaf index of the member who did (the
adder of a joiner, the remover of a vacated slot, the committer of a re-key). The chooser is in
the leaf hash and in the encoded tree, so members who disagree about it cannot share an epoch.
The rules that use it live in :mod:`.taint`; the derivations (node secrets, commit_secret, the
tree hash) in :mod:`.derivation`.

Public state is journaled: a draft of a commit is applied in place and rolled back on any
error, so a rejected commit leaves the tree byte-for-byte as it was.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ... import tree_math as tm
from ...errors import (
    DuplicateKeyError,
    InconsistentPathError,
    InvalidCommitError,
    InvalidValueError,
    UsageError,
)
from ...identity import JoinRequest
from ...suite import CipherSuite, check_x25519_public, is_x25519_public
from ...tree_math import lowest_common_ancestor
from .derivation import BlankHashes, commit_secret_of, hash_leaf, hash_parent, node_secret
from .tree_codec import MAX_CAPACITY, PublicTree, TreeRecords, decode_public_tree

__all__ = ["MAX_CAPACITY", "PathSecrets", "RatchetTree", "TreeChanges", "lowest_common_ancestor"]


@dataclass(slots=True)
class PathSecrets:
    """A member's private view: its leaf and the secrets of the keyed nodes on its direct path."""

    leaf: int
    secrets: dict[int, bytes] = field(default_factory=dict)
    # The X25519 key objects of some of those secrets, as node -> (secret, key), used only while
    # the node still holds that secret: the next climb starts from one of them, and loading a
    # private key costs a scalar multiplication (pyca computes its public key). Dropped with the
    # secrets: a new PathSecrets starts empty.
    keys: dict[int, tuple[bytes, X25519PrivateKey]] = field(default_factory=dict, compare=False)

    def __repr__(self) -> str:  # never print secrets
        return f"PathSecrets(leaf={self.leaf}, nodes={sorted(self.secrets)})"

    def key(self, node: int, secret: bytes) -> X25519PrivateKey:
        """The key object of ``secret``, the secret ``node`` holds: cached, or loaded."""
        hit = self.keys.get(node)
        if hit is not None and hit[0] == secret:
            return hit[1]
        return X25519PrivateKey.from_private_bytes(secret)


@dataclass(frozen=True, slots=True)
class TreeChanges:
    """Final values of every slot a draft touched: enough to replay a built commit later."""

    capacity: int
    keys: dict[int, bytes | None]
    members: dict[int, JoinRequest | None]
    choosers: dict[int, int | None]


class RatchetTree:
    """Public TGDH tree: per-node keys, members at leaves, incremental Merkle tree hash."""

    def __init__(self, suite: CipherSuite, capacity: int = 1) -> None:
        if capacity < 1 or capacity & (capacity - 1) or capacity > MAX_CAPACITY:
            raise InvalidValueError(f"tree capacity {capacity} is not a power of two ≤ {MAX_CAPACITY}")
        self.suite = suite
        self._capacity = capacity
        width = tm.node_width(capacity)
        self._own: list[bytes | None] = [None] * width  # key owned by the node
        self._eff: list[bytes | None] = [None] * width  # effective key (own or passed through)
        self._members: list[JoinRequest | None] = [None] * capacity
        self._chooser: list[int | None] = [None] * capacity  # who chose each leaf's secret
        self._tainted: dict[int, set[int]] = {}  # chooser -> leaves it tainted (index of _chooser)
        self._owner: dict[bytes, int] = {}  # owned public key -> node, for duplicate checks
        self._identities: dict[bytes, int] = {}  # member identity key -> leaf
        self._init_keys: dict[bytes, int] = {}  # member join-request init key -> leaf
        self._verified: set[int] = set()  # leaves whose join request signature we checked
        self._group_ids: dict[bytes, int] = {}  # group id of members' join requests -> how many
        # The encoded tree's pieces, each encoded again only once a write marks its node stale.
        self._records = TreeRecords(capacity)
        self._blank = BlankHashes(suite)
        self._hash: list[bytes] = list(map(self._blank.at, tm.levels(capacity)))
        self._journal: list[tuple[int, int, object]] | None = None
        # Stale hashes, hashed at the next read of the tree hash: once per shared ancestor of k paths.
        self._dirty: set[int] = set()

    # --- basic accessors -----------------------------------------------------------------

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def root(self) -> int:
        return tm.root(self._capacity)

    @property
    def tree_hash(self) -> bytes:
        self._flush_hashes()
        return self._hash[self.root]

    def member(self, leaf: int) -> JoinRequest | None:
        return self._members[leaf] if 0 <= leaf < self._capacity else None

    def members(self) -> Iterator[tuple[int, JoinRequest]]:
        return ((i, m) for i, m in enumerate(self._members) if m is not None)

    @property
    def member_count(self) -> int:
        return self._capacity - self._members.count(None)

    def leaf_key(self, leaf: int) -> bytes | None:
        return self._own[2 * leaf]

    def own_key(self, node: int) -> bytes | None:
        return self._own[node]

    def own_keys(self) -> tuple[bytes | None, ...]:
        """:meth:`own_key` of every node, in array order (the same key objects, in a new tuple)."""
        return tuple(self._own)

    def effective_key(self, node: int) -> bytes | None:
        return self._eff[node]

    def tainted_by(self, leaf: int) -> int | None:
        """Leaf index of the member who chose ``leaf``'s current secret; ``None`` if its owner did."""
        return self._chooser[leaf] if 0 <= leaf < self._capacity else None

    def tainted_leaves(self, chooser: int) -> frozenset[int]:
        """Every leaf whose current secret ``chooser`` chose (not counting its own leaf)."""
        return frozenset(self._tainted.get(chooser, ()))

    def taint_record(self) -> dict[int, int]:
        """The whole public record ``{tainted leaf: chooser}`` (for tests and diagnostics)."""
        return {leaf: c for leaf, c in enumerate(self._chooser) if c is not None}

    def is_verified(self, leaf: int) -> bool:
        return leaf in self._verified

    def mark_verified(self, leaf: int) -> None:
        self._verified.add(leaf)

    def find_member(self, request: JoinRequest) -> int | None:
        """Leaf holding exactly this join request."""
        leaf = self._identities.get(request.identity_key)
        if leaf is None or self._members[leaf] != request:
            return None
        return leaf

    def leaf_of_identity(self, identity_key: bytes) -> int | None:
        return self._identities.get(identity_key)

    def has_init_key(self, init_key: bytes) -> bool:
        return init_key in self._init_keys

    def leftmost_free_leaf(self) -> int:
        """Where the next Add goes: the leftmost leaf without a member, or the first leaf of a
        doubled tree. Deterministic, so every member checks the committer's choice."""
        try:
            return self._members.index(None)
        except ValueError:
            return self._capacity

    # --- journaled writes ----------------------------------------------------------------

    _OWN, _EFF, _HASH, _MEMBERS, _CAP, _OWNER, _CHOOSER, _VERIFIED = range(8)

    def begin(self) -> None:
        """Start a draft; every write until :meth:`end`/:meth:`rollback` can be undone."""
        if self._journal is not None:
            raise UsageError("a tree draft is already open")
        self._flush_hashes()  # a rollback then only has to forget the draft's own stale marks
        self._journal = []

    def end(self) -> None:
        self._journal = None

    def rollback(self) -> None:
        journal, self._journal = self._journal, None
        if journal is None:
            return
        # Stale hashes were never written; the journal restores every hash that was.
        self._dirty.clear()
        for kind, idx, old in reversed(journal):
            if kind == self._CAP:
                self._shrink_to(idx)
            elif kind == self._OWNER:
                key = old if isinstance(old, bytes) else None
                # idx >= 0: key was added (remove it); idx == -1 - node: key was removed.
                if idx >= 0 and key is not None:
                    del self._owner[key]
                elif key is not None:
                    self._owner[key] = -1 - idx
            elif kind == self._MEMBERS:
                assert old is None or isinstance(old, JoinRequest)
                self._index_member(idx, self._members[idx], False)
                self._members[idx] = old
                self._index_member(idx, old, True)
                self._records.stale(2 * idx)
            elif kind == self._HASH:
                assert isinstance(old, bytes)
                self._hash[idx] = old
            elif kind == self._CHOOSER:
                assert old is None or isinstance(old, int)
                self._index_chooser(idx, old)
            elif kind == self._VERIFIED:  # the leaf's (restored) member was verified
                self._verified.add(idx)
            else:
                assert old is None or isinstance(old, bytes)
                (self._own if kind == self._OWN else self._eff)[idx] = old
                if kind == self._OWN:
                    self._records.stale(idx)

    def _log(self, kind: int, idx: int, old: object) -> None:
        if self._journal is not None:
            self._journal.append((kind, idx, old))

    def _set_own(self, node: int, key: bytes | None) -> None:
        # The journal entries of _log, appended inline: this runs once per node of every path.
        old = self._own[node]
        if old == key:
            return
        journal, owner = self._journal, self._owner
        if journal is not None:
            journal.append((self._OWN, node, old))
        self._own[node] = key
        self._records.stale(node)
        if old is not None:
            del owner[old]
            if journal is not None:
                journal.append((self._OWNER, -1 - node, old))
        if key is not None:
            if key in owner:
                raise DuplicateKeyError(f"public key for node {node} is already used at node {owner[key]}")
            owner[key] = node
            if journal is not None:
                journal.append((self._OWNER, node, key))

    def _index_member(self, leaf: int, member: JoinRequest | None, add: bool) -> None:
        if member is None:
            return
        gid = member.group_id
        if add:
            self._identities[member.identity_key] = leaf
            self._init_keys[member.init_key] = leaf
            self._group_ids[gid] = self._group_ids.get(gid, 0) + 1
        else:
            self._identities.pop(member.identity_key, None)
            self._init_keys.pop(member.init_key, None)
            left = self._group_ids.pop(gid) - 1
            if left:
                self._group_ids[gid] = left

    def _set_member(self, leaf: int, member: JoinRequest | None) -> None:
        old = self._members[leaf]
        if old is member:
            return
        if member is not None:
            other = self._identities.get(member.identity_key, leaf)
            if other != leaf:
                raise DuplicateKeyError(f"identity key of leaf {leaf} is already the member at leaf {other}")
            other = self._init_keys.get(member.init_key, leaf)
            if other != leaf:
                raise DuplicateKeyError(f"init key of leaf {leaf} is already used by leaf {other}")
        self._log(self._MEMBERS, leaf, old)
        self._records.stale(2 * leaf)
        self._index_member(leaf, old, False)
        self._members[leaf] = member
        self._index_member(leaf, member, True)
        if leaf in self._verified:
            self._log(self._VERIFIED, leaf, None)
            self._verified.discard(leaf)

    def _index_chooser(self, leaf: int, chooser: int | None) -> None:
        """Set ``leaf``'s chooser and keep the chooser -> leaves index in step (no journaling)."""
        old = self._chooser[leaf]
        if old is not None:
            leaves = self._tainted[old]
            leaves.discard(leaf)
            if not leaves:
                del self._tainted[old]
        self._chooser[leaf] = chooser
        self._records.stale(2 * leaf)
        if chooser is not None:
            self._tainted.setdefault(chooser, set()).add(leaf)

    def _set_chooser(self, leaf: int, chooser: int | None) -> None:
        if chooser == leaf:
            raise UsageError(f"leaf {leaf} cannot taint itself: a secret its owner chose is untainted")
        old = self._chooser[leaf]
        if old == chooser:
            return
        self._log(self._CHOOSER, leaf, old)
        self._index_chooser(leaf, chooser)

    def _refresh(self, node: int) -> None:
        """Recompute the effective key of ``node`` from its own key and children; mark its hash stale."""
        eff = self._eff
        self._log(self._EFF, node, eff[node])
        self._dirty.add(node)
        if not node & 1:  # a leaf
            eff[node] = self._own[node]
            return
        # The children of a parent at level k are node -+ 2^(k-1) (tree_math.left, right).
        half = 1 << ((node ^ (node + 1)).bit_length() - 2)
        eff[node] = self._own[node] or eff[node - half] or eff[node + half]

    def _flush_hashes(self) -> None:
        """Rehash every stale node once, children before parents (every ancestor of a stale node
        is stale too: the writers refresh whole direct paths)."""
        dirty = self._dirty
        if not dirty:
            return
        levels, journal, suite = tm.levels(self._capacity), self._journal, self.suite
        hashes, own = self._hash, self._own
        whole = len(dirty) == len(hashes)  # a decoded tree: every node, in the order kept
        for node in tm.bottom_up(self._capacity) if whole else sorted(dirty, key=levels.__getitem__):
            if journal is not None:
                journal.append((self._HASH, node, hashes[node]))
            if not node & 1:  # a leaf
                leaf = node // 2
                hashes[node] = hash_leaf(suite, own[node], self._members[leaf], self._chooser[leaf])
            else:
                half = 1 << (levels[node] - 1)
                hashes[node] = hash_parent(suite, own[node], hashes[node - half], hashes[node + half])
        dirty.clear()

    def grow(self) -> None:
        """Double the capacity; the old tree becomes the left subtree of a new root."""
        if self._capacity >= MAX_CAPACITY:
            raise InvalidCommitError(f"group is full ({MAX_CAPACITY} leaves)")
        old_cap = self._capacity
        new_cap = old_cap * 2
        new_width = tm.node_width(new_cap)
        old_width = len(self._own)
        self._log(self._CAP, old_cap, None)
        extra = new_width - old_width
        self._own.extend([None] * extra)
        self._eff.extend([None] * extra)
        self._hash.extend(self._blank.at(tm.level(x)) for x in range(old_width, new_width))
        self._members.extend([None] * (new_cap - old_cap))
        self._chooser.extend([None] * (new_cap - old_cap))
        self._capacity = new_cap
        self._records.resize(new_cap)
        self._refresh(tm.root(new_cap))

    def _shrink_to(self, capacity: int) -> None:
        width = tm.node_width(capacity)
        # Leaves beyond the old capacity were blank before the grow, so they taint nothing and
        # the rollback already restored their chooser to None.
        del self._own[width:], self._eff[width:], self._hash[width:], self._members[capacity:]
        del self._chooser[capacity:]
        self._capacity = capacity
        self._records.resize(capacity)

    def changes(self) -> TreeChanges:
        """Final values of every slot the open draft touched (call before rollback)."""
        if self._journal is None:
            raise UsageError("no tree draft is open")
        keys: dict[int, bytes | None] = {}
        members: dict[int, JoinRequest | None] = {}
        choosers: dict[int, int | None] = {}
        for kind, idx, _ in self._journal:
            if kind == self._OWN:
                keys[idx] = self._own[idx]
            elif kind == self._MEMBERS:
                members[idx] = self._members[idx]
            elif kind == self._CHOOSER:
                choosers[idx] = self._chooser[idx]
        return TreeChanges(self._capacity, keys, members, choosers)

    def apply(self, changes: TreeChanges) -> None:
        """Replay a :class:`TreeChanges` captured from a draft of this very tree state."""
        while self._capacity < changes.capacity:
            self.grow()
        for leaf, member in changes.members.items():
            self._set_member(leaf, member)
        for leaf, chooser in changes.choosers.items():
            self._set_chooser(leaf, chooser)
        for node, key in changes.keys.items():
            self._set_own(node, key)
        touched = {n for n in changes.keys} | {2 * leaf for leaf in [*changes.members, *changes.choosers]}
        dirty: set[int] = set()
        root = self.root
        for node in touched:  # each touched node and its direct path (a marked node's is marked)
            while node not in dirty:
                dirty.add(node)
                if node == root:
                    break
                node = tm.parent(node, self._capacity)
        for node in sorted(dirty, key=tm.level):
            self._refresh(node)
        # The new epoch's tree hash, now: one pass over the paths replayed together, paid by the
        # echo that enters the epoch rather than by whatever next reads the hash.
        self._flush_hashes()

    # --- the path operation ----------------------------------------------------------------

    def set_leaf(self, leaf: int, key: bytes, member: JoinRequest | None, chooser: int | None) -> None:
        """Place a leaf key (and member, or ``None`` for a vacated slot) without touching parents.

        ``chooser`` is the leaf index of whoever chose the secret, or ``None`` when it is the
        leaf's own member (see "Taint" in the module docstring).
        """
        while leaf >= self._capacity:
            self.grow()
        self._set_member(leaf, member)
        self._set_chooser(leaf, chooser)
        self._set_own(2 * leaf, key)
        self._refresh(2 * leaf)

    def build_path(
        self,
        leaf: int,
        leaf_secret: bytes,
        member: JoinRequest | None,
        capture: PathSecrets | None,
        chooser: int | None = None,
    ) -> tuple[list[bytes], bytes]:
        """Give ``leaf`` the fresh ``leaf_secret`` and recompute its path (committer side).

        Returns the public keys of the keyed nodes on the path (leaf first) and the effective
        root secret. Secrets of nodes on ``capture``'s direct path are written into ``capture``,
        so a committer learns its own new path without a second pass; all other secrets stay
        local to this call and are dropped when it returns (forward secrecy, RFC 9420 §9.2).
        """
        while leaf >= self._capacity:
            self.grow()
        wanted: set[int] = set()
        if capture is not None:
            wanted = {2 * capture.leaf, *tm.leaf_path(capture.leaf, self._capacity)}
        sk = X25519PrivateKey.from_private_bytes(leaf_secret)
        pub = sk.public_key().public_bytes_raw()
        self.set_leaf(leaf, pub, member, chooser)
        secret = leaf_secret
        if capture is not None and 2 * leaf in wanted:
            capture.secrets[2 * leaf] = secret
            capture.keys[2 * leaf] = (secret, sk)
        pubs = [pub]
        x = 2 * leaf
        eff = self._eff
        for p in tm.leaf_path(leaf, self._capacity):
            other = eff[2 * p - x]  # x's sibling
            if other is None:  # pass-through: P's effective key is this child's key
                self._set_own(p, None)
            else:
                lft, rgt = (pub, other) if x < p else (other, pub)
                secret = node_secret(self.suite, sk, other, lft, rgt)
                sk = X25519PrivateKey.from_private_bytes(secret)
                pub = sk.public_key().public_bytes_raw()
                self._set_own(p, pub)
                pubs.append(pub)
                if p in wanted:
                    assert capture is not None
                    capture.secrets[p] = secret
                    capture.keys[p] = (secret, sk)
            self._refresh(p)
            x = p
        return pubs, secret

    def write_path(
        self, leaf: int, pubs: list[bytes], member: JoinRequest | None, chooser: int | None
    ) -> None:
        """Install a received path for ``leaf`` (receiver side), checking its shape and keys."""
        while leaf >= self._capacity:
            self.grow()
        # A node on the path is keyed iff its child off the path (2p - c) has an effective key.
        # (A receiver of a commit with k re-keys runs this k + 1 times: the per-path bookkeeping.)
        x = 2 * leaf
        eff = self._eff
        path = tm.leaf_path(leaf, self._capacity)
        keyed = [eff[2 * p - child] is not None for p, child in zip(path, (x, *path[:-1]), strict=True)]
        need = 1 + sum(keyed)
        if len(pubs) != need:
            raise InvalidCommitError(f"path for leaf {leaf} has {len(pubs)} keys, the tree needs {need}")
        for i, key in enumerate(pubs):
            if not is_x25519_public(key):
                check_x25519_public(key, f"path key {i} for leaf {leaf}")  # raises, naming the fault
        if len(set(pubs)) != len(pubs):
            raise DuplicateKeyError(f"path for leaf {leaf} repeats a public key")
        self.set_leaf(leaf, pubs[0], member, chooser)
        # Each parent's _set_own, then its _refresh inlined: its children are the path node below
        # it and that node's sibling (2p - child), whose effective keys were read above.
        own, dirty, it = self._own, self._dirty, iter(pubs[1:])
        child = x
        for p, has_key in zip(path, keyed, strict=True):
            self._set_own(p, next(it) if has_key else None)
            journal = self._journal
            if journal is not None:
                journal.append((self._EFF, p, eff[p]))
            dirty.add(p)
            eff[p] = own[p] or eff[min(child, 2 * p - child)] or eff[max(child, 2 * p - child)]
            child = p

    # --- the private side ------------------------------------------------------------------

    def root_secret(self, me: PathSecrets) -> bytes:
        """Effective secret of the root, walking up through pass-through nodes."""
        secret = me.secrets[2 * me.leaf]
        for p in tm.leaf_path(me.leaf, self._capacity):
            if self._own[p] is not None:
                secret = me.secrets[p]
        return secret

    def commit_secret(self, me: PathSecrets) -> bytes:
        return commit_secret_of(self.suite, self.root_secret(me))

    def refresh_secrets(self, me: PathSecrets, lowest_changed: int) -> PathSecrets:
        """Recompute ``me``'s secrets from ``lowest_changed`` (a node on its path) to the root.

        One X25519 per keyed level; each derived public key must equal the one in the tree,
        which is what the committer sent: a mismatch means an inconsistent path.
        """
        out = PathSecrets(me.leaf, dict(me.secrets))
        x = 2 * me.leaf
        secret, held = out.secrets[x], x  # the secret we climb from, and the node holding it
        sk: X25519PrivateKey | None = None  # key object for `secret`, reused across levels
        fresh: dict[int, tuple[bytes, X25519PrivateKey]] = {}
        reached = x == lowest_changed
        owns, eff = self._own, self._eff
        for p in tm.leaf_path(me.leaf, self._capacity):
            reached = reached or p == lowest_changed
            own = owns[p]
            if not reached:
                if own is not None:
                    secret, held = out.secrets[p], p
                    sk = None
                x = p
                continue
            other = eff[2 * p - x]  # the sibling of x: p's children are p -/+ 2^(level - 1)
            if other is None:
                out.secrets.pop(p, None)
            else:
                mine = eff[x]
                assert mine is not None
                lft, rgt = (mine, other) if x < p else (other, mine)
                if sk is None:
                    sk = me.key(held, secret)
                    fresh[held] = (secret, sk)  # kept: the next climb may start here again
                secret = node_secret(self.suite, sk, other, lft, rgt)
                sk = X25519PrivateKey.from_private_bytes(secret)
                if sk.public_key().public_bytes_raw() != own:
                    raise InconsistentPathError(
                        f"public key of node {p} does not match the secret we derive for it"
                    )
                out.secrets[p] = secret
                fresh[p] = (secret, sk)
            x = p
        out.keys = {
            node: hit for node, hit in {**me.keys, **fresh}.items() if out.secrets.get(node) == hit[0]
        }
        return out

    # --- serialisation for welcomes and stored states (layout: .tree_codec) -----------------

    def encode(self) -> bytes:
        """The compact public tree (:func:`~.tree_codec.encode_public_tree`, docs/protocol.md §4.3)."""
        return b"".join(self.encode_parts())

    def encode_parts(self) -> tuple[bytes, ...]:
        """:meth:`encode` in pieces, from the records kept since the last encoding (only the
        changed nodes encoded again): a Welcome copies them once, beside its GroupInfo."""
        public = PublicTree(self._capacity, self._own, self._members, self._chooser)
        return self._records.encode(public, self._group_ids.keys())

    @classmethod
    def decode(cls, suite: CipherSuite, data: bytes) -> RatchetTree:
        """Parse a public tree and check its structure; O(n) hashing, no signature checks."""
        public = decode_public_tree(suite, data)
        capacity, members = public.capacity, public.members
        tree = cls(suite, capacity)
        # The taint invariant: only current members choose secrets for others' leaves (a
        # removed member's taints are all re-keyed in the commit that removes it).
        tree._chooser = choosers = list(public.choosers)
        for leaf, chooser in enumerate(choosers):
            if chooser is None:
                continue
            if chooser == leaf or chooser >= capacity or members[chooser] is None:
                raise InvalidValueError(
                    f"public tree says leaf {leaf} is tainted by leaf {chooser}, which is not another member"
                )
            tree._tainted.setdefault(chooser, set()).add(leaf)
        # A fresh tree takes the decoded lists whole (the codec checked the keys unique).
        present = [(leaf, m) for leaf, m in enumerate(members) if m is not None]
        tree._members = list(members)
        tree._identities = {m.identity_key: leaf for leaf, m in present}
        tree._init_keys = {m.init_key: leaf for leaf, m in present}
        tree._group_ids = dict(collections.Counter(m.group_id for _, m in present))
        tree._own = own = list(public.own)
        tree._owner = {key: x for x, key in enumerate(own) if key is not None}
        # Effective keys bottom-up (the codec checked the keyed-iff-both rule); every hash is stale.
        eff = tree._eff
        eff[0::2] = own[0::2]
        for x, left, right in tm.parents_bottom_up(capacity):
            eff[x] = own[x] or eff[left] or eff[right]
        tree._dirty = set(range(len(own)))
        return tree
