"""Malicious but correctly signed commits: a real member breaks one structural rule on purpose.

Each crafted commit is the committer's genuine commit with its operation list changed and then
re-signed with the committer's real identity key over the real GroupContext (``rebuild``), so
the signature check passes and the rule under test is what refuses it. Every receiver refuses
with the exact error class and its whole state is unchanged (``fingerprint``); then the genuine
commit is delivered and the group still agrees and talks (``finish``).

Rules: operations ordered removes, re-keys, adds, update; each add in the leftmost free leaf (not
one the same commit vacates); each path exactly as long as the tree needs; no public key twice
(within a path, across the paths of one commit, or against a key the tree keeps); removes of
members only; updates of the committer's own leaf only; no leaf changed twice.
"""

from __future__ import annotations

import itertools

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from group_harness import Harness
from rejections import assert_rejected, finish, rebuild

from groupchat.core.commit import CommitMessage, Operation, OpType
from groupchat.core.errors import (
    DuplicateKeyError,
    GroupChatError,
    InvalidCommitError,
    UnknownMemberError,
    WrongSchemeError,
)
from groupchat.core.identity import PendingJoin

RECEIVERS = ["m0", "m2", "m4"]


def fresh_key() -> bytes:
    return X25519PrivateKey.generate().public_key().public_bytes_raw()


def operations(commit: bytes) -> list[Operation]:
    return list(CommitMessage.decode(commit).commit.operations)


def shape(ops: list[Operation]) -> list[tuple[OpType, int]]:
    return [(op.type, op.leaf) for op in ops]


def moved(op: Operation, leaf: int) -> Operation:
    return Operation(op.type, leaf, op.path, op.request, op.sealed)


def with_path(op: Operation, path: tuple[bytes, ...]) -> Operation:
    return Operation(op.type, op.leaf, path, op.request, op.sealed)


def mixed_commit(h: Harness) -> tuple[bytes, PendingJoin]:
    """m1 removes m3, adds a joiner (into leaf 5: leaf 3 is vacated by this very commit) and
    updates (m1 has not updated since joining, so its commits always carry its update)."""
    joiner = h.join_request("joiner")
    commit = h.members["m1"].commit(add=[joiner.request], remove=[h.leaf("m3")], update=True)
    assert shape(operations(commit)) == [(OpType.REMOVE, 3), (OpType.ADD, 5), (OpType.UPDATE, 1)]
    return commit, joiner


def refused_then_finish(
    h: Harness,
    commit: bytes,
    crafted: list[bytes],
    error: type[GroupChatError],
    joiners: tuple[PendingJoin, ...] = (),
) -> None:
    for data in crafted:
        assert_rejected(h, RECEIVERS, data, error)
    finish(h, "m1", commit, ["m0", "m2"], joiners)


# --- operation order ---------------------------------------------------------------------------


def test_control_the_rebuilt_mixed_commit_is_accepted(h: Harness) -> None:
    commit, joiner = mixed_commit(h)
    assert rebuild(h, "m1", commit, ops=operations(commit)) == commit
    finish(h, "m1", commit, ["m0", "m2"], (joiner,))


@pytest.mark.parametrize(
    "order",
    [p for p in itertools.permutations(range(3)) if p != (0, 1, 2)],
    ids=lambda p: "".join(map(str, p)),
)
def test_operations_out_of_order(h: Harness, order: tuple[int, ...]) -> None:
    commit, joiner = mixed_commit(h)
    ops = operations(commit)
    crafted = rebuild(h, "m1", commit, ops=[ops[i] for i in order])
    assert_rejected(h, RECEIVERS, crafted, InvalidCommitError)
    with pytest.raises(InvalidCommitError, match="ordered removes, re-keys, adds, then update"):
        h.members["m0"].receive(crafted)
    finish(h, "m1", commit, ["m0", "m2"], (joiner,))


