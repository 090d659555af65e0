"""Structure-aware mutation fuzzer over commits, welcomes and application messages (issue 6).

Unlike ``test_tamper`` (every single-bit flip, unsigned), this parses each message, mutates its
*fields* (lengths, counts, leaf indices, epochs near 2^64-1, generations near 2^32-1, swapped,
duplicated and dropped operations, truncated and extended paths, random, duplicate and low-order
X25519 keys, foreign join requests, GroupInfo contexts, trees, signers and tags, sender data,
padding), re-encodes it, and then acts as a **malicious member** would: the commit is re-signed
with a real member's identity key over the real GroupContext, the welcome's GroupInfo is fixed up
(tree hash recomputed, confirmation tag recomputed from the joiner secret the committer knows),
re-signed, re-encrypted and re-sealed, and the application message is re-encrypted under keys the
member can derive, so that signature and AEAD checks pass and the deeper checks run. Some
examples also get raw byte mutations on top.

Commits are fed to another member, to the committer itself (a mutated echo of its pending
commit) and to the member the commit removes. Properties: only a :class:`GroupChatError` escapes
the core; a rejected input leaves the receiver's state exactly as it was; an accepted commit is
the real next epoch (or, for the removed member, really removes it); an accepted application
message is attributed to the malicious member itself (no impersonation); a group joined from an
accepted welcome can still encrypt, commit and receive without anything but a ``GroupChatError``
escaping.

The ring's wire messages (rounds, confirmation, restart commit, ring Welcome) are fuzzed in
``test_mutation_fuzz_ring.py``.

Size: ``GROUPCHAT_FUZZ_EXAMPLES`` examples per message kind (CI default is small; raise it for a
soak, e.g. ``GROUPCHAT_FUZZ_EXAMPLES=5000``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from group_harness import Harness, fingerprint, snapshot
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from groupchat.core.codec import Writer, opaque
from groupchat.core.commit import Commit, CommitMessage, Operation, OpType
from groupchat.core.errors import CounterLimitError, GroupChatError
from groupchat.core.events import EpochChanged, MessageReceived, RemovedFromGroup
from groupchat.core.group import Group, GroupConfig
from groupchat.core.identity import JoinRequest, PendingJoin
from groupchat.core.key_schedule import confirmation_tag, epoch_secrets_from_joiner, welcome_secret
from groupchat.core.message_protection import (
    ContentType,
    FramedContent,
    PrivateMessage,
    WireFormat,
    _sender_data_key_nonce,
    sign_framed_content,
)
from groupchat.core.schemes.tree.ratchet_tree import RatchetTree
from groupchat.core.secret_tree import RatchetKind, SecretTree
from groupchat.core.suite import CipherSuite
from groupchat.core.welcome import (
    SECRETS_EXTENSION,
    GroupSecrets,
    WelcomeMessage,
    decode_extensions,
    decrypt_group_info,
    encode_extensions,
    open_public_state,
    seal_welcome,
    secrets_commitment,
)
from groupchat.lab.keeper import RecordingRand

EXAMPLES = int(os.environ.get("GROUPCHAT_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

P = 2**255 - 19
U64, U32 = 2**64 - 1, 2**32 - 1
LOW_ORDER = [
    (0).to_bytes(32, "little"),
    (1).to_bytes(32, "little"),
    (325606250916557431795983626356110631294008115727848805560023387167927233504).to_bytes(32, "little"),
    (P - 1).to_bytes(32, "little"),
    P.to_bytes(32, "little"),
    (2**255).to_bytes(32, "little"),  # top bit set
]


@dataclass(frozen=True, repr=False)
class World:
    """A live group of five, a malicious member m1 with a pending commit, and a joiner's welcome."""

    h: Harness
    attacker: str
    receiver: str
    commit: bytes  # m1's commit: add J, remove m3, update
    welcome: bytes
    pending: PendingJoin  # the joiner's state before its join; `joiner` hands out a fresh copy
    joiner_leaf_secret: bytes
    joiner_secret: bytes
    welcome_secret: bytes
    context_before: bytes  # the GroupContext the commit was built on
    extra_request: JoinRequest  # a valid request of an outsider, for swapped-in adds

    def __repr__(self) -> str:  # keep Hypothesis reports readable
        return "World(m0..m4, attacker m1, receiver m2, joiner J)"

    @property
    def joiner(self) -> PendingJoin:
        """A fresh, unused copy of the joiner's pending state: each attempt may succeed once."""
        p = self.pending
        return PendingJoin(p.identity, p.request, p.init_private)


