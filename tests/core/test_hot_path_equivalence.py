"""The hot paths' shortcuts give exactly what the general code gives (issue 16: commit and message speed).

Each shortcut here is checked against the plain computation it replaces, with Hypothesis where
the inputs have a natural space: one keyed HMAC for several HKDF blocks, the precomputed tree
tables, the direct commit decoder and the receive path's writes to the tree.
"""

from __future__ import annotations

import copy
import dataclasses
import hmac
import random
from collections.abc import Callable
from functools import partial

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from groupchat.core import message_protection as mp
from groupchat.core import tree_math as tm
from groupchat.core.admission import (
    DEFAULT_ADMISSION,
    MAX_USED_INIT_KEYS,
    AdmissionState,
    UsedInitKey,
    _used_init_keys_direct,
    _used_init_keys_general,
    init_key_ref,
    used_after,
)
from groupchat.core.codec import Writer, opaque
from groupchat.core.commit import Commit, CommitMessage, Operation, OpType, _decode_common, _decode_general
from groupchat.core.epoch.admission import signed_by
from groupchat.core.epoch.machine import MEMBER_INPUTS, Input, Phase, check
from groupchat.core.epoch.wire import admission_of, with_admission
from groupchat.core.errors import (
    AdmissionChangeError,
    ConfirmationError,
    GroupChatError,
    InvalidCommitError,
    ReplayError,
    UsageError,
)
from groupchat.core.events import MessageEchoed, MessageReceived
from groupchat.core.group import Group, GroupConfig
from groupchat.core.identity import Identity, JoinRequest
from groupchat.core.key_schedule import GroupContext
from groupchat.core.message_protection import (
    ApplicationWire,
    ContentType,
    FramedContent,
    PrivateMessage,
    WireFormat,
    open_application,
    open_private_message,
    protect_application,
    read_application_data,
    seal_application,
    sign_framed_content,
    verify_application,
    verify_framed_content,
)
from groupchat.core.schemes.tree.derivation import node_secret
from groupchat.core.schemes.tree.ratchet_tree import RatchetTree
from groupchat.core.secret_tree import RatchetKind, SecretTree
from groupchat.core.suite import (
    CipherSuite,
    KeyedHmac,
    check_x25519_public,
    expand_block,
    expand_blocks,
    expand_three,
    extract_unsalted,
    is_x25519_public,
)

_SIGNER = Ed25519PrivateKey.from_private_bytes(bytes([9]) * 32)
_SD = bytes([2]) * 32
_ENC = bytes([1]) * 32


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80), st.lists(st.binary(max_size=120), max_size=12))
def test_expand_blocks_is_expand_block_of_each_info(prk: bytes, infos: list[bytes]) -> None:
    expected = [hmac.digest(prk, info + b"\x01", "sha256") for info in infos]
    assert expand_blocks(prk, infos) == expected
    assert [expand_block(prk, info) for info in infos] == expected
    keyed = KeyedHmac(prk)
    assert expand_blocks(keyed, infos) == expected
    assert expand_blocks(keyed, infos) == expected  # the keyed state is copied, never consumed
    assert copy.deepcopy(keyed).expand_blocks(infos) == expected == copy.copy(keyed).expand_blocks(infos)
    for ikm in (prk, *infos):
        assert (
            extract_unsalted(ikm) == CipherSuite().extract(b"", ikm) == hmac.digest(bytes(32), ikm, "sha256")
        )


# --- tree arithmetic tables ---------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=12), st.data())
def test_tree_tables_are_the_tree_functions(k: int, data: st.DataObject) -> None:
    n = 1 << k
    levels = tm.levels(n)
    assert len(levels) == tm.node_width(n)
    for x in data.draw(st.lists(st.integers(0, tm.node_width(n) - 1), min_size=1, max_size=20)):
        assert levels[x] == tm.level(x)
    for leaf in data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=20)):
        assert tm.leaf_path(leaf, n) == tuple(tm.direct_path(2 * leaf, n))


# --- the receive path's writes to the tree ------------------------------------------------------


def _reference_write_path(
    tree: RatchetTree, leaf: int, pubs: list[bytes], member: JoinRequest | None, chooser: int | None
) -> None:
    """``RatchetTree.write_path`` as first written, with the general primitives (the shape and key
    checks are shared, so only the writes are compared)."""
    while leaf >= tree.capacity:
        tree.grow()
    x = 2 * leaf
    path = tm.direct_path(x, tree.capacity)
    keyed = [tree.effective_key(tm.sibling(c, tree.capacity)) is not None for c in [x, *path[:-1]]]
    assert len(pubs) == 1 + sum(keyed)
    tree.set_leaf(leaf, pubs[0], member, chooser)
    it = iter(pubs[1:])
    for p, has_key in zip(path, keyed, strict=True):
        tree._set_own(p, next(it) if has_key else None)
        tree._refresh(p)


