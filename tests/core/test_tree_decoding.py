"""The structure checks of ``RatchetTree.decode`` on the legacy encoding (before issue 16, still
read so that states stored by an earlier version restore): a public tree is refused whole, with
the exact error, unless it is a tree our own code could have produced. The compact encoding that
is written today has its own checks in ``test_tree_codec.py``.

The trees are built with the tree's public API (``build_path`` as adds, updates and removes do),
written in the legacy encoding and split into their nodes by a small parser written here from the
documented encoding, changed in one place and encoded again. A control checks that parse + encode
is byte-exact and that the untouched tree decodes to the same tree hash, so each refusal is about
the one change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from groupchat.core.codec import Reader, Writer
from groupchat.core.errors import (
    DecodeError,
    DuplicateKeyError,
    FieldTooLargeError,
    GroupChatError,
    InvalidPublicKeyError,
    InvalidValueError,
    TrailingDataError,
    TruncatedError,
)
from groupchat.core.group import GroupConfig
from groupchat.core.identity import Identity, JoinRequest
from groupchat.core.schemes.tree.ratchet_tree import MAX_CAPACITY, RatchetTree

SUITE = GroupConfig().suite()
GID = b"tree-decoding"
BLANK, VACANT, MEMBER = 0, 1, 2


def fresh_key() -> bytes:
    return X25519PrivateKey.generate().public_key().public_bytes_raw()


def signed_request(identity: Identity, name: str, init_key: bytes, suite_id: int = SUITE.id) -> JoinRequest:
    """A join request really signed by ``identity``, with any init key and cipher suite."""
    tbs = JoinRequest.tbs(suite_id, GID, identity.public_key, name.encode(), init_key, 2_000_000_000)
    sig = SUITE.sign_with_label(identity.signing_key, b"JoinRequestTBS", tbs)
    return JoinRequest.decode(Writer().raw(tbs).opaque(sig).bytes())


# --- a test-side model of the encoding ---------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """One node as encoded. Parents use ``key`` (and ``flag``, the raw presence octet); leaves
    use ``kind``, ``key``, ``request`` (encoded) and ``chooser``."""

    key: bytes | None = None
    flag: int | None = None
    kind: int | None = None
    request: bytes | None = None
    chooser: int | None = None


def parse(data: bytes) -> tuple[int, list[Node]]:
    """Split an encoded tree into its capacity and nodes (no checks beyond the shape)."""
    r = Reader(data, "test tree")
    capacity = r.u32("capacity")
    nodes = []
    for x in range(2 * capacity - 1):
        if x & 1:
            flag = r.u8("presence")
            nodes.append(Node(key=r.fixed(32, "key") if flag else None, flag=flag))
            continue
        kind = r.u8("kind")
        if kind == BLANK:
            nodes.append(Node(kind=kind))
        elif kind == VACANT:
            nodes.append(Node(kind=kind, key=r.fixed(32, "key"), chooser=r.u32("chooser")))
        else:
            key = r.fixed(32, "key")
            request = r.opaque("request", 4096)
            chooser = r.optional("chooser", lambda rr: rr.u32("chooser"))
            nodes.append(Node(kind=kind, key=key, request=request, chooser=chooser))
    r.end()
    return capacity, nodes


def encode(capacity: int, nodes: list[Node]) -> bytes:
    w = Writer().u32(capacity)
    for x, n in enumerate(nodes):
        if x & 1:
            w.u8(n.flag if n.flag is not None else int(n.key is not None))
            if n.key is not None:
                w.raw(n.key)
            continue
        assert n.kind is not None
        w.u8(n.kind)
        if n.kind == VACANT:
            assert n.key is not None and n.chooser is not None
            w.raw(n.key).u32(n.chooser)
        elif n.kind == MEMBER:
            assert n.key is not None and n.request is not None
            w.raw(n.key).opaque(n.request)
            w.optional(None if n.chooser is None else n.chooser.to_bytes(4, "big"))
    return w.bytes()


def legacy_encoding(tree: RatchetTree) -> bytes:
    """The legacy encoding of ``tree``, from its public accessors (docs/protocol.md §4.3, legacy)."""
    nodes = []
    for x in range(2 * tree.capacity - 1):
        key = tree.own_key(x)
        if x & 1:
            nodes.append(Node(key=key))
            continue
        member = tree.member(x // 2)
        kind = BLANK if key is None else VACANT if member is None else MEMBER
        request = None if member is None else member.encoded
        nodes.append(Node(kind=kind, key=key, request=request, chooser=tree.tainted_by(x // 2)))
    return encode(tree.capacity, nodes)


@dataclass
class Sample:
    """m0 (creator, untainted), m1 (updated), m2 and m4 added by m0 (tainted by 0), m3 removed by
    m1 (a vacant slot tainted by 1); leaves 5..7 never used. Capacity 8.

    Nodes: 1 = (0,1) keyed, 5 = (2,3) keyed, 3 keyed, 9 = (4,5) pass-through, 13 = (6,7) blank,
    11 = (9,13) pass-through, 7 = root keyed.
    """

    tree: RatchetTree
    identities: list[Identity]
    requests: list[JoinRequest]

    @classmethod
    def build(cls) -> Sample:
        identities = [Identity.generate() for _ in range(5)]
        requests = [
            JoinRequest.create(SUITE, ident, GID, f"m{i}").request for i, ident in enumerate(identities)
        ]
        tree = RatchetTree(SUITE, 1)
        for leaf, req in enumerate(requests):
            tree.build_path(leaf, os.urandom(32), req, None, None if leaf == 0 else 0)
        tree.build_path(1, os.urandom(32), requests[1], None)  # m1's own update
        tree.build_path(3, os.urandom(32), None, None, 1)  # m1 removes m3
        return cls(tree, identities, requests)

    @property
    def data(self) -> bytes:
        return legacy_encoding(self.tree)

    def nodes(self) -> list[Node]:
        capacity, nodes = parse(self.data)
        assert capacity == 8
        return nodes

    def changed(self, **nodes: Node) -> bytes:
        """The sample with node ``n<x>`` replaced."""
        out = self.nodes()
        for name, node in nodes.items():
            out[int(name[1:])] = node
        return encode(8, out)


@pytest.fixture(scope="module")
def sample() -> Sample:
    return Sample.build()


def refused(data: bytes, error: type[GroupChatError], match: str = "") -> GroupChatError:
    with pytest.raises(GroupChatError) as info:
        RatchetTree.decode(SUITE, data)
    assert type(info.value) is error, repr(info.value)
    assert match in str(info.value), str(info.value)
    return info.value


# --- controls ----------------------------------------------------------------------------------


def test_control_the_sample_has_the_shape_the_tests_assume(sample: Sample) -> None:
    nodes = sample.nodes()
    assert [n.kind for n in nodes[0::2]] == [MEMBER, MEMBER, MEMBER, VACANT, MEMBER, BLANK, BLANK, BLANK]
    assert [n.chooser for n in nodes[0::2]] == [None, None, 0, 1, 0, None, None, None]
    assert [x for x in range(1, 15, 2) if nodes[x].key is not None] == [1, 3, 5, 7]
    assert encode(8, nodes) == sample.data  # the test-side model is byte-exact


def test_control_the_sample_decodes_to_the_same_tree(sample: Sample) -> None:
    tree = RatchetTree.decode(SUITE, sample.data)
    assert tree.tree_hash == sample.tree.tree_hash
    assert tree.encode() == sample.tree.encode()  # written again in the compact encoding
    assert tree.taint_record() == {2: 0, 3: 1, 4: 0}
    assert [leaf for leaf, _ in tree.members()] == [0, 1, 2, 4]


# --- capacity -----------------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", [0, 3, 6, 12, MAX_CAPACITY + 1, MAX_CAPACITY * 2, 2**32 - 1])
def test_capacity_not_a_power_of_two_or_too_large(sample: Sample, capacity: int) -> None:
    data = capacity.to_bytes(4, "big") + sample.data[4:]
    refused(data, InvalidValueError, f"capacity {capacity} is not a power of two ≤ {MAX_CAPACITY}")


def test_the_largest_capacity_is_accepted() -> None:
    """The limit is inclusive: a blank tree of MAX_CAPACITY leaves decodes (and is all blank)."""
    data = MAX_CAPACITY.to_bytes(4, "big") + bytes(2 * MAX_CAPACITY - 1)
    tree = RatchetTree.decode(SUITE, data)
    assert tree.capacity == MAX_CAPACITY and tree.member_count == 0


# --- node by node -------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", [2, 0xFF])
@pytest.mark.parametrize("node", [1, 13])
def test_parent_presence_flag_above_one(sample: Sample, node: int, flag: int) -> None:
    nodes = sample.nodes()
    data = sample.changed(**{f"n{node}": replace(nodes[node], flag=flag)})
    refused(data, InvalidValueError, f"node {node} presence flag is {flag}, not 0 or 1")


@pytest.mark.parametrize("kind", [3, 0xFF])
def test_unknown_leaf_kind(sample: Sample, kind: int) -> None:
    refused(sample.changed(n10=Node(kind=kind)), InvalidValueError, f"leaf 5 has unknown kind {kind}")


def test_member_of_another_cipher_suite(sample: Sample) -> None:
    other = signed_request(Identity.generate(), "elsewhere", fresh_key(), suite_id=SUITE.id + 1)
    node = Node(kind=MEMBER, key=fresh_key(), request=other.encoded, chooser=0)
    refused(sample.changed(n10=node), InvalidValueError, "leaf 5 uses another cipher suite")


def test_member_request_that_does_not_decode(sample: Sample) -> None:
    node = replace(sample.nodes()[4], request=b"\x00\x01garbage")
    with pytest.raises(DecodeError):
        RatchetTree.decode(SUITE, sample.changed(n4=node))
    big = replace(sample.nodes()[4], request=bytes(4097))
    refused(sample.changed(n4=big), FieldTooLargeError, "more than the limit of 4096")


def test_same_identity_twice(sample: Sample) -> None:
    """m4's leaf replaced by a second request of m0 (its own signature, another init key)."""
    again = signed_request(sample.identities[0], "m0 again", fresh_key())
    node = replace(sample.nodes()[8], request=again.encoded)
    refused(sample.changed(n8=node), DuplicateKeyError, "same identity key twice")


