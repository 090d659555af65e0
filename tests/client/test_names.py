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
