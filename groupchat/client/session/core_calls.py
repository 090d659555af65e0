"""The session's calls into the sans-I/O core, as values: what to call, and whether it is heavy.

The machine (:mod:`.machine`) does not call the core directly: it yields a :class:`CoreCall` and
gets the result back (or the core's exception thrown in). Each call knows how to run itself
(:meth:`CoreCall.run`, synchronous, pure core work plus its timing) and says whether it is heavy
(``offload``): the asyncio glue runs a heavy one in the core worker's thread, the others on the
loop (docs/session.md, "How it runs"); a sans-I/O test runs them all inline. A :class:`Group` is
not thread-safe: the glue awaits each call before resuming the machine, so two never overlap.

Each call measures the core's own time, which the timeline shows ("3 keys refreshed in 0.4 ms");
a call that changed the epoch also takes a public snapshot of the key tree for the ``/tree``
panel, without any key material.
"""

from __future__ import annotations

import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import compress
from operator import attrgetter, is_not
from typing import Final, Generic, TypeVar

from ...core import tree_math as tm
from ...core.admission import Admit, Classification, NewInvite, RemovalReason
from ...core.events import EpochChanged, Event, Member, RekeyTimedOut
from ...core.group import Group, GroupConfig, GroupState
from ...core.identity import Identity, JoinRequest, PendingJoin
from ...core.outbox import Outbound

__all__ = [
    "INLINE_MAX_BYTES",
    "CheckRoster",
    "Classify",
    "CommitChange",
    "CoreCall",
    "CreateGroup",
    "DiscardPending",
    "DrainOutbox",
    "Encrypt",
    "MakeJoinRequest",
    "OpenWelcome",
    "Receive",
    "TickRing",
    "Timed",
    "TreeSnapshot",
    "snapshot",
]

# Messages up to this size are read on the loop: an application message, or a commit with a few
# operations (a signature and one climb: about a millisecond at a thousand members). A larger
# commit (many operations to check, up to 1 MiB from a malicious member) goes to the thread.
INLINE_MAX_BYTES: Final = 16 * 1024

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TreeSnapshot:
    """Public facts about each node of the key tree: nothing secret, nothing mutable."""

    capacity: int
    my_leaf: int
    keys: tuple[bytes | None, ...]  # each node's public key, None for none (hex only when drawn)
    members: tuple[Member, ...]
    epoch: int
    taints: tuple[tuple[int, str], ...] = ()  # (leaf, who chose its secret) where not its owner
    # The group it was taken from (a weak reference: a view keeps no group alive), so that the
    # next epoch's view builds on it only in that same group (_members_after).
    source: weakref.ref[Group] | None = field(default=None, compare=False, repr=False)

    @property
    def labels(self) -> tuple[str, ...]:
        """The member name at each node ("" where no leaf has a member); a ring's, in ring order.
        Derived when the /tree view is drawn, not at every epoch at every member."""
        if self.capacity == 0:
            return tuple(m.display_name for m in self.members)
        names = {2 * m.leaf: m.display_name for m in self.members}
        return tuple(names.get(x, "") for x in range(len(self.keys)))

    def changed_since(self, before: TreeSnapshot | None) -> frozenset[int]:
        """Nodes whose public key is new in this snapshot. A key the tree kept is the very object
        of the last snapshot (both copy the tree's references), so only the nodes whose key object
        differs are compared (found at C speed: every member runs this at every epoch)."""
        keys = self.keys
        if before is None or before.capacity != self.capacity:
            return frozenset(i for i, k in enumerate(keys) if k)
        old = before.keys
        moved = compress(range(len(keys)), map(is_not, old, keys))
        return frozenset(i for i in moved if (k := keys[i]) and old[i] != k)

    def my_path(self) -> frozenset[int]:
        me = 2 * self.my_leaf
        return frozenset([me, *tm.direct_path(me, self.capacity)])


@dataclass(frozen=True, slots=True)
class Timed:
    """A core result with the core's own time in milliseconds and the tree after it."""

    ms: float
    snapshot: TreeSnapshot | None


