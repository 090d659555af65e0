"""The compact public tree encoding (issue 16: a leaner welcome; docs/protocol.md §4.3).

Each fact is written once: the group id once for every member, no version, suite or length
prefix inside a member's request (the decoder rebuilds the exact bytes the member signed), no
presence flag on parents (the tree rule says which are keyed), a uint16 chooser folded into the
leaf kind. The byte count of every leaf is pinned, and the decoder refuses whatever it could not
have written. The legacy encoding's checks are ``test_tree_decoding.py``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_tree_decoding import GID, SUITE, Sample, legacy_encoding

from groupchat.core.codec import Writer
from groupchat.core.errors import (
    DuplicateKeyError,
    GroupChatError,
    InvalidPublicKeyError,
    InvalidValueError,
    SignatureError,
    TrailingDataError,
    TruncatedError,
)
from groupchat.core.identity import Identity, JoinRequest
from groupchat.core.schemes.tree import tree_codec
from groupchat.core.schemes.tree.ratchet_tree import RatchetTree
from groupchat.core.schemes.tree.tree_codec import FORMAT, PublicTree


@pytest.fixture(scope="module")
def sample() -> Sample:
    return Sample.build()


def refused(data: bytes, error: type[GroupChatError], match: str = "") -> None:
    with pytest.raises(GroupChatError) as info:
        RatchetTree.decode(SUITE, data)
    assert type(info.value) is error, repr(info.value)
    assert match in str(info.value), str(info.value)


def member_bytes(name: str, tainted: bool) -> int:
    """kind, leaf key, identity key, V(name), init key, not_after, signature (and a chooser)."""
    return 1 + 32 + 32 + 1 + len(name.encode()) + 32 + 8 + 64 + (2 if tainted else 0)


def test_every_byte_is_accounted_for(sample: Sample) -> None:
    """m0 (untainted), m1 (updated), m2 and m4 (tainted by m0), leaf 3 vacated by m1, leaves 5..7
    blank; parents 1, 3, 5, 7 keyed (9, 11 pass through, 13 blank)."""
    header = 1 + 1 + 1 + len(GID)  # format, log2 capacity, V(group_id)
    leaves = (
        member_bytes("m0", False)
        + member_bytes("m1", False)
        + member_bytes("m2", True)
        + (1 + 32 + 2)
        + member_bytes("m4", True)
        + 3 * 1
    )
    parents = 4 * 32
    data = sample.tree.encode()
    assert len(data) == header + leaves + parents
    assert data[0] == FORMAT and data[1] == 3  # capacity 2^3
    assert len(data) < len(legacy_encoding(sample.tree))


def test_round_trip_is_the_same_tree(sample: Sample) -> None:
    data = sample.tree.encode()
    tree = RatchetTree.decode(SUITE, data)
    assert tree.tree_hash == sample.tree.tree_hash and tree.encode() == data
    assert tree.taint_record() == {2: 0, 3: 1, 4: 0}
    # The rebuilt requests are byte for byte what the members signed and the tree hashed.
    assert [m.encoded for _, m in tree.members()] == [m.encoded for _, m in sample.tree.members()]
    for _, m in tree.members():
        m.verify(SUITE)


def test_a_request_cannot_change_group_in_the_compact_encoding(sample: Sample) -> None:
    """The group id is written once; a tree re-labelled with another one still decodes (same
    shape), but no member's signature covers the new id, so the joiner's check of every leaf
    refuses it (docs/protocol.md §4.3: a ghost)."""
    data = sample.tree.encode()
    other = data[:2] + Writer().opaque(b"another-room").bytes() + data[3 + len(GID) :]
    tree = RatchetTree.decode(SUITE, other)
    for _, m in tree.members():
        assert m.group_id == b"another-room"
        with pytest.raises(SignatureError):
            m.verify(SUITE)


def test_unknown_leaf_kind(sample: Sample) -> None:
    data = bytearray(sample.tree.encode())
    data[3 + len(GID)] = 4  # leaf 0's kind
    refused(bytes(data), InvalidValueError, "leaf 0 has unknown kind 4")


@pytest.mark.parametrize("log2", [17, 0xFF])
def test_capacity_above_the_limit(sample: Sample, log2: int) -> None:
    data = bytearray(sample.tree.encode())
    data[1] = log2
    refused(bytes(data), InvalidValueError, f"capacity 2^{log2} is more than 65536")


def test_a_group_id_without_members_is_refused() -> None:
    empty = RatchetTree(SUITE, 4).encode()
    assert empty == bytes((FORMAT, 2, 0, 0, 0, 0, 0))  # no member: no group id, four blank leaves
    assert RatchetTree.decode(SUITE, empty).member_count == 0
    refused(empty[:2] + b"\x01g" + empty[3:], InvalidValueError, "names a group id but holds no member")


def test_keys_must_be_valid_and_unique(sample: Sample) -> None:
    data = sample.tree.encode()
    leaf0 = 4 + len(GID)  # leaf 0's key follows its kind byte
    refused(data[:leaf0] + bytes(32) + data[leaf0 + 32 :], InvalidPublicKeyError)
    root_key = data[-32:]
    refused(data[:leaf0] + root_key + data[leaf0 + 32 :], DuplicateKeyError, "repeats a public key")
    refused(data[:-32] + data[leaf0 : leaf0 + 32], DuplicateKeyError, "repeats a public key")  # root = leaf 0


def test_trailing_bytes_and_every_truncation(sample: Sample) -> None:
    data = sample.tree.encode()
    refused(data + b"\x00", TrailingDataError)
    for cut in range(len(data)):
        with pytest.raises(TruncatedError):
            RatchetTree.decode(SUITE, data[:cut])


# --- the fast decoder (issue 16: a joiner decodes the whole tree before it reads) ----------------


def _decoded(data: bytes, *, fast: bool) -> PublicTree | tuple[type[GroupChatError], str]:
    try:
        return tree_codec._decode_compact(SUITE, data, fast=fast)
    except GroupChatError as exc:
        return type(exc), str(exc)


def _body_fast(data: bytes) -> PublicTree | None:
    """The fast path alone on ``data``'s body (its header read as the decoder reads it)."""
    log2, gid_len = data[1], data[2]
    return tree_codec._decode_body_fast(SUITE, data, 3 + gid_len, 1 << log2, data[3 : 3 + gid_len])


