"""Taint tracking in the DH tree (issue 6): who chose each leaf's secret, and the re-key rules.

* Rule enforcement: for each rule a commit that breaks it but is correctly signed (built by
  driving the committer's internals, or re-encoded and re-signed) is rejected by every receiver
  with :class:`TaintRuleError`, and the receiver's whole state is unchanged; the legitimate
  commit is then accepted.
* The sealed re-key: A adds J, B removes A before J updates; J opens its new leaf secret and
  follows the group; J's first update then deletes its init key.
* The three leak scenarios of issue 6, at the level of the public tree: after the removal, no
  leaf is tainted by the removed member and no public key it chose is still in the tree. (The
  keeper adversary that re-derives epochs from kept secrets lives in another test module.)
* The public record itself: covered by the tree hash, round-trips through the welcome encoding,
  and a random walk keeps its invariants (agreed by all, choosers are members, a member is
  tainted exactly while it holds its init key).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

import pytest
from group_harness import Harness, fingerprint, untainted, welcome_for
from rejections import assert_rejected, rebuild

from groupchat.core.commit import CommitMessage, Operation, OpType, SealedSecret
from groupchat.core.errors import GroupChatError, InvalidValueError, TaintRuleError
from groupchat.core.events import EpochChanged
from groupchat.core.group import Group
from groupchat.core.identity import JoinRequest
from groupchat.core.schemes.base import EpochInput
from groupchat.core.schemes.tree import TreeScheme, taint
from groupchat.core.schemes.tree.ratchet_tree import PathSecrets, RatchetTree, TreeChanges

# --- helpers -----------------------------------------------------------------------------------


def record(h: Harness) -> dict[int, int]:
    """The public taint record, checked to be the same at every member."""
    records = [g.taint_record() for g in h.members.values()]
    assert all(r == records[0] for r in records[1:])
    return records[0]


def tree_keys(group: Group) -> set[bytes]:
    """Every public key currently in ``group``'s tree (leaves and parents)."""
    tree = group._tree
    return {k for x in range(2 * tree.capacity - 1) if (k := tree.own_key(x)) is not None}


def chosen_by(group: Group, chooser: int) -> set[bytes]:
    """Public keys of the leaves whose current secret ``chooser`` chose, its own leaf included."""
    keys = {group.leaf_public_key(leaf) for leaf, c in group.taint_record().items() if c == chooser}
    keys.add(group.leaf_public_key(chooser))
    return {k for k in keys if k is not None}


def forcing_rekeys(monkeypatch: pytest.MonkeyPatch, change: Callable[[list[int]], list[int]]) -> None:
    """Make the *committer* compute a wrong re-key set (receivers keep the real rule)."""
    real = taint.required_rekeys

    def fake(*args: object) -> list[int]:
        return change(real(*args))  # type: ignore[arg-type]

    monkeypatch.setattr(taint, "required_rekeys", fake)


def rejected(h: Harness, committer: str, bad: bytes, receivers: Iterable[str]) -> None:
    """Every receiver rejects ``bad`` with TaintRuleError and is unchanged; the committer drops it."""
    assert_rejected(h, list(receivers), bad, TaintRuleError)
    h.members[committer].discard_pending_commit()


# --- rule enforcement --------------------------------------------------------------------------


def test_removal_without_rekeying_the_removed_members_taint(monkeypatch: pytest.MonkeyPatch) -> None:
    """m1 removed m3 (slot 3 tainted by m1); a commit removing m1 must re-key slot 3."""
    h = untainted(4)
    h.remove("m1", "m3")
    assert record(h) == {3: 1}
    with monkeypatch.context() as m:
        forcing_rekeys(m, lambda need: [x for x in need if x != 3])
        bad = h.members["m2"].commit(remove=[1])
    assert [op.type for op in CommitMessage.decode(bad).commit.operations] == [OpType.REMOVE]
    with pytest.raises(TaintRuleError, match=r"must re-key leaf 3: .*leaf 1, which this commit removes"):
        h.members["m0"].receive(bad)
    rejected(h, "m2", bad, ["m0", "m1", "m4"])
    h.remove("m2", "m1")  # the honest commit is accepted by everyone
    assert record(h) == {1: 2, 3: 2}  # both slots now carry secrets m2 chose
    h.assert_consistent(["m0", "m4"])


