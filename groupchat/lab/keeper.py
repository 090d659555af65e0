"""The keeper adversary: a member who never deletes anything, and tries to read on after it leaves.

threats.md item 21. The tests (``tests/core``) and ``groupchat sim`` (:mod:`groupchat.lab.sim`) mount
it. A *keeper* records every value its random source ever gave it
(:class:`RecordingRand`, injected as ``GroupConfig.rand``) and every state it ever had
(:meth:`Keeper.keep` after every step, plus any :class:`~groupchat.core.identity.PendingJoin`).
It then derives what it can, **independently of the code under test**: the derivation below is
written from ``docs/protocol.md`` §5.2 and RFC 9420 §8 with pyca X25519 and HMAC-SHA256 (HKDF is
HMAC), and reads only *public* data of the honest members (node public keys, GroupContext bytes,
the epoch authenticator to compare with).

Derivation (:class:`Deriver`), for one epoch's public view:

1. every 32-byte value the keeper ever held is tried as an X25519 private key; its public key is
   looked up among the keyed nodes of the honest members' *current* tree (an index, so O(1) each);
2. from every match it climbs to the root with the public copath keys
   (``secret(P) = ExpandWithLabel(Extract(0, X25519(sk, pk_other)), "tgdh node",
   V(pk_L) || V(pk_R), 32)``, pass-through for parents without a key of their own), checking each
   derived public key against the tree, and takes ``commit_secret = DeriveSecret(root, "tgdh commit")``;
3. it runs the key schedule from every init secret it knows (every held value, plus the
   ``init_secret`` of every epoch it derived before: derivations chain forward) and compares the
   epoch authenticator with the real one;
4. any held value is also tried as that epoch's ``epoch_secret`` directly.

An epoch found by step 3 is reported as route ``"tree"``, by step 4 as ``"epoch secret"``. Tests
use the ``"tree"`` route to prove the keeper *would* catch a leak (it must derive every epoch it
was a member of by climbing from its own leaf), and assert that after its removal it derives no
epoch by any route.

Walking a live state at every step records the same values as deep-copying it and walking the
copy later, without the cost of keeping every copy; :meth:`Keeper.keep` does the former.
"""

from __future__ import annotations

import dataclasses
import hmac
import os
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from groupchat.core import tree_math as tm
from groupchat.core.group import Group, GroupConfig

__all__ = ["Deriver", "EpochView", "Keeper", "RecordingRand", "harvest"]

_NH = 32


# --- the documented derivations, written out (docs/protocol.md §5.2, RFC 9420 §8) -------------


def _opaque(data: bytes) -> bytes:
    """``opaque<V>`` for the short vectors used here (RFC 9420 §2.1.2 varint, < 2^14 bytes)."""
    n = len(data)
    return (bytes((n,)) if n < 64 else (0x4000 | n).to_bytes(2, "big")) + data