def _names_tree(names: list[str]) -> bytes:
    tree = RatchetTree(SUITE, 1)
    for leaf, name in enumerate(names):
        request = JoinRequest.create(SUITE, Identity.generate(), GID, name).request
        tree.build_path(leaf, os.urandom(32), request, None, None if leaf == 0 else 0)
    return tree.encode()


def test_the_fast_decoder_takes_the_common_tree_and_gives_the_same_result(sample: Sample) -> None:
    data = sample.tree.encode()
    quick = _body_fast(data)
    assert quick is not None  # taken, not fallen back
    assert quick == tree_codec._decode_compact(SUITE, data, fast=False)
    assert RatchetTree.decode(SUITE, data).encode() == data


@pytest.mark.parametrize(
    "names",
    [["ünïcode", "m1"], ["m0", "x" * 64], ["m0", "\u00e9t\u00e9"]],
    ids=["accents", "64-bytes", "nfc"],
)
def test_the_fast_decoder_leaves_unusual_names_to_the_general_one(names: list[str]) -> None:
    """Non-ASCII names, and a name of 64 bytes (a two-byte length), fall back, with equal results."""
    data = _names_tree(names)
    assert _body_fast(data) is None
    assert _decoded(data, fast=True) == _decoded(data, fast=False)
    assert isinstance(_decoded(data, fast=True), PublicTree)


def test_the_longest_one_byte_name_is_taken_fast() -> None:
    data = _names_tree(["m0", "y" * 63, " a b "])
    assert _body_fast(data) is not None
    assert _decoded(data, fast=True) == _decoded(data, fast=False)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_fast_decoder_accepts_and_refuses_exactly_what_the_general_one_does(
    sample: Sample, data: st.DataObject
) -> None:
    """Mutated encodings (a byte changed, cut, inserted, a key or name copied elsewhere): the
    decoder with its fast path gives exactly the general decoder's tree, or its error and words."""
    encoded = bytearray(sample.tree.encode())
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(3 + len(GID), len(encoded) - 1))
        how = data.draw(st.sampled_from(["set", "cut", "insert", "copy", "control", "space"]))
        if how == "set":
            encoded[at] = data.draw(st.integers(0, 255))
        elif how == "cut":
            del encoded[at : at + data.draw(st.integers(1, 40))]
        elif how == "insert":
            encoded[at:at] = data.draw(st.binary(min_size=1, max_size=40))
        elif how == "copy":
            source = data.draw(st.integers(0, len(encoded) - 32))
            encoded[at : at + 32] = encoded[source : source + 32]
        elif how == "control":  # a control character or a byte beyond ASCII inside a name
            encoded[at] = data.draw(st.sampled_from([0x00, 0x09, 0x7F, 0x80, 0xC3, 0xFF]))
        else:
            encoded[at] = 0x20
    mutated = bytes(encoded)
    assert _decoded(mutated, fast=True) == _decoded(mutated, fast=False)