def test_update_without_rekeying_the_updaters_taint(monkeypatch: pytest.MonkeyPatch) -> None:
    h = untainted(4)
    h.remove("m1", "m3")
    with monkeypatch.context() as m:
        forcing_rekeys(m, lambda need: [])
        bad = h.members["m1"].commit(update=True)
    with pytest.raises(TaintRuleError, match=r"must re-key leaf 3: .*committer \(leaf 1\), which updates"):
        h.members["m2"].receive(bad)
    rejected(h, "m1", bad, ["m0", "m2", "m4"])
    h.update("m1")
    assert record(h) == {3: 1}
    h.assert_consistent(["m0", "m2"])


def test_extra_rekey_of_an_untainted_member(monkeypatch: pytest.MonkeyPatch) -> None:
    """A re-key no rule asks for would hand the committer a secret of someone else's leaf."""
    h = untainted(4)
    with monkeypatch.context() as m:
        forcing_rekeys(m, lambda need: [*need, 4])
        bad = h.members["m2"].commit(update=True)
    ops = CommitMessage.decode(bad).commit.operations
    assert [(op.type, op.leaf) for op in ops] == [(OpType.REKEY, 4), (OpType.UPDATE, 2)]
    with pytest.raises(TaintRuleError, match=r"re-keys leaf 4, but no taint rule requires it"):
        h.members["m0"].receive(bad)
    # m4 itself rejects it too, before trying to open anything.
    rejected(h, "m2", bad, ["m0", "m1", "m3", "m4"])
    h.update("m2")
    h.assert_consistent(["m4"])


def test_extra_rekey_of_the_committers_own_leaf() -> None:
    h = untainted(2)
    commit = h.members["m1"].commit(update=True)
    (upd,) = CommitMessage.decode(commit).commit.operations
    bad = rebuild(h, "m1", commit, ops=[Operation(OpType.REKEY, 1, upd.path), upd])
    # The generic check (same leaf twice) fires first; without the update it is the taint rule.
    bad_alone = rebuild(h, "m1", commit, ops=[Operation(OpType.REKEY, 1, upd.path)])
    with pytest.raises(GroupChatError, match="same leaf twice"):
        h.members["m0"].receive(bad)
    with pytest.raises(TaintRuleError, match=r"re-keys leaf 1, but the committer's own leaf is refreshed"):
        h.members["m0"].receive(bad_alone)


def test_tainted_committer_must_update() -> None:
    """A joiner that has not updated yet cannot commit without its own update."""
    h = Harness()
    h.add("m0", 3)  # m1..m3 tainted by m0
    g = h.members["m2"]
    commit = g.commit(remove=[h.leaf("m3")])  # the core adds the update on its own
    ops = CommitMessage.decode(commit).commit.operations
    assert [op.type for op in ops] == [OpType.REMOVE, OpType.UPDATE]
    bad = rebuild(h, "m2", commit, ops=list(ops[:1]))
    with pytest.raises(TaintRuleError, match=r"committer's leaf 2 is tainted by leaf 0 .*own update"):
        h.members["m0"].receive(bad)
    assert_rejected(h, ["m0", "m1", "m3"], bad, TaintRuleError)
    events = h.deliver(commit)
    assert isinstance(events["m0"], EpochChanged)
    del h.members["m3"]
    assert record(h) == {1: 0, 3: 2}  # m2 is clean now, slot 3 is m2's choice
    h.assert_consistent(["m0", "m1", "m2"])


def adder_removed_before_joiner_updates() -> tuple[Harness, bytes, str]:
    """m1 adds J; m2 prepares (not delivered) the commit removing m1, which must re-key J."""
    h = untainted(3)
    res = h.commit("m1", add=["J"])
    assert res.joined == ["J"]
    j = h.members["J"]
    assert j.tainted_by(j.my_leaf) == 1 and j.holds_init_key
    commit = h.members["m2"].commit(remove=[1])
    return h, commit, "J"