@functools.cache
def world() -> World:
    rand = RecordingRand()
    h = Harness(configs={"m1": dataclasses.replace(GroupConfig(), rand=rand)})
    h.add("m0", 4)  # m0..m4 at leaves 0..4, capacity 8
    attacker = h.members["m1"]
    pj = h.join_request("J")
    context_before = attacker._ctx_bytes
    commit = attacker.commit(add=[pj.request], remove=[h.leaf("m3")], update=True)
    pending = attacker._pending
    assert pending is not None and pending.welcome is not None
    tree = RatchetTree.decode(h.suite, _tree_of(h, pending.welcome, pending.secrets.welcome_secret))
    leaf_key = tree.leaf_key(tree.find_member(pj.request) or 0)
    leaf_secret = next(r for r in rand.outputs if len(r) == 32 and h.suite.x25519_public(r) == leaf_key)
    return World(
        h,
        "m1",
        "m2",
        commit,
        pending.welcome,
        pj,
        leaf_secret,
        pending.secrets.joiner_secret,
        pending.secrets.welcome_secret,
        context_before,
        h.join_request("outsider").request,
    )


def _tree_of(h: Harness, welcome: bytes, welcome_secret: bytes) -> bytes:
    return open_public_state(h.suite, WelcomeMessage.decode(welcome), welcome_secret)


# --- shared strategies ------------------------------------------------------------------------

def keys(w: World) -> st.SearchStrategy[bytes]:
    """Random valid keys, low-order and non-canonical ones, and keys already in the tree."""
    tree = w.h.members[w.receiver]._tree
    in_tree = [k for x in range(2 * tree.capacity - 1) if (k := tree.own_key(x)) is not None]
    return st.one_of(
        st.just(b"").map(lambda _: X25519PrivateKey.generate().public_key().public_bytes_raw()),
        st.sampled_from(LOW_ORDER),
        st.sampled_from(in_tree),
        st.binary(min_size=32, max_size=32),
    )


LEAVES = st.one_of(st.integers(0, 9), st.sampled_from([2**16, 2**31, U32 - 1, U32]))


@st.composite
def raw_mutation(draw: st.DrawFn, data: bytes) -> bytes:
    """Byte-level damage on top of a structural mutation: flip, truncate, insert or overwrite."""
    kind = draw(st.sampled_from(["none", "none", "flip", "truncate", "insert", "overwrite"]))
    if kind == "none" or not data:
        return data
    i = draw(st.integers(0, len(data) - 1))
    if kind == "flip":
        return data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1 :]
    if kind == "truncate":
        return data[:i]
    if kind == "insert":
        return data[:i] + draw(st.binary(min_size=1, max_size=8)) + data[i:]
    junk = draw(st.sampled_from([b"\x00", b"\xff", b"\x3f", b"\x40\x00", b"\xbf\xff\xff\xff"]))
    return data[:i] + junk + data[i + 1 :]


def feed(receive: Callable[[], object], state: Callable[[], object]) -> object | None:
    """Call ``receive``; only GroupChatError may escape, and a rejection changes no state."""
    before = state()
    try:
        result = receive()
    except GroupChatError as exc:
        event(f"rejected: {type(exc).__name__}")
        assert state() == before, "a rejected input changed the receiver's state"
        return None
    event("accepted")
    return result


# --- commits -----------------------------------------------------------------------------------