def _state(tree: RatchetTree) -> tuple[object, ...]:
    return (tree._own, tree._eff, tree._owner, tree._dirty, tree._journal, tree._chooser, tree._members)


def _needed_keys(tree: RatchetTree, leaf: int) -> int:
    x = 2 * leaf
    path = tm.direct_path(x, tree.capacity)
    return 1 + sum(tree.effective_key(tm.sibling(c, tree.capacity)) is not None for c in [x, *path[:-1]])


def _key(rng: random.Random) -> bytes:
    return bytes([rng.randrange(256) for _ in range(31)] + [rng.randrange(1, 0x7F)])


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=1, max_value=5), st.integers(0, 2**32), st.lists(st.integers(0, 31), max_size=24)
)
def test_write_path_writes_what_the_general_primitives_write(k: int, seed: int, leaves: list[int]) -> None:
    rng = random.Random(seed)
    suite = CipherSuite()
    fast, slow = RatchetTree(suite, 1 << k), RatchetTree(suite, 1 << k)
    for leaf in (x % (1 << k) for x in leaves):
        pubs = [_key(rng) for _ in range(_needed_keys(fast, leaf))]
        chooser = None if rng.random() < 0.5 else (leaf + 1) % (1 << k)
        for tree, write in ((fast, RatchetTree.write_path), (slow, _reference_write_path)):
            tree.begin()
            write(tree, leaf, pubs, None, chooser)
        assert _state(fast) == _state(slow)
        assert fast.tree_hash == slow.tree_hash
        assert _state(fast) == _state(slow)  # the journalled rehash, too
        if rng.random() < 0.3:
            fast.rollback()
            slow.rollback()
        else:
            fast.end()
            slow.end()
        assert _state(fast) == _state(slow) and fast.tree_hash == slow.tree_hash


# --- the direct commit decoder ------------------------------------------------------------------


def _commit_wire(group_id: bytes, ad: bytes, ops: tuple[Operation, ...]) -> bytes:
    body = Commit(ops).encode()
    content = FramedContent(group_id, 5, 1, ad, ContentType.COMMIT, body)
    return CommitMessage(content, Commit(ops), bytes(range(64)), bytes(range(32))).encode()


def _ops(rng: random.Random, count: int, keys: int, rekey: bool = False) -> tuple[Operation, ...]:
    ops = [
        Operation(
            OpType.REMOVE if i % 2 else OpType.UPDATE,
            rng.randrange(1 << 16),
            tuple(bytes([rng.randrange(256)]) * 32 for _ in range(keys)),
        )
        for i in range(count)
    ]
    if rekey:
        ops.insert(0, Operation(OpType.REKEY, 7, (bytes(32),)))
    return tuple(ops)


def _decoded(data: bytes) -> object:
    try:
        return CommitMessage.decode(data)
    except GroupChatError as exc:
        return (type(exc), str(exc))


def _decoded_general(data: bytes) -> object:
    try:
        return _decode_general(data)
    except GroupChatError as exc:
        return (type(exc), str(exc))


@pytest.mark.parametrize("group_id", [b"g", bytes(63), bytes(64)])
@pytest.mark.parametrize("ad", [b"", bytes(63), bytes(64)])
@pytest.mark.parametrize(
    ("count", "keys", "rekey"),
    [(1, 0, False), (1, 11, False), (2, 17, False), (1, 18, False), (60, 10, False), (1, 3, True)],
)
def test_every_commit_shape_decodes_as_the_general_decoder_does(
    group_id: bytes, ad: bytes, count: int, keys: int, rekey: bool
) -> None:
    data = _commit_wire(group_id, ad, _ops(random.Random(count * keys), count, keys, rekey))
    assert _decoded(data) == _decoded_general(data)
    if keys <= 17:
        assert CommitMessage.decode(data).encode() == data
    common = (
        len(group_id) < 64 and len(ad) < 64 and keys <= 17 and not rekey and count * (7 + 32 * keys) < 1 << 14
    )
    assert (_decode_common(data) is not None) == common  # the direct read takes the common shape only


def test_mutated_commits_decode_or_fail_as_the_general_decoder_does() -> None:
    rng = random.Random(16)
    seeds = [
        _commit_wire(b"room", b"", _ops(rng, 1, 11)),
        _commit_wire(bytes(20), b"ad", _ops(rng, 3, 2)),
        _commit_wire(b"r", b"", _ops(rng, 2, 1, rekey=True)),
    ]
    for _ in range(4000):
        data = bytearray(rng.choice(seeds))
        action = rng.randrange(4)
        if action == 0:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif action == 1:
            del data[rng.randrange(len(data)) :]
        elif action == 2:
            data[rng.randrange(len(data)) : 0] = bytes(rng.randrange(1, 4))
        else:
            data[rng.randrange(len(data))] = rng.choice((0, 1, 3, 0x20, 0x3F, 0x40, 0x7F, 0x80, 0xC0, 0xFF))
        raw = bytes(data)
        assert _decoded(raw) == _decoded_general(raw), raw.hex()