def test_rekey_of_a_joiner_without_sealed_secret() -> None:
    h, commit, _ = adder_removed_before_joiner_updates()
    ops = list(CommitMessage.decode(commit).commit.operations)
    assert [op.type for op in ops] == [OpType.REMOVE, OpType.REKEY]
    assert ops[1].leaf == h.leaf("J") and ops[1].sealed is not None
    ops[1] = Operation(OpType.REKEY, ops[1].leaf, ops[1].path)
    bad = rebuild(h, "m2", commit, ops=ops)
    with pytest.raises(TaintRuleError, match=rf"re-key of leaf {h.leaf('J')} carries no sealed secret"):
        h.members["m0"].receive(bad)
    assert_rejected(h, ["m0", "m3", "J"], bad, TaintRuleError)


def test_sealed_secret_on_a_vacated_slot() -> None:
    h = untainted(4)
    h.remove("m1", "m3")
    commit = h.members["m2"].commit(remove=[1])
    ops = list(CommitMessage.decode(commit).commit.operations)
    assert [(op.type, op.leaf, op.sealed) for op in ops[1:]] == [(OpType.REKEY, 3, None)]
    ops[1] = Operation(OpType.REKEY, 3, ops[1].path, sealed=SealedSecret(bytes(32), bytes(48)))
    bad = rebuild(h, "m2", commit, ops=ops)
    assert_rejected(h, ["m0", "m4"], bad, TaintRuleError)


@pytest.mark.parametrize("wrong", ["another member's init key", "another leaf's context", "a wrong secret"])
def test_sealed_rekey_to_the_wrong_target(monkeypatch: pytest.MonkeyPatch, wrong: str) -> None:
    """Only the joiner can tell: it rejects the commit (unchanged), the others cannot see it."""
    h, _, _ = adder_removed_before_joiner_updates()
    h.members["m2"].discard_pending_commit()
    other = JoinRequest.create(h.suite, h.members["m3"]._identity, h.group_id, "x")
    real = TreeScheme._seal_rekey

    def bad_seal(
        self: TreeScheme, ctx: EpochInput, member: JoinRequest, leaf: int, secret: bytes
    ) -> SealedSecret:
        if wrong == "another member's init key":
            return real(self, ctx, other.request, leaf, secret)
        if wrong == "another leaf's context":
            return real(self, ctx, member, leaf + 1, secret)
        return real(self, ctx, member, leaf, bytes(31) + b"\x09")

    with monkeypatch.context() as m:
        m.setattr(TreeScheme, "_seal_rekey", bad_seal)
        bad = h.members["m2"].commit(remove=[1])
    assert_rejected(h, ["J"], bad, TaintRuleError)
    with pytest.raises(TaintRuleError, match=rf"our leaf {h.leaf('J')}"):
        h.members["J"].receive(bad)
    for name in ("m0", "m3"):  # the rest of the group cannot check the HPKE recipient
        assert isinstance(h.members[name].receive(bad), EpochChanged)


# --- the sealed re-key, end to end ------------------------------------------------------------


def test_joiner_follows_a_sealed_rekey_then_its_update_deletes_the_init_key() -> None:
    h, commit, j_name = adder_removed_before_joiner_updates()
    j = h.members[j_name]
    old_key = j.leaf_public_key(j.my_leaf)
    events = h.deliver(commit)
    assert all(isinstance(ev, EpochChanged) for n, ev in events.items() if n != "m1")
    del h.members["m1"]
    assert j.leaf_public_key(j.my_leaf) != old_key
    assert j.tainted_by(j.my_leaf) == 2 and j.holds_init_key  # still tainted: keep the key
    assert record(h) == {1: 2, j.my_leaf: 2}
    h.assert_consistent(["J", "m0", "m2", "m3"])
    h.update("J")
    assert (j.holds_init_key, j.tainted_by(j.my_leaf)) == (False, None)  # the init key is deleted
    assert record(h) == {1: 2}
    h.assert_consistent(["J", "m3"])


def test_joiner_rekeyed_twice_before_it_updates() -> None:
    """m1 adds J; m2 removes m1 (re-keys J); m3 removes m2 (re-keys J again); J keeps up."""
    h, commit, _ = adder_removed_before_joiner_updates()
    h.deliver(commit)
    del h.members["m1"]
    res = h.commit("m3", remove=["m2"])
    assert res.removed == ["m2"]
    j = h.members["J"]
    assert j.tainted_by(j.my_leaf) == 3 and j.holds_init_key
    h.assert_consistent(["J", "m0", "m3"])


