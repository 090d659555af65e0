"""The compact public tree encoding (issue 16: a leaner welcome; docs/protocol.md §4.3).

Each fact is written once: the group id once for every member, no version, suite or length
prefix inside a member's request (the decoder rebuilds the exact bytes the member signed), no
presence flag on parents (the tree rule says which are keyed), a uint16 chooser folded into the
leaf kind. The byte count of every leaf is pinned, and the decoder refuses whatever it could not
have written. The legacy encoding's checks are ``test_tree_decoding.py``.
"""

from __future__ import annotations

import pytest
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
from groupchat.core.schemes.tree.ratchet_tree import RatchetTree
from groupchat.core.schemes.tree.tree_codec import FORMAT


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
        member_bytes("m0", False) + member_bytes("m1", False) + member_bytes("m2", True)
        + (1 + 32 + 2) + member_bytes("m4", True) + 3 * 1
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
