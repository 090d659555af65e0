"""One test per class of bad input to a live Group, each pinning the exact error class.

Every test also checks that the rejection changed nothing: the receiver's state fingerprint
(epoch, epoch authenticator, tree, secrets, transcript, pending commit, ...) is identical
before and after, and a subsequent valid message (usually the legitimate commit, then a round
of "everyone decrypts everyone") still works.

Covered: low-order and non-canonical X25519 keys in a commit path (re-signed by the committer so
the key check itself must fire, with a control case showing that a re-signed commit with a
*valid* foreign key gets past the signature and fails later), a bad signature, stale and future
epochs, replayed commits and application messages, duplicate identity / init keys, a commit from
a non-member leaf, truncation at every cut point, oversized fields, non-minimal varints, unknown
versions, wrong group ids, join requests for another group, self-removal, generation jumps past
``max_forward``, the previous-epoch retention window under an injected clock, and ghost members
(a relay-forged commit, and a member-signed commit carrying a join request its identity never
signed).
"""

from __future__ import annotations

import time
from collections import deque

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from group_harness import Harness, fingerprint, welcome_for
from rejections import assert_rejected, finish, rebuild

from groupchat.core.codec import Writer, encode_varint
from groupchat.core.commit import CommitMessage, Operation, OpType
from groupchat.core.errors import (
    ConfirmationError,
    DuplicateKeyError,
    EpochError,
    FieldTooLargeError,
    GenerationError,
    GroupChatError,
    InconsistentPathError,
    InvalidCommitError,
    InvalidPublicKeyError,
    NonMinimalLengthError,
    ProtocolError,
    ReplayError,
    SignatureError,
    TruncatedError,
    UnknownMemberError,
    UnknownVersionError,
    UsageError,
    WrongGroupError,
)
from groupchat.core.events import EpochChanged, MessageReceived, RemovedFromGroup
from groupchat.core.group import Group, GroupConfig
from groupchat.core.identity import Identity, JoinRequest
from groupchat.core.message_protection import WireFormat
from groupchat.lab.clock import ManualClock

P = 2**255 - 19


def u(n: int) -> bytes:
    return n.to_bytes(32, "little")


LOW_ORDER = {
    "zero": u(0),
    "one": u(1),
    "order8": u(325606250916557431795983626356110631294008115727848805560023387167927233504),
    "order8b": u(39382357235489614581723060781553021112529911719440698176882885853963445705823),
    "p-1": u(P - 1),
}
NON_CANONICAL = {
    "p": u(P),
    "p+1": u(P + 1),
    "p+9": u(P + 9),  # 9 mod p: the base point, encoded non-canonically
}


def valid_public() -> bytes:
    return X25519PrivateKey.generate().public_key().public_bytes_raw()


# --- fixtures and helpers ----------------------------------------------------------------------


def with_path_key(commit: bytes, op_index: int, key_index: int, key: bytes) -> list[Operation]:
    ops = list(CommitMessage.decode(commit).commit.operations)
    op = ops[op_index]
    path = list(op.path)
    path[key_index] = key
    ops[op_index] = Operation(op.type, op.leaf, tuple(path), op.request)
    return ops


def with_request(commit: bytes, request: JoinRequest) -> list[Operation]:
    ops = list(CommitMessage.decode(commit).commit.operations)
    i = next(i for i, op in enumerate(ops) if op.type == OpType.ADD)
    ops[i] = Operation(OpType.ADD, ops[i].leaf, ops[i].path, request)
    return ops


def forged_request(
    group_id: bytes, identity_key: bytes, name: str, init_key: bytes, signer: Ed25519PrivateKey, h: Harness
) -> JoinRequest:
    """A join request claiming ``identity_key`` but signed by ``signer``."""
    not_after = int(time.time()) + 3600
    tbs = JoinRequest.tbs(h.suite.id, group_id, identity_key, name.encode(), init_key, not_after)
    signature = h.suite.sign_with_label(signer, b"JoinRequestTBS", tbs)
    return JoinRequest.decode(Writer().raw(tbs).opaque(signature).bytes())


RECEIVERS = ["m0", "m2", "m4"]


# --- the rebuild helper itself ---------------------------------------------------------------