# --- application messages ----------------------------------------------------------------------


def _counter_rand() -> Callable[[int], bytes]:
    state = [0]

    def rand(n: int) -> bytes:
        state[0] += 1
        return (state[0].to_bytes(4, "big") * (n // 4 + 1))[:n]

    return rand


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from([1, 3]),
    st.binary(min_size=1, max_size=80),
    st.integers(0, 2**64 - 1),
    st.integers(0, 15),
    st.binary(max_size=80),
    st.binary(max_size=300),
    st.sampled_from([0, 1, 32, 100]),
    st.integers(0, 3),
)
def test_seal_application_is_sign_then_protect(
    suite_id: int, group_id: bytes, epoch: int, leaf: int, ad: bytes, data: bytes, padding: int, sent: int
) -> None:
    suite = CipherSuite(suite_id)
    context = GroupContext(suite.id, group_id, epoch, bytes(32), bytes(32)).encode()
    fast_tree, slow_tree = SecretTree(suite, _ENC, 16), SecretTree(suite, _ENC, 16)
    for tree in (fast_tree, slow_tree):  # a few generations in: the ratchets must stay in step
        for _ in range(sent):
            tree.next_send(leaf, RatchetKind.APPLICATION)
    fast = seal_application(
        suite,
        _SIGNER,
        context,
        group_id=group_id,
        epoch=epoch,
        sender=leaf,
        authenticated_data=ad,
        data=data,
        secret_tree=fast_tree,
        sender_data_secret=_SD,
        padding_block=padding,
        rand=_counter_rand(),
    )
    content = FramedContent(group_id, epoch, leaf, ad, ContentType.APPLICATION, opaque(data))
    signature = sign_framed_content(suite, _SIGNER, WireFormat.PRIVATE_MESSAGE, content, context)
    slow = protect_application(
        suite,
        content=content,
        signature=signature,
        secret_tree=slow_tree,
        sender_data_secret=_SD,
        padding_block=padding,
        rand=_counter_rand(),
    )
    assert fast == slow
    assert fast_tree.next_send(leaf, RatchetKind.APPLICATION) == slow_tree.next_send(
        leaf, RatchetKind.APPLICATION
    )


@pytest.mark.parametrize(
    ("group_id", "epoch", "leaf", "ad"),
    [(b"g", 2**64, 0, b""), (b"g", 0, 2**32, b""), (bytes(256), 0, 0, b""), (b"g", 0, 0, bytes(4097))],
)
def test_seal_application_refuses_what_the_general_path_refuses(
    group_id: bytes, epoch: int, leaf: int, ad: bytes
) -> None:
    suite = CipherSuite()

    def general() -> bytes:
        content = FramedContent(group_id, epoch, leaf, ad, ContentType.APPLICATION, opaque(b"hi"))
        signature = sign_framed_content(suite, _SIGNER, WireFormat.PRIVATE_MESSAGE, content, b"")
        tree = SecretTree(suite, _ENC, 2)
        return protect_application(
            suite, content=content, signature=signature, secret_tree=tree, sender_data_secret=_SD
        )

    def fast() -> bytes:
        return seal_application(
            suite,
            _SIGNER,
            b"",
            group_id=group_id,
            epoch=epoch,
            sender=leaf,
            authenticated_data=ad,
            data=b"hi",
            secret_tree=SecretTree(suite, _ENC, 2),
            sender_data_secret=_SD,
        )

    outcomes = []
    for fn in (general, fast):
        try:
            fn()
            outcomes.append(None)
        except GroupChatError as exc:
            outcomes.append((type(exc), str(exc)))
    assert outcomes[0] is not None and outcomes[0] == outcomes[1]


@pytest.mark.parametrize("inp", list(Input))
def test_the_member_shortcut_of_the_guard_allows_what_check_allows(inp: Input) -> None:
    try:
        check(Phase.MEMBER, inp, epoch=3)
        allowed = True
    except UsageError:
        allowed = False
    assert (inp in MEMBER_INPUTS) == allowed


_P = 2**255 - 19
_EDGES = [0, 1, 2, 9, _P - 2, _P - 1, _P, _P + 1, _P + 2, 2**255 - 1, 2**255, 2**256 - 1]
_EDGES += [325606250916557431795983626356110631294008115727848805560023387167927233504]
_EDGES += [39382357235489614581723060781553021112529911719440698176882885853963445705823]


def _accepted(key: bytes) -> bool:
    try:
        check_x25519_public(key)
    except GroupChatError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=40), st.sampled_from(_EDGES).map(lambda u: u.to_bytes(32, "little"))))
