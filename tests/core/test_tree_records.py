"""The encoded tree from kept records is byte for byte the tree encoded afresh.

``RatchetTree.encode`` (what every Welcome and stored state carries) re-encodes only the leaves
whose key, member or chooser changed since its last call, and re-joins only the blocks of leaf
records and parent keys that hold a changed node (``tree_codec.TreeRecords``). Each test
here compares it with ``encode_public_tree`` of the same tree read through its public accessors,
which encodes every leaf again: after adds that grow the tree, removes, updates, re-keys, drafts
rolled back (a built commit, a rejected one), drafts replayed with ``apply`` (an echo) and a
decode of the encoding (a joiner, a restored state), in any order Hypothesis finds.
"""

from __future__ import annotations

import os

import pytest
from group_harness import Harness
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_tree_decoding import GID, SUITE

from groupchat.core import tree_math as tm
from groupchat.core.errors import UsageError
from groupchat.core.identity import Identity, JoinRequest
from groupchat.core.key_schedule import welcome_key_nonce
from groupchat.core.schemes.tree.ratchet_tree import RatchetTree
from groupchat.core.schemes.tree.tree_codec import PublicTree, encode_public_tree
from groupchat.core.welcome import GroupInfo, WelcomeMessage, open_public_state

POOL = [JoinRequest.create(SUITE, Identity.generate(), GID, f"r{i}").request for i in range(10)]
OTHER_GROUP = JoinRequest.create(SUITE, Identity.generate(), b"another-room", "x").request
STEPS = ("add", "remove", "update", "rekey", "rollback", "replay", "decode")


def fresh(tree: RatchetTree) -> bytes:
    """Every leaf encoded again, from the tree's public accessors."""
    width = tm.node_width(tree.capacity)
    public = PublicTree(
        tree.capacity,
        [tree.own_key(x) for x in range(width)],
        [tree.member(leaf) for leaf in range(tree.capacity)],
        [tree.tainted_by(leaf) for leaf in range(tree.capacity)],
    )
    return encode_public_tree(public)


def assert_same(tree: RatchetTree) -> None:
    assert tree.encode() == fresh(tree)


def members(tree: RatchetTree) -> list[int]:
    return [leaf for leaf, _ in tree.members()]


def change(tree: RatchetTree, data: st.DataObject, kind: str) -> None:
    """One add, remove, update or re-key on ``tree``, as a commit's build would write it; or (only
    inside a draft) a new member or chooser for a leaf that keeps its key."""
    present = members(tree)
    if kind == "relabel" and present:
        leaf = data.draw(st.sampled_from(present))
        member, chooser = tree.member(leaf), tree.tainted_by(leaf)
        free = [r for r in POOL if tree.leaf_of_identity(r.identity_key) is None]
        if free and data.draw(st.booleans()):
            member = data.draw(st.sampled_from(free))
        else:
            choosers = [c for c in [None, *present] if c not in (leaf, chooser)]
            if not choosers:  # the only member, untainted
                return
            chooser = data.draw(st.sampled_from(choosers))
        tree.set_leaf(leaf, tree.leaf_key(leaf) or os.urandom(32), member, chooser)
        return
    if kind == "add" or not present:
        free = [r for r in POOL if tree.leaf_of_identity(r.identity_key) is None]
        if not free:
            return
        leaf = tree.leftmost_free_leaf()  # may grow the tree
        chooser = data.draw(st.sampled_from(present)) if present else None
        tree.build_path(leaf, os.urandom(32), data.draw(st.sampled_from(free)), None, chooser)
        return
    leaf = data.draw(st.sampled_from(present))
    others = [m for m in present if m != leaf]
    chooser = data.draw(st.sampled_from(others)) if others else None
    if kind == "remove" and chooser is not None:
        tree.build_path(leaf, os.urandom(32), None, None, chooser)
    elif kind == "rekey":
        tree.build_path(leaf, os.urandom(32), tree.member(leaf), None, chooser)
    else:
        tree.build_path(leaf, os.urandom(32), tree.member(leaf), None, None)