def test_rebuild_without_changes_is_byte_exact(h: Harness) -> None:
    """Ed25519 is deterministic: if nothing changes, the re-signed commit is the original, so the
    crafted commits below differ from valid ones only where each test says."""
    commit = h.members["m1"].commit(add=[h.join_request().request], remove=[h.leaf("m3")], update=True)
    assert rebuild(h, "m1", commit) == commit


# --- bad public keys in a commit path ----------------------------------------------------------


@pytest.mark.parametrize("key_index", [0, 1, -1], ids=["leaf", "parent", "root"])
@pytest.mark.parametrize("bad", sorted({**LOW_ORDER, **NON_CANONICAL}))
def test_bad_x25519_key_in_commit_path(h: Harness, bad: str, key_index: int) -> None:
    key = {**LOW_ORDER, **NON_CANONICAL}[bad]
    commit = h.members["m1"].commit(update=True)
    crafted = rebuild(h, "m1", commit, ops=with_path_key(commit, 0, key_index, key))
    assert_rejected(h, RECEIVERS, crafted, InvalidPublicKeyError)
    finish(h, "m1", commit, ["m1", "m2"])


def test_top_bit_set_x25519_key_in_commit_path(h: Harness) -> None:
    """Setting bit 255 does not change the X25519 result; the encoding is still refused."""
    commit = h.members["m1"].commit(update=True)
    pub = CommitMessage.decode(commit).commit.operations[0].path[1]
    top = pub[:31] + bytes([pub[31] | 0x80])
    crafted = rebuild(h, "m1", commit, ops=with_path_key(commit, 0, 1, top))
    assert_rejected(h, RECEIVERS, crafted, InvalidPublicKeyError)
    finish(h, "m1", commit, ["m1", "m3"])


def test_bad_key_in_an_add_path_of_a_multi_operation_commit(h: Harness) -> None:
    commit = h.members["m1"].commit(add=[h.join_request().request], remove=[h.leaf("m3")], update=True)
    ops = CommitMessage.decode(commit).commit.operations
    assert [op.type for op in ops] == [OpType.REMOVE, OpType.ADD, OpType.UPDATE]
    crafted = rebuild(h, "m1", commit, ops=with_path_key(commit, 1, 0, LOW_ORDER["order8"]))
    assert_rejected(h, ["m0", "m2", "m4"], crafted, InvalidPublicKeyError)


def test_control_valid_foreign_key_passes_signature_then_fails_the_path_check(h: Harness) -> None:
    """Control for the tests above: the re-signed commit is accepted by the signature check, so the
    key check is what rejected them. With a valid key the commit fails later in processing."""
    commit = h.members["m1"].commit(update=True)
    crafted = rebuild(h, "m1", commit, ops=with_path_key(commit, 0, -1, valid_public()))
    for name in RECEIVERS:
        group = h.members[name]
        before = fingerprint(group)
        with pytest.raises((InconsistentPathError, ConfirmationError)):
            group.receive(crafted)
        assert fingerprint(group) == before
    finish(h, "m1", commit, ["m1", "m0"])


def test_low_order_init_key_in_join_request(h: Harness) -> None:
    """A join request (validly signed by its identity) whose init key is low order cannot even be
    decoded, so a commit carrying it is refused before anything else."""
    ident = Identity.generate()
    tbs = JoinRequest.tbs(h.suite.id, h.group_id, ident.public_key, b"evil", LOW_ORDER["zero"], 2**40)
    raw = Writer().raw(tbs).opaque(h.suite.sign_with_label(ident.signing_key, b"JoinRequestTBS", tbs)).bytes()
    with pytest.raises(InvalidPublicKeyError):
        JoinRequest.decode(raw)
    with pytest.raises(InvalidPublicKeyError):
        h.members["m0"].commit(add=[raw])
    assert not h.members["m0"].has_pending_commit


# --- signatures, epochs, replays ---------------------------------------------------------------


def test_bad_commit_signature(h: Harness) -> None:
    commit = h.members["m1"].commit(update=True)
    msg = CommitMessage.decode(commit)
    sig = bytearray(msg.signature)
    sig[5] ^= 0x10
    bad = CommitMessage(msg.content, msg.commit, bytes(sig), msg.confirmation_tag).encode()
    assert_rejected(h, RECEIVERS, bad, SignatureError)
    # Signed by another member's identity while claiming m1's leaf.
    impostor = rebuild(h, "m1", commit, signer=h.members["m2"]._identity.signing_key)
    assert_rejected(h, RECEIVERS, impostor, SignatureError)
    finish(h, "m1", commit, ["m1", "m4"])