@st.composite
def mutated_commit(draw: st.DrawFn) -> bytes:
    w = world()
    msg = CommitMessage.decode(w.commit)
    c = msg.content
    ops = list(msg.commit.operations)
    group_id, epoch, sender, ad = c.group_id, c.epoch, c.sender, c.authenticated_data
    signature, tag = msg.signature, msg.confirmation_tag
    resign = True
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(
                ["epoch", "sender", "group", "ad", "leaf", "type", "swap", "dup", "drop", "path-cut",
                 "path-add", "path-key", "request", "tag", "signature", "many-ops"]
            )
        )
        i = draw(st.integers(0, max(0, len(ops) - 1)))
        op = ops[i] if ops else None
        if kind == "epoch":
            epoch = draw(st.sampled_from([0, max(0, epoch - 1), min(U64, epoch + 1), U64 - 1, U64]))
        elif kind == "sender":
            sender = draw(LEAVES)
        elif kind == "group":
            group_id = draw(st.binary(min_size=1, max_size=12))
        elif kind == "ad":
            ad = draw(st.binary(max_size=64))
        elif kind == "leaf" and op:
            ops[i] = dataclasses.replace(op, leaf=draw(LEAVES))
        elif kind == "type" and op:
            new = draw(st.sampled_from(list(OpType)))
            request = (op.request or w.extra_request) if new == OpType.ADD else None
            ops[i] = Operation(new, op.leaf, op.path, request)
        elif kind == "swap" and len(ops) > 1:
            j = draw(st.integers(0, len(ops) - 1))
            ops[i], ops[j] = ops[j], ops[i]
        elif kind == "dup" and op:
            ops.insert(i, op)
        elif kind == "drop" and len(ops) > 1:
            del ops[i]
        elif kind == "path-cut" and op:
            ops[i] = dataclasses.replace(op, path=op.path[: draw(st.integers(0, max(0, len(op.path) - 1)))])
        elif kind == "path-add" and op:
            extra = draw(st.lists(keys(w), min_size=1, max_size=3))
            ops[i] = dataclasses.replace(op, path=(*op.path, *extra))
        elif kind == "path-key" and op and op.path:
            path = list(op.path)
            path[draw(st.integers(0, len(path) - 1))] = draw(st.one_of(keys(w), st.sampled_from(path)))
            ops[i] = dataclasses.replace(op, path=tuple(path))
        elif kind == "request" and op and op.type == OpType.ADD:
            member = w.h.members[draw(st.sampled_from(sorted(w.h.members)))]
            choices = [w.extra_request, member._tree.member(member.my_leaf)]
            ops[i] = dataclasses.replace(op, request=draw(st.sampled_from(choices)))
        elif kind == "tag":
            tag = draw(st.binary(min_size=32, max_size=32))
        elif kind == "signature":
            signature, resign = draw(st.binary(min_size=64, max_size=64)), False
        elif kind == "many-ops" and op:
            ops = ops + [op] * draw(st.integers(1, max(1, 70 - len(ops))))
    try:
        body = Commit(tuple(ops))
        content = FramedContent(group_id, epoch, sender, ad, ContentType.COMMIT, body.encode())
        if resign:
            # The malicious member re-signs what it mutated, over the real GroupContext.
            key = w.h.members[w.attacker]._identity.signing_key
            ctx = w.context_before
            signature = sign_framed_content(w.h.suite, key, WireFormat.PUBLIC_MESSAGE, content, ctx)
        data = CommitMessage(content, body, signature, tag).encode()
    except (ValueError, struct.error, AssertionError):  # an op list our own encoder refuses
        data = w.commit
    return draw(raw_mutation(data))


@FUZZ
@given(data=st.data())
def test_mutated_and_re_signed_commits(data: st.DataObject) -> None:
    w = world()
    # Another member, the committer itself (its pending commit's echo), or the member it removes.
    name = data.draw(st.sampled_from([w.receiver, "m0", w.attacker, "m3"]))
    receiver = snapshot(w.h.members[name])
    bad = data.draw(mutated_commit())
    result = feed(lambda: receiver.receive(bad), lambda: fingerprint(receiver))
    if isinstance(result, RemovedFromGroup):
        # A signed commit that removes the receiver removes it without the confirmation tag (the
        # removed member cannot derive the new epoch, as in MLS); the attacker could commit that
        # removal honestly anyway. It must really name the receiver's leaf.
        ops = CommitMessage.decode(bad).commit.operations
        assert any(op.type == OpType.REMOVE and op.leaf == receiver.my_leaf for op in ops)
    elif result is not None:
        # Accepted: only a commit that the real confirmation tag confirms, so the real next epoch.
        assert isinstance(result, EpochChanged) and result.own == (name == w.attacker)
        assert receiver.epoch == w.h.members[name].epoch + 1
        feed(lambda: receiver.encrypt(b"still alive"), lambda: None)


# --- welcomes ----------------------------------------------------------------------------------