def test_rekey_before_the_remove_it_follows_from(h: Harness) -> None:
    """m1 removes m0, who chose m2..m4's secrets: the commit re-keys them after the remove."""
    commit = h.members["m1"].commit(remove=[h.leaf("m0")])
    ops = operations(commit)
    assert shape(ops) == [
        (OpType.REMOVE, 0),
        (OpType.REKEY, 2),
        (OpType.REKEY, 3),
        (OpType.REKEY, 4),
        (OpType.UPDATE, 1),
    ]
    swapped = rebuild(h, "m1", commit, ops=[ops[1], ops[0], *ops[2:]])
    after_update = rebuild(h, "m1", commit, ops=[ops[0], ops[4], *ops[1:4]])
    for data in (swapped, after_update):
        assert_rejected(h, ["m2", "m3", "m4"], data, InvalidCommitError)
    h.members["m1"].discard_pending_commit()
    h.update("m1")  # the group goes on: an honest commit from the same member is accepted
    h.assert_consistent(["m0", "m3"])


# --- where adds go -----------------------------------------------------------------------------


@pytest.mark.parametrize("leaf", [6, 7, 8], ids=["next-free", "last-free", "beyond"])
def test_add_not_in_the_leftmost_free_leaf(h: Harness, leaf: int) -> None:
    commit, joiner = mixed_commit(h)
    ops = operations(commit)
    crafted = rebuild(h, "m1", commit, ops=[ops[0], moved(ops[1], leaf), ops[2]])
    with pytest.raises(InvalidCommitError, match=f"must use leaf 5 \\(the leftmost free\\), not {leaf}"):
        h.members["m2"].receive(crafted)
    refused_then_finish(h, commit, [crafted], InvalidCommitError, (joiner,))


def test_add_past_a_slot_vacated_earlier(h: Harness) -> None:
    """m3 was removed by an earlier commit: its slot is the leftmost free leaf, not leaf 5."""
    h.remove("m0", "m3")
    joiner = h.join_request("joiner")
    commit = h.members["m1"].commit(add=[joiner.request])
    ops = operations(commit)
    assert shape(ops) == [(OpType.ADD, 3), (OpType.UPDATE, 1)]
    crafted = rebuild(h, "m1", commit, ops=[moved(ops[0], 5), ops[1]])
    with pytest.raises(InvalidCommitError, match="must use leaf 3"):
        h.members["m2"].receive(crafted)
    assert_rejected(h, ["m0", "m2", "m4"], crafted, InvalidCommitError)
    finish(h, "m1", commit, ["m0", "m2"], (joiner,))


def test_two_adds_in_swapped_leaves(h: Harness) -> None:
    a, b = h.join_request("a"), h.join_request("b")
    commit = h.members["m1"].commit(add=[a.request, b.request])
    ops = operations(commit)
    assert shape(ops) == [(OpType.ADD, 5), (OpType.ADD, 6), (OpType.UPDATE, 1)]
    crafted = rebuild(h, "m1", commit, ops=[moved(ops[0], 6), moved(ops[1], 5), ops[2]])
    refused_then_finish(h, commit, [crafted], InvalidCommitError, (a, b))


# --- path lengths ------------------------------------------------------------------------------


@pytest.mark.parametrize("index", [1, 2], ids=["add-path", "update-path"])
def test_path_of_the_wrong_length(h: Harness, index: int) -> None:
    commit, joiner = mixed_commit(h)
    ops = operations(commit)
    op = ops[index]
    n = len(op.path)
    assert n == (3 if index == 1 else 4)  # leaf 5's parent over the blank leaves 6-7 passes through
    crafted = []
    for path in (op.path[:-1], op.path[:1], (*op.path, fresh_key())):
        bad = list(ops)
        bad[index] = with_path(op, path)
        crafted.append(rebuild(h, "m1", commit, ops=bad))
    with pytest.raises(
        InvalidCommitError, match=f"path for leaf {op.leaf} has {n - 1} keys, the tree needs {n}"
    ):
        h.members["m4"].receive(crafted[0])
    refused_then_finish(h, commit, crafted, InvalidCommitError, (joiner,))


def test_empty_path_is_refused_as_a_ring_commit(h: Harness) -> None:
    # Operations without paths are what a ring group's commits carry (the roster change only):
    # a tree group refuses them as the other scheme's, before any key is touched.
    commit, joiner = mixed_commit(h)
    ops = operations(commit)
    crafted = rebuild(h, "m1", commit, ops=[ops[0], ops[1], with_path(ops[2], ())])
    with pytest.raises(WrongSchemeError, match="carries no tree path"):
        h.members["m0"].receive(crafted)
    refused_then_finish(h, commit, [crafted], WrongSchemeError, (joiner,))


