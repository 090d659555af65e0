"""The session's protocol-core calls, one at a time, the heavy ones in one dedicated thread.

The UI shares the session's event loop and must never stall for more than 50 ms, but joining a
large group (n signature checks) or building a commit and its Welcome costs milliseconds to tens
of milliseconds. So those calls run in a single-thread executor and the loop only awaits them.
Reading a message of ordinary size is different: an application message is a signature and an
AEAD (at most ``max_forward`` hash steps for a sender that skipped ahead), a commit a signature
and one climb of the tree (O(log n) X25519, about a millisecond at a thousand members), and a chat
moves many of them, so they run on the loop itself, without the thread hop; so does encrypting.

A :class:`Group` is not thread-safe. The session's actor awaits every call before it makes the
next, so a call on the loop never overlaps one in the thread: keep it that way.

Each call measures the core's own time, which the timeline shows ("3 keys refreshed in 0.4 ms");
a call that changed the epoch also takes a public snapshot of the key tree for the ``/tree``
panel, without any key material.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final, TypeVar

from ..core import tree_math as tm
from ..core.events import EpochChanged, Event, Member
from ..core.group import Group, GroupConfig, GroupState
from ..core.identity import Identity, JoinRequest, PendingJoin

__all__ = ["INLINE_MAX_BYTES", "CoreWorker", "Timed", "TreeSnapshot"]

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
    keys: tuple[bytes, ...]  # each node's public key, b"" for none (hex only when drawn)
    labels: tuple[str, ...]  # member name at a leaf, "" elsewhere
    members: tuple[Member, ...]
    epoch: int
    taints: tuple[tuple[int, str], ...] = ()  # (leaf, who chose its secret) where not its owner

    def changed_since(self, before: TreeSnapshot | None) -> frozenset[int]:
        """Nodes whose public key is new in this snapshot."""
        if before is None or before.capacity != self.capacity:
            return frozenset(i for i, k in enumerate(self.keys) if k)
        return frozenset(
            i for i, (a, b) in enumerate(zip(before.keys, self.keys, strict=True)) if b and a != b
        )

    def my_path(self) -> frozenset[int]:
        me = 2 * self.my_leaf
        return frozenset([me, *tm.direct_path(me, self.capacity)])


@dataclass(frozen=True, slots=True)
class Timed:
    """A core result with the core's own time in milliseconds and the tree after it."""

    ms: float
    snapshot: TreeSnapshot | None


def snapshot(group: Group, before: TreeSnapshot | None = None, same_roster: bool = False) -> TreeSnapshot:
    """The public view of ``group`` now. With ``same_roster`` (an update-only epoch) the members and
    names of ``before`` are reused: taken at every member on every epoch, this is kept cheap."""
    if group.scheme == "ring":
        # A ring has no lasting public keys: every rekey takes fresh ones from every member. The
        # view is the roster in ring order (leaf order), one "node" per member.
        members = tuple(group.members())
        labels = tuple(m.display_name for m in members)
        return TreeSnapshot(0, group.my_leaf, tuple(b"" for _ in members), labels, members, group.epoch)
    # The core has no public tree view yet; this reads public keys and names only (no secrets).
    tree = group._tree  # read-only, between core calls
    width = tm.node_width(tree.capacity)
    keys = tuple(tree.own_key(x) or b"" for x in range(width))
    if same_roster and before is not None and before.capacity == tree.capacity:
        labels, members = before.labels, before.members
    else:
        labels = tuple(
            (m.display_name if x % 2 == 0 and (m := tree.member(x // 2)) is not None else "")
            for x in range(width)
        )
        members = tuple(group.members())
    taints = tuple(
        (leaf, m.display_name if (m := tree.member(chooser)) is not None else f"leaf {chooser}")
        for leaf, chooser in sorted(group.taint_record().items())
    )
    return TreeSnapshot(tree.capacity, group.my_leaf, keys, labels, members, group.epoch, taints)


class CoreWorker:
    """One thread that runs every call on the session's :class:`Group`, in submission order."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="groupchat-core")

    async def run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn)

    async def timed(
        self,
        fn: Callable[[], T],
        group: Callable[[], Group | None],
        changed: Callable[[T], bool] = lambda _: True,
    ) -> tuple[T, Timed]:
        """Run ``fn`` in the thread and measure it; then, if ``changed(result)``, snapshot the tree
        of ``group()`` (if any)."""

        def call() -> tuple[T, Timed]:
            start = time.perf_counter()
            result = fn()
            ms = (time.perf_counter() - start) * 1000
            g = group() if changed(result) else None
            snap = snapshot(g) if g is not None and g.state is GroupState.MEMBER else None
            return result, Timed(ms, snap)

        return await self.run(call)

    # --- the calls --------------------------------------------------------------------------

    async def create(
        self, identity: Identity, group_id: bytes, name: str, config: GroupConfig, scheme: str = "tree"
    ) -> tuple[Group, Timed]:
        holder: list[Group] = []

        def make() -> Group:
            holder.append(Group.create(identity, group_id, name, config, scheme=scheme))
            return holder[0]

        return await self.timed(make, lambda: holder[0] if holder else None)

    async def join(self, pending: PendingJoin, welcome: bytes, config: GroupConfig) -> tuple[Group, Timed]:
        holder: list[Group] = []

        def make() -> Group:
            holder.append(Group.join(pending, welcome, config))
            return holder[0]

        return await self.timed(make, lambda: holder[0] if holder else None)

    async def join_request(
        self, identity: Identity, group_id: bytes, name: str, config: GroupConfig
    ) -> PendingJoin:
        return await self.run(
            functools.partial(JoinRequest.create, config.suite(), identity, group_id, name, config.rand)
        )

    async def receive(
        self, group: Group, data: bytes, before: TreeSnapshot | None = None
    ) -> tuple[Event, Timed]:
        """Process ``data``; after an epoch change, snapshot the tree (``before``: the last one)."""
        if len(data) <= INLINE_MAX_BYTES:
            # An application message, a commit or a ring round of ordinary size: one signature
            # check and at most one climb of the tree, so on the loop (module docstring).
            start = time.perf_counter()
            event = group.receive(data)
            ms = (time.perf_counter() - start) * 1000
            if not isinstance(event, EpochChanged) or group.state is not GroupState.MEMBER:
                return event, Timed(ms, None)
            same = not (event.added or event.removed)
            return event, Timed(ms, snapshot(group, before, same))
        return await self.timed(
            functools.partial(group.receive, data), lambda: group, lambda ev: isinstance(ev, EpochChanged)
        )

    async def commit(
        self, group: Group, add: tuple[JoinRequest, ...], remove: tuple[int, ...], update: bool
    ) -> tuple[bytes, Timed]:
        return await self.timed(lambda: group.commit(add=add, remove=remove, update=update), lambda: None)

    async def encrypt(self, group: Group, plaintext: bytes) -> tuple[bytes, bytes]:
        """The message and its core message id (the hash the echo will carry). On the loop: cheap."""
        data = group.encrypt(plaintext)
        return data, group.suite.hash(data)

    async def discard_pending(self, group: Group) -> None:
        await self.run(group.discard_pending_commit)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
