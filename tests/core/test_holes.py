"""The five holes of issue 6 (threats.md §22-25), one section each, every test pinning the exact error.

1. a removed member's messages in the retained previous epoch (``RemovedSenderError``);
2. a welcome whose tree lists a ghost: a victim's identity key with a made-up signature, built by a
   real member that re-signs everything (``ForgedMemberError``);
3. expiring join requests, judged strictly by the committer and with a clock skew by receivers,
   and init keys of departed members refused (the re-added old request);
4. a ``PendingJoin`` completes one join only (``UsageError``), and a failed join does not use it;
5. counters and lengths at their limits: epoch 2^64-1 in a welcome or a commit, generation 2^32-1,
   leaf indexes beyond the tree and beyond uint32, codec integers and varints.

Every rejection by a live member also checks that its state did not change (``fingerprint``), and
every attack has a control showing that the same construction without the one bad thing is accepted,
so the test fails for the right reason.
"""

from __future__ import annotations

import dataclasses
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from group_harness import Harness, fingerprint, snapshot, welcome_for
from test_tree_decoding import legacy_encoding

from groupchat.core.codec import MAX_VARINT, Reader, Writer, encode_varint
from groupchat.core.commit import Commit, CommitMessage, Operation, OpType
from groupchat.core.epoch.admission import verify_listed_member
from groupchat.core.errors import (
    ConfigError,
    CounterLimitError,
    DuplicateKeyError,
    EpochLimitError,
    ExpiredJoinRequestError,
    FieldTooLargeError,
    ForgedMemberError,
    GenerationError,
    GroupChatError,
    InvalidCommitError,
    InvalidWelcomeError,
    RemovedSenderError,
    UnknownMemberError,
    UsageError,
)
from groupchat.core.events import EpochChanged, MessageReceived
from groupchat.core.group import Group, GroupConfig
from groupchat.core.identity import (
    DEFAULT_JOIN_REQUEST_LIFETIME,
    MAX_JOIN_REQUEST_LIFETIME,
    Identity,
    JoinRequest,
    PendingJoin,
)
from groupchat.core.message_protection import (
    MAX_APPLICATION_DATA,
    ContentType,
    FramedContent,
    PrivateMessage,
    WireFormat,
    _sender_data_key_nonce,
    sign_framed_content,
)
from groupchat.core.schemes.tree.ratchet_tree import RatchetTree
from groupchat.core.secret_tree import RatchetKind, SecretTree
from groupchat.lab.clock import ManualClock

NOW = 1_800_000_000.0
SKEW = 300.0
LAST_EPOCH = 2**64 - 1


def wall_clock() -> ManualClock:
    """The injected clock a test moves by hand; its wall view (``clock.wall``) starts at NOW."""
    return ManualClock(wall_start=NOW)


def harness(members: int = 4, clock: ManualClock | None = None) -> Harness:
    h = Harness(GroupConfig(wall_clock=(clock or wall_clock()).wall, clock_skew=SKEW))
    h.add("m0", members - 1)
    return h


def request(h: Harness, name: str, *, identity: Identity | None = None, lifetime: int = 3600) -> PendingJoin:
    return JoinRequest.create(
        h.suite,
        identity or Identity.generate(),
        h.group_id,
        name,
        lifetime=lifetime,
        wall_clock=h.config.wall_clock,
    )


def signed_request(
    h: Harness, identity: Identity, name: str, not_after: int, *, signature: bytes | None = None
) -> JoinRequest:
    """A join request with any ``not_after``, signed by ``identity`` (or carrying ``signature``)."""
    init_key = X25519PrivateKey.generate().public_key().public_bytes_raw()
    tbs = JoinRequest.tbs(h.suite.id, h.group_id, identity.public_key, name.encode(), init_key, not_after)
    sig = (
        signature
        if signature is not None
        else h.suite.sign_with_label(identity.signing_key, b"JoinRequestTBS", tbs)
    )
    return JoinRequest.decode(Writer().raw(tbs).opaque(sig).bytes())


def rejects(group: Group, data: bytes, error: type[GroupChatError]) -> GroupChatError:
    """``group`` refuses ``data`` with exactly ``error`` and its state does not change."""
    before = fingerprint(group)
    with pytest.raises(GroupChatError) as info:
        group.receive(data)
    assert type(info.value) is error, repr(info.value)
    assert fingerprint(group) == before
    return info.value


