"""SecretTree behaviour beyond the vectors: windows, replays, caps, eviction and transactionality."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groupchat.core.errors import GenerationError, ReplayError, UnknownMemberError, UsageError
from groupchat.core.secret_tree import RatchetKind, SecretTree
from groupchat.core.suite import MLS_PREFIX, CipherSuite

SUITE = CipherSuite(1, MLS_PREFIX)
SECRET = bytes(range(32))
APP = RatchetKind.APPLICATION
HS = RatchetKind.HANDSHAKE


def tree(leaves: int = 4, **kw: int) -> SecretTree:
    return SecretTree(SUITE, SECRET, leaves, **kw)


def keys_in_order(leaf: int, kind: RatchetKind, count: int, leaves: int = 4) -> list[tuple[bytes, bytes]]:
    """The (key, nonce) of generations 0..count-1, as the sender derives them."""
    sender = tree(leaves)
    out = []
    for g in range(count):
        gen, key, nonce = sender.next_send(leaf, kind)
        assert gen == g
        out.append((key, nonce))
    return out


def test_receiver_matches_sender_in_order() -> None:
    expected = keys_in_order(2, APP, 5)
    t = tree()
    for g, (key, nonce) in enumerate(expected):
        lk = t.lookup(2, APP, g)
        assert (lk.key, lk.nonce, lk.generation) == (key, nonce, g)
        t.commit(lk)


def test_ratchets_are_independent() -> None:
    t = tree()
    a = t.lookup(1, APP, 0)
    b = t.lookup(1, HS, 0)
    c = t.lookup(3, APP, 0)
    assert len({a.key, b.key, c.key}) == 3


def test_out_of_order_window() -> None:
    expected = keys_in_order(0, APP, 6)
    t = tree()
    t.commit(t.lookup(0, APP, 5))
    for g in (3, 0, 4, 1, 2):
        lk = t.lookup(0, APP, g)
        assert (lk.key, lk.nonce) == expected[g]
        t.commit(lk)
    for g in range(6):
        with pytest.raises(ReplayError):
            t.lookup(0, APP, g)
    assert t.lookup(0, APP, 6).generation == 6


def test_replay_rejected_with_plain_message() -> None:
    t = tree()
    t.commit(t.lookup(1, HS, 0))
    with pytest.raises(ReplayError, match="generation 0 of leaf 1 was already used or has expired"):
        t.lookup(1, HS, 0)


def test_jump_cap() -> None:
    t = tree(max_forward=10)
    with pytest.raises(GenerationError):
        t.lookup(0, APP, 11)
    t.commit(t.lookup(0, APP, 10))  # exactly max_forward skipped is allowed
    with pytest.raises(GenerationError):
        t.lookup(0, APP, 22)
    assert t.lookup(0, APP, 21).generation == 21


def test_huge_generation_is_cheap_to_reject() -> None:
    t = tree()
    start = time.perf_counter()
    with pytest.raises(GenerationError):
        t.lookup(0, APP, 0xFFFFFFFF)
    assert time.perf_counter() - start < 0.5


def test_max_skipped_evicts_oldest() -> None:
    expected = keys_in_order(0, APP, 13)
    t = tree(max_skipped=3)
    t.commit(t.lookup(0, APP, 10))  # skips 0..9; only 7, 8, 9 are kept
    for g in range(7):
        with pytest.raises(ReplayError):
            t.lookup(0, APP, g)
    assert t.lookup(0, APP, 7).key == expected[7][0]
    t.commit(t.lookup(0, APP, 12))  # skips 11: window becomes 8, 9, 11
    with pytest.raises(ReplayError):
        t.lookup(0, APP, 7)
    for g in (8, 9, 11):
        lk = t.lookup(0, APP, g)
        assert (lk.key, lk.nonce) == expected[g]
        t.commit(lk)


def test_max_skipped_zero_keeps_nothing() -> None:
    t = tree(max_skipped=0)
    t.commit(t.lookup(0, APP, 3))
    for g in range(3):
        with pytest.raises(ReplayError):
            t.lookup(0, APP, g)


def test_unknown_leaf() -> None:
    t = tree(4)
    with pytest.raises(UnknownMemberError):
        t.lookup(4, APP, 0)
    with pytest.raises(UnknownMemberError):
        t.next_send(-1, APP)


def test_leaf_count_must_be_power_of_two() -> None:
    with pytest.raises(UsageError):
        SecretTree(SUITE, SECRET, 3)
    assert SecretTree(SUITE, SECRET, 1).leaf_count == 1


def test_commit_from_another_tree_rejected() -> None:
    a, b = tree(), tree()
    with pytest.raises(UsageError):
        b.commit(a.lookup(0, APP, 0))


def test_stale_lookup_same_generation_is_replay() -> None:
    t = tree()
    first = t.lookup(0, APP, 3)
    second = t.lookup(0, APP, 3)
    t.commit(first)
    with pytest.raises(ReplayError):
        t.commit(second)


def test_stale_lookup_of_now_skipped_generation_still_works() -> None:
    expected = keys_in_order(0, APP, 6)
    t = tree()
    early = t.lookup(0, APP, 3)
    t.commit(t.lookup(0, APP, 5))  # 3 is now in the skipped window
    t.commit(early)  # re-resolved against the new state
    with pytest.raises(ReplayError):
        t.lookup(0, APP, 3)
    assert t.lookup(0, APP, 4).key == expected[4][0]


def test_stale_lookup_does_not_rewind() -> None:
    t = tree()
    low = t.lookup(0, APP, 1)
    t.commit(t.lookup(0, APP, 4))
    t.commit(low)
    with pytest.raises(ReplayError):
        t.lookup(0, APP, 4)  # would succeed if the stale commit had reset the ratchet to 2
    assert t.lookup(0, APP, 5).generation == 5


def test_consumed_tree_secrets_are_deleted() -> None:
    t = tree(8)
    t.lookup(5, APP, 0)
    nodes = t._nodes  # white-box: §9.2 deletion schedule
    assert 7 not in nodes and 10 not in nodes  # root and leaf 5's node are gone
    assert set(nodes) == {3, 8, 13}  # only the copath of leaf 5 (node 10) remains


# --- lookups without commit never change behaviour -----------------------------------------------

_ops = st.lists(st.tuples(st.integers(0, 4), st.sampled_from([HS, APP]), st.integers(0, 40)), max_size=25)


def _outcome(t: SecretTree, leaf: int, kind: RatchetKind, gen: int, commit: bool) -> object:
    try:
        lk = t.lookup(leaf, kind, gen)
    except (ReplayError, GenerationError, UnknownMemberError) as exc:
        return type(exc).__name__
    if commit:
        t.commit(lk)
    return (lk.key, lk.nonce)


@settings(max_examples=60, deadline=None)
@given(prefix=_ops, probes=_ops, script=_ops)
def test_lookups_without_commit_leave_behaviour_unchanged(
    prefix: list[tuple[int, RatchetKind, int]],
    probes: list[tuple[int, RatchetKind, int]],
    script: list[tuple[int, RatchetKind, int]],
) -> None:
    kw = {"max_forward": 20, "max_skipped": 5}
    probed, reference = tree(4, **kw), tree(4, **kw)
    for leaf, kind, gen in prefix:  # the same committed history on both
        assert _outcome(probed, leaf, kind, gen, True) == _outcome(reference, leaf, kind, gen, True)
    for leaf, kind, gen in probes:  # uncommitted lookups on one of them only
        _outcome(probed, leaf, kind, gen, False)
    for leaf, kind, gen in script:
        assert _outcome(probed, leaf, kind, gen, True) == _outcome(reference, leaf, kind, gen, True)
    for leaf in range(4):
        assert probed.next_send(leaf, APP) == reference.next_send(leaf, APP)