def test_is_x25519_public_accepts_what_the_check_accepts(key: bytes) -> None:
    assert is_x25519_public(key) == _accepted(key)


def test_is_x25519_public_at_every_edge() -> None:
    for u in _EDGES:
        for delta in (-1, 0, 1):
            if 0 <= u + delta < 2**256:
                key = (u + delta).to_bytes(32, "little")
                assert is_x25519_public(key) == _accepted(key), u + delta


# --- the used init keys of the admission state --------------------------------------------------


def _entries(rng: random.Random, count: int) -> bytes:
    return b"".join(
        bytes(rng.randrange(256) for _ in range(16)) + rng.randrange(2**64).to_bytes(8, "big")
        for _ in range(count)
    )


def _general_used(data: bytes) -> object:
    try:
        return _used_init_keys_general(data)
    except GroupChatError as exc:
        return (type(exc), str(exc))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32), st.integers(0, 300), st.integers(0, 5))
def test_used_init_keys_read_directly_as_the_reader_reads_them(seed: int, count: int, mutate: int) -> None:
    rng = random.Random(seed)
    data = bytearray(opaque(_entries(rng, count)))
    for _ in range(mutate):
        action = rng.randrange(3)
        if action == 0 and data:
            data[rng.randrange(len(data))] = rng.choice((0, 0x3F, 0x40, 0x41, 0x7F, 0x80, 0xFF))
        elif action == 1 and data:
            del data[rng.randrange(len(data)) :]
        else:
            data += bytes(rng.randrange(1, 30))
    raw = bytes(data)
    direct = _used_init_keys_direct(raw)
    if direct is not None:
        assert direct == _general_used(raw)
    if mutate == 0 and 0 < count <= MAX_USED_INIT_KEYS:
        assert direct is not None  # the common shape is read directly


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=16, max_size=16), st.integers(-1, 2**64)), max_size=40))
def test_used_init_keys_encode_as_the_writer_writes_them(entries: list[tuple[bytes, int]]) -> None:
    state = AdmissionState(used_init_keys=tuple(UsedInitKey(ref, n) for ref, n in entries))

    def outcome(encode: Callable[[], bytes]) -> object:
        """The bytes, or the error's class (the fast path words it for the field it checks)."""
        try:
            return encode()
        except GroupChatError as exc:
            assert "does not fit in a uint64 field" in str(exc), exc
            return type(exc)

    def writer() -> bytes:
        w = Writer()
        for ref, n in entries:
            w.raw(ref).u64(n)
        return Writer().opaque(w.bytes()).bytes()

    assert outcome(state.encode_used_init_keys) == outcome(writer)


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.sampled_from([b"groupchat v1 ", b"MLS 1.0 "]), st.data())
def test_node_secret_writes_out_the_kdf_label_it_would_build(
    seed: bytes, prefix: bytes, data: st.DataObject
) -> None:
    suite = CipherSuite(1, prefix)
    sk = X25519PrivateKey.from_private_bytes(seed)
    other = X25519PrivateKey.generate().public_key().public_bytes_raw()
    left, right = (
        data.draw(st.binary(min_size=32, max_size=32)),
        data.draw(st.binary(min_size=32, max_size=32)),
    )
    dh = sk.exchange(X25519PublicKey.from_public_bytes(other))
    general = suite.expand_with_label(suite.extract(b"", dh), b"tgdh node", opaque(left) + opaque(right), 32)
    assert node_secret(suite, sk, other, left, right) == general


def _reference_used_after(
    used: tuple[UsedInitKey, ...], departed: list[JoinRequest], prune: int | None, suite: CipherSuite
) -> object:
    """``used_after`` as first written: the list rebuilt from (ref, not_after) pairs."""
    if not departed and prune is None:
        return tuple(used)
    kept = {e.ref: e.not_after for e in used}
    for request in departed:
        ref = init_key_ref(suite, request.init_key)
        kept.pop(ref, None)
        kept[ref] = request.not_after
    if prune is not None:
        live = {ref: n for ref, n in kept.items() if n >= prune}
        if len(live) == len(kept):
            return AdmissionChangeError
        kept = live
    return tuple(UsedInitKey(ref, n) for ref, n in kept.items())[-MAX_USED_INIT_KEYS:]


