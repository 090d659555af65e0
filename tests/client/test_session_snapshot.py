"""The /tree snapshot each member takes at every epoch: the incremental reading (the members of the
view before, with the epoch's change applied; only the keys that moved compared) equals the full one."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from groupchat.client.session.core_calls import TreeSnapshot, snapshot
from groupchat.core.events import EpochChanged
from groupchat.core.group import Group
from groupchat.core.identity import Identity, JoinRequest
from groupchat.core.outbox import OutboundKind

GID = b"groupchat room:snapshot"

# One commit by alice: how many to add, which other leaves to remove (indices into the removable
# ones, taken modulo their number), whether to update.
_commit = st.tuples(st.integers(0, 3), st.lists(st.integers(0, 50), max_size=3), st.booleans())


def _changed_full(after: TreeSnapshot, before: TreeSnapshot | None) -> frozenset[int]:
    """The plain definition of the nodes whose key is new."""
    if before is None or before.capacity != after.capacity:
        return frozenset(i for i, k in enumerate(after.keys) if k)
    return frozenset(i for i, (a, b) in enumerate(zip(before.keys, after.keys, strict=True)) if b and a != b)


def _two_members() -> tuple[Group, Group]:
    alice = Group.create(Identity.generate(), GID, "alice")
    pending = JoinRequest.create(alice.suite, Identity.generate(), GID, "bob")
    alice.receive(alice.commit(add=[pending.request]))
    (welcome,) = [o.data for o in alice.data_to_send() if o.kind is OutboundKind.WELCOME]
    return alice, Group.join(pending, welcome)


@settings(max_examples=30, deadline=None)
@given(st.lists(_commit, min_size=1, max_size=6), st.booleans())
def test_the_incremental_snapshot_equals_the_full_one(
    commits: list[tuple[int, list[int], bool]], stale: bool
) -> None:
    alice, bob = _two_members()
    views = {id(g): [snapshot(g)] for g in (alice, bob)}
    n = 0
    for adds, removes, update in commits:
        leaves = [m.leaf for m in alice.members() if m.leaf not in (alice.my_leaf, bob.my_leaf)]
        remove = sorted({leaves[r % len(leaves)] for r in removes}) if leaves else []
        if not (adds or remove or update):
            update = True
        pendings = [
            JoinRequest.create(alice.suite, Identity.generate(), GID, f"m{n + k}") for k in range(adds)
        ]
        n += adds
        data = alice.commit(add=[p.request for p in pendings], remove=remove, update=update)
        for g in (alice, bob):
            event = g.receive(data)
            assert isinstance(event, EpochChanged)
            history = views[id(g)]
            # A view from two epochs back (not the one before) must not be built on: the full reading.
            before = history[-2] if stale and len(history) > 1 else history[-1]
            incremental, full = snapshot(g, before, event), snapshot(g)
            assert incremental == full
            assert full.changed_since(history[-1]) == _changed_full(full, history[-1])
            assert full.changed_since(None) == _changed_full(full, None)
            history.append(incremental)
        alice.data_to_send()  # the welcomes, not delivered: the joiners need not open them here


def test_the_snapshot_keys_are_the_trees_own_keys() -> None:
    """The keys copied from the tree are what its public accessor gives, node by node."""
    from groupchat.core import tree_math as tm

    alice, bob = _two_members()
    pendings = [JoinRequest.create(alice.suite, Identity.generate(), GID, f"m{k}") for k in range(5)]
    data = alice.commit(add=[p.request for p in pendings], remove=[], update=True)
    alice.receive(data)
    bob.receive(data)
    for g in (alice, bob):
        tree = g._tree
        assert snapshot(g).keys == tuple(tree.own_key(x) for x in range(tm.node_width(tree.capacity)))


def test_what_runs_on_the_loop_and_what_in_the_thread() -> None:
    """A join request is made on the loop; a welcome of any size is opened in the thread: its size
    says little of its cost (a 9 KiB welcome can carry a tree of 8192 blank-leaf capacity, which
    takes tens of milliseconds to hash; docs/session.md, "Core calls")."""
    from groupchat.client.session.core_calls import MakeJoinRequest, OpenWelcome
    from groupchat.core.group import GroupConfig

    config = GroupConfig()
    pending = JoinRequest.create(config.suite(), Identity.generate(), GID, "joiner")
    assert not MakeJoinRequest(Identity.generate(), GID, "joiner", config).offload
    assert OpenWelcome(pending, bytes(100), config).offload


def test_a_view_of_another_group_is_not_built_on() -> None:
    """The next epoch's view builds on the last one only in the group it was taken from: another
    group's view at the same epoch and capacity (a rejoin) gives the full reading."""
    alice, bob = _two_members()
    _, other_bob = _two_members()  # the same room's group, made again: other identities
    stale = snapshot(other_bob)
    data = alice.commit(update=True)
    alice.receive(data)
    event = bob.receive(data)
    assert isinstance(event, EpochChanged) and stale.epoch + 1 == bob.epoch
    assert stale.capacity == snapshot(bob).capacity and stale.members != snapshot(bob).members
    assert snapshot(bob, stale, event) == snapshot(bob)