def test_stale_epoch_commit(h: Harness) -> None:
    stale = h.members["m2"].commit(update=True)
    h.update("m1")  # m1's commit wins the epoch; m2's is now one epoch behind
    assert_rejected(h, ["m0", "m1", "m3", "m4"], stale, EpochError)
    h.assert_consistent(["m2", "m0"])
    finish(h, "m3", h.members["m3"].commit(update=True), ["m3"])


def test_future_epoch_commit(h: Harness) -> None:
    first = h.members["m1"].commit(update=True)
    h.deliver(first, to=["m0", "m1", "m2", "m4"])  # m3 misses it
    second = h.members["m2"].commit(update=True)
    assert_rejected(h, ["m3"], second, EpochError)
    assert isinstance(h.members["m3"].receive(first), EpochChanged)  # catch up, in order
    finish(h, "m2", second, ["m3", "m2"])


def test_replayed_commit(h: Harness) -> None:
    commit = h.members["m1"].commit(update=True)
    finish(h, "m1", commit, [])
    assert_rejected(h, ["m0", "m1", "m2", "m3", "m4"], commit, ReplayError)
    h.update("m2")  # still a replay one epoch later, not merely a stale epoch
    assert_rejected(h, ["m0", "m1", "m4"], commit, ReplayError)
    h.assert_consistent(["m1", "m3"])


def test_replayed_application_message(h: Harness) -> None:
    message = h.check_send("m2", b"once only")
    assert_rejected(h, ["m0", "m1", "m3", "m4"], message, ReplayError)
    # The sender's own second echo is not a delivery receipt any more: also a replay.
    assert_rejected(h, ["m2"], message, ReplayError)
    h.assert_consistent(["m2", "m0"])


def test_generation_jump_beyond_max_forward() -> None:
    h = Harness(GroupConfig(max_forward=8))
    h.add("m0", 2)
    sender, receiver = h.members["m1"], h.members["m2"]
    messages = [sender.encrypt(b"msg %d" % i) for i in range(10)]
    assert_rejected(h, ["m2"], messages[9], GenerationError)  # 9 ahead of the next expected (0)
    ev = receiver.receive(messages[8])  # exactly max_forward ahead is allowed
    assert isinstance(ev, MessageReceived) and ev.generation == 8
    ev = receiver.receive(messages[9])
    assert isinstance(ev, MessageReceived) and ev.plaintext == b"msg 9"
    ev = receiver.receive(messages[3])  # a skipped key was kept
    assert isinstance(ev, MessageReceived) and ev.plaintext == b"msg 3"


def test_previous_epoch_retention_window() -> None:
    """Messages of the previous epoch decrypt for ``previous_epoch_ttl`` seconds after a commit
    (in-flight messages), then the old keys are gone: EpochError. Two epochs back: always EpochError."""
    clock = ManualClock()
    h = Harness(GroupConfig(clock=clock, previous_epoch_ttl=30.0))
    h.add("m0", 3)
    in_flight = [h.members["m2"].encrypt(b"in flight %d" % i) for i in range(2)]
    older = h.members["m3"].encrypt(b"two epochs old")
    h.update("m1")
    clock.now += 29.0
    ev = h.members["m0"].receive(in_flight[0])
    assert isinstance(ev, MessageReceived) and ev.epoch == h.epoch - 1 and ev.plaintext == b"in flight 0"
    clock.now += 2.0  # 31 s after the epoch changed: the previous epoch's keys expire
    for name in ("m0", "m3"):
        group = h.members[name]
        before = fingerprint(group)
        with pytest.raises(GroupChatError) as info:
            group.receive(in_flight[1])
        assert type(info.value) is EpochError
        # Only the expired previous-epoch keys were dropped (forward secrecy); nothing else changed.
        after = fingerprint(group)
        assert after[:11] + after[12:] == before[:11] + before[12:]
        assert after[11] is None
    h.assert_consistent(["m2", "m3"])
    h.update("m0")
    assert_rejected(h, ["m1", "m2"], older, EpochError)  # never more than one epoch back
    h.assert_consistent(["m3", "m1"])


# --- duplicate keys ----------------------------------------------------------------------------


