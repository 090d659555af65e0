"""What the UI reads, built from the machine's state: roster, /tree view, epoch lines.

Pure functions: the machine passes what it holds, they return notices' contents. No key material
is ever read here (the tree snapshot holds public keys and names only).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Set

from ...core import tree_math as tm
from ...core.admission import RemovalCode
from ...core.events import EpochChanged, Member
from .. import wording, wording_ring
from ..names import MIN_SUFFIX, SEPARATOR, compact_fingerprint
from ..notices import RosterEntry, TimelineKind, TreeNode, TreeView, TrustState
from ..trust import TrustStore
from .bounds import RoomPresence
from .core_calls import TreeSnapshot
from .settings import cached_fingerprint, member_id

__all__ = [
    "RosterBook",
    "RosterMade",
    "build_tree_view",
    "describe_epoch",
    "epoch_kind",
    "lookalikes",
    "roster_entries",
]


#: What a roster entry is made of, by identity key, with the entry made of it (see roster_entries).
RosterMade = dict[bytes, tuple[tuple[str, bool, TrustState, bool], RosterEntry]]


def roster_entries(
    members: Mapping[int, Member],
    my_key: bytes,
    connected: bool,
    present: Set[bytes],
    trust: TrustStore,
    labels: Mapping[bytes, str],
    made: RosterMade | None = None,
    unchecked: Set[bytes] = frozenset(),
) -> tuple[RosterEntry, ...]:
    """The roster in leaf order, each member by its label (client/names.py); online is the relay's
    presence claim (ours: our connection). With ``made`` (kept by the caller between calls), the
    entry of a member whose label, presence and trust are as last time is reused, not made again
    (each sanitises its name; every member rebuilds the roster at every epoch and presence change);
    ``made`` is left holding this roster's entries. Members in ``unchecked`` (their join requests
    not verified yet) are shown unverified whatever the trust store says of their key."""
    entries = []
    fresh: RosterMade = {}
    for leaf in sorted(members):
        m = members[leaf]
        entry = _entry(m, my_key, connected, present, trust, labels, made, unchecked, fresh)
        entries.append(entry)
    if made is not None:
        made.clear()
        made.update(fresh)
    return tuple(entries)


def _entry(
    m: Member,
    my_key: bytes,
    connected: bool,
    present: Set[bytes],
    trust: TrustStore,
    labels: Mapping[bytes, str],
    made: RosterMade | None,
    unchecked: Set[bytes],
    fresh: RosterMade,
) -> RosterEntry:
    """One member's roster entry (see :func:`roster_entries`), reused from ``made`` if its inputs
    are as then; noted in ``fresh``."""
    key = m.identity_key
    mine = key == my_key
    online = connected if mine else member_id(key) in present
    state = TrustState.VERIFIED if mine else TrustState.UNVERIFIED if key in unchecked else trust.state(key)
    inputs = (labels.get(key, m.display_name), online, state, mine)
    kept = made.get(key) if made is not None else None
    if kept is not None and kept[0] == inputs:
        entry = kept[1]
    else:
        entry = RosterEntry(inputs[0], cached_fingerprint(key), online, state, is_me=mine)
    fresh[key] = (inputs, entry)
    return entry


class RosterBook:
    """The roster (:func:`roster_entries`) kept between calls, for a member who rebuilds it at every
    epoch: while our key, connection, trust marks and unchecked keys are as before, only the leaves
    whose member (by identity: a roster change reuses the Member objects that stay), label or
    presence (:meth:`~.bounds.RoomPresence.changed_since`) changed are made again: O(changes)
    entries and a sort of the leaves, not O(members) entries. tests/client/test_session_views.py
    checks it gives what :func:`roster_entries` gives afresh."""

    def __init__(self) -> None:
        self._members: Mapping[int, Member] | None = None
        self._labels: Mapping[bytes, str] = {}
        self._others: tuple[object, ...] = ()
        self._present_version = -1
        self._by_leaf: dict[int, RosterEntry] = {}
        self._leaves_of: dict[bytes, set[int]] = {}  # member id -> the leaves of the roster with it
        self._made: RosterMade = {}
        self._entries: tuple[RosterEntry, ...] = ()

    def entries(
        self,
        members: Mapping[int, Member],
        my_key: bytes,
        connected: bool,
        present: RoomPresence,
        trust: TrustStore,
        labels: Mapping[bytes, str],
        unchecked: frozenset[bytes] = frozenset(),
    ) -> tuple[RosterEntry, ...]:
        others = (my_key, connected, trust.marks, unchecked)
        before, old_labels = self._members, self._labels
        moved = present.changed_since(self._present_version) if others == self._others else None
        if before is None or moved is None:
            self._entries = roster_entries(
                members, my_key, connected, present, trust, labels, self._made, unchecked
            )
            self._by_leaf = dict(zip(sorted(members), self._entries, strict=True))
            self._leaves_of = {}
            for leaf, m in members.items():
                self._leaves_of.setdefault(member_id(m.identity_key), set()).add(leaf)
        elif members is not before or labels is not old_labels or moved:
            dirty = {leaf for leaf, m in members.items() if before.get(leaf) is not m}
            relabelled = {k for k, _ in labels.items() ^ old_labels.items()}
            if relabelled:
                dirty.update(leaf for leaf, m in members.items() if m.identity_key in relabelled)
            leaves_of = self._leaves_of
            for mid in moved:  # the leaves that had it then (the others are in dirty already)
                dirty.update(leaf for leaf in leaves_of.get(mid, ()) if leaf in members)
            by_leaf, made = self._by_leaf, self._made
            for leaf in (before.keys() - members.keys()) | dirty:
                if leaf in by_leaf:
                    old = before[leaf]
                    mine = leaves_of.get(member_id(old.identity_key))
                    if mine is not None:
                        mine.discard(leaf)
                    del by_leaf[leaf]
            for leaf in dirty:
                m = members[leaf]
                by_leaf[leaf] = _entry(m, my_key, connected, present, trust, labels, made, unchecked, made)
                leaves_of.setdefault(member_id(m.identity_key), set()).add(leaf)
            if len(made) > 2 * len(members) + 16:  # the entries (and ids) of members gone, bounded
                keys = {m.identity_key for m in members.values()}
                for k in [k for k in made if k not in keys]:
                    del made[k]
                for mid in [mid for mid, leaves in leaves_of.items() if not leaves]:
                    del leaves_of[mid]
            self._entries = tuple(map(by_leaf.__getitem__, sorted(members)))
        self._members, self._labels, self._others = members, labels, others
        self._present_version = present.version
        return self._entries


def lookalikes(
    member: Member, current: Collection[bytes], trust: TrustStore, labels: Mapping[bytes, str]
) -> tuple[str, ...]:
    """Who ``member``'s name looks like under another key: the ``current`` members' keys given
    (shown by their labels) and keys of our trust store that are not current members (by the name
    they last used and a fingerprint prefix)."""
    key = member.identity_key
    found = [labels[k] for k in current if k != key]
    mine = compact_fingerprint(key)
    for k in trust.keys_like(member.display_name):
        if k != key and k not in labels:
            theirs = compact_fingerprint(k)
            n = next((n for n in range(MIN_SUFFIX, len(theirs)) if theirs[:n] != mine[:n]), len(theirs))
            found.append(f"{trust.names(k)[-1]}{SEPARATOR}{theirs[:n]}")
    return tuple(sorted(found))


def build_tree_view(
    snap: TreeSnapshot, changed: frozenset[int], labels: Mapping[bytes, str] | None = None
) -> TreeView:
    """The /tree view of ``snap``: the key tree, or the ring (all of it new at every epoch); leaves
    are named by ``labels`` (by identity key, client/names.py) where given."""
    shown = {m.leaf: (labels or {}).get(m.identity_key, m.display_name) for m in snap.members}
    if snap.capacity == 0:  # a ring: every member took fresh keys in the run that made it
        return TreeView(
            "ring",
            snap.epoch,
            tuple(
                TreeNode(i, 0, shown[m.leaf], "", changed=True, mine=m.leaf == snap.my_leaf)
                for i, m in enumerate(snap.members)
            ),
        )
    mine = snap.my_path()
    keys, names = [k.hex()[:8] if k else "" for k in snap.keys], snap.labels
    set_by = {2 * leaf: name for leaf, name in snap.taints}
    nodes = tuple(
        TreeNode(
            i,
            level,
            shown.get(i // 2, names[i]) if i % 2 == 0 else keys[i][:4],
            keys[i],
            i in changed,
            i in mine,
            set_by.get(i, ""),
        )
        for i, level in enumerate(tm.levels(snap.capacity))
    )
    return TreeView("tree", snap.epoch, nodes)


def epoch_kind(ev: EpochChanged) -> TimelineKind:
    if ev.added:
        return TimelineKind.JOINED
    if ev.removed:
        reasons = ev.removal_reasons
        left = all(
            (r := reasons.get(m.identity_key)) is not None and r.code is RemovalCode.LEFT for m in ev.removed
        )
        return TimelineKind.LEFT if left else TimelineKind.REMOVED
    return TimelineKind.UPDATED


def describe_epoch(
    label: Callable[[Member], str],
    ev: EpochChanged,
    my_key: bytes,
    ring: bool,
    member_count: int,
    changed: int,
    ms: float,
) -> str:
    """The timeline line of an epoch change (docs/session.md, "What the timeline says"): members
    are named by ``label`` (client/names.py), and a removal's reason is the one the signed commit
    gives, so every member tells the same story."""
    who = "you" if ev.committer.identity_key == my_key else label(ev.committer)
    removed = []
    added = {m.identity_key for m in ev.added}
    for m in ev.removed:
        reason = ev.removal_reasons.get(m.identity_key)
        code, seconds = (reason.code, reason.seconds) if reason is not None else (None, 0)
        # The committer by name even at the committer: one sentence at every member.
        why = wording.removal_reason(code, seconds, label(ev.committer), m.identity_key in added)
        removed.append((label(m), why))
    for m in ev.not_admitted:
        reason = ev.removal_reasons.get(m.identity_key)
        seconds = reason.seconds if reason else 0
        removed.append((label(m), wording_ring.not_admitted(seconds, label(ev.committer))))
    cost = wording_ring.ring_cost(member_count, ms) if ring else wording.tree_cost(changed, ms)
    admission = wording.invites_changed(who, len(ev.invites_created), len(ev.invites_revoked))
    updater = who if ev.updated and not admission else None
    return wording.describe_epoch(removed, [label(m) for m in ev.added], updater, ev.epoch, cost, admission)