def snapshot(
    group: Group, before: TreeSnapshot | None = None, change: EpochChanged | None = None
) -> TreeSnapshot:
    """The public view of ``group`` now. With ``before`` (the view of the epoch before) and the
    ``change`` that led from it here, the members are ``before``'s with the change's removals and
    additions applied (:func:`_members_after`): taken at every member on every epoch, this is kept
    O(changes), not O(members)."""
    if group.scheme == "ring":
        # A ring has no lasting public keys: every rekey takes fresh ones from every member. The
        # view is the roster in ring order (leaf order), one "node" per member.
        members = tuple(group.members())
        return TreeSnapshot(0, group.my_leaf, tuple(None for _ in members), members, group.epoch)
    # The core has no public tree view yet; this reads public keys and names only (no secrets).
    tree = group._tree  # read-only, between core calls
    # Every node's own public key in one copy: every member takes this at every epoch. Unchanged
    # keys stay the very objects (see changed_since).
    keys = tree.own_keys()
    kept = _members_after(group, before, change) if before is not None and change is not None else None
    members = kept if kept is not None else tuple(group.members())
    taints = tuple(
        (leaf, m.display_name if (m := tree.member(chooser)) is not None else f"leaf {chooser}")
        for leaf, chooser in sorted(group.taint_record().items())
    )
    return TreeSnapshot(tree.capacity, group.my_leaf, keys, members, group.epoch, taints, weakref.ref(group))


def _members_after(group: Group, before: TreeSnapshot, change: EpochChanged) -> tuple[Member, ...] | None:
    """The members after ``change``, from ``before``'s (None: take them from the group). Only for
    the epoch right after ``before``'s, in a tree of the same capacity (leaves keep their places),
    and only if the group agrees: as many members, each added one at its leaf, each removed leaf
    not re-filled empty; tests/client/test_session_snapshot.py checks it equals the full reading."""
    tree = group._tree
    if before.source is None or before.source() is not group:  # another group's view (a rejoin)
        return None
    if before.capacity != tree.capacity or before.epoch + 1 != group.epoch or change.epoch != group.epoch:
        return None
    if not (change.added or change.removed):
        members = before.members
    else:
        gone = {m.leaf for m in change.removed}
        members = tuple(
            sorted(
                [*(m for m in before.members if m.leaf not in gone), *change.added], key=attrgetter("leaf")
            )
        )
        for m in change.added:
            request = tree.member(m.leaf)
            if (
                request is None
                or request.identity_key != m.identity_key
                or request.display_name != m.display_name
            ):
                return None
        if any(tree.member(leaf) is not None for leaf in gone - {m.leaf for m in change.added}):
            return None
    return members if len(members) == tree.member_count else None


def _timed(fn: Callable[[], T], group: Callable[[T], Group | None]) -> tuple[T, Timed]:
    """Run ``fn`` and measure it; then snapshot ``group(result)`` if there is one and it is a member."""
    start = time.perf_counter()
    result = fn()
    ms = (time.perf_counter() - start) * 1000
    g = group(result)
    snap = snapshot(g) if g is not None and g.state is GroupState.MEMBER else None
    return result, Timed(ms, snap)


class CoreCall(ABC, Generic[T]):
    """One call into the core. ``offload``: heavy enough to keep off the UI's loop."""

    @property
    def offload(self) -> bool:
        return True

    @abstractmethod
    def run(self) -> T:
        """Make the call (synchronously) and return its result; the core's errors propagate."""


@dataclass(frozen=True, slots=True)
class CreateGroup(CoreCall[tuple[Group, Timed]]):
    identity: Identity
    group_id: bytes
    name: str
    config: GroupConfig
    scheme: str
    open_room: bool = False

    def run(self) -> tuple[Group, Timed]:
        return _timed(
            lambda: Group.create(
                self.identity,
                self.group_id,
                self.name,
                self.config,
                scheme=self.scheme,
                open_room=self.open_room,
            ),
            lambda g: g,
        )


@dataclass(frozen=True, slots=True)
class OpenWelcome(CoreCall[tuple[Group, Timed]]):
    """Join with a welcome, reading at once: the members' join requests are left to
    :class:`CheckRoster` (a ring group checks them all here)."""

    pending: PendingJoin
    welcome: bytes
    config: GroupConfig

    def run(self) -> tuple[Group, Timed]:
        return _timed(
            lambda: Group.join(self.pending, self.welcome, self.config, verify_roster=False), lambda g: g
        )


@dataclass(frozen=True, slots=True)
class CheckRoster(CoreCall[float]):
    """Verify the join request of every member a deferred join's welcome listed (n signature
    checks; raises the core's ForgedMemberError naming the welcome's signer). Returns its ms."""

    group: Group

    def run(self) -> float:
        start = time.perf_counter()
        check = self.group.roster_check()
        if check is not None:
            self.group.roster_verified(check.run())
        return (time.perf_counter() - start) * 1000