# --- the three leak scenarios of issue 6 -------------------------------------------------------


def assert_cut_off(h: Harness, removed_leaf: int, kept_keys: set[bytes]) -> None:
    """No leaf is tainted by the removed leaf's old member and none of its chosen keys remains."""
    for g in h.members.values():
        assert removed_leaf not in g.taint_record().values()
        assert not kept_keys & tree_keys(g), "a public key the removed member chose is still in the tree"


def test_removed_remover_keeps_nothing() -> None:
    """C removes X and keeps the secret of X's old slot; later B removes C."""
    h = untainted(4)  # m1 = C, m2 = B, m3 = X
    h.remove("m1", "m3")
    kept = chosen_by(h.members["m0"], 1)  # C's own leaf and X's old slot
    assert len(kept) == 2
    h.remove("m2", "m1")
    assert_cut_off(h, 1, kept)
    assert 1 not in record(h).values()
    # Every later epoch too: updates by everyone and a new joiner never bring a C key back.
    for name in ("m0", "m2", "m4"):
        h.update(name)
    h.add("m4")
    assert_cut_off(h, 1, kept)
    h.assert_consistent(list(h.members))


def test_removed_adder_before_the_joiner_updates() -> None:
    """A adds J; J has not updated yet when B removes A."""
    h, commit, j_name = adder_removed_before_joiner_updates()  # A = m1, B = m2
    kept = chosen_by(h.members["m0"], 1)  # A's own leaf and J's first leaf
    assert h.members[j_name].leaf_public_key(h.leaf(j_name)) in kept
    h.deliver(commit)
    del h.members["m1"]
    assert_cut_off(h, 1, kept)
    assert record(h)[h.leaf(j_name)] == 2


def test_removed_member_who_once_removed_someone() -> None:
    """X removed W earlier; later C removes X."""
    h = untainted(4)  # m3 = X, m4 = W, m1 = C
    h.remove("m3", "m4")
    kept = chosen_by(h.members["m0"], 3)
    assert record(h) == {4: 3}
    h.update("m0")
    h.update("m2")  # others' updates do not touch W's old slot ...
    assert kept <= tree_keys(h.members["m0"]) | {h.members["m0"].leaf_public_key(3)}
    h.remove("m1", "m3")  # ... the removal of X does
    assert_cut_off(h, 3, kept)
    assert record(h) == {3: 1, 4: 1}
    h.assert_consistent(["m0", "m1", "m2"])


def test_update_rekeys_what_the_updater_chose() -> None:
    """Post-compromise security for chosen leaves: after C's update none of C's old choices remain."""
    h = untainted(4)
    h.remove("m1", "m3")
    before = chosen_by(h.members["m0"], 1)
    res = h.update("m1")
    ops = CommitMessage.decode(res.message).commit.operations
    assert [(op.type, op.leaf) for op in ops] == [(OpType.REKEY, 3), (OpType.UPDATE, 1)]
    assert not before & tree_keys(h.members["m0"])
    assert record(h) == {3: 1}  # still C's choice, but a fresh one


def test_add_into_a_tainted_slot_needs_no_rekey() -> None:
    """Removing m1, whose vacated slot 3 is the leftmost free leaf, and adding: the add refreshes it."""
    h = untainted(4)
    h.remove("m1", "m3")
    res = h.commit("m2", remove=["m1"], add=["n"])
    ops = CommitMessage.decode(res.message).commit.operations
    assert [(op.type, op.leaf) for op in ops] == [(OpType.REMOVE, 1), (OpType.ADD, 3)]
    assert record(h) == {1: 2, 3: 2}
    h.assert_consistent(["n", "m0"])


# --- the public record -------------------------------------------------------------------------