def test_same_init_key_twice(sample: Sample) -> None:
    """A new identity whose (really signed) request reuses m0's init key."""
    copycat = signed_request(Identity.generate(), "copycat", sample.requests[0].init_key)
    node = replace(sample.nodes()[8], request=copycat.encoded)
    refused(sample.changed(n8=node), DuplicateKeyError, "same init key twice")


@pytest.mark.parametrize(
    ("target", "source"),
    [(5, 1), (8, 0), (6, 4), (7, 3)],
    ids=["parent-repeats-parent", "leaf-repeats-leaf", "vacant-repeats-leaf", "root-repeats-parent"],
)
def test_public_key_used_twice(sample: Sample, target: int, source: int) -> None:
    nodes = sample.nodes()
    key = nodes[source].key
    assert key is not None and nodes[target].key is not None
    data = sample.changed(**{f"n{target}": replace(nodes[target], key=key)})
    refused(data, DuplicateKeyError, f"node {max(target, source)} repeats a public key")


@pytest.mark.parametrize("node", [0, 3, 6])
def test_invalid_x25519_key(sample: Sample, node: int) -> None:
    nodes = sample.nodes()
    refused(sample.changed(**{f"n{node}": replace(nodes[node], key=bytes(32))}), InvalidPublicKeyError)