def _extract(salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract (RFC 5869 §2.2): HMAC-SHA256(salt, ikm); "0" is Nh zero bytes."""
    return hmac.digest(salt or bytes(_NH), ikm, "sha256")


def _expand_with_label(prefix: bytes, secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """RFC 9420 §8 ExpandWithLabel; one HKDF-Expand block (length <= 32) is HMAC(prk, info || 0x01)."""
    assert length <= _NH
    info = length.to_bytes(2, "big") + _opaque(prefix + label) + _opaque(context)
    return hmac.digest(secret, info + b"\x01", "sha256")[:length]


def _derive_secret(prefix: bytes, secret: bytes, label: bytes) -> bytes:
    return _expand_with_label(prefix, secret, label, b"", _NH)


def _x25519_public(sk: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(sk).public_key().public_bytes_raw()


def _node_secret(prefix: bytes, sk: bytes, other: bytes, left: bytes, right: bytes) -> bytes:
    dh = X25519PrivateKey.from_private_bytes(sk).exchange(X25519PublicKey.from_public_bytes(other))
    return _expand_with_label(prefix, _extract(b"", dh), b"tgdh node", _opaque(left) + _opaque(right), _NH)


@dataclass(frozen=True)
class _Epoch:
    epoch_secret: bytes
    authenticator: bytes


def _schedule_from_epoch_secret(prefix: bytes, epoch_secret: bytes) -> _Epoch:
    return _Epoch(epoch_secret, _derive_secret(prefix, epoch_secret, b"authentication"))


def _schedule(prefix: bytes, init_secret: bytes, commit_secret: bytes, context: bytes) -> _Epoch:
    """joiner_secret -> member_secret (no PSK: Extract(joiner, 0)) -> epoch_secret (RFC 9420 §8)."""
    joiner = _expand_with_label(prefix, _extract(init_secret, commit_secret), b"joiner", context, _NH)
    member = _extract(joiner, bytes(_NH))
    epoch_secret = _expand_with_label(prefix, member, b"epoch", context, _NH)
    return _schedule_from_epoch_secret(prefix, epoch_secret)


# --- what the keeper records ---------------------------------------------------------------------


class RecordingRand:
    """A random source that remembers every output (inject as ``GroupConfig.rand``)."""

    def __init__(self, inner: Callable[[int], bytes] = os.urandom) -> None:
        self._inner = inner
        self.outputs: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        out = self._inner(n)
        self.outputs.append(out)
        return out

    def __deepcopy__(self, memo: dict[int, object]) -> RecordingRand:
        return self


_SKIP = (str, int, float, bool, type(None), Ed25519PrivateKey, Ed25519PublicKey, X25519PublicKey)


def harvest(*roots: object) -> set[bytes]:
    """Every 32-byte ``bytes`` value reachable from ``roots`` (fields, slots, containers).

    Written to be robust to implementation changes: it needs no knowledge of where a state keeps
    its secrets. An X25519 private key object counts by its raw bytes.
    """
    found: set[bytes] = set()
    seen: set[int] = set()
    stack: list[object] = list(roots)
    while stack:
        obj = stack.pop()
        if isinstance(obj, bytes | bytearray | memoryview):
            if len(obj) == _NH:
                found.add(bytes(obj))
            continue
        if id(obj) in seen or isinstance(obj, _SKIP):
            continue
        seen.add(id(obj))
        if isinstance(obj, X25519PrivateKey):
            found.add(obj.private_bytes_raw())
        elif isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset | deque):
            stack.extend(obj)
        elif isinstance(obj, RecordingRand):
            stack.extend(obj.outputs)
        elif type(obj).__module__.startswith("groupchat.") and not isinstance(obj, type):
            # Our own objects: every attribute, whether in __dict__ or in __slots__.
            if hasattr(obj, "__dict__"):
                stack.extend(vars(obj).values())
            for cls in type(obj).__mro__:
                for slot in getattr(cls, "__slots__", ()):
                    if hasattr(obj, slot):
                        stack.append(getattr(obj, slot))
    return found


@dataclass(frozen=True)
class EpochView:
    """The public facts of one epoch, read from an honest member: what the keeper attacks."""

    epoch: int
    context: bytes  # the encoded GroupContext (public: it is in every GroupInfo)
    authenticator: bytes  # the real epoch authenticator, only for comparison
    own_keys: tuple[bytes | None, ...]  # each node's own public key, array order

    @classmethod
    def of(cls, group: Group) -> EpochView:
        tree = group._tree
        keys = tuple(tree.own_key(x) for x in range(tm.node_width(tree.capacity)))
        return cls(group.epoch, group._ctx_bytes, group.epoch_authenticator, keys)


class Keeper:
    """One member's complete memory: every random output and every state it ever had."""

    def __init__(self, name: str, base: GroupConfig) -> None:
        self.name = name
        self.rand = RecordingRand()
        self.config = dataclasses.replace(base, rand=self.rand)
        self._held: set[bytes] = set()

    def keep(self, *states: object) -> None:
        """Record everything ``states`` hold now (call after every step the keeper takes part in)."""
        self._held |= harvest(*states)

    def held(self) -> frozenset[bytes]:
        return frozenset(self._held | set(o for o in self.rand.outputs if len(o) == _NH))

    def frozen(self, label: str | None = None) -> Deriver:
        """What the keeper knows *now*, for attacks on later epochs (a copy, or a removed member)."""
        return Deriver(self.held(), self.config.label_prefix, label or self.name)


@dataclass
class Deriver:
    """Derives epochs from a fixed set of held values, chaining init secrets forward."""

    held: frozenset[bytes] = field(repr=False)
    prefix: bytes = field(repr=False)
    label: str = "keeper"
    derived: dict[int, str] = field(default_factory=dict)  # epoch -> route
    _inits: set[bytes] = field(default_factory=set, repr=False)
    _by_public: dict[bytes, bytes] = field(default_factory=dict, repr=False)
    _by_authenticator: dict[bytes, bytes] = field(default_factory=dict, repr=False)
    _sender_data: frozenset[bytes] | None = field(default=None, repr=False)
    _derived_sender_data: set[bytes] = field(default_factory=set, repr=False)
    _chained: set[bytes] = field(default_factory=set, repr=False)  # init secrets of derived epochs

    def __post_init__(self) -> None:
        for value in self.held:
            self._by_public[_x25519_public(value)] = value
            self._by_authenticator[_schedule_from_epoch_secret(self.prefix, value).authenticator] = value
        self._inits = set(self.held)

    def sender_data_candidates(self) -> frozenset[bytes]:
        """Every sender-data secret the keeper could try: each held value, used directly or as an
        epoch secret (``DeriveSecret(epoch_secret, "sender data")``), and those of derived epochs."""
        if self._sender_data is None:
            sds = {_derive_secret(self.prefix, v, b"sender data") for v in self.held}
            self._sender_data = frozenset(self.held | sds)
        return self._sender_data | frozenset(self._derived_sender_data)

    def commit_secrets(self, view: EpochView) -> set[bytes]:
        """Every commit secret reachable by climbing from a node whose private key we hold."""
        own = view.own_keys
        capacity = (len(own) + 1) // 2
        eff: list[bytes | None] = list(own)
        for lvl in range(1, tm.level(tm.root(capacity)) + 1):
            for x in range((1 << lvl) - 1, len(own), 1 << (lvl + 1)):
                eff[x] = own[x] or eff[tm.left(x)] or eff[tm.right(x)]
        out: set[bytes] = set()
        for x, pub in enumerate(own):
            sk = self._by_public.get(pub) if pub is not None else None
            if sk is None:
                continue
            for p in tm.direct_path(x, capacity) if x != tm.root(capacity) else []:
                if own[p] is not None:
                    other = eff[tm.sibling(x, capacity)]
                    mine = eff[x]
                    assert other is not None and mine is not None, "keyed parent of a blank child"
                    left, right = (mine, other) if x < p else (other, mine)
                    sk = _node_secret(self.prefix, sk, other, left, right)
                    if _x25519_public(sk) != own[p]:
                        sk = None  # the tree disagrees with the documented rule: no root from here
                        break
                x = p
            if sk is not None:
                out.add(_derive_secret(self.prefix, sk, b"tgdh commit"))
        return out

    def attempt(self, view: EpochView) -> str | None:
        """Try to derive ``view``'s epoch; on success remember its init secret for the next one."""
        for commit_secret in self.commit_secrets(view):
            for init in self._inits:
                got = _schedule(self.prefix, init, commit_secret, view.context)
                if got.authenticator == view.authenticator:
                    return self._derived(view, "tree", got.epoch_secret)
        epoch_secret = self._by_authenticator.get(view.authenticator)
        if epoch_secret is not None:
            return self._derived(view, "epoch secret", epoch_secret)
        return None

    def attempt_candidates(
        self, view: EpochView, candidates: Iterable[bytes], inits: Iterable[bytes]
    ) -> str | None:
        """For a scheme without a tree (the ring): try every ``candidates`` value as the epoch's
        commit secret on each of ``inits`` and every init secret of an epoch derived before
        (route ``"commit secret"``), then every held value as the epoch secret; remember a hit."""
        starts = set(inits) | self._chained
        for commit_secret in set(candidates):
            for init in starts:
                got = _schedule(self.prefix, init, commit_secret, view.context)
                if got.authenticator == view.authenticator:
                    return self._derived(view, "commit secret", got.epoch_secret)
        epoch_secret = self._by_authenticator.get(view.authenticator)
        if epoch_secret is not None:
            return self._derived(view, "epoch secret", epoch_secret)
        return None

    def _derived(self, view: EpochView, route: str, epoch_secret: bytes) -> str:
        self.derived[view.epoch] = route
        self._inits.add(_derive_secret(self.prefix, epoch_secret, b"init"))
        self._chained.add(_derive_secret(self.prefix, epoch_secret, b"init"))
        self._derived_sender_data.add(_derive_secret(self.prefix, epoch_secret, b"sender data"))
        return route

    def attempt_all(self, views: Iterable[EpochView]) -> dict[int, str]:
        """Attempt every view in epoch order; returns the epochs derived (and how)."""
        for view in sorted(views, key=lambda v: v.epoch):
            self.attempt(view)
        return dict(self.derived)