def test_adding_an_identity_that_is_already_a_member(h: Harness) -> None:
    m2 = h.members["m2"]
    again = JoinRequest.create(h.suite, m2._identity, h.group_id, "m2 again")
    committer = h.members["m1"]
    before = fingerprint(committer)
    with pytest.raises(DuplicateKeyError):
        committer.commit(add=[again.request])
    assert fingerprint(committer) == before
    # Receiver side: a member-signed commit that carries it anyway.
    newcomer = h.join_request()
    commit = committer.commit(add=[newcomer.request])
    crafted = rebuild(h, "m1", commit, ops=with_request(commit, again.request))
    assert_rejected(h, RECEIVERS, crafted, DuplicateKeyError)
    # The same new identity twice in one commit.
    twin = Identity.generate()
    a = JoinRequest.create(h.suite, twin, h.group_id, "twin a")
    b = JoinRequest.create(h.suite, twin, h.group_id, "twin b")
    with pytest.raises(DuplicateKeyError):
        h.members["m3"].commit(add=[a.request, b.request])
    assert not h.members["m3"].has_pending_commit
    finish(h, "m1", commit, ["m1", "m2"], (newcomer,))


def test_join_request_reusing_an_init_key(h: Harness) -> None:
    def seed(n: int) -> bytes:
        return b"\x42" * n

    first = JoinRequest.create(h.suite, Identity.generate(), h.group_id, "first", seed)
    h.commit("m0", add=[first])
    copycat = JoinRequest.create(h.suite, Identity.generate(), h.group_id, "copycat", seed)
    assert copycat.request.init_key == first.request.init_key
    with pytest.raises(DuplicateKeyError):
        h.members["m1"].commit(add=[copycat.request])
    assert not h.members["m1"].has_pending_commit
    newcomer = h.join_request()
    commit = h.members["m1"].commit(add=[newcomer.request])
    crafted = rebuild(h, "m1", commit, ops=with_request(commit, copycat.request))
    assert_rejected(h, ["m0", "m2", "first"], crafted, DuplicateKeyError)
    finish(h, "m1", commit, ["first", "m1"], (newcomer,))


def test_duplicate_public_key_within_a_path(h: Harness) -> None:
    commit = h.members["m1"].commit(update=True)
    path = CommitMessage.decode(commit).commit.operations[0].path
    crafted = rebuild(h, "m1", commit, ops=with_path_key(commit, 0, 1, path[0]))
    assert_rejected(h, RECEIVERS, crafted, DuplicateKeyError)
    finish(h, "m1", commit, ["m0"])


# --- membership and usage ------------------------------------------------------------------------


@pytest.mark.parametrize("leaf", [5, 7, 8, 2**32 - 1], ids=["free", "last-free", "beyond", "max"])
def test_commit_from_a_non_member_leaf(h: Harness, leaf: int) -> None:
    commit = h.members["m1"].commit(update=True)
    ops = [Operation(OpType.UPDATE, leaf, op.path) for op in CommitMessage.decode(commit).commit.operations]
    crafted = rebuild(h, "m1", commit, sender=leaf, ops=ops)
    assert_rejected(h, RECEIVERS, crafted, UnknownMemberError)
    finish(h, "m1", commit, ["m1"])


def test_commit_from_a_removed_members_leaf(h: Harness) -> None:
    res = h.commit("m0", remove=["m3"], keep_removed=True)
    gone = res.retained["m3"]
    # The removed member signs a commit for the new epoch with its old identity at its old leaf.
    legit = h.members["m1"].commit(update=True)
    path = CommitMessage.decode(legit).commit.operations[0].path
    ops = [Operation(OpType.UPDATE, gone.my_leaf, path)]
    crafted = rebuild(h, "m1", legit, sender=gone.my_leaf, ops=ops, signer=gone._identity.signing_key)
    assert_rejected(h, ["m0", "m2", "m4"], crafted, UnknownMemberError)
    finish(h, "m1", legit, ["m4"])


def test_self_remove_is_a_usage_error(h: Harness) -> None:
    group = h.members["m2"]
    before = fingerprint(group)
    with pytest.raises(UsageError):
        group.commit(remove=[group.my_leaf])
    with pytest.raises(UsageError):
        group.commit(remove=[h.leaf("m1"), group.my_leaf], update=True)
    assert fingerprint(group) == before
    h.assert_consistent(["m2"])