# --- 1. a removed member keeps sending in the old epoch -----------------------------------------------


def test_message_from_a_removed_member_in_the_retained_epoch_is_refused() -> None:
    h = harness(4)
    old_epoch = h.epoch
    victim_leaf = h.leaf("m3")
    stayed = h.members["m1"].encrypt(b"in flight from m1")  # sent before the commit, ordered after it
    res = h.commit("m0", remove=["m3"], keep_removed=True)
    keeper = res.retained["m3"]  # m3's state just before its removal: it keeps the old epoch's keys
    late = keeper.encrypt(b"I am still here")
    assert keeper.epoch == old_epoch  # (the next test is the control: valid before the removal)
    for name in ("m0", "m1", "m2"):
        err = rejects(h.members[name], late, RemovedSenderError)
        assert isinstance(err, RemovedSenderError) and err.sender == victim_leaf
        text = str(err)
        assert "'m3'" in text and "after their removal" in text
        assert f"epoch {old_epoch}" in text and f"epoch {old_epoch + 1}" in text
    # A member who stayed: its in-flight message of the same old epoch still decrypts.
    for name in ("m0", "m2"):
        ev = h.members[name].receive(stayed)
        assert (
            isinstance(ev, MessageReceived) and ev.epoch == old_epoch and ev.plaintext == b"in flight from m1"
        )
    h.assert_consistent(["m1", "m2"])


def test_removed_members_old_epoch_message_was_valid_before_the_removal() -> None:
    """The control for the test above: the same kind of message, delivered before the removing
    commit, is normal chat from m3."""
    h = harness(4)
    receiver_before = snapshot(h.members["m2"])
    res = h.commit("m0", remove=["m3"], keep_removed=True)
    late = res.retained["m3"].encrypt(b"I am still here")
    ev = receiver_before.receive(late)
    assert isinstance(ev, MessageReceived) and ev.sender.display_name == "m3"
    rejects(h.members["m2"], late, RemovedSenderError)


# --- 2. a ghost in the welcome's tree --------------------------------------------------------------------


def malicious_welcome(h: Harness, adder: str, joiner: PendingJoin, extra: JoinRequest) -> bytes:
    """The welcome a real member ``adder`` sends when its tree also lists ``extra`` at a free leaf.

    The adder uses its own state and key: it places ``extra`` in a copy of its tree, adds the
    joiner with an update, and signs the GroupInfo, so tree hash, signature, confirmation tag and
    the joiner's path are all genuine. Nothing is delivered to the real group.
    """
    mal = snapshot(h.members[adder])
    free = mal._tree.leftmost_free_leaf()
    mal._tree.build_path(free, os.urandom(32), extra, None)
    commit = mal.commit(add=[joiner.request], update=True)
    ev = mal.receive(commit)
    assert isinstance(ev, EpochChanged) and ev.own
    return welcome_for(mal, joiner)


def test_welcome_listing_a_ghost_is_refused_and_names_the_leaf() -> None:
    h = harness(3)
    victim = Identity.generate()  # someone who never asked to join this group
    ghost = signed_request(h, victim, "victim", int(NOW) + 3600, signature=os.urandom(64))
    joiner = request(h, "joiner")
    welcome = malicious_welcome(h, "m0", joiner, ghost)
    with pytest.raises(GroupChatError) as info:
        Group.join(joiner, welcome, h.config)
    err = info.value
    assert type(err) is ForgedMemberError
    assert err.leaf == 3  # leaves 0..2 are m0..m2; the ghost took the leftmost free leaf
    text = str(err)
    assert "leaf 3" in text and "'victim'" in text and victim.fingerprint in text
    assert "never asked to join" in text and "'m0'" in text
    assert not joiner.used  # a rejected welcome does not burn the request


def test_control_the_same_welcome_with_a_validly_signed_extra_member_is_accepted() -> None:
    """Same construction, but the extra leaf carries a request its identity really signed: the
    joiner accepts it, so the refusal above is about the signature and nothing else."""
    h = harness(3)
    real = request(h, "real").request
    joiner = request(h, "joiner")
    group = Group.join(joiner, malicious_welcome(h, "m0", joiner, real), h.config)
    assert [m.display_name for m in group.members()] == ["m0", "m1", "m2", "real", "joiner"]