_REQUESTS = [
    JoinRequest.create(
        CipherSuite(), Identity.generate(), b"g", f"m{i}", wall_clock=lambda i=i: 1_700_000_000 + i
    ).request
    for i in range(4)
]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 300), st.integers(0, 2**40)),
        max_size=MAX_USED_INIT_KEYS + 3,
        unique_by=lambda t: t[0],
    ),
    st.lists(st.sampled_from(range(4)), max_size=4, unique=True),
    st.one_of(st.none(), st.integers(0, 2**40)),
    st.booleans(),
)
def test_used_after_lists_what_it_first_listed(
    entries: list[tuple[int, int]], departed: list[int], prune: int | None, relist: bool
) -> None:
    suite = CipherSuite()
    used = [UsedInitKey(i.to_bytes(16, "big"), n) for i, n in entries]
    if relist and used and departed:  # a departed init key that is already listed moves to the end
        used.insert(0, UsedInitKey(init_key_ref(suite, _REQUESTS[departed[0]].init_key), 5))
    requests = [_REQUESTS[i] for i in departed]
    try:
        got: object = used_after(tuple(used), requests, prune, suite)
    except AdmissionChangeError:
        got = AdmissionChangeError
    assert got == _reference_used_after(tuple(used), requests, prune, suite)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.binary(min_size=16, max_size=16), st.integers(0, 2**64 - 1)), min_size=1, max_size=40
    )
)
def test_admission_of_reads_back_the_used_init_keys(entries: list[tuple[bytes, int]]) -> None:
    used = tuple(UsedInitKey(ref, n) for ref, n in dict(entries).items())
    state = AdmissionState(used_init_keys=used)
    ctx = GroupContext(1, b"g", 3, bytes(32), bytes(32), with_admission(b"", state))
    assert admission_of(ctx) == state == dataclasses.replace(DEFAULT_ADMISSION, used_init_keys=used)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(-1, 2**16),
    st.binary(max_size=80),
    st.integers(-1, 2**64),
    st.binary(max_size=40),
    st.binary(max_size=40),
    st.binary(max_size=100),
)
def test_group_context_encodes_as_the_writer_writes_it(
    suite_id: int, group_id: bytes, epoch: int, tree_hash: bytes, confirmed: bytes, extensions: bytes
) -> None:
    ctx = GroupContext(suite_id, group_id, epoch, tree_hash, confirmed, extensions)
    outcomes = []
    for encode in (ctx.encode, ctx._encode_general):
        try:
            outcomes.append(encode())
        except GroupChatError as exc:
            outcomes.append((type(exc), str(exc)))
    assert outcomes[0] == outcomes[1]


def test_signed_by_names_the_signer_on_covered_refusals_only() -> None:
    with pytest.raises(InvalidCommitError) as named, signed_by(3, "carol", identity_key=bytes(32)):
        raise InvalidCommitError("bad")
    assert named.value.signer == 3 and named.value.signer_name == "carol"
    with pytest.raises(ConfirmationError) as unnamed, signed_by(3, "carol", (ConfirmationError,)):
        raise ConfirmationError("tag")
    assert unnamed.value.signer is None
    with pytest.raises(KeyError), signed_by(3, "carol"):
        raise KeyError("not a refusal: passes through untouched")
    with signed_by(3, "carol") as entered:
        assert entered is None


def _refusal(fn: Callable[[], None]) -> object:
    try:
        fn()
    except UsageError as exc:
        return str(exc)
    return None


def test_the_guard_refuses_what_check_refuses_in_the_phase_the_group_is_in() -> None:
    group = Group.create(Identity.generate(), b"room", "m0", GroupConfig())
    for committing in (False, True):
        if committing:
            group.commit(update=True)  # our commit in flight: the COMMITTING phase
        for inp in Input:
            assert _refusal(partial(group._require, inp)) == _refusal(
                partial(check, group.phase, inp, epoch=group.epoch, in_flight=group._pending is not None)
            ), (group.phase, inp)


# --- application messages: the receive path --------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=80), st.lists(st.binary(max_size=60), min_size=3, max_size=3))
def test_the_unrolled_expansions_are_expand_blocks(prk: bytes, infos: list[bytes]) -> None:
    assert list(expand_three(prk, *infos)) == expand_blocks(prk, infos)
    keyed = KeyedHmac(prk)
    assert list(keyed.expand_pair(infos[0], infos[1])) == expand_blocks(prk, infos[:2])
    assert list(keyed.expand_pair(infos[0], infos[1])) == expand_blocks(prk, infos[:2])  # not consumed


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=4, max_size=32), st.binary(min_size=4, max_size=4))
def test_the_reuse_guard_is_xored_into_the_first_four_bytes(nonce: bytes, guard: bytes) -> None:
    head = bytes(a ^ b for a, b in zip(nonce[:4], guard, strict=True))
    assert mp._guarded(nonce, guard) == head + nonce[4:]


