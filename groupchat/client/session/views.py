"""What the UI reads, built from the machine's state: roster, /tree view, epoch lines.

Pure functions: the machine passes what it holds, they return notices' contents. No key material
is ever read here (the tree snapshot holds public keys and names only).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Set

from ...core import tree_math as tm
from ...core.events import EpochChanged, Member
from .. import wording
from ..notices import RosterEntry, TimelineKind, TreeNode, TreeView, TrustState
from ..trust import TrustStore
from .core_calls import TreeSnapshot
from .settings import cached_fingerprint, member_id

__all__ = ["build_tree_view", "describe_epoch", "epoch_kind", "roster_entries"]


@functools.lru_cache(maxsize=32)
def _levels(width: int) -> tuple[int, ...]:
    """The level of each node of a tree ``width`` nodes wide (the /tree view's layout)."""
    return tuple(tm.level(i) for i in range(width))


def roster_entries(
    members: Mapping[int, Member], my_key: bytes, connected: bool, present: Set[bytes], trust: TrustStore
) -> tuple[RosterEntry, ...]:
    """The roster in leaf order; online is the relay's presence claim (ours: our connection)."""
    entries = []
    for leaf in sorted(members):
        m = members[leaf]
        mine = m.identity_key == my_key
        online = connected if mine else member_id(m.identity_key) in present
        state = TrustState.VERIFIED if mine else trust.state(m.display_name, m.identity_key)
        entries.append(
            RosterEntry(m.display_name, cached_fingerprint(m.identity_key), online, state, is_me=mine)
        )
    return tuple(entries)


def build_tree_view(snap: TreeSnapshot, changed: frozenset[int]) -> TreeView:
    """The /tree view of ``snap``: the key tree, or the ring (all of it new at every epoch)."""
    if snap.capacity == 0:  # a ring: every member took fresh keys in the run that made it
        return TreeView(
            "ring",
            snap.epoch,
            tuple(
                TreeNode(i, 0, m.display_name, "", changed=True, mine=m.leaf == snap.my_leaf)
                for i, m in enumerate(snap.members)
            ),
        )
    mine = snap.my_path()
    keys, labels = [k.hex()[:8] for k in snap.keys], snap.labels
    set_by = {2 * leaf: name for leaf, name in snap.taints}
    nodes = tuple(
        TreeNode(
            i,
            level,
            labels[i] if i % 2 == 0 else keys[i][:4],
            keys[i],
            i in changed,
            i in mine,
            set_by.get(i, ""),
        )
        for i, level in enumerate(_levels(len(keys)))
    )
    return TreeView("tree", snap.epoch, nodes)


def epoch_kind(ev: EpochChanged, removal_reasons: Mapping[bytes, str]) -> TimelineKind:
    if ev.added:
        return TimelineKind.JOINED
    if ev.removed:
        left = all(removal_reasons.get(m.identity_key) == wording.REASON_LEFT for m in ev.removed)
        return TimelineKind.LEFT if left else TimelineKind.REMOVED
    return TimelineKind.UPDATED


def describe_epoch(
    ev: EpochChanged,
    my_key: bytes,
    removal_reasons: Mapping[bytes, str],
    ring: bool,
    member_count: int,
    changed: int,
    ms: float,
) -> str:
    """The timeline line of an epoch change (docs/session.md, "What the timeline says")."""
    who = "you" if ev.committer.identity_key == my_key else ev.committer.display_name
    removed = [
        (m.display_name, removal_reasons.get(m.identity_key) or wording.reason_kicked(who))
        for m in ev.removed
    ]
    cost = wording.ring_cost(member_count, ms) if ring else wording.tree_cost(changed, ms)
    return wording.describe_epoch(
        removed, [m.display_name for m in ev.added], who if ev.updated else None, ev.epoch, cost
    )