def test_welcome_listing_a_request_for_another_group_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compact tree encoding writes the group id once, so it cannot list a request for
    another group (the encoder refuses); the legacy encoding can, and is read from stored states
    only: a welcome carrying it is refused outright. The per-leaf check refuses such a request too."""
    h = harness(3)
    elsewhere = JoinRequest.create(h.suite, Identity.generate(), b"another-room", "wanderer").request
    joiner = request(h, "joiner")
    with pytest.raises(UsageError, match="more than one group"):
        malicious_welcome(h, "m0", joiner, elsewhere)
    # The Welcome carries the tree's encoding in pieces (RatchetTree.encode_parts): one legacy piece.
    monkeypatch.setattr(RatchetTree, "encode_parts", lambda tree: (legacy_encoding(tree),))
    welcome = malicious_welcome(h, "m0", joiner, elsewhere)
    monkeypatch.undo()
    with pytest.raises(GroupChatError) as info:
        Group.join(joiner, welcome, h.config)
    assert type(info.value) is InvalidWelcomeError and "compact encoding" in str(info.value)
    m0 = h.members["m0"]
    signer = (m0.my_leaf, m0._tree.member(m0.my_leaf))
    with pytest.raises(ForgedMemberError, match="another group") as forged:
        verify_listed_member(h.suite, m0.group_id, 3, elsewhere, signer)  # type: ignore[arg-type]
    assert forged.value.leaf == 3


def test_joiner_has_every_leaf_verified() -> None:
    """After a join nothing is left to lazy verification: every leaf was checked in Group.join."""
    h = harness(5)
    g = h.members["m4"]
    assert all(g._tree.is_verified(leaf) for leaf, _ in g._tree.members())


# --- 3. stale and replayed join requests ------------------------------------------------------------------


def test_committer_refuses_an_expired_join_request() -> None:
    clock = wall_clock()
    h = harness(3, clock)
    pj = request(h, "late", lifetime=600)
    clock.advance(601)
    committer = h.members["m1"]
    before = fingerprint(committer)
    with pytest.raises(GroupChatError) as info:
        committer.commit(add=[pj.request])
    assert type(info.value) is ExpiredJoinRequestError
    assert "'late'" in str(info.value) and "expired" in str(info.value) and "new one" in str(info.value)
    assert fingerprint(committer) == before and not committer.has_pending_commit


def test_receivers_tolerate_the_documented_clock_skew_and_no_more() -> None:
    """The committer's clock is behind: it still accepts the request. A receiver SKEW seconds past
    the expiry accepts (no fork between slightly different clocks); one further past refuses."""
    clock = wall_clock()
    h = harness(4, clock)
    pj = request(h, "edge", lifetime=600)
    committer = h.members["m0"]
    committer.config = dataclasses.replace(committer.config, wall_clock=lambda: NOW + 599)
    tolerant, strict = h.members["m1"], h.members["m2"]
    tolerant.config = dataclasses.replace(tolerant.config, wall_clock=lambda: NOW + 600 + SKEW)
    strict.config = dataclasses.replace(strict.config, wall_clock=lambda: NOW + 600 + SKEW + 1)
    commit = committer.commit(add=[pj.request])
    err = rejects(strict, commit, ExpiredJoinRequestError)
    assert "'edge'" in str(err)
    assert isinstance(tolerant.receive(commit), EpochChanged)
    committer.discard_pending_commit()


def test_join_request_claiming_too_long_a_life_is_refused() -> None:
    h = harness(3)
    ident = Identity.generate()
    forever = signed_request(h, ident, "forever", int(NOW) + MAX_JOIN_REQUEST_LIFETIME + 1)
    with pytest.raises(ExpiredJoinRequestError, match="days allowed"):
        h.members["m0"].commit(add=[forever])
    with pytest.raises(ConfigError, match="lifetime"):
        request(h, "greedy", lifetime=MAX_JOIN_REQUEST_LIFETIME + 1)
    ok = signed_request(h, ident, "ok", int(NOW) + MAX_JOIN_REQUEST_LIFETIME)
    assert h.members["m0"].commit(add=[ok])  # exactly the maximum is allowed


def test_default_lifetime_is_a_day() -> None:
    h = harness(1)
    pj = JoinRequest.create(h.suite, Identity.generate(), h.group_id, "x", wall_clock=lambda: NOW)
    assert pj.request.not_after == int(NOW) + DEFAULT_JOIN_REQUEST_LIFETIME == int(NOW) + 86400


def test_re_adding_a_departed_members_old_request_is_refused() -> None:
    """Bob joined with request R and was removed; R has not expired. A member re-adds R: its own
    commit() refuses, and when a member who forgot R (a malicious one) commits it anyway, every
    honest receiver refuses the commit, so no dead 'bob' leaf appears."""
    clock = wall_clock()
    h = harness(3, clock)
    bob = request(h, "bob")
    h.commit("m0", add=[bob])
    h.remove("m1", "bob")
    clock.advance(60)
    old = bob.request
    assert old.not_after > NOW + 60  # still unexpired: only the used-init-key set can refuse it
    with pytest.raises(DuplicateKeyError, match="joined and left"):
        h.members["m2"].commit(add=[old])
    mal = h.members["m1"]
    mal._admission = dataclasses.replace(mal._admission, used_init_keys=())  # it pretends to forget
    commit = mal.commit(add=[old])
    for name in ("m0", "m2"):
        err = rejects(h.members[name], commit, DuplicateKeyError)
        assert "'bob'" in str(err) and "replayed" in str(err)
    mal.discard_pending_commit()
    # Control: a fresh request from the same person is welcome.
    again = request(h, "bob", identity=bob.identity)
    h.commit("m2", add=[again])
    h.assert_consistent(["bob", "m0"])


def test_used_init_keys_are_forgotten_once_expired_and_the_expiry_check_takes_over() -> None:
    clock = wall_clock()
    h = harness(3, clock)
    bob = request(h, "bob", lifetime=600)
    h.commit("m0", add=[bob])
    h.remove("m1", "bob")
    assert h.members["m2"].admission.init_key_used(h.suite, bob.request.init_key)
    clock.advance(bob.request.not_after + SKEW + 1 - clock.wall())
    h.update("m0")  # any commit prunes (by its committer's clock, for everyone)
    assert not h.members["m2"].admission.init_key_used(h.suite, bob.request.init_key)
    with pytest.raises(ExpiredJoinRequestError):
        h.members["m2"].commit(add=[bob.request])


# --- 4. a PendingJoin joins once ------------------------------------------------------------------------


def test_pending_join_completes_one_join_only() -> None:
    h = harness(3)
    pj = request(h, "once")
    res = h.commit("m0", add=[pj])
    welcome = res.welcomes["once"]
    assert pj.used
    with pytest.raises(UsageError, match="already used to join; make a new one"):
        Group.join(pj, welcome, h.config)
    h.assert_consistent(["once"])


def test_failed_join_does_not_consume_the_pending_join() -> None:
    h = harness(3)
    pj = request(h, "patient")
    msg = h.members["m0"].commit(add=[pj.request])
    h.deliver(msg)
    welcome = welcome_for(h.members["m0"], pj)
    bad = welcome[:-1] + bytes([welcome[-1] ^ 1])
    with pytest.raises(GroupChatError):
        Group.join(pj, bad, h.config)
    assert not pj.used
    h.members["patient"] = Group.join(pj, welcome, h.config)
    assert pj.used
    h.assert_consistent(["patient", "m1"])


# --- 5. counters and lengths at their limits -------------------------------------------------------------


def at_epoch(group: Group, epoch: int) -> Group:
    """A copy of ``group`` relabelled to ``epoch`` (its keys stay those of its real epoch)."""
    g = snapshot(group)
    g._ctx = dataclasses.replace(g._ctx, epoch=epoch)
    g._ctx_bytes = g._ctx.encode()
    g._keys.epoch = epoch
    return g


def test_welcome_at_the_last_epoch_is_refused() -> None:
    h = harness(3)
    mal = at_epoch(h.members["m0"], LAST_EPOCH - 1)  # a real member, its context relabelled
    joiner = request(h, "joiner")
    commit = mal.commit(add=[joiner.request])
    ev = mal.receive(commit)
    assert isinstance(ev, EpochChanged) and ev.epoch == LAST_EPOCH
    welcome = welcome_for(mal, joiner)
    with pytest.raises(GroupChatError) as info:
        Group.join(joiner, welcome, h.config)
    assert type(info.value) is CounterLimitError and str(LAST_EPOCH) in str(info.value)
    assert not joiner.used
    # Control: one epoch earlier the same construction is joinable.
    mal2 = at_epoch(h.members["m0"], LAST_EPOCH - 2)
    joiner2 = request(h, "joiner2")
    ev2 = mal2.receive(mal2.commit(add=[joiner2.request]))
    assert isinstance(ev2, EpochChanged)
    assert Group.join(joiner2, welcome_for(mal2, joiner2), h.config).epoch == LAST_EPOCH - 1


def test_no_commit_is_built_or_applied_at_the_last_epoch() -> None:
    h = harness(3)
    a, b = (at_epoch(h.members[n], LAST_EPOCH - 1) for n in ("m0", "m1"))
    commit = a.commit(update=True)
    assert isinstance(a.receive(commit), EpochChanged)
    assert isinstance(b.receive(commit), EpochChanged)
    assert a.epoch == b.epoch == LAST_EPOCH and a.epoch_authenticator == b.epoch_authenticator
    before = fingerprint(a)
    with pytest.raises(EpochLimitError, match="start a new group"):
        a.commit(update=True)
    assert fingerprint(a) == before
    # A commit claiming the last epoch (well formed and signed by a member) is refused on entry.
    msg = CommitMessage.decode(commit)
    content = dataclasses.replace(msg.content, epoch=LAST_EPOCH)
    sig = sign_framed_content(
        h.suite, a._identity.signing_key, WireFormat.PUBLIC_MESSAGE, content, a._ctx_bytes
    )
    forged = CommitMessage(content, msg.commit, sig, msg.confirmation_tag).encode()
    rejects(b, forged, CounterLimitError)
    # The group still works for messages at its last epoch.
    ev = b.receive(a.encrypt(b"still talking"))
    assert isinstance(ev, MessageReceived) and ev.epoch == LAST_EPOCH


def test_generation_limit_in_the_secret_tree() -> None:
    suite = GroupConfig().suite()
    tree = SecretTree(suite, bytes(32), 4)
    ratchet = tree._ratchet(1, RatchetKind.APPLICATION)
    ratchet.next_gen = 0xFFFFFFFE
    lookup = tree.lookup(1, RatchetKind.APPLICATION, 0xFFFFFFFE)  # the last usable generation
    tree.commit(lookup)
    with pytest.raises(GenerationError, match="end of the uint32 range"):
        tree.lookup(1, RatchetKind.APPLICATION, 0xFFFFFFFF)
    mine = tree._ratchet(2, RatchetKind.APPLICATION)
    mine.next_gen = 0xFFFFFFFF
    with pytest.raises(GenerationError, match="exhausted"):
        tree.next_send(2, RatchetKind.APPLICATION)
    assert mine.next_gen == 0xFFFFFFFF


def with_sender_data(sender: Group, message: bytes, leaf: int, generation: int) -> bytes:
    """Re-encrypt ``message``'s sender data (as any member of the epoch can) with another leaf/generation."""
    msg = PrivateMessage.decode(message)
    key, nonce = _sender_data_key_nonce(sender.suite, sender._keys.sender_data_secret, msg.ciphertext)
    plain = leaf.to_bytes(4, "big") + generation.to_bytes(4, "big") + bytes(4)
    esd = sender.suite.seal(key, nonce, msg._sender_data_aad(), plain)
    return dataclasses.replace(msg, encrypted_sender_data=esd).encode()


