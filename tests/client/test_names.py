"""Telling members apart (client/names.py): skeletons, labels with fingerprint suffixes, the resolver."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groupchat.client.names import (
    SEPARATOR,
    AmbiguousMember,
    Labeler,
    NameIndex,
    NoSuchMember,
    compact_fingerprint,
    confusable,
    label_members,
    resolve,
)
from groupchat.client.trust import TrustStore
from groupchat.core.errors import GroupChatError, UsageError
from groupchat.core.events import Member
from groupchat.core.identity import validate_display_name

CYRILLIC_O = "\u043e"
GREEK_OMICRON = "\u03bf"


def key(i: int) -> bytes:
    return i.to_bytes(32, "big")


def keys_sharing_prefix(n: int = 4) -> tuple[bytes, bytes]:
    """Two keys whose fingerprints share their first ``n`` hex digits (a birthday search)."""
    seen: dict[str, bytes] = {}
    for i in itertools.count(1000):
        k = key(i)
        prefix = compact_fingerprint(k)[:n]
        if prefix in seen:
            return seen[prefix], k
        seen[prefix] = k
    raise AssertionError("unreachable")


# --- skeletons ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lookalike",
    [
        f"b{CYRILLIC_O}b",  # Cyrillic o
        f"b{GREEK_OMICRON}b",  # Greek omicron
        "\uff42\uff4f\uff42",  # fullwidth
        "BOB",
        "BoB",  # mixed case
        "b0b",  # digit zero
        "bob ",  # a trailing space
    ],
)
def test_lookalikes_share_the_skeleton_of_bob(lookalike: str) -> None:
    assert lookalike != "bob"
    assert confusable(lookalike, "bob")


@pytest.mark.parametrize("other", ["bobby", "rob", "b ob", "alice", "b\u00f6b"])
def test_different_names_keep_different_skeletons(other: str) -> None:
    assert not confusable(other, "bob")


def test_multi_character_lookalikes_are_confusable() -> None:
    assert confusable("rn", "m")
    assert confusable("Ian", "lan") and confusable("lan", "1an") and confusable("ALICE", "alice")


@pytest.mark.parametrize("invisible", ["\u200b", "\u200d", "\u2060", "\ufeff", "\u202e"])
def test_zero_width_and_bidi_characters_never_reach_a_name(invisible: str) -> None:
    # The skeleton does not need to see through them: the core refuses them in any display name.
    with pytest.raises(GroupChatError, match="control or formatting"):
        validate_display_name(f"b{invisible}ob")


# --- labels ------------------------------------------------------------------------------------


def test_a_name_alone_needs_no_suffix() -> None:
    assert label_members([("bob", key(1)), ("alice", key(2))]) == {key(1): "bob", key(2): "alice"}


def test_lookalike_members_both_get_distinct_suffixes() -> None:
    labels = label_members([("bob", key(1)), (f"b{CYRILLIC_O}b", key(2)), ("alice", key(3))])
    assert labels[key(1)] == f"bob{SEPARATOR}{compact_fingerprint(key(1))[:4]}"
    assert labels[key(2)] == f"b{CYRILLIC_O}b{SEPARATOR}{compact_fingerprint(key(2))[:4]}"
    assert labels[key(3)] == "alice"


def test_exact_duplicates_get_suffixes_too() -> None:
    labels = label_members([("bob", key(1)), ("bob", key(2))])
    assert labels[key(1)] != labels[key(2)]
    assert all(label.startswith(f"bob{SEPARATOR}") for label in labels.values())


def test_a_lookalike_of_a_name_in_the_trust_store_gets_a_suffix() -> None:
    trust = TrustStore(None)
    trust.observe("bob", key(1))  # met before, not here now
    labels = label_members([(f"B{CYRILLIC_O}b", key(2))], trust)
    assert labels[key(2)] == f"B{CYRILLIC_O}b{SEPARATOR}{compact_fingerprint(key(2))[:4]}"
    assert label_members([("bob", key(1))], trust) == {key(1): "bob"}  # the same key: no rival


def test_a_suffix_grows_until_no_lookalike_shares_it() -> None:
    a, b = keys_sharing_prefix(4)
    labels = label_members([("bob", a), ("bob", b)])
    assert labels[a] != labels[b]
    for k in (a, b):
        suffix = labels[k].split(SEPARATOR)[1]
        assert len(suffix) > 4 and compact_fingerprint(k).startswith(suffix)


def test_a_name_that_imitates_a_label_cannot_pass_for_it() -> None:
    trust = TrustStore(None)
    trust.observe("bob", key(9))
    real = f"bob{SEPARATOR}{compact_fingerprint(key(1))[:4]}"
    labels = label_members([("bob", key(1)), (real, key(2))], trust)
    assert labels[key(1)] != labels[key(2)]
    assert labels[key(2)].startswith(real + SEPARATOR)  # the separator in a name forces a suffix
    index = NameIndex([("bob", key(1)), (real, key(2))])
    assert all(index.matches(label) == {k} for k, label in labels.items())


def test_a_name_that_is_a_fingerprint_prefix_gets_a_suffix() -> None:
    other = compact_fingerprint(key(1))[:6]
    members = [Member(0, "bob", key(1)), Member(1, other, key(2))]
    labels = label_members([("bob", key(1)), (other, key(2))])
    assert labels[key(1)] == "bob"
    assert labels[key(2)] != other and resolve(labels[key(2)], members) == members[1]
    with pytest.raises(AmbiguousMember):
        resolve(other, members)  # bob's fingerprint prefix, and the other one's name


names = st.sampled_from(["bob", f"b{CYRILLIC_O}b", "BOB", "b0b", "alice", f"bob{SEPARATOR}", "rn", "m"])


@settings(max_examples=100, deadline=None)
@given(st.lists(names, min_size=1, max_size=8))
def test_every_label_is_distinct_and_resolves_to_its_member(chosen: list[str]) -> None:
    members = [Member(i, name, key(i)) for i, name in enumerate(chosen)]
    labels = label_members((m.display_name, m.identity_key) for m in members)
    assert len(set(labels.values())) == len(members)
    for m in members:
        assert resolve(labels[m.identity_key], members) == m


def test_labeler_recomputes_only_when_the_roster_or_the_trust_store_changes() -> None:
    trust = TrustStore(None)
    labeler = Labeler(trust)
    roster = {0: Member(0, "bob", key(1))}
    first = labeler.labels(roster)
    assert labeler.labels(roster) is first  # per message: no work
    trust.observe("b\u043eb", key(2))
    assert labeler.labels(roster) is not first
    assert labeler.label(roster, roster[0]).startswith(f"bob{SEPARATOR}")
    relabelled = labeler.labels(roster)
    assert labeler.labels(dict(roster)) is relabelled  # a new mapping of the same members
    gone = Member(1, "carol", key(3))
    with_carol = {**roster, 1: gone}
    assert labeler.label(with_carol, gone) == "carol"
    assert labeler.label(roster, gone) == "carol"  # a member who just left keeps its label


# --- the resolver --------------------------------------------------------------------------------

BOB, BOB_CYR = Member(0, "bob", key(1)), Member(1, f"b{CYRILLIC_O}b", key(2))
ALICE = Member(2, "alice", key(3))
ROOM = [BOB, BOB_CYR, ALICE]


def test_an_ambiguous_name_is_refused_with_every_candidate() -> None:
    with pytest.raises(AmbiguousMember) as info:
        resolve("bob", ROOM)
    labels = label_members((m.display_name, m.identity_key) for m in ROOM)
    assert sorted(info.value.candidates) == sorted([labels[BOB.identity_key], labels[BOB_CYR.identity_key]])
    assert isinstance(info.value, UsageError)
    for candidate in info.value.candidates:
        assert candidate in str(info.value)


@pytest.mark.parametrize("separator", [SEPARATOR, "#"])
def test_a_label_resolves_to_one_member(separator: str) -> None:
    for m in (BOB, BOB_CYR):
        assert resolve(f"bob{separator}{compact_fingerprint(m.identity_key)[:4]}", ROOM) == m


def test_a_fingerprint_prefix_resolves_spaced_or_not_in_any_case() -> None:
    fp = BOB_CYR.fingerprint  # "xxxx xxxx ..."
    assert resolve(fp[:9].upper(), ROOM) == BOB_CYR
    assert resolve(compact_fingerprint(BOB_CYR.identity_key)[:6], ROOM) == BOB_CYR


def test_a_unique_name_resolves_even_in_another_case() -> None:
    assert resolve("alice", ROOM) == ALICE
    assert resolve("ALICE", ROOM) == ALICE


def test_nobody_matches() -> None:
    with pytest.raises(NoSuchMember, match="carol"):
        resolve("carol", ROOM)
    with pytest.raises(NoSuchMember):
        resolve(f"bob{SEPARATOR}{'0' * 32}", ROOM)


def test_keys_sharing_a_prefix_are_told_apart_by_a_longer_one() -> None:
    a, b = keys_sharing_prefix(4)
    members = [Member(0, "x", a), Member(1, "y", b)]
    with pytest.raises(AmbiguousMember):
        resolve(compact_fingerprint(a)[:4], members)
    assert resolve(compact_fingerprint(a)[:8], members).identity_key == a


@dataclass(frozen=True)
class Joiner:
    """What /approve addresses: anything with a name and an identity key."""

    display_name: str
    identity_key: bytes


def test_the_resolver_addresses_joiners_too() -> None:
    waiting = [Joiner("mallory", key(7)), Joiner("carol", key(8))]
    assert resolve("carol", waiting) == waiting[1]
    with pytest.raises(NoSuchMember):
        resolve("bob", waiting)


def test_the_vendored_data_is_the_unicode_mapping() -> None:
    text = resources.files("groupchat.client").joinpath("confusables.txt").read_text(encoding="utf-8")
    assert "UTS #39" in text.splitlines()[0] and "17.0.0" in text.splitlines()[0]
    assert "0430 ; 0061" in text.splitlines()  # CYRILLIC SMALL LETTER A -> LATIN SMALL LETTER A


# --- the labeler's incremental relabelling ---------------------------------------------------------

_PAIR = keys_sharing_prefix(4)
_KEYS = [key(1), key(2), key(3), key(4), *_PAIR]
_FP1 = compact_fingerprint(key(1))
# Names that reach past their look-alikes: a fingerprint prefix (of a key in the pool, so it
# matches), a label's imitation, a separator, spaces around; and plain look-alikes.
_NAMES = [
    "bob",
    f"b{CYRILLIC_O}b",
    "BOB",
    "b0b",
    "alice",
    "rn",
    "m",
    " bob",
    "bob#",
    "a#b",
    _FP1[:4],
    _FP1[:5].upper(),
    compact_fingerprint(_PAIR[0])[:4],
    f"bob{SEPARATOR}{_FP1[:4]}",
    f"bob#{compact_fingerprint(_PAIR[1])[:4]}",
    f"bob{SEPARATOR}",
]
_ops = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(_NAMES), st.sampled_from(_KEYS)),
    st.tuples(st.just("remove"), st.integers(0, 7), st.just(b"")),
    st.tuples(st.just("rename"), st.integers(0, 7), st.sampled_from(_NAMES)),
    st.tuples(st.just("meet"), st.sampled_from(_NAMES), st.sampled_from([key(7), key(8), *_KEYS])),
    st.tuples(st.just("same"), st.just(0), st.just(b"")),  # a new mapping of the same members
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_ops, max_size=24), st.booleans())
def test_relabelling_after_each_change_equals_labelling_the_roster_afresh(
    ops: list[tuple[str, object, object]], with_trust: bool
) -> None:
    """Only the concerned members are relabelled at a roster change: the labels are still exactly
    what labelling the whole roster gives (and a member who left keeps the label it had)."""
    trust = TrustStore(None) if with_trust else None
    labeler = Labeler(trust)
    roster: dict[int, Member] = {}
    shown: dict[bytes, str] = {}
    next_leaf = 0
    for op, a, b in ops:
        leaves = sorted(roster)
        if op == "add":
            assert isinstance(a, str) and isinstance(b, bytes)
            roster = {**roster, next_leaf: Member(next_leaf, a, b)}  # a key at two leaves too
            next_leaf += 1
        elif op == "remove" and leaves:
            assert isinstance(a, int)
            roster = {lf: m for lf, m in roster.items() if lf != leaves[a % len(leaves)]}
        elif op == "rename" and leaves:
            assert isinstance(a, int) and isinstance(b, str)
            m = roster[leaves[a % len(leaves)]]
            roster = {**roster, m.leaf: Member(m.leaf, b, m.identity_key)}
        elif op == "meet" and trust is not None:
            assert isinstance(a, str) and isinstance(b, bytes)
            trust.observe(a, b)
        elif op == "same":
            roster = dict(roster)
        labels = labeler.labels(roster)
        assert labels == label_members([(m.display_name, m.identity_key) for m in roster.values()], trust)
        for m in roster.values():
            assert labeler.label(roster, m) == labels[m.identity_key]
        gone = [k for k in shown if k not in labels]
        for k in gone:  # a member who just left is still shown by its last label
            assert labeler.label(roster, Member(0, "someone else", k)) == shown[k]
        shown = dict(labels)


def test_a_joiner_relabels_only_its_lookalikes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A joiner's label and those of the members whose names look like its are computed; the
    others are kept (the real labelling, counted)."""
    from groupchat.client import names

    relabelled: list[bytes] = []
    real = names._label_in

    def counted(index: NameIndex, k: bytes, known: names.KnownNames | None) -> str:
        relabelled.append(k)
        return real(index, k, known)

    monkeypatch.setattr(names, "_label_in", counted)
    labeler = Labeler(None)
    roster = {i: Member(i, f"m{i}", key(i + 1)) for i in range(6)}
    labeler.labels(roster)
    assert len(relabelled) == 6
    relabelled.clear()
    after = labeler.labels({**roster, 6: Member(6, "M0", key(20))})
    assert sorted(relabelled) == sorted([key(1), key(20)])
    assert after[key(1)] != "m0" and after[key(20)] != "M0"  # the two look-alikes get suffixes
    relabelled.clear()
    labeler.labels({**roster, 6: Member(6, "m6", key(20))})  # from that roster: a rename
    assert sorted(relabelled) == sorted([key(1), key(20)])  # m0 loses its suffix


def test_a_newcomer_named_like_a_label_lengthens_that_label() -> None:
    """A suffixed label depends on names that look like the label itself, not like the name: the
    newcomer called ``bob·3f2a`` takes that label from the bob who had it, who is relabelled."""
    labeler = Labeler(None)
    roster = {0: Member(0, "bob", key(1)), 1: Member(1, "b0b", key(2))}
    label = labeler.labels(roster)[key(1)]
    assert label == f"bob{SEPARATOR}{_FP1[:4]}"
    grown = {**roster, 2: Member(2, label, key(3))}
    after = labeler.labels(grown)
    assert after == label_members([(m.display_name, m.identity_key) for m in grown.values()])
    assert after[key(1)] != label
