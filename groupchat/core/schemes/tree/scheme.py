"""The tree scheme: ``commit_secret`` from the TGDH/ART tree, with the taint rules.

Everything here is the tree's: the roster lives in the leaves of a :class:`RatchetTree`, an Add,
Remove, Re-key or Update gives one leaf a fresh secret and rebuilds its path, and the taint
rules (:mod:`.taint`) decide which leaves a commit must re-key. The committer pays one path per
changed leaf; a receiver climbs once from the lowest changed node on its own path, O(log n)
X25519 whatever the number of operations (see :mod:`.ratchet_tree`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

from ... import tree_math as tm
from ...codec import Reader, Writer
from ...commit import REKEY_LABEL, Operation, OpType, SealedSecret, rekey_context
from ...errors import (
    DecryptionError,
    GroupChatError,
    InconsistentPathError,
    InvalidCommitError,
    InvalidValueError,
    InvalidWelcomeError,
    TaintRuleError,
    UnknownMemberError,
    UsageError,
    WrongSchemeError,
)
from ...identity import Identity, JoinRequest
from ...suite import CipherSuite
from ..base import EpochInput, KeyAgreementScheme, OwnChange, StagedChange
from . import taint
from .ratchet_tree import MAX_CAPACITY, PathSecrets, RatchetTree, TreeChanges, lowest_common_ancestor
from .tree_codec import FORMAT

# OpType's members as module constants, compared on every received commit: reading an Enum
# member through its class costs 0.05-0.1 µs in Python 3.11 (EnumType's attribute hooks), a
# module constant a few ns (issue 16).
_ADD: Final = OpType.ADD
_REKEY: Final = OpType.REKEY
_REMOVE: Final = OpType.REMOVE
_UPDATE: Final = OpType.UPDATE

# The largest stored public tree: every leaf a member with a join request of at most 4 KiB.
_MAX_STORED_TREE = MAX_CAPACITY * (4096 + 96) + 2 * MAX_CAPACITY * 33

__all__ = ["TreeScheme"]


@dataclass(frozen=True, slots=True)
class _OwnTreeChange:
    changes: TreeChanges
    path: PathSecrets
    added: tuple[int, ...]
    updated: bool


@dataclass(frozen=True, slots=True)
class _StagedTreeChange:
    path: PathSecrets
    added: tuple[int, ...]


class TreeScheme(KeyAgreementScheme):
    """One member's ratchet tree, its path secrets and (until its first Update) its init key."""

    name: ClassVar[str] = "tree"

    def __init__(self, tree: RatchetTree, path: PathSecrets, init_private: bytes | None = None) -> None:
        self.suite = tree.suite
        self.tree = tree
        self.path = path
        # A joiner keeps its join request's init key until its own first Update is applied: if
        # its adder is removed first, the remover seals our re-keyed leaf secret to it.
        self._init_private = init_private

    @classmethod
    def create(cls, suite: CipherSuite, request: JoinRequest, rand: Callable[[int], bytes]) -> TreeScheme:
        """A one-leaf tree holding ``request`` at leaf 0, with a fresh leaf secret."""
        tree = RatchetTree(suite, 1)
        path = PathSecrets(0)
        tree.build_path(0, rand(32), request, path)
        tree.mark_verified(0)
        return cls(tree, path)

    @classmethod
    def found(
        cls,
        suite: CipherSuite,
        request: JoinRequest,
        *,
        identity: Identity,
        group_id: bytes,
        rand: Callable[[int], bytes],
        clock: Callable[[], float],
    ) -> tuple[TreeScheme, bytes]:
        tree = cls.create(suite, request, rand)
        return tree, tree.commit_secret

    @classmethod
    def from_public(
        cls,
        suite: CipherSuite,
        public_state: bytes,
        *,
        identity: Identity,
        rand: Callable[[int], bytes],
        clock: Callable[[], float],
    ) -> TreeScheme:
        if public_state[:1] != bytes((FORMAT,)):  # a stored state may be legacy, a welcome never is
            raise InvalidWelcomeError("welcome's tree is not in the compact encoding every welcome uses")
        return cls.decode(suite, public_state)

    @classmethod
    def decode(cls, suite: CipherSuite, public_state: bytes) -> TreeScheme:
        """A joiner's tree from the Welcome, before it knows its own seat (see :meth:`take_seat`)."""
        return cls(RatchetTree.decode(suite, public_state), PathSecrets(0))

    def take_seat(self, request: JoinRequest, adder: int, leaf_secret: bytes, init_private: bytes) -> None:
        """Find our leaf, check its taint and key against the Welcome's secret, derive our path."""
        tree = self.tree
        me = tree.find_member(request)
        if me is None:
            raise InvalidWelcomeError("welcome's tree does not contain our join request")
        if tree.tainted_by(me) != adder:
            # Otherwise the group would not re-key our leaf when our adder leaves.
            raise TaintRuleError(
                f"welcome's tree says our leaf {me} is tainted by {tree.tainted_by(me)}, "
                f"not by the adder who signed it (leaf {adder})"
            )
        tree.mark_verified(me)
        if tree.leaf_key(me) != self.suite.x25519_public(leaf_secret):
            raise InconsistentPathError("our leaf key in the welcome does not match our leaf secret")
        path = PathSecrets(me, {2 * me: leaf_secret})
        if tree.capacity > 1:
            path = tree.refresh_secrets(path, tm.parent(2 * me, tree.capacity))
        self.path = path
        self._init_private = init_private

    # --- the roster ----------------------------------------------------------------------------

    @property
    def my_leaf(self) -> int:
        return self.path.leaf

    @property
    def capacity(self) -> int:
        return self.tree.capacity

    def members(self) -> Iterator[tuple[int, JoinRequest]]:
        return self.tree.members()

    def member(self, leaf: int) -> JoinRequest | None:
        return self.tree.member(leaf)

    @property
    def member_count(self) -> int:
        return self.tree.member_count

    def leaf_of_identity(self, identity_key: bytes) -> int | None:
        return self.tree.leaf_of_identity(identity_key)

    def has_init_key(self, init_key: bytes) -> bool:
        return self.tree.has_init_key(init_key)

    def is_verified(self, leaf: int) -> bool:
        return self.tree.is_verified(leaf)

    def mark_verified(self, leaf: int) -> None:
        self.tree.mark_verified(leaf)

    @property
    def public_hash(self) -> bytes:
        return self.tree.tree_hash

    def encode_public(self) -> bytes:
        return self.tree.encode()

    @property
    def holds_init_key(self) -> bool:
        return self._init_private is not None

    @property
    def commit_secret(self) -> bytes:
        """The current epoch's ``commit_secret`` as our path derives it (for white-box tests)."""
        return self.tree.commit_secret(self.path)

    # --- commits -------------------------------------------------------------------------------

    def plan_update(self, has_changes: bool, update: bool) -> bool:
        # A commit with nothing else in it is a self-update; while our own leaf is tainted (we
        # joined and have not updated yet) every commit includes our update (taint rule).
        return update or not has_changes or self.tree.tainted_by(self.my_leaf) is not None

    def build_commit(
        self,
        ctx: EpochInput,
        *,
        removes: Sequence[int],
        adds: Sequence[JoinRequest],
        update: bool,
        rand: Callable[[int], bytes],
    ) -> OwnChange:
        me, tree = self.my_leaf, self.tree
        targets = taint.add_targets(tree, set(removes), len(adds))
        rekeys = taint.required_rekeys(tree, me, removes, targets, update)
        capture = PathSecrets(me, dict(self.path.secrets))
        ops: list[Operation] = []
        joiner_secrets: dict[int, bytes | None] = {}
        tree.begin()
        try:
            # Built in commit.OPERATION_ORDER: removes, re-keys, adds, update.
            for leaf in removes:
                pubs, _ = tree.build_path(leaf, rand(32), None, capture, chooser=me)
                ops.append(Operation(_REMOVE, leaf, tuple(pubs)))
            for leaf in rekeys:
                # One build_path per re-keyed leaf: only the committer pays per leaf.
                member = tree.member(leaf)
                leaf_secret = rand(32)
                sealed = None if member is None else self._seal_rekey(ctx, member, leaf, leaf_secret)
                pubs, _ = tree.build_path(leaf, leaf_secret, member, capture, chooser=me)
                ops.append(Operation(_REKEY, leaf, tuple(pubs), sealed=sealed))
            for req, leaf in zip(adds, targets, strict=True):
                leaf_secret = rand(32)
                pubs, _ = tree.build_path(leaf, leaf_secret, req, capture, chooser=me)
                ops.append(Operation(_ADD, leaf, tuple(pubs), req))
                joiner_secrets[leaf] = leaf_secret
            if update:
                pubs, _ = tree.build_path(me, rand(32), tree.member(me), capture, chooser=None)
                ops.append(Operation(_UPDATE, me, tuple(pubs)))
            change = OwnChange(
                tuple(ops),
                tree.tree_hash,
                tree.commit_secret(capture),
                tree.encode_parts() if adds else None,
                joiner_secrets,
                _OwnTreeChange(tree.changes(), capture, tuple(targets), update),
            )
        finally:
            # The draft is replayed from `changes` once the relay confirms the commit; every
            # secret of the joiners' and removed leaves' paths dies with this frame.
            tree.rollback()
        return change

    def _seal_rekey(
        self, ctx: EpochInput, member: JoinRequest, leaf: int, leaf_secret: bytes
    ) -> SealedSecret:
        """Seal a re-keyed joiner's new leaf secret to its init key (HPKE base mode)."""
        kem_output, ciphertext = self.suite.encrypt_with_label(
            member.init_key, REKEY_LABEL, rekey_context(ctx.group_id, ctx.epoch, leaf), leaf_secret
        )
        return SealedSecret(kem_output, ciphertext)

    def apply_own(self, change: OwnChange) -> None:
        own = change.state
        assert isinstance(own, _OwnTreeChange)
        self.tree.apply(own.changes)
        for leaf in own.added:
            self.tree.mark_verified(leaf)
        self.path = own.path
        if own.updated:
            # Our own leaf is now untainted: nobody will seal a re-key to our init key again,
            # and a later copy of our state must not be able to open earlier ones.
            self._init_private = None

    def check_commit(self, sender: int, ops: Sequence[Operation]) -> None:
        if any(not op.path for op in ops):
            # Every tree operation carries at least the changed leaf's new key.
            raise WrongSchemeError(
                "commit carries no tree path: it was built for a ring group, and this group agrees "
                "its keys with the tree"
            )
        removed = {op.leaf for op in ops if op.type == _REMOVE}
        targets = iter(taint.add_targets(self.tree, removed, sum(op.type == _ADD for op in ops)))
        for op in ops:
            if op.type == _ADD:
                expected = next(targets)
                if op.leaf != expected:
                    raise InvalidCommitError(
                        f"add must use leaf {expected} (the leftmost free), not {op.leaf}"
                    )
            if op.type == _UPDATE and op.leaf != sender:
                raise InvalidCommitError("a member can only update its own leaf")
            if op.type == _REMOVE:
                if op.leaf == sender:
                    raise InvalidCommitError("a committer cannot remove itself")
                if self.tree.member(op.leaf) is None:
                    raise UnknownMemberError(f"commit removes leaf {op.leaf}, which holds no member")
        taint.check_commit(self.tree, sender, ops)

    def stage_commit(self, ctx: EpochInput, sender: int, ops: Sequence[Operation]) -> StagedChange:
        tree, mine = self.tree, self.my_leaf
        request = tree.member(sender)
        my_secret: bytes | None = None
        for op in ops:
            if op.type == _REKEY and op.leaf == mine:
                my_secret = self._open_rekey(ctx, op)  # before the draft: a failure changes nothing
        tree.begin()
        try:
            for op in ops:
                # Every secret but the committer's own update is the committer's choice: taint.
                if op.type == _UPDATE:
                    tree.write_path(op.leaf, list(op.path), request, None)
                elif op.type == _REKEY:  # same member (or vacated slot), fresh secret
                    tree.write_path(op.leaf, list(op.path), tree.member(op.leaf), sender)
                else:  # add: the joiner; remove: the slot is vacated
                    tree.write_path(op.leaf, list(op.path), op.request if op.type == _ADD else None, sender)
            me = 2 * mine
            current = self.path
            if my_secret is not None:
                # Our own leaf was re-keyed (sealed to our init key): climb from the leaf itself.
                current = PathSecrets(mine, {**self.path.secrets, me: my_secret})
                lowest = me
            else:
                lowest = min((lowest_common_ancestor(2 * op.leaf, me) for op in ops), key=tm.level)
            path = tree.refresh_secrets(current, lowest)
            added = tuple(op.leaf for op in ops if op.type == _ADD)
            return StagedChange(tree.tree_hash, tree.commit_secret(path), _StagedTreeChange(path, added))
        except BaseException:
            tree.rollback()
            raise

    def _open_rekey(self, ctx: EpochInput, op: Operation) -> bytes:
        """Open the sealed secret of a re-key of our own leaf and check it matches the sent key."""
        leaf = op.leaf
        if self._init_private is None or op.sealed is None:
            raise TaintRuleError(
                f"commit re-keys our leaf {leaf}, but we have already updated and hold no init key"
            )
        try:
            secret = self.suite.decrypt_with_label(
                self._init_private,
                REKEY_LABEL,
                rekey_context(ctx.group_id, ctx.epoch, leaf),
                op.sealed.kem_output,
                op.sealed.ciphertext,
            )
        except DecryptionError as exc:
            raise TaintRuleError(
                f"re-key of our leaf {leaf} is not sealed to our init key for this group and epoch"
            ) from exc
        if len(secret) != 32 or self.suite.x25519_public(secret) != op.path[0]:
            raise TaintRuleError(f"re-key of our leaf {leaf} sealed a secret that does not match its key")
        return secret

    def confirm(self, staged: StagedChange) -> None:
        state = staged.state
        assert isinstance(state, _StagedTreeChange)
        self.tree.end()
        for leaf in state.added:
            self.tree.mark_verified(leaf)  # the epoch machine verified its join request
        self.path = state.path

    def rollback(self, staged: StagedChange) -> None:
        self.tree.rollback()

    # --- stored state (docs/protocol.md §12) -------------------------------------------------

    def encode_state(self) -> bytes:
        """``V(public tree) || uint32 leaf || (uint32 node, V(secret))<V> || optional<V(init key)>
        || (uint32 verified leaf)<V>``: the public tree with its taint record, our path secrets,
        the init private key we keep until our first Update, and whose join requests we checked."""
        tree, path = self.tree, self.path
        secrets = [Writer().u32(x).opaque(secret).bytes() for x, secret in sorted(path.secrets.items())]
        init = None if self._init_private is None else Writer().opaque(self._init_private).bytes()
        verified = [Writer().u32(leaf).bytes() for leaf, _ in tree.members() if tree.is_verified(leaf)]
        w = Writer().opaque(tree.encode()).u32(path.leaf).vector(secrets).optional(init)
        return w.vector(verified).bytes()

    @classmethod
    def decode_state(
        cls,
        suite: CipherSuite,
        data: bytes,
        *,
        identity: Identity,
        rand: Callable[[int], bytes],
        clock: Callable[[], float],
    ) -> TreeScheme:
        """Read :meth:`encode_state`'s output: our leaf must hold ``identity``, and our path secrets
        must be exactly the keyed nodes of our direct path, each matching its public key."""
        r = Reader(data, "stored tree state")
        tree = RatchetTree.decode(suite, r.opaque("public tree", _MAX_STORED_TREE))
        leaf = r.u32("our leaf")

        def secret(rr: Reader) -> tuple[int, bytes]:
            return rr.u32("node"), rr.opaque_exact("path secret", suite.hash_len)

        nodes = r.vector("path secrets", 64 * 40, secret, 64)
        init = r.optional("init key", lambda rr: rr.opaque_exact("init key", 32))
        verified = r.vector("verified leaves", 4 * MAX_CAPACITY, lambda rr: rr.u32("leaf"), MAX_CAPACITY)
        r.end()
        me = tree.member(leaf)
        if me is None:
            raise InvalidValueError(f"stored tree state puts us at leaf {leaf}, which holds no member")
        if me.identity_key != identity.public_key:
            raise UsageError(f"this stored group state is not ours: leaf {leaf} holds another identity")
        mine = 2 * leaf
        keyed = sorted(
            [mine] + [p for p in tm.direct_path(mine, tree.capacity) if tree.own_key(p) is not None]
        )
        if [x for x, _ in nodes] != keyed:
            raise InvalidValueError("stored path secrets are not the keyed nodes of our direct path")
        for x, value in nodes:
            if suite.x25519_public(value) != tree.own_key(x):
                raise InvalidValueError(f"stored path secret of node {x} does not match its public key")
        if init is not None and suite.x25519_public(init) != me.init_key:
            raise InvalidValueError("stored init private key does not match our join request's init key")
        for v in verified:
            if tree.member(v) is None or tree.is_verified(v):
                raise InvalidValueError(f"stored verified leaf {v} holds no member or is listed twice")
            tree.mark_verified(v)
        return cls(tree, PathSecrets(leaf, dict(nodes)), init)

    def encode_change(self, change: OwnChange) -> bytes:
        """``uint32 capacity || (uint32 node, optional<key[32]>)<V> || (uint32 leaf,
        optional<V(join request)>)<V> || (uint32 leaf, optional<uint32 chooser>)<V> || our new
        path (uint32 node, V(secret))<V> || V(commit_secret)``: the draft's final values, in the
        draft's order (replayed in that order, as :meth:`RatchetTree.apply` does on the echo)."""
        own = change.state
        assert isinstance(own, _OwnTreeChange) and change.commit_secret is not None
        c = own.changes
        keys = [Writer().u32(x).optional(k).bytes() for x, k in c.keys.items()]
        members = [
            Writer().u32(leaf).optional(None if m is None else Writer().opaque(m.encoded).bytes()).bytes()
            for leaf, m in c.members.items()
        ]
        choosers = [
            Writer().u32(leaf).optional(None if ch is None else Writer().u32(ch).bytes()).bytes()
            for leaf, ch in c.choosers.items()
        ]
        path = [Writer().u32(x).opaque(v).bytes() for x, v in sorted(own.path.secrets.items())]
        w = Writer().u32(c.capacity).vector(keys).vector(members).vector(choosers)
        return w.vector(path).opaque(change.commit_secret).bytes()

    def decode_change(self, data: bytes, operations: Sequence[Operation]) -> OwnChange:
        """Read :meth:`encode_change`'s output; replayed on a draft of our tree, it must give our
        stored path's keys and commit_secret (the draft is then rolled back)."""
        r = Reader(data, "stored tree change")
        nh = self.suite.hash_len
        capacity = r.u32("capacity")
        if capacity < self.tree.capacity or capacity > MAX_CAPACITY or capacity & (capacity - 1):
            raise InvalidValueError(f"stored tree change has capacity {capacity}")
        width = tm.node_width(capacity)

        def node(rr: Reader) -> int:
            x = rr.u32("node")
            if x >= width:
                raise InvalidValueError(f"stored tree change names node {x}, outside the tree")
            return x

        def key(rr: Reader) -> tuple[int, bytes | None]:
            return node(rr), rr.optional("key", lambda q: q.fixed(32, "key"))

        def member(rr: Reader) -> tuple[int, JoinRequest | None]:
            leaf = _leaf(rr, capacity)
            return leaf, rr.optional("member", lambda q: JoinRequest.decode(q.opaque("request", 4096)))

        def chooser(rr: Reader) -> tuple[int, int | None]:
            return _leaf(rr, capacity), rr.optional("chooser", lambda q: q.u32("chooser"))

        big = 64 * MAX_CAPACITY * 8
        keys = r.vector("keys", big, key, width)
        members = r.vector("members", big * 64, member, capacity)
        choosers = r.vector("choosers", big, chooser, capacity)
        secrets = r.vector("path", 64 * 40, lambda rr: (rr.u32("node"), rr.opaque_exact("secret", nh)), 64)
        commit_secret = r.opaque_exact("commit secret", nh)
        r.end()
        # Keys, members and choosers keep the draft's order (a member moving leaves in one commit
        # leaves its old leaf first); each lists a slot once.
        for items in (keys, members, choosers):
            if len({i for i, _ in items}) != len(items):
                raise InvalidValueError("stored tree change lists a slot twice")
        if [x for x, _ in secrets] != sorted({x for x, _ in secrets}):
            raise InvalidValueError("stored tree change's path secrets are not strictly ascending")
        changes = TreeChanges(capacity, dict(keys), dict(members), dict(choosers))
        path = PathSecrets(self.my_leaf, dict(secrets))
        tree = self.tree
        verified = {leaf for leaf, _ in tree.members() if tree.is_verified(leaf)}
        tree.begin()
        try:
            try:
                tree.apply(changes)
            except GroupChatError as exc:
                raise InvalidValueError(f"stored tree change does not apply to our tree: {exc}") from exc
            public_hash = tree.tree_hash
            mine = 2 * path.leaf
            direct = tm.direct_path(mine, tree.capacity)
            keyed = sorted([mine] + [p for p in direct if tree.own_key(p) is not None])
            if sorted(path.secrets) != keyed or any(
                self.suite.x25519_public(v) != tree.own_key(x) for x, v in path.secrets.items()
            ):
                raise InvalidValueError("stored tree change's path does not match its keys")
            if tree.commit_secret(path) != commit_secret:
                raise InvalidValueError("stored tree change's commit secret does not match its path")
        finally:
            tree.rollback()
            for v in verified:
                tree.mark_verified(v)
        added = tuple(op.leaf for op in operations if op.type == _ADD)
        updated = any(op.type == _UPDATE for op in operations)
        own = _OwnTreeChange(changes, path, added, updated)
        return OwnChange(tuple(operations), public_hash, commit_secret, None, {}, own)

    def forget_secrets(self) -> None:
        self.path = PathSecrets(self.my_leaf)
        self._init_private = None

    # --- the public taint record -----------------------------------------------------------------

    def tainted_by(self, leaf: int) -> int | None:
        return self.tree.tainted_by(leaf)

    def taint_record(self) -> dict[int, int]:
        return self.tree.taint_record()

    def leaf_public_key(self, leaf: int) -> bytes | None:
        return self.tree.leaf_key(leaf)


def _leaf(r: Reader, capacity: int) -> int:
    leaf = r.u32("leaf")
    if leaf >= capacity:
        raise InvalidValueError(f"stored tree change names leaf {leaf}, outside the tree")
    return leaf