def test_generation_and_leaf_limits_in_received_messages() -> None:
    h = harness(3)
    sender, receiver = h.members["m1"], h.members["m2"]
    message = sender.encrypt(b"x")
    rejects(receiver, with_sender_data(sender, message, sender.my_leaf, 0xFFFFFFFF), GenerationError)
    for leaf in (4, 2**16, 2**32 - 1):  # beyond capacity 4, beyond any tree, the uint32 maximum
        rejects(receiver, with_sender_data(sender, message, leaf, 0), UnknownMemberError)
    assert isinstance(receiver.receive(message), MessageReceived)
    # Our own ratchet at the limit: encrypt refuses with a typed error and sends nothing.
    sender._keys.secret_tree._ratchet(sender.my_leaf, RatchetKind.APPLICATION).next_gen = 0xFFFFFFFF
    with pytest.raises(GenerationError, match="commit an update"):
        sender.encrypt(b"one too many")


def resigned(h: Harness, committer: str, ops: list[Operation], sender: int | None = None) -> bytes:
    g = h.members[committer]
    content = FramedContent(
        h.group_id,
        g.epoch,
        g.my_leaf if sender is None else sender,
        b"",
        ContentType.COMMIT,
        Commit(tuple(ops)).encode(),
    )
    sig = sign_framed_content(
        h.suite, g._identity.signing_key, WireFormat.PUBLIC_MESSAGE, content, g._ctx_bytes
    )
    return CommitMessage(content, Commit(tuple(ops)), sig, bytes(32)).encode()