@st.composite
def mutated_welcome(draw: st.DrawFn) -> bytes:
    w = world()
    suite = w.h.suite
    msg = WelcomeMessage.decode(w.welcome)
    info = decrypt_group_info(suite, msg.welcome, w.welcome_secret)
    ctx = info.group_context
    extensions = decode_extensions(info.extensions)
    tree = open_public_state(suite, msg, w.welcome_secret)
    signer, tag = info.signer, info.confirmation_tag
    leaf_secret: bytes | None = w.joiner_leaf_secret
    joiner_secret = w.joiner_secret
    psks: list[bytes] = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(
                ["epoch", "group", "suite", "tree-hash", "confirmed", "no-tree", "two-trees", "unknown-ext",
                 "capacity", "tree-byte", "tree-key", "signer", "tag", "leaf-secret", "joiner-secret", "psk"]
            )
        )
        if kind == "epoch":
            epochs = [0, max(0, ctx.epoch - 1), min(U64, ctx.epoch + 1), U64 - 1, U64]
            ctx = dataclasses.replace(ctx, epoch=draw(st.sampled_from(epochs)))
        elif kind == "group":
            ctx = dataclasses.replace(ctx, group_id=draw(st.binary(min_size=1, max_size=12)))
        elif kind == "suite":
            ctx = dataclasses.replace(ctx, cipher_suite=draw(st.sampled_from([0, 2, 3, 0xFFFF])))
        elif kind == "tree-hash":
            ctx = dataclasses.replace(ctx, tree_hash=draw(st.binary(min_size=32, max_size=32)))
        elif kind == "confirmed":
            ctx = dataclasses.replace(ctx, confirmed_transcript_hash=draw(st.sampled_from([b"", bytes(32)])))
        elif kind == "no-tree":
            tree = b""
        elif kind == "two-trees":
            tree += tree
        elif kind == "unknown-ext":
            extensions = [*extensions, (draw(st.integers(0, 0xFFFF)), draw(st.binary(max_size=16)))]
        elif kind == "capacity":
            cap = draw(st.sampled_from([0, 1, 3, 4, 16, 2**16, 2**17, U32]))
            tree = struct.pack(">I", cap) + tree[4:]
        elif kind == "tree-byte" and len(tree) > 4:
            i = draw(st.integers(4, len(tree) - 1))
            tree = tree[:i] + bytes([draw(st.integers(0, 255))]) + tree[i + 1 :]
        elif kind == "tree-key":
            # Replace one 32-byte key in place: find a key of the tree by its bytes.
            found = [k for k in _tree_keys(suite, tree) if k in tree]
            if found:
                old = draw(st.sampled_from(found))
                tree = tree.replace(old, draw(keys(w)), 1)
        elif kind == "signer":
            signer = draw(LEAVES)
        elif kind == "tag":
            tag = draw(st.binary(min_size=32, max_size=32))
        elif kind == "leaf-secret":
            leaf_secret = draw(st.one_of(st.none(), st.binary(min_size=32, max_size=32)))
        elif kind == "joiner-secret":
            joiner_secret = draw(st.binary(min_size=32, max_size=32))
        elif kind == "psk":
            psks = [Writer().u8(1).opaque(b"id").opaque(bytes(32)).bytes()]
        # The malicious committer keeps the GroupInfo self-consistent where it can.
    if draw(st.booleans()):
        with contextlib.suppress(GroupChatError):  # the committer fixes the hash when it can
            ctx = dataclasses.replace(ctx, tree_hash=RatchetTree.decode(suite, tree).tree_hash)
    if draw(st.booleans()):
        secrets = epoch_secrets_from_joiner(suite, joiner_secret, ctx.encode())
        tag = confirmation_tag(suite, secrets.confirmation_key, ctx.confirmed_transcript_hash)
    gs = GroupSecrets(joiner_secret, leaf_secret, psks)
    if draw(st.booleans()):  # the committer commits to the secrets it seals (as Group.commit does)
        committed = secrets_commitment(suite, [(w.joiner.request.ref(suite), gs)])
        extensions = [(t, d) for t, d in extensions if t != SECRETS_EXTENSION]
        extensions.append((SECRETS_EXTENSION, committed))
    try:
        ext_body = encode_extensions(extensions)
    except GroupChatError:
        ext_body = info.extensions
    new_info = dataclasses.replace(
        info, group_context=ctx, extensions=ext_body, confirmation_tag=tag, signer=signer
    )
    new_info = new_info.sign(suite, w.h.members[w.attacker]._identity.signing_key)
    try:
        recipient = (w.joiner.request.ref(suite), w.joiner.request.init_key, gs)
        sealed = seal_welcome(
            suite, new_info.encode(), welcome_secret(suite, joiner_secret), [recipient], tree
        ).encode()
    except (ValueError, struct.error):
        sealed = w.welcome
    return draw(raw_mutation(sealed))