def test_enums_hash_as_the_ints_they_equal() -> None:
    """The ratchet and content kinds are dict keys on the per-message paths: hashed as their ints
    (in C), they still equal those ints, so a lookup by either finds the same entry."""
    for kind in (*RatchetKind, *ContentType):
        assert hash(kind) == hash(int(kind)) and {kind: 1}.get(int(kind)) == 1


@pytest.mark.parametrize("good", [True, False])
def test_verify_parts_is_verify_of_the_joined_content(good: bool) -> None:
    suite = CipherSuite()
    parts = (b"head", b"", b"body" * 50, b"context")
    signature = suite.sign_with_label(_SIGNER, b"FramedContentTBS", b"".join(parts))
    if not good:
        signature = bytes([signature[0] ^ 1]) + signature[1:]
    outcomes = []
    for key in (_SIGNER.public_key().public_bytes_raw(), b"\x01" * 31):  # the second is malformed
        for verify in (
            lambda k: suite.verify_with_label(k, b"FramedContentTBS", b"".join(parts), signature, "m"),
            lambda k: suite.verify_parts_with_label(k, b"FramedContentTBS", parts, signature, "m"),
        ):
            try:
                verify(key)
                outcomes.append(None)
            except GroupChatError as exc:
                outcomes.append((type(exc), str(exc)))
    assert outcomes[0] == outcomes[1] and outcomes[2] == outcomes[3]
    assert (outcomes[0] is None) == good and outcomes[2] is not None


_APP_SUITE = CipherSuite()
_APP_CONTEXT = GroupContext(1, b"room", 7, bytes(32), bytes(32)).encode()
_APP_SIGNER = _SIGNER.public_key().public_bytes_raw()


def _app_message(
    group_id: bytes = b"room", ad: bytes = b"", data: bytes = b"hello", leaf: int = 1, epoch: int = 7
) -> bytes:
    """An application message from ``leaf``'s first generation, signed for ``_APP_CONTEXT``."""
    return seal_application(
        _APP_SUITE,
        _SIGNER,
        _APP_CONTEXT,
        group_id=group_id,
        epoch=epoch,
        sender=leaf,
        authenticated_data=ad,
        data=data,
        secret_tree=SecretTree(_APP_SUITE, _ENC, 4),
        sender_data_secret=_SD,
    )


def _general_open(data: bytes, tree: SecretTree) -> object:
    """Decode, open and verify with the general code: what the receive path did before its shortcuts."""
    msg = PrivateMessage.decode(data)
    if msg.content_type != ContentType.APPLICATION:
        return "not an application message"
    opened, lookup = open_private_message(
        _APP_SUITE, msg, sender_data_secret=_SD, secret_tree=tree, body_reader=read_application_data
    )
    content = opened.content
    verify_framed_content(
        _APP_SUITE, _APP_SIGNER, WireFormat.PRIVATE_MESSAGE, content, _APP_CONTEXT, opened.signature
    )
    tree.commit(lookup)
    wire = (content.group_id, content.epoch, content.authenticated_data)
    return content.sender, opened.parsed, content.body, opened.signature, lookup.generation, wire


def _direct_open(data: bytes, tree: SecretTree) -> object:
    """The same through the receive path's shortcuts (as ``Protection._receive_private`` runs them)."""
    wire = ApplicationWire.read(data)
    if wire is None:
        msg = PrivateMessage.decode(data)
        if msg.content_type != ContentType.APPLICATION:
            return "not an application message"
        wire = ApplicationWire.of(msg)
    leaf, plain, body, signature, lookup = open_application(
        _APP_SUITE, wire, sender_data_secret=KeyedHmac(_SD), secret_tree=tree
    )
    verify_application(_APP_SUITE, _APP_SIGNER, _APP_CONTEXT, wire, leaf, body, signature)
    tree.commit(lookup)
    return (
        leaf,
        plain,
        body,
        signature,
        lookup.generation,
        (wire.group_id, wire.epoch, wire.authenticated_data),
    )


def _opened(fn: Callable[[bytes, SecretTree], object], data: bytes, tree: SecretTree) -> object:
    try:
        return fn(data, tree)
    except GroupChatError as exc:
        return (type(exc), str(exc))