def test_remove_path_of_the_wrong_length(h: Harness) -> None:
    commit = h.members["m1"].commit(remove=[h.leaf("m3")])
    ops = operations(commit)
    assert shape(ops) == [(OpType.REMOVE, 3), (OpType.UPDATE, 1)]
    short = rebuild(h, "m1", commit, ops=[with_path(ops[0], ops[0].path[:-1]), ops[1]])
    long = rebuild(h, "m1", commit, ops=[with_path(ops[0], (*ops[0].path, fresh_key())), ops[1]])
    refused_then_finish(h, commit, [short, long], InvalidCommitError)


# --- duplicate keys ----------------------------------------------------------------------------


def test_same_key_in_two_paths_of_one_commit(h: Harness) -> None:
    commit, joiner = mixed_commit(h)
    ops = operations(commit)
    add, update = ops[1], ops[2]
    crafted = rebuild(h, "m1", commit, ops=[ops[0], add, with_path(update, (add.path[0], *update.path[1:]))])
    refused_then_finish(h, commit, [crafted], DuplicateKeyError, (joiner,))


def test_path_key_already_held_elsewhere_in_the_tree(h: Harness) -> None:
    """m1's new leaf key is m0's current leaf key, which this commit does not replace."""
    commit = h.members["m1"].commit(update=True)
    (update,) = operations(commit)
    m0_key = h.members["m2"].leaf_public_key(0)
    assert m0_key is not None
    crafted = rebuild(h, "m1", commit, ops=[with_path(update, (m0_key, *update.path[1:]))])
    refused_then_finish(h, commit, [crafted], DuplicateKeyError)


# --- whom a commit may touch -------------------------------------------------------------------


@pytest.mark.parametrize("leaf", [5, 7], ids=["blank", "last-blank"])
def test_remove_of_a_blank_leaf(h: Harness, leaf: int) -> None:
    commit = h.members["m1"].commit(remove=[h.leaf("m3")])
    ops = operations(commit)
    crafted = rebuild(h, "m1", commit, ops=[moved(ops[0], leaf), ops[1]])
    with pytest.raises(UnknownMemberError, match=f"removes leaf {leaf}, which holds no member"):
        h.members["m0"].receive(crafted)
    refused_then_finish(h, commit, [crafted], UnknownMemberError)


def test_remove_of_a_vacated_leaf(h: Harness) -> None:
    """m3's slot after m3 was removed: keyed (by its remover) but holding no member."""
    h.remove("m0", "m3")
    assert h.members["m0"].leaf_public_key(3) is not None
    commit = h.members["m1"].commit(remove=[h.leaf("m4")])
    ops = operations(commit)
    crafted = rebuild(h, "m1", commit, ops=[moved(ops[0], 3), *ops[1:]])
    assert_rejected(h, ["m0", "m2", "m4"], crafted, UnknownMemberError)
    finish(h, "m1", commit, ["m0", "m2"])


def test_update_of_another_members_leaf(h: Harness) -> None:
    commit = h.members["m1"].commit(update=True)
    (update,) = operations(commit)
    crafted = rebuild(h, "m1", commit, ops=[moved(update, h.leaf("m2"))])
    with pytest.raises(InvalidCommitError, match="can only update its own leaf"):
        h.members["m0"].receive(crafted)
    refused_then_finish(h, commit, [crafted], InvalidCommitError)


def test_same_leaf_twice(h: Harness) -> None:
    commit, joiner = mixed_commit(h)
    remove, add, update = operations(commit)
    crafted = [
        rebuild(h, "m1", commit, ops=[remove, remove, add, update]),  # one member removed twice
        rebuild(h, "m1", commit, ops=[remove, moved(add, 3), update]),  # a slot vacated and filled
        rebuild(h, "m1", commit, ops=[remove, add, update, update]),  # two updates
        rebuild(h, "m1", commit, ops=[remove, add, moved(add, 5), update]),  # two adds, one leaf
    ]
    with pytest.raises(InvalidCommitError, match="same leaf twice"):
        h.members["m0"].receive(crafted[0])
    refused_then_finish(h, commit, crafted, InvalidCommitError, (joiner,))