def _tree_keys(suite: CipherSuite, tree: bytes) -> list[bytes]:
    try:
        t = RatchetTree.decode(suite, tree)
    except GroupChatError:
        return []
    return [k for x in range(2 * t.capacity - 1) if (k := t.own_key(x)) is not None]


@FUZZ
@given(data=st.data())
def test_mutated_and_re_signed_welcomes(data: st.DataObject) -> None:
    w = world()
    bad = data.draw(mutated_welcome())
    joined = feed(lambda: Group.join(w.joiner, bad, w.h.config), lambda: None)
    if isinstance(joined, Group):
        # Accepted (a malicious committer can make a group of its own): it must stay usable and
        # never let anything but a GroupChatError out.
        feed(lambda: joined.encrypt(b"hello"), lambda: None)
        if joined.epoch < U64:  # hole 5: join refuses 2^64-1 (test_welcome_at_the_last_epoch)
            feed(lambda: joined.commit(update=True), lambda: None)
        feed(lambda: joined.receive(w.commit), lambda: None)


# --- application messages ----------------------------------------------------------------------


def _guarded(nonce: bytes, guard: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(nonce[:4], guard, strict=True)) + nonce[4:]


@st.composite
def crafted_message(draw: st.DrawFn) -> tuple[bytes, int]:
    """A PrivateMessage built from scratch by the malicious member with keys it can derive."""
    w = world()
    suite = w.h.suite
    attacker = w.h.members[w.attacker]
    keys_now = attacker._keys
    # Zero, one or two faults; everything else is what an honest sender would produce.
    faults = draw(
        st.sets(
            st.sampled_from(
                ["group", "epoch", "type", "leaf", "generation", "body", "signature", "padding",
                 "sender-data", "raw"]
            ),
            max_size=2,
        )
    )
    group_id = draw(st.sampled_from([b"other group", b"x" * 255])) if "group" in faults else attacker.group_id
    epoch = draw(st.sampled_from([attacker.epoch + 1, U64])) if "epoch" in faults else attacker.epoch
    content_type = draw(st.sampled_from([2, 3])) if "type" in faults else 1
    ad = draw(st.sampled_from([b"", b"ad"]))
    leaf = draw(LEAVES) if "leaf" in faults else attacker.my_leaf
    far = st.sampled_from([999, 1000, 1001, 1002, U32 - 1, U32])
    generation = draw(far if "generation" in faults else st.integers(0, 3))
    guard = draw(st.binary(min_size=4, max_size=4))
    text = draw(st.binary(max_size=40))
    body_bytes = opaque(text)
    if "body" in faults:
        body_bytes = draw(
            st.sampled_from([b"\x7f\xff" + text, b"\x40" + bytes([len(text) & 0x3F]) + text, b"\xc0", b""])
        )
    content = FramedContent(group_id, epoch, leaf, ad, ContentType(content_type), body_bytes)
    sig = sign_framed_content(
        suite, attacker._identity.signing_key, WireFormat.PRIVATE_MESSAGE, content, attacker._ctx_bytes
    )
    if "signature" in faults:
        sig = draw(st.sampled_from([bytes(64), sig[:32], sig[:63] + bytes([sig[63] ^ 1])]))
    plain = body_bytes + opaque(sig)
    if content_type == 3:
        plain += opaque(bytes(32))
    padding = [b"\x00\x01", b"\x80"] if "padding" in faults else [b"", bytes(7)]
    plain += draw(st.sampled_from(padding))
    try:
        secret = attacker._secrets.encryption_secret
        tree = SecretTree(suite, secret, attacker._tree.capacity, max_forward=1100)
        kind = RatchetKind.APPLICATION if content_type == 1 else RatchetKind.HANDSHAKE
        lookup = tree.lookup(leaf, kind, generation)
        key, nonce = lookup.key, lookup.nonce
    except GroupChatError:
        key, nonce = draw(st.binary(min_size=suite.key_len, max_size=suite.key_len)), bytes(12)
    aad = Writer().opaque(group_id).u64(epoch).u8(content_type).opaque(ad).bytes()
    ciphertext = suite.seal(key, _guarded(nonce, guard), aad, plain)
    sd_key, sd_nonce = _sender_data_key_nonce(suite, keys_now.sender_data_secret, ciphertext)
    sd_plain = struct.pack(">II", leaf, generation) + guard
    if "sender-data" in faults:
        sd_plain = draw(st.sampled_from([sd_plain[:8], sd_plain + b"\x00", b""]))
    sd_aad = Writer().opaque(group_id).u64(epoch).u8(content_type).bytes()
    esd = suite.seal(sd_key, sd_nonce, sd_aad, sd_plain)
    msg = PrivateMessage(group_id, epoch, ContentType(content_type), ad, esd, ciphertext)
    try:
        data = msg.encode()
    except struct.error:
        data = dataclasses.replace(msg, epoch=0).encode()
    return (draw(raw_mutation(data)) if "raw" in faults else data), leaf