def test_taint_is_in_the_tree_hash_and_the_welcome_encoding() -> None:
    h = untainted(3)
    h.remove("m1", "m3")
    h.add("m2")  # slot 3 now holds a joiner tainted by m2
    g = h.members["m0"]
    tree = g._tree
    copy = RatchetTree.decode(h.suite, tree.encode())
    assert copy.tree_hash == tree.tree_hash and copy.taint_record() == tree.taint_record() == {3: 2}
    # A tree that differs only in the chooser of one leaf hashes differently.
    tree.begin()
    try:
        tree.apply(TreeChanges(tree.capacity, {}, {}, {3: 1}))
        assert tree.taint_record() == {3: 1}
        assert tree.tree_hash != copy.tree_hash
    finally:
        tree.rollback()
    assert tree.tree_hash == copy.tree_hash and tree.taint_record() == {3: 2}


def test_decoded_tree_must_not_be_tainted_by_a_non_member() -> None:
    h = untainted(3)
    h.remove("m1", "m3")  # slot 3 vacant, tainted by 1
    tree = h.members["m0"]._tree
    data = bytearray(tree.encode())
    # The vacant leaf 3 is the last leaf: its uint16 chooser is the last leaf field, followed only
    # by the keys of the three keyed parents (docs/protocol.md §4.3).
    assert tree.capacity == 4 and all(tree.own_key(x) is not None for x in (1, 3, 5))
    at = len(data) - 3 * 32 - 2
    assert data[at : at + 2] == (1).to_bytes(2, "big")
    for bad in (3, 5, 6):  # itself, a blank leaf, past the capacity... all not another member
        data[at : at + 2] = bad.to_bytes(2, "big")
        with pytest.raises(InvalidValueError, match="tainted by leaf"):
            RatchetTree.decode(h.suite, bytes(data))


def test_random_walk_keeps_the_taint_invariants() -> None:
    """Agreed by all; choosers are members; a member is tainted iff it still holds its init key."""
    rng = random.Random(6)
    h = Harness()
    h.add("m0", 3)
    for _ in range(40):
        names = sorted(h.members)
        committer = rng.choice(names)
        others = [n for n in names if n != committer]
        kind = rng.choice(["add", "remove", "update", "remove+add"])
        victims = rng.sample(others, 1) if kind.startswith("remove") and len(others) > 1 else []
        adds = [h.fresh_name()] if "add" in kind and len(names) < 9 else []
        before = {n: fingerprint(g) for n, g in h.members.items()}
        h.commit(committer, add=adds, remove=victims, update=kind == "update")
        assert any(fingerprint(g) != before.get(n) for n, g in h.members.items())
        rec = record(h)
        g0 = next(iter(h.members.values()))
        for leaf, chooser in rec.items():
            assert chooser != leaf and g0._tree.member(chooser) is not None
        for g in h.members.values():
            assert (g.tainted_by(g.my_leaf) is not None) == g.holds_init_key
    h.assert_consistent(sorted(h.members)[:3])


def test_joiner_refuses_a_welcome_that_hides_its_adders_taint(monkeypatch: pytest.MonkeyPatch) -> None:
    """An adder that records the joiner's leaf as untainted would never have it re-keyed when the
    adder leaves; the joiner checks its own leaf's chooser against the welcome's signer."""
    h = untainted(2)
    pj = h.join_request("J")
    real = RatchetTree.build_path

    def hide(
        self: RatchetTree,
        leaf: int,
        secret: bytes,
        member: JoinRequest | None,
        capture: PathSecrets | None,
        chooser: int | None = None,
    ) -> tuple[list[bytes], bytes]:
        return real(self, leaf, secret, member, capture, None if member == pj.request else chooser)

    with monkeypatch.context() as m:
        m.setattr(RatchetTree, "build_path", hide)
        commit = h.members["m1"].commit(add=[pj.request])
    own = h.members["m1"].receive(commit)  # the dishonest adder applies its own view
    assert isinstance(own, EpochChanged)
    welcome = welcome_for(h.members["m1"], pj)
    assert h.members["m1"].tainted_by(3) is None
    with pytest.raises(TaintRuleError, match=r"our leaf 3 is tainted by None, not by the adder .*leaf 1"):
        Group.join(pj, welcome, h.config)
    # Honest members disagree with that tree: their view of the add records the taint.
    with pytest.raises(GroupChatError):
        h.members["m0"].receive(commit)