@settings(max_examples=120, deadline=None)
@given(
    st.binary(min_size=1, max_size=80),
    st.binary(max_size=80),
    st.binary(max_size=300),
    st.integers(0, 3),
    st.integers(0, 2**64 - 1),
)
def test_the_receive_path_opens_what_the_general_code_opens(
    group_id: bytes, ad: bytes, data: bytes, leaf: int, epoch: int
) -> None:
    wire_bytes = _app_message(group_id, ad, data, leaf, epoch)
    msg = PrivateMessage.decode(wire_bytes)
    read = ApplicationWire.read(wire_bytes)
    assert (read is not None) == (len(group_id) < 64 and len(ad) < 64)  # the common shape only
    assert read is None or read == ApplicationWire.of(msg)
    trees = (SecretTree(_APP_SUITE, _ENC, 4), SecretTree(_APP_SUITE, _ENC, 4))
    first = _opened(_general_open, wire_bytes, trees[0])
    assert first == _opened(_direct_open, wire_bytes, trees[1])
    assert isinstance(first, tuple) and first[1] == data
    # A replay is refused alike, and both trees moved on alike.
    assert _opened(_general_open, wire_bytes, trees[0]) == _opened(_direct_open, wire_bytes, trees[1])
    assert trees[0].encode_state() == trees[1].encode_state()


def test_mutated_messages_open_or_fail_as_the_general_code_does() -> None:
    """Every refusal on the receive path (decoding, sender data, generation, AEAD, content split,
    padding, signature) is the general code's, error type and words; what opens, opens alike."""
    rng = random.Random(1024)
    seeds = [_app_message(), _app_message(bytes(63), bytes(5), bytes(300), leaf=3), _app_message(data=b"")]
    seeds.append(_app_message(bytes(70), bytes(64), bytes(17_000)))  # the general decoder's shape
    opened = 0
    for _ in range(2500):
        data = bytearray(rng.choice(seeds))
        action = rng.randrange(5)
        if action == 0:  # the header: lengths, epoch, content type, version
            data[rng.randrange(min(len(data), 90))] ^= 1 << rng.randrange(8)
        elif action == 1:  # anywhere: the sender data or the content ciphertext
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif action == 2:
            del data[rng.randrange(len(data)) :]
        elif action == 3:
            data += bytes(rng.randrange(1, 4))
        raw = bytes(data)
        trees = (SecretTree(_APP_SUITE, _ENC, 4), SecretTree(_APP_SUITE, _ENC, 4))
        general = _opened(_general_open, raw, trees[0])
        assert general == _opened(_direct_open, raw, trees[1]), raw.hex()
        assert trees[0].encode_state() == trees[1].encode_state()
        opened += not (isinstance(general, tuple) and isinstance(general[0], type))
    assert 0 < opened < 2500  # the unmutated seeds open; most mutations are refused


def _hand_sealed(plain: bytes, sender_data: bytes) -> bytes:
    """An application message from leaf 1, generation 0, sealed by hand around ``plain`` and
    ``sender_data`` (what no honest sender builds)."""
    tree = SecretTree(_APP_SUITE, _ENC, 4)
    _, key, nonce = tree.next_send(1, RatchetKind.APPLICATION)
    sd_aad = mp._sender_data_aad(b"room", 7, ContentType.APPLICATION)
    ciphertext = _APP_SUITE.seal(key, nonce, sd_aad + b"\x00", plain)
    sd_key, sd_nonce = mp._sender_data_key_nonce(_APP_SUITE, _SD, ciphertext)
    esd = _APP_SUITE.seal(sd_key, sd_nonce, sd_aad, sender_data)
    return PrivateMessage(b"room", 7, ContentType.APPLICATION, b"", esd, ciphertext).encode()


_SIGNED = opaque(b"hi") + opaque(bytes(64))  # a body and a (forged) signature
_LEAF_1 = (1).to_bytes(4, "big")


@pytest.mark.parametrize(
    ("plain", "sender_data", "error"),
    [
        (_SIGNED + b"\x00\x01", _LEAF_1 + bytes(8), "padding"),  # non-zero padding
        (opaque(b"hi") + opaque(bytes(63)), _LEAF_1 + bytes(8), "signature"),  # a short signature
        (b"\x80", _LEAF_1 + bytes(8), "application_data"),  # a body cut short
        (_SIGNED, _LEAF_1 + bytes(7), "encrypted_sender_data"),  # 11-byte sender data
        (_SIGNED, _LEAF_1 + bytes(9), "encrypted_sender_data"),  # 13 bytes
        (_SIGNED, (9).to_bytes(4, "big") + bytes(8), "leaf 9"),  # no such leaf
        (_SIGNED, _LEAF_1 + (5000).to_bytes(4, "big") + bytes(4), "ahead"),  # too far ahead
        (_SIGNED, _LEAF_1 + bytes(8), "signature does not verify"),  # the forged signature
    ],
)
def test_hand_built_messages_are_refused_as_the_general_code_refuses_them(
    plain: bytes, sender_data: bytes, error: str
) -> None:
    data = _hand_sealed(plain, sender_data)
    trees = (SecretTree(_APP_SUITE, _ENC, 4), SecretTree(_APP_SUITE, _ENC, 4))
    general = _opened(_general_open, data, trees[0])
    assert general == _opened(_direct_open, data, trees[1])
    assert isinstance(general, tuple) and isinstance(general[0], type) and error in str(general[1]), general
    assert trees[0].encode_state() == trees[1].encode_state()
    for tree in trees:  # nothing was consumed: generation 0 of leaf 1 is still there to read
        assert tree.lookup(1, RatchetKind.APPLICATION, 0).generation == 0