def test_commit_in_which_the_committer_removes_itself(h: Harness) -> None:
    """The receiver-side counterpart of the UsageError above: a signed self-removal is refused."""
    commit = h.members["m1"].commit(remove=[h.leaf("m4")])
    op = CommitMessage.decode(commit).commit.operations[0]
    crafted = rebuild(h, "m1", commit, ops=[Operation(OpType.REMOVE, h.leaf("m1"), op.path)])
    assert_rejected(h, ["m0", "m2", "m3"], crafted, InvalidCommitError)
    h.members["m1"].discard_pending_commit()
    h.assert_consistent(["m1", "m3"])


def test_remove_of_an_unknown_leaf(h: Harness) -> None:
    with pytest.raises(UnknownMemberError):
        h.members["m1"].commit(remove=[6])
    commit = h.members["m1"].commit(remove=[h.leaf("m4")])
    op = CommitMessage.decode(commit).commit.operations[0]
    crafted = rebuild(h, "m1", commit, ops=[Operation(OpType.REMOVE, 6, op.path)])
    assert_rejected(h, ["m0", "m2", "m3"], crafted, UnknownMemberError)
    finish(h, "m1", commit, ["m1"])


# --- malformed bytes ---------------------------------------------------------------------------


def test_truncated_commit_application_message_and_welcome(h: Harness) -> None:
    pj = h.join_request()
    commit = h.members["m1"].commit(add=[pj.request], update=True)
    message = h.members["m3"].encrypt(b"truncate me")
    for cut in range(4, len(commit)):
        assert_rejected(h, ["m0"], commit[:cut], TruncatedError)
    for cut in (4, 5, 6, 9, 20, len(commit) // 2, len(commit) - 33, len(commit) - 1):
        assert_rejected(h, ["m2", "m4"], commit[:cut], TruncatedError)
    for cut in range(4, len(message)):
        assert_rejected(h, ["m0"], message[:cut], TruncatedError)
    h.deliver(commit)
    welcome = welcome_for(h.members["m1"], pj)
    for cut in range(0, len(welcome), 7):
        with pytest.raises(TruncatedError):
            Group.join(pj, welcome[:cut], h.config)
    h.members[pj.request.display_name] = Group.join(pj, welcome, h.config)
    h.assert_consistent(["m1", pj.request.display_name])


def _commit_header(group_id: bytes, epoch: int, sender: int) -> Writer:
    return Writer().u16(1).u16(WireFormat.PUBLIC_MESSAGE).opaque(group_id).u64(epoch).u8(1).u32(sender)


def _private_header(group_id_field: bytes) -> bytes:
    return Writer().u16(1).u16(WireFormat.PRIVATE_MESSAGE).raw(group_id_field).bytes()


def test_oversized_fields(h: Harness) -> None:
    g = h.members["m0"]
    # Commit: a 5000-byte authenticated_data (limit 4096), a 256-byte group id (limit 255).
    big_ad = _commit_header(h.group_id, g.epoch, 1).opaque(b"a" * 5000).bytes()
    assert_rejected(h, ["m0"], big_ad, FieldTooLargeError)
    big_gid = Writer().u16(1).u16(WireFormat.PUBLIC_MESSAGE).opaque(b"g" * 256).bytes()
    assert_rejected(h, ["m0"], big_gid, FieldTooLargeError)
    # A path of 18 keys (more than any 2^16-leaf tree has), rejected by the length alone.
    body = Writer().u8(OpType.UPDATE).u32(1).raw(encode_varint(18 * 32)).bytes()
    long_path = _commit_header(h.group_id, g.epoch, 1).opaque(b"").u8(3).opaque(body).bytes()
    assert_rejected(h, ["m0"], long_path, FieldTooLargeError)
    # 65537 operations (a leaf appears at most once, and a tree has 2^16 leaves), each of them
    # minimal, so the count is refused before the body's byte limit.
    op = Writer().u8(OpType.UPDATE).u32(1).opaque(b"").bytes()
    many = _commit_header(h.group_id, g.epoch, 1).opaque(b"").u8(3).opaque(op * 65537).bytes()
    with pytest.raises(FieldTooLargeError, match="operations has more than 65536 entries"):
        g.receive(many)
    assert_rejected(h, ["m0"], many, FieldTooLargeError)
    # Application message: a declared ciphertext length of 2^30 - 1 bytes, without the bytes.
    esd = Writer().opaque(bytes(28)).bytes()
    huge = (
        _private_header(Writer().opaque(h.group_id).bytes())
        + Writer().u64(g.epoch).u8(1).opaque(b"").bytes()
        + esd
        + encode_varint((1 << 30) - 1)
    )
    assert_rejected(h, ["m0"], huge, FieldTooLargeError)
    h.assert_consistent(["m0", "m4"])


def test_non_minimal_varint_length(h: Harness) -> None:
    commit = h.members["m1"].commit(update=True)
    message = h.members["m2"].encrypt(b"hi")
    n = len(h.group_id)
    assert n < 64 and commit[4] == n and message[4] == n
    two_bytes = bytes([0x40, n])
    four_bytes = bytes([0x80, 0, 0, n])
    for long_form in (two_bytes, four_bytes):
        assert_rejected(h, RECEIVERS, commit[:4] + long_form + commit[5:], NonMinimalLengthError)
        assert_rejected(h, ["m0", "m1"], message[:4] + long_form + message[5:], NonMinimalLengthError)
    # A 64-byte group id in a three-byte-too-long four-byte form is also refused.
    assert_rejected(h, ["m0"], _private_header(bytes([0x80, 0, 0, 64]) + b"x" * 64), NonMinimalLengthError)
    finish(h, "m1", commit, ["m1", "m2"])
    ev = h.members["m0"].receive(message)  # sent in the previous epoch, still within its window
    assert isinstance(ev, MessageReceived) and ev.plaintext == b"hi"


def test_unknown_version(h: Harness) -> None:
    pj = h.join_request()
    commit = h.members["m1"].commit(add=[pj.request])
    message = h.members["m2"].encrypt(b"v2?")
    for version in (0, 2, 0xFFFF):
        v = version.to_bytes(2, "big")
        assert_rejected(h, RECEIVERS, v + commit[2:], UnknownVersionError)
        assert_rejected(h, ["m0"], v + message[2:], UnknownVersionError)
    h.deliver(commit)
    welcome = welcome_for(h.members["m1"], pj)
    with pytest.raises(UnknownVersionError):
        Group.join(pj, b"\x00\x02" + welcome[2:], h.config)
    h.members[pj.request.display_name] = Group.join(pj, welcome, h.config)
    h.assert_consistent(["m1", pj.request.display_name])


def test_wrong_group_id(h: Harness) -> None:
    other = Harness(group_id=b"another-room")
    other.add("m0", 4)
    assert other.epoch == h.epoch
    foreign_commit = other.members["m1"].commit(update=True)
    foreign_message = other.members["m1"].encrypt(b"wrong room")
    assert_rejected(h, RECEIVERS, foreign_commit, WrongGroupError)
    assert_rejected(h, RECEIVERS, foreign_message, WrongGroupError)
    # The same commit re-signed by a real member of ours but naming the other group.
    commit = h.members["m1"].commit(update=True)
    crafted = rebuild(h, "m1", commit, group_id=b"another-room")
    assert_rejected(h, RECEIVERS, crafted, WrongGroupError)
    finish(h, "m1", commit, ["m1", "m4"])


def test_join_request_for_another_group(h: Harness) -> None:
    elsewhere = JoinRequest.create(h.suite, Identity.generate(), b"another-room", "wanderer")
    committer = h.members["m1"]
    with pytest.raises(WrongGroupError):
        committer.commit(add=[elsewhere.request])
    assert not committer.has_pending_commit
    newcomer = h.join_request()
    commit = committer.commit(add=[newcomer.request])
    crafted = rebuild(h, "m1", commit, ops=with_request(commit, elsewhere.request))
    assert_rejected(h, RECEIVERS, crafted, WrongGroupError)
    finish(h, "m1", commit, ["m1"], (newcomer,))


def test_welcome_for_another_group_is_not_joinable(h: Harness) -> None:
    """A PendingJoin for room A cannot be used with a welcome of room B (its ref is not in it)."""
    other = Harness(group_id=b"another-room")
    mine = h.join_request()
    res = other.commit("m0", add=[other.join_request()])
    (welcome,) = res.welcomes.values()
    with pytest.raises(GroupChatError) as info:
        Group.join(mine, welcome, h.config)
    assert type(info.value) is ProtocolError  # "this welcome is not addressed to us"


# --- ghost members (threats.md §1.1) ---------------------------------------------------------------


def test_relay_forged_add_commit(h: Harness) -> None:
    """The relay fabricates a commit from m1's leaf adding its ghost; it cannot sign as m1."""
    relay_key = Ed25519PrivateKey.generate()
    ghost = JoinRequest.create(h.suite, Identity(relay_key), h.group_id, "ghost")
    commit = h.members["m1"].commit(add=[ghost.request])
    h.members["m1"].discard_pending_commit()
    forged = rebuild(h, "m1", commit, signer=relay_key)
    assert_rejected(h, ["m0", "m1", "m2", "m3", "m4"], forged, SignatureError)
    h.assert_consistent(["m1", "m0"])


def test_member_signed_commit_with_a_join_request_its_identity_did_not_sign(h: Harness) -> None:
    """An insider (or a relay that compromised one) adds a "victim" identity whose owner never
    asked to join: the request's signature is by the attacker's key, not the victim's."""
    victim = Identity.generate()
    attacker = Ed25519PrivateKey.generate()
    ghost_pj = JoinRequest.create(h.suite, Identity(attacker), h.group_id, "ghost")
    forged = forged_request(h.group_id, victim.public_key, "victim", ghost_pj.request.init_key, attacker, h)
    committer = h.members["m1"]
    with pytest.raises(SignatureError):
        committer.commit(add=[forged])
    assert not committer.has_pending_commit
    newcomer = h.join_request()
    commit = committer.commit(add=[newcomer.request])
    crafted = rebuild(h, "m1", commit, ops=with_request(commit, forged))
    assert_rejected(h, RECEIVERS, crafted, SignatureError)
    # A request whose name was changed after signing is likewise refused.
    real = h.join_request("alice")
    renamed = JoinRequest.decode(real.request.encoded.replace(b"alice", b"alica"))
    crafted = rebuild(h, "m1", commit, ops=with_request(commit, renamed))
    assert_rejected(h, RECEIVERS, crafted, SignatureError)
    finish(h, "m1", commit, ["m1", "m2"], (newcomer,))


# --- regressions for core bugs these tests found --------------------------------------------------


def test_own_commit_without_pending_state_is_a_typed_error(h: Harness) -> None:
    """Regression: a commit signed by our own leaf that is not our pending commit (we discarded it,
    or the relay altered the echo) used to reach lowest_common_ancestor(2*me, 2*me) in
    Group._receive_commit and raise ValueError('negative shift count')."""
    group = h.members["m1"]
    commit = group.commit(update=True)
    group.discard_pending_commit()  # e.g. the relay reported an error but had sequenced it
    for name in ("m0", "m2", "m3", "m4"):
        assert isinstance(h.members[name].receive(commit), EpochChanged)
    assert_rejected(h, ["m1"], commit, InvalidCommitError)


def _reachable_bytes(root: object) -> set[bytes]:
    """Every bytes value reachable from ``root`` through attributes, slots and containers."""
    seen: set[int] = set()
    found: set[bytes] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, bytes | bytearray):
            found.add(bytes(obj))
        elif isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset | deque):
            stack.extend(obj)
        elif not isinstance(obj, str | int | float | type(None)):
            stack.extend(getattr(obj, "__dict__", {}).values())
            for cls in type(obj).__mro__:
                slots = getattr(cls, "__slots__", ())
                for name in (slots,) if isinstance(slots, str) else slots:
                    if hasattr(obj, name):
                        stack.append(getattr(obj, name))
    return found


def test_removed_member_forgets_the_epoch_secrets(h: Harness) -> None:
    """Regression: RemovedFromGroup promises that all our secrets for the group are deleted, but
    Group._removed used to keep the epoch secrets and the epoch's secret tree in memory."""
    victim = h.members["m3"]
    secrets = victim._secrets
    epoch_values = {
        "init_secret": secrets.init_secret,
        "encryption_secret": secrets.encryption_secret,
        "exporter_secret": secrets.exporter_secret,
        "sender_data_secret": secrets.sender_data_secret,
    }
    assert set(epoch_values.values()) <= _reachable_bytes(victim)  # the probe sees them while a member
    res = h.commit("m0", remove=["m3"])
    assert isinstance(res.events["m3"], RemovedFromGroup)
    still_held = {name for name, value in epoch_values.items() if value in _reachable_bytes(victim)}
    assert not still_held, still_held