@FUZZ
@given(data=st.data())
def test_crafted_application_messages(data: st.DataObject) -> None:
    w = world()
    receiver = snapshot(w.h.members[w.receiver])
    bad, claimed = data.draw(crafted_message())
    event = feed(lambda: receiver.receive(bad), lambda: fingerprint(receiver))
    if event is not None:
        # Accepted: it really came from the malicious member; it cannot pose as anyone else.
        assert isinstance(event, MessageReceived)
        assert event.sender.leaf == w.h.members[w.attacker].my_leaf == claimed
        assert event.sender.identity_key == w.h.members[w.attacker]._identity.public_key


def test_the_fuzz_world_is_live() -> None:
    """Control: the unmutated commit, welcome and a member's message are all accepted."""
    w = world()
    receiver = snapshot(w.h.members[w.receiver])
    ev = receiver.receive(w.commit)
    assert isinstance(ev, EpochChanged) and ev.epoch == w.h.members[w.receiver].epoch + 1
    joined = Group.join(w.joiner, w.welcome, w.h.config)
    assert joined.epoch_authenticator == receiver.epoch_authenticator
    sender = snapshot(w.h.members["m4"])
    assert isinstance(snapshot(w.h.members[w.receiver]).receive(sender.encrypt(b"hi")), MessageReceived)



def _welcome_at_epoch(w: World, epoch: int) -> bytes:
    """The real welcome, re-made by the malicious committer at another GroupContext epoch (with a
    matching confirmation tag, from the joiner secret it knows, and its own signature)."""
    suite = w.h.suite
    msg = WelcomeMessage.decode(w.welcome)
    info = decrypt_group_info(suite, msg.welcome, w.welcome_secret)
    ctx = dataclasses.replace(info.group_context, epoch=epoch)
    secrets = epoch_secrets_from_joiner(suite, w.joiner_secret, ctx.encode())
    tag = confirmation_tag(suite, secrets.confirmation_key, ctx.confirmed_transcript_hash)
    info = dataclasses.replace(info, group_context=ctx, confirmation_tag=tag)
    info = info.sign(suite, w.h.members[w.attacker]._identity.signing_key)
    gs = GroupSecrets(w.joiner_secret, w.joiner_leaf_secret, [])
    recipient = (w.joiner.request.ref(suite), w.joiner.request.init_key, gs)
    tree = open_public_state(suite, msg, w.welcome_secret)
    sealed = seal_welcome(suite, info.encode(), welcome_secret(suite, w.joiner_secret), [recipient], tree)
    return sealed.encode()


def test_welcome_at_a_high_epoch_still_works() -> None:
    """Control for the test below: the same re-made welcome at 2^64-2 is a working group."""
    w = world()
    joined = Group.join(w.joiner, _welcome_at_epoch(w, U64 - 1), w.h.config)
    assert joined.epoch == U64 - 1
    joined.encrypt(b"fine")
    joined.commit(update=True)  # builds epoch 2^64-1


def test_welcome_at_the_last_epoch() -> None:
    """Found by the fuzzer (issue 6 hole 5): a welcome at epoch 2^64-1 was accepted and the next
    commit raised struct.error out of the core; now the join itself refuses it."""
    w = world()
    with pytest.raises(CounterLimitError, match="last a uint64 holds"):
        Group.join(w.joiner, _welcome_at_epoch(w, U64), w.h.config)