@pytest.mark.parametrize("leaf", [4, 2**16, 2**32 - 1])
def test_leaf_indexes_beyond_the_tree_in_commits(leaf: int) -> None:
    h = harness(4)  # capacity 4
    h.update("m1")  # an untainted committer, so the taint rules are not what refuses these
    key = (X25519PrivateKey.generate().public_key().public_bytes_raw(),)
    receiver = h.members["m2"]
    rejects(receiver, resigned(h, "m1", [Operation(OpType.REMOVE, leaf, key)]), UnknownMemberError)
    rejects(receiver, resigned(h, "m1", [Operation(OpType.UPDATE, leaf, key)]), InvalidCommitError)
    rejects(
        receiver, resigned(h, "m1", [Operation(OpType.UPDATE, leaf, key)], sender=leaf), UnknownMemberError
    )
    add = Operation(OpType.ADD, leaf, key, request(h, "far").request)
    rejects(receiver, resigned(h, "m1", [add]), InvalidCommitError)  # adds go to the leftmost free leaf
    with pytest.raises(UnknownMemberError):
        h.members["m1"].commit(remove=[leaf])
    h.assert_consistent(["m2"])


def test_codec_integer_and_length_limits() -> None:
    for bits, method in ((8, Writer.u8), (16, Writer.u16), (32, Writer.u32), (64, Writer.u64)):
        top = (1 << bits) - 1
        assert method(Writer(), top).bytes() == top.to_bytes(bits // 8, "big")
        for bad in (top + 1, -1):
            with pytest.raises(ConfigError, match=f"uint{bits}"):
                method(Writer(), bad)
    assert Reader(encode_varint(MAX_VARINT)).varint() == MAX_VARINT
    for bad in (MAX_VARINT + 1, -1):
        with pytest.raises(ConfigError):
            encode_varint(bad)
    # Reading: a length at the field's limit is accepted, one more is refused before use.
    body = bytes(300)
    assert Reader(encode_varint(300) + body).opaque("f", 300) == body
    with pytest.raises(FieldTooLargeError):
        Reader(encode_varint(300) + body).opaque("f", 299)
    # The largest varint length (2^30 - 1) on a short input: refused by the limit, not by slicing.
    with pytest.raises(FieldTooLargeError):
        Reader(encode_varint(MAX_VARINT) + b"x").opaque("f", 4096)


def test_caller_lengths_at_their_limits() -> None:
    h = harness(2)
    a, b = h.members["m0"], h.members["m1"]
    biggest = b"x" * MAX_APPLICATION_DATA
    ev = b.receive(a.encrypt(biggest))  # the maximum goes through
    assert isinstance(ev, MessageReceived) and ev.plaintext == biggest
    with pytest.raises(UsageError, match="longer than"):
        a.encrypt(biggest + b"x")
    with pytest.raises(UsageError, match="authenticated data"):
        a.commit(update=True, authenticated_data=bytes(4097))
    assert not a.has_pending_commit
    assert len(a.export_secret(b"l", b"c", 255 * 32)) == 255 * 32
    for bad in (0, -1, 255 * 32 + 1):
        with pytest.raises(UsageError, match="exported secret"):
            a.export_secret(b"l", b"c", bad)
