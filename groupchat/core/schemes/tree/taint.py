"""Taint rules: which leaves a commit must re-key so that no kept secret outlives its chooser.

In the TGDH tree anyone who knows *any* current leaf secret computes the root, and a party
knows a current leaf secret only if it chose it (or, for its own leaf, was sent it). The tree
records who chose each leaf's secret (:meth:`RatchetTree.tainted_by`); these rules refresh a
chooser's leaves at exactly the events that must cut it off:

* **removal**: a commit that removes M re-keys every leaf M tainted (so M knows no current
  leaf secret afterwards);
* **update**: a commit with C's own Update re-keys every leaf C tainted (post-compromise
  security for what C chose: a copy of C's old state knows none of the new secrets);
* **tainted committer**: a committer whose own leaf is tainted (a joiner that has not updated
  yet) must include its own Update, which is the only way its leaf becomes untainted.

Leaves the same commit removes or adds into get fresh secrets anyway, and the committer's own
leaf is covered by its Update, so none of them is re-keyed. A re-key of a leaf that holds a
member carries the new secret sealed to that member's init key; a re-key of a vacated slot
carries nothing. The committer computes the plan with :func:`required_rekeys`; every receiver
runs :func:`check_commit`, which rejects an extra or a missing re-key with
:class:`~groupchat.core.errors.TaintRuleError`. Both are pure functions of the public tree.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Final

from ...commit import Operation, OpType
from ...errors import TaintRuleError
from .ratchet_tree import RatchetTree

# OpType's members as module constants, compared on every received commit: reading an Enum
# member through its class costs 0.05-0.1 µs in Python 3.11 (EnumType's attribute hooks), a
# module constant a few ns (issue 16).
_ADD: Final = OpType.ADD
_REKEY: Final = OpType.REKEY
_REMOVE: Final = OpType.REMOVE
_UPDATE: Final = OpType.UPDATE

__all__ = ["add_targets", "check_commit", "required_rekeys"]


def add_targets(tree: RatchetTree, removed: Collection[int], count: int) -> list[int]:
    """Leaves that ``count`` adds fill: the leftmost free leaves not vacated by the same commit.

    Leaves past the capacity are allowed (the tree doubles). Re-keyed slots are not skipped: a
    vacated slot that an add fills gets a fresh secret anyway and is therefore never re-keyed.
    """
    out: list[int] = []
    if count == 0:
        return out  # (finding the leftmost free leaf is a scan of the roster)
    leaf = tree.leftmost_free_leaf()
    for _ in range(count):
        while leaf in removed or (leaf < tree.capacity and tree.member(leaf) is not None):
            leaf += 1
        out.append(leaf)
        leaf += 1
    return out


def _reasons(
    tree: RatchetTree, committer: int, removed: Iterable[int], added: Iterable[int], update: bool
) -> dict[int, str]:
    """Required re-keys, each with the rule that requires it (for error messages)."""
    fresh = {*removed, *added, committer}
    need: dict[int, str] = {}
    for m in removed:
        for leaf in tree.tainted_leaves(m):
            if leaf not in fresh:
                need[leaf] = f"its secret was chosen by leaf {m}, which this commit removes"
    if update:
        for leaf in tree.tainted_leaves(committer):
            if leaf not in fresh:
                need[leaf] = f"its secret was chosen by the committer (leaf {committer}), which updates"
    return need


def required_rekeys(
    tree: RatchetTree, committer: int, removed: Iterable[int], added: Iterable[int], update: bool
) -> list[int]:
    """The leaves a commit with these removes, add targets and update must re-key, ascending."""
    return sorted(_reasons(tree, committer, removed, added, update))


def check_commit(tree: RatchetTree, committer: int, ops: Sequence[Operation]) -> None:
    """Raise :class:`TaintRuleError` unless ``ops`` re-key exactly what the rules require.

    Runs on the tree *before* the commit, after the generic operation checks (order, no leaf
    twice, removes of members); O(#operations + #leaves tainted by the removed and committer).
    """
    removed = [op.leaf for op in ops if op.type == _REMOVE]
    added = add_targets(tree, set(removed), sum(op.type == _ADD for op in ops))
    update = any(op.type == _UPDATE for op in ops)
    chooser = tree.tainted_by(committer)
    if chooser is not None and not update:
        raise TaintRuleError(
            f"the committer's leaf {committer} is tainted by leaf {chooser} (it has not updated since "
            "its secret was chosen for it), so its commit must include its own update"
        )
    need = _reasons(tree, committer, removed, added, update)
    rekeyed = [op for op in ops if op.type == _REKEY]
    for op in rekeyed:
        if op.leaf not in need:
            why = (
                "the committer's own leaf is refreshed by an update"
                if op.leaf == committer
                else ("no taint rule requires it")
            )
            raise TaintRuleError(f"commit re-keys leaf {op.leaf}, but {why} (an extra re-key)")
        if tree.member(op.leaf) is not None and op.sealed is None:
            raise TaintRuleError(
                f"re-key of leaf {op.leaf} carries no sealed secret, but the leaf holds a member that "
                "has not updated yet and must receive its new secret sealed to its init key"
            )
        if tree.member(op.leaf) is None and op.sealed is not None:
            raise TaintRuleError(f"re-key of the vacated leaf {op.leaf} must not carry a sealed secret")
    missing = sorted(set(need) - {op.leaf for op in rekeyed})
    if missing:
        leaf = missing[0]
        raise TaintRuleError(f"commit must re-key leaf {leaf}: {need[leaf]} (a missing re-key)")