def decodable(tree: RatchetTree) -> bool:
    """Whether the decoder's taint invariant holds (every chooser another current member)."""
    return all(tree.member(c) is not None for c in tree.taint_record().values())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_kept_records_encode_as_a_fresh_encoding(data: st.DataObject) -> None:
    tree = RatchetTree(SUITE, 1)
    for _ in range(data.draw(st.integers(1, 24), label="steps")):
        step = data.draw(st.sampled_from(STEPS))
        if step in ("rollback", "replay"):
            before = tree.encode()
            tree.begin()
            for _ in range(data.draw(st.integers(1, 3))):
                kind = data.draw(st.sampled_from([*STEPS[:4], "relabel"]))
                change(tree, data, kind)
                if kind == "relabel" or data.draw(st.booleans()):
                    assert_same(tree)  # the welcome is encoded inside the draft
            changes = tree.changes()
            tree.rollback()
            assert tree.encode() == before
            if step == "replay":
                tree.apply(changes)
        elif step == "decode":
            if decodable(tree):
                tree = RatchetTree.decode(SUITE, tree.encode())
        else:
            change(tree, data, step)
        assert_same(tree)


def test_a_tree_of_two_groups_is_still_refused() -> None:
    """The kept group-id count refuses what the fresh encoder refuses, and forgets a member that left."""
    tree = RatchetTree(SUITE, 1)
    tree.build_path(0, os.urandom(32), POOL[0], None)
    tree.build_path(1, os.urandom(32), OTHER_GROUP, None, 0)
    for encode in (tree.encode, lambda: fresh(tree)):
        with pytest.raises(UsageError, match="more than one group"):
            encode()
    tree.build_path(1, os.urandom(32), None, None, 0)  # the other group's member leaves
    assert_same(tree)


def test_groups_encode_their_trees_as_afresh() -> None:
    """Real commits (adds that grow the tree, removes, updates, a joiner's first update) at several
    members: every member's encoded tree, and so every Welcome's, stays the fresh encoding."""
    h = Harness()
    h.add("m0", 3)
    for step in range(6):
        names = list(h.members)
        committer = names[step % len(names)]
        if step % 3 == 0:
            h.commit(committer, add=[h.fresh_name()])
        elif step % 3 == 1:
            h.remove(committer, next(n for n in names if n != committer))
        else:
            h.update(committer)
        h.assert_consistent()
        for g in h.members.values():
            assert_same(g._tree)


def test_kept_blocks_across_a_grow_and_its_rollback() -> None:
    """Records and parent keys are kept joined in blocks of 16: a tree of several blocks, grown
    past a power of two inside a draft (new blocks, every parent moved), rolled back (blocks
    dropped), replayed, and changed in different blocks, still encodes as afresh."""
    requests = [JoinRequest.create(SUITE, Identity.generate(), GID, f"b{i}").request for i in range(130)]
    tree = RatchetTree(SUITE, 1)
    for leaf in range(128):
        tree.build_path(leaf, os.urandom(32), requests[leaf], None, 0 if leaf else None)
    assert tree.capacity == 128
    before = tree.encode()
    assert before == fresh(tree)
    tree.begin()
    tree.build_path(128, os.urandom(32), requests[128], None, 0)  # grows to 256 leaves
    assert tree.capacity == 256
    assert_same(tree)
    changes = tree.changes()
    tree.rollback()
    assert tree.capacity == 128 and tree.encode() == before == fresh(tree)
    tree.apply(changes)
    assert_same(tree)
    tree.build_path(70, os.urandom(32), None, None, 0)  # a remove in the second block
    tree.build_path(129, os.urandom(32), requests[129], None, 3)  # an add in the third
    tree.build_path(5, os.urandom(32), requests[5], None, None)  # an update in the first
    assert_same(tree)
    assert RatchetTree.decode(SUITE, tree.encode()).encode() == fresh(tree)


def test_a_welcome_carries_the_tree_encoded_afresh() -> None:
    """End to end: a real Welcome carries, beside its signed GroupInfo, the committer's new tree
    (built from the kept pieces) encoded afresh, and the GroupInfo signs that tree's hash."""
    h = Harness()
    h.add("m0", 4)
    h.remove("m1", "m2")
    committer = h.members["m3"]
    pj = h.join_request("late")
    committer.commit(add=[pj.request])
    pending = committer._pending
    assert pending is not None and pending.welcome is not None
    welcome = WelcomeMessage.decode(pending.welcome)
    key, nonce = welcome_key_nonce(SUITE, pending.secrets.welcome_secret)
    info_bytes = SUITE.open(key, nonce, b"", welcome.welcome.encrypted_group_info, "test")
    info = GroupInfo.decode(info_bytes)
    assert info.encode() == info_bytes
    info.verify(SUITE, committer._identity.public_key)
    tree = open_public_state(SUITE, welcome, pending.secrets.welcome_secret)
    committer.receive(pending.message)  # the echo: the committer's tree is now the draft's
    assert tree == fresh(committer._tree)
    assert info.group_context.tree_hash == committer._tree.tree_hash  # the signed hash binds it