# --- tree-wide rules ----------------------------------------------------------------------------


@pytest.mark.parametrize("node", [9, 11, 13], ids=["pass-through", "pass-through-above", "blank"])
def test_parent_keyed_without_two_keyed_children(sample: Sample, node: int) -> None:
    refused(sample.changed(**{f"n{node}": Node(key=fresh_key())}), InvalidValueError, f"node {node} is keyed")


@pytest.mark.parametrize("node", [1, 5, 3, 7])
def test_parent_unkeyed_with_two_keyed_children(sample: Sample, node: int) -> None:
    refused(sample.changed(**{f"n{node}": Node()}), InvalidValueError, f"node {node} is unkeyed")


@pytest.mark.parametrize(
    ("node", "chooser"),
    [(4, 2), (4, 3), (4, 6), (4, 8), (4, 2**32 - 1), (6, 3), (6, 5), (2, 9)],
    ids=[
        "itself",
        "vacant-slot",
        "blank-leaf",
        "beyond",
        "uint32-max",
        "vacant-by-itself",
        "vacant-by-blank",
        "untainted-member-by-beyond",
    ],
)
def test_taint_naming_a_non_member(sample: Sample, node: int, chooser: int) -> None:
    data = sample.changed(**{f"n{node}": replace(sample.nodes()[node], chooser=chooser)})
    refused(
        data, InvalidValueError, f"leaf {node // 2} is tainted by leaf {chooser}, which is not another member"
    )


def test_control_a_taint_naming_another_member_is_accepted(sample: Sample) -> None:
    data = sample.changed(n4=replace(sample.nodes()[4], chooser=1))  # m2's secret chosen by m1
    assert RatchetTree.decode(SUITE, data).tainted_by(2) == 1


# --- framing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("extra", [b"\x00", b"\x01" + bytes(32), b"junk"])
def test_trailing_bytes(sample: Sample, extra: bytes) -> None:
    refused(sample.data + extra, TrailingDataError)


def test_truncation_at_every_cut_point(sample: Sample) -> None:
    data = sample.data
    for cut in range(len(data)):
        with pytest.raises(GroupChatError) as info:
            RatchetTree.decode(SUITE, data[:cut])
        # A cut inside the request's length varint can leave a length the rest cannot fill; a
        # cut inside the request itself is reported by the request's own reader. Both truncate.
        assert type(info.value) is TruncatedError, (cut, repr(info.value))