def test_a_group_reads_both_shapes_of_application_message() -> None:
    """The common shape (read directly) and a long one (authenticated data of 64 bytes and more, a
    ciphertext over 16 KiB: decoded in full) give the same events through ``Group.receive``."""
    creator = Group.create(Identity.generate(), b"room", "m0", GroupConfig())
    pending = JoinRequest.create(creator.suite, Identity.generate(), b"room", "m1", GroupConfig().rand)
    commit = creator.commit(add=[pending.request])
    creator.receive(commit)
    welcome = next(item.data for item in creator.data_to_send())
    joiner = Group.join(pending, welcome, GroupConfig())
    for ad, plaintext in ((b"", b"hi"), (bytes(63), bytes(100)), (bytes(64), bytes(20_000))):
        data = creator.encrypt(plaintext, ad)
        assert (ApplicationWire.read(data) is not None) == (len(ad) < 64 and len(plaintext) < 16_000)
        event = joiner.receive(data)
        assert isinstance(event, MessageReceived) and event.plaintext == plaintext
        assert event.authenticated_data == ad and event.sender.leaf == 0


# --- our own messages' echoes, kept by their bytes -----------------------------------------------


def _pair() -> tuple[Group, Group, Identity]:
    """A creator (whose identity is returned, to restore it) and one joiner."""
    identity = Identity.generate()
    creator = Group.create(identity, b"room", "m0", GroupConfig())
    pending = JoinRequest.create(creator.suite, Identity.generate(), b"room", "m1", GroupConfig().rand)
    creator.receive(creator.commit(add=[pending.request]))
    joiner = Group.join(pending, next(item.data for item in creator.data_to_send()), GroupConfig())
    return creator, joiner, identity


def test_echoes_are_recognised_by_bytes_before_and_after_a_restart() -> None:
    """A short message is remembered by its bytes and a long one by digest; either echo names the
    SHA-256 of the message, also once the state was stored and restored (stored as digests)."""
    creator, joiner, identity = _pair()
    short = [creator.encrypt(b"hi %d" % i) for i in range(3)]
    long = creator.encrypt(bytes(5000))
    assert list(creator._unechoed) == [*short, (creator.suite.hash(long),)] and creator._unechoed_hashed == 1
    event = creator.receive(short[0])
    assert isinstance(event, MessageEchoed) and event.message_id == creator.suite.hash(short[0])
    restored = Group.restore(creator.export_state(), identity)
    assert all(isinstance(k, tuple) for k in restored._unechoed) and restored._unechoed_hashed == 3
    assert len(restored._unechoed) == 3
    for group in (creator, restored):
        for data in (*short[1:], long):
            event = group.receive(data)
            assert isinstance(event, MessageEchoed) and event.message_id == group.suite.hash(data)
            assert event.epoch == creator.epoch
        with pytest.raises(ReplayError):  # an echo seen once is our own generation, used
            group.receive(short[1])
    for data in (*short, long):  # the others read them as they always did
        assert isinstance(joiner.receive(data), MessageReceived)


def test_the_unechoed_bound_forgets_the_oldest_whichever_way_it_is_kept() -> None:
    """Digests and bytes share the one bound of 1024 and the oldest goes first: the stored
    digests of a restored state, then the oldest short message, never the long one just sent (a
    review found the newest digest forgotten at once, its echo then refused as a replay)."""
    creator, _, identity = _pair()
    for i in range(4):
        creator.encrypt(b"old %d" % i)
    group = Group.restore(creator.export_state(), identity)  # four digests
    sent = [group.encrypt(b"%d" % i) for i in range(1022)]
    assert len(group._unechoed) == 1024 and group._unechoed_hashed == 2
    assert list(group._unechoed_digests())[-1] == group.suite.hash(sent[-1])
    for i in range(3):
        sent.append(group.encrypt(b"more %d" % i))
    assert group._unechoed_hashed == 0 and len(group._unechoed) == 1024
    assert sent[0] not in group._unechoed and sent[1] in group._unechoed
    long = group.encrypt(bytes(5000))  # the newest, kept by digest
    assert group._unechoed_hashed == 1 and sent[1] not in group._unechoed and sent[2] in group._unechoed
    event = group.receive(long)
    assert isinstance(event, MessageEchoed) and event.message_id == group.suite.hash(long)
    assert group._unechoed_hashed == 0
    with pytest.raises(ReplayError):  # the forgotten oldest: our own generation, used
        group.receive(sent[1])