@dataclass(frozen=True, slots=True)
class MakeJoinRequest(CoreCall[PendingJoin]):
    identity: Identity
    group_id: bytes
    name: str
    config: GroupConfig
    newer_than: int = 0  # the not_after of our last request (JoinRequest.create)

    @property
    def offload(self) -> bool:
        return False  # a key pair and one signature, whatever the group's size: cheaper than the hop

    def run(self) -> PendingJoin:
        return JoinRequest.create(
            self.config.suite(),
            self.identity,
            self.group_id,
            self.name,
            self.config.rand,
            wall_clock=self.config.wall_clock,
            newer_than=self.newer_than,
        )


@dataclass(frozen=True, slots=True)
class Receive(CoreCall[tuple[Event, Timed]]):
    """Process a core message; after an epoch change, snapshot the tree (``before``: the last one)."""

    group: Group
    data: bytes
    before: TreeSnapshot | None = None

    @property
    def offload(self) -> bool:
        # An application message, a commit or a ring round of ordinary size: one signature check
        # and at most one climb of the tree, so on the loop (module docstring).
        return len(self.data) > INLINE_MAX_BYTES

    def run(self) -> tuple[Event, Timed]:
        group = self.group
        if self.offload:
            return _timed(
                lambda: group.receive(self.data), lambda ev: group if isinstance(ev, EpochChanged) else None
            )
        start = time.perf_counter()
        event = group.receive(self.data)
        ms = (time.perf_counter() - start) * 1000
        if not isinstance(event, EpochChanged) or group.state is not GroupState.MEMBER:
            return event, Timed(ms, None)
        return event, Timed(ms, snapshot(group, self.before, event))


@dataclass(frozen=True, slots=True)
class CommitChange(CoreCall[tuple[bytes, Timed]]):
    """Build our commit (and its Welcome, kept in the core's outbox until the echo)."""

    group: Group
    add: tuple[JoinRequest | Admit, ...]
    remove: tuple[int, ...]
    update: bool
    reasons: Mapping[int, RemovalReason] = field(default_factory=dict)  # by removed leaf
    invite: tuple[NewInvite, ...] = ()
    revoke: tuple[bytes, ...] = ()

    def run(self) -> tuple[bytes, Timed]:
        return _timed(
            lambda: self.group.commit(
                add=self.add,
                remove=self.remove,
                update=self.update,
                reasons=self.reasons,
                invite=self.invite,
                revoke=self.revoke,
            ),
            lambda _: None,
        )


@dataclass(frozen=True, slots=True)
class Classify(CoreCall[Classification]):
    """How a verified-to-be join request may come in, by the agreed group state (two signature
    checks at most: the request's and its invite proof's). Raises for a forged or expired one."""

    group: Group
    request: JoinRequest
    invite_key: bytes | None
    proof: bytes | None
    wall_clock: Callable[[], float]

    @property
    def offload(self) -> bool:
        return False

    def run(self) -> Classification:
        return self.group.classify_request(self.request, self.proof, self.invite_key, self.wall_clock())


@dataclass(frozen=True, slots=True)
class Encrypt(CoreCall[tuple[bytes, bytes]]):
    """An application message and its core message id (the hash its echo will carry). Cheap."""

    group: Group
    plaintext: bytes

    @property
    def offload(self) -> bool:
        return False

    def run(self) -> tuple[bytes, bytes]:
        data = self.group.encrypt(self.plaintext)
        return data, self.group.suite.hash(data)


@dataclass(frozen=True, slots=True)
class DiscardPending(CoreCall[None]):
    group: Group

    def run(self) -> None:
        self.group.discard_pending_commit()


@dataclass(frozen=True, slots=True)
class DrainOutbox(CoreCall[list[Outbound]]):
    """The core's ``data_to_send()``: what the protocol requires us to send now. ``builds``: it
    may build a commit (a rebuild, a joiner's first Update), so it is heavy; False when the
    caller knows it only hands out what is built (the Welcomes of our commit that just won)."""

    group: Group
    builds: bool = True

    @property
    def offload(self) -> bool:
        return self.builds

    def run(self) -> list[Outbound]:
        return list(self.group.data_to_send())


@dataclass(frozen=True, slots=True)
class TickRing(CoreCall[RekeyTimedOut | None]):
    """Check a running ring's round deadline (the core's clock): the timeout, if one passed."""

    group: Group

    def run(self) -> RekeyTimedOut | None:
        return self.group.tick()
