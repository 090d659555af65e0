"""The mutation fuzzer's ring targets (issue 14; the tree's are in ``test_mutation_fuzz.py``).

A ring group of four, m1 malicious. Every ring wire message kind m1 sends (rounds 1, 2 and 3 (its
signed confirmation), a restart commit, a ring Welcome) is mutated field
by field and re-signed by m1 where that makes the mutation pass the signature (rounds with m1's
identity key, the restart commit over the restart context, the Welcome's commit and GroupInfo),
then byte by byte on top, and fed to an honest member in the state where the genuine message would
arrive (a deep copy: each example starts from the same state). Properties: only a ``RemoteError``
escapes for this remote input; a rejected input changes nothing of the receiver's state
(:func:`ring_state`); a rejected Welcome leaves the join request usable for the genuine one.

Mutations the ring got wrong before its rewrite are named in :data:`BUGGY` and mounted when in
:data:`KNOWN_BUGS` (all, since the rewrite) or ``GROUPCHAT_RINGSM_BUGS``; each has its own test
below. Size: ``GROUPCHAT_FUZZ_EXAMPLES`` per message kind.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import inspect
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from ring_room import Room, grown

from groupchat.core.codec import Reader, Writer
from groupchat.core.commit import Commit, CommitMessage, Operation, OpType
from groupchat.core.epoch import wire
from groupchat.core.errors import GroupChatError, RemoteError
from groupchat.core.group import Group
from groupchat.core.identity import PendingJoin
from groupchat.core.key_schedule import welcome_secret as derive_welcome_secret
from groupchat.core.message_protection import ContentType, FramedContent, WireFormat, sign_framed_content
from groupchat.core.peek import MessageKind, peek
from groupchat.core.schemes.ring_message import RingRound
from groupchat.core.welcome import (
    GroupInfo,
    GroupSecrets,
    WelcomeMessage,
    decode_extensions,
    decrypt_group_info,
    encode_extensions,
    open_group_secrets,
    open_public_state,
    seal_welcome,
)

EXAMPLES = int(os.environ.get("GROUPCHAT_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
U64, U32 = 2**64 - 1, 2**32 - 1
P = 2**255 - 19
LOW_ORDER = [(0).to_bytes(32, "little"), (1).to_bytes(32, "little"), (P - 1).to_bytes(32, "little")]
#: The round message's field signing the sender's view of the rounds before (renamed by round 3).
VIEW: Final = "view" if "view" in {f.name for f in dataclasses.fields(RingRound)} else "round1_hash"
LEAVES = st.one_of(st.integers(0, 6), st.sampled_from([2**16, U32]))

#: Mutations today's code gets wrong, by issue 14 item (switch on once fixed).
BUGGY: Final = {
    "welcome_lists_joiner": (
        "issue 14: a refused ring Welcome burns the join request (UsageError for remote input)"
    ),
}
KNOWN_BUGS: Final[frozenset[str]] = frozenset(BUGGY)  # all fixed by the ring rewrite: mounted
_ENV = {b for b in os.environ.get("GROUPCHAT_RINGSM_BUGS", "").split(",") if b}
ENABLED: Final = frozenset(BUGGY) if "all" in _ENV else KNOWN_BUGS | (_ENV & set(BUGGY))


def ring_state(g: Group) -> tuple[object, ...]:
    """Everything a rejected ring input must leave as it was: the public state (what
    ``ring_adversary.public_state`` reads), the GroupContext, transcript and init secret, and the
    ring's commit. (The run's own state may turn FAILED on the two checks ``RingRekey`` documents
    as fatal to an attempt, a divergent round-1 view and values that do not XOR to zero.)"""
    phase = g.phase
    keyed = phase.value in ("member", "committing", "agreeing", "confirming")
    scheme = g._scheme
    ring = g._ring
    return (
        phase,
        g.epoch,
        g.epoch_authenticator if keyed else None,
        tuple((m.leaf, m.identity_key) for m in g.members()),
        g.has_pending_commit,
        g.joining,
        tuple(m.leaf for m in scheme.missing()),
        len(g._outbox),
        g._ctx_bytes,
        g._interim,
        g._secrets.init_secret,
        None if ring is None else (ring.done is not None, ring.latest),
    )


def keep(g: Group) -> Group:
    shared: dict[int, object] = {id(x): x for x in (g.suite, g._identity, g.config)}
    return copy.deepcopy(g, shared)


def feed(receive: Callable[[], object], state: Callable[[], object], *, note: bool = True) -> object | None:
    """Call ``receive``; only a RemoteError may escape, and a rejection changes no state."""
    before = state()
    try:
        result = receive()
    except RemoteError as exc:
        if note:
            event(f"rejected: {type(exc).__name__}")
        assert state() == before, f"a rejected {type(exc).__name__} changed the receiver's state"
        return None
    if note:
        event("accepted")
    return result


@st.composite
def raw_mutation(draw: st.DrawFn, data: bytes) -> bytes:
    """Byte-level damage on top of a field mutation: none, flip, truncate, insert or overwrite."""
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
    return (
        data[:i] + draw(st.sampled_from([b"\x00", b"\xff", b"\x40\x00", b"\xbf\xff\xff\xff"])) + data[i + 1 :]
    )


# --- the world: one ring group, m1's every kind of ring message, the state each arrives in ------


@dataclass(frozen=True, repr=False)
class Target:
    """One genuine message of m1 and a receiver's state just before it arrives."""

    data: bytes
    receiver: Group
    resign_context: bytes = b""  # what m1 signs a commit over (restart: the restart context)

    def fresh(self) -> Group:
        return keep(self.receiver)


@dataclass(frozen=True, repr=False)
class World:
    room: Room
    attacker: Group
    targets: dict[str, Target]
    welcome: bytes
    joiner: PendingJoin
    welcome_parts: tuple[GroupInfo, bytes, bytes]  # GroupInfo, joiner secret, init secret sealed
    roster: bytes  # the epoch's roster, beside the GroupInfo

    def __repr__(self) -> str:
        return "World(ring m0..m3, attacker m1, receiver m2)"

    def fresh_joiner(self) -> PendingJoin:
        p = self.joiner
        return PendingJoin(p.identity, p.request, p.init_private)


def _kind(data: bytes) -> MessageKind | None:
    try:
        return peek(data).kind
    except GroupChatError:
        return None


@functools.cache
def world() -> World:
    room = grown(4)
    m1, m2 = room.members["m1"], room.members["m2"]
    targets: dict[str, Target] = {}

    # Rounds and the confirmation: m1 commits a /rekey; m2 reads the room one message at a time.
    room.commit("m1", update=True)
    room.offline.add("m2")
    for _ in range(20):
        room.pump()
        log = room.log
        if room.cursor["m2"] >= len(log):
            break
        data = log[room.cursor["m2"]]
        sent_by_m1 = data in _sent(room, "m1")
        kind = _kind(data)
        if sent_by_m1 and kind is MessageKind.ROUND:
            targets.setdefault(f"round {RingRound.decode(data).round}", Target(data, keep(m2)))
        m2.receive(data)
        room.cursor["m2"] += 1
        room.drain("m2")
    room.offline.clear()
    room.pump()
    room.assert_agreement()

    # A restart: m1 commits an update, m3 never speaks, m1 restarts the ring without m3.
    room.offline.add("m3")
    room.commit("m0", update=True)
    room.pump()
    restart = m1.commit(remove=[room.members["m3"].my_leaf])
    assert m1._ring is not None
    targets["restart commit"] = Target(restart, keep(m2), m1._restart_context(m1._ring))
    room.send("m1", restart)
    room.members.pop("m3")
    room.offline.clear()
    room.pump()
    room.assert_agreement()

    # A ring Welcome: m1 adds J; the Welcome is the one m1's echo releases.
    pj = room.request("J")
    data = m1.commit(add=[pj.request])
    room.post("m1", data)
    m1.receive(data)
    out = m1.data_to_send()
    welcome = next(o.data for o in out if o.to is not None and getattr(o.to, "identity_key", None))
    # What m1 made it from, as the joiner opens it: the GroupInfo, joiner secret and init secret.
    suite = m1.suite
    msg = WelcomeMessage.decode(welcome)
    gs = open_group_secrets(suite, msg.welcome, pj.request.ref(suite), pj.init_private)
    secret = derive_welcome_secret(suite, gs.joiner_secret)
    info = decrypt_group_info(suite, msg.welcome, secret)
    assert gs.path_secret is not None
    roster = open_public_state(suite, msg, secret)
    return World(room, m1, targets, welcome, pj, (info, gs.joiner_secret, gs.path_secret), roster)


def _sent(room: Room, name: str) -> set[bytes]:
    return {d.payload for d in room.relay.since(0) if d.sender == name}


def test_the_ring_fuzz_world_is_live() -> None:
    """Control: every genuine target is accepted by its receiver, and the genuine Welcome joins."""
    w = world()
    assert {"round 1", "round 2", "round 3", "restart commit"} <= set(w.targets), sorted(w.targets)
    for name, target in w.targets.items():
        target.fresh().receive(target.data)  # raises if the world is wrong
        del name
    joined = Group.join(w.fresh_joiner(), w.welcome, w.room.config)
    assert joined.joining


# --- round messages ------------------------------------------------------------------------------


def _resign(data: bytes, w: World, **changes: object) -> bytes:
    """``data`` with ``changes`` to its fields, signed again by m1 (field names as decoded)."""
    msg = RingRound.decode(data)
    params = inspect.signature(RingRound.create).parameters
    kwargs: dict[str, object] = {}
    for f in dataclasses.fields(msg):
        value = changes.pop(f.name, getattr(msg, f.name))
        for name in (f.name, f.name + "_"):
            if name in params and name not in ("suite", "signing_key"):
                kwargs[name] = value
    return RingRound.create(w.attacker.suite, w.attacker._identity.signing_key, **kwargs).encoded  # type: ignore[arg-type]


def _other_values(w: World, target: Target) -> list[bytes]:
    """Round values already in the room (other members' ephemeral keys, round-2 values)."""
    out = []
    for data in w.room.log:
        if _kind(data) is MessageKind.ROUND:
            out.append(RingRound.decode(data).value)
    return out or [bytes(32)]


@st.composite
def mutated_round(draw: st.DrawFn, name: str) -> bytes:
    w = world()
    target = w.targets[name]
    msg = RingRound.decode(target.data)
    changes: dict[str, object] = {}
    for _ in range(draw(st.integers(1, 3))):
        field = draw(
            st.sampled_from(
                ["group_id", "epoch", "attempt", "roster_hash", "context", "round", "sender", "value",
                 VIEW]
            )
        )  # fmt: skip
        if field == "group_id":
            changes[field] = draw(st.sampled_from([b"other group", b"x" * 255, msg.group_id + b"!"]))
        elif field == "epoch":
            changes[field] = draw(st.sampled_from([0, msg.epoch - 1, msg.epoch + 1, U64]))
        elif field == "attempt":
            changes[field] = draw(st.sampled_from([msg.attempt + 1, msg.attempt + 2, U32]))
        elif field in ("roster_hash", VIEW):
            changes[field] = draw(st.binary(min_size=32, max_size=32))
        elif field == "context":
            changes[field] = draw(st.binary(max_size=64))
        elif field == "round":
            other = draw(st.sampled_from([r for r in (1, 2, 3) if r != msg.round]))
            changes[field] = other
            changes[VIEW] = b"" if other == 1 else draw(st.binary(min_size=32, max_size=32))
        elif field == "sender":
            changes[field] = draw(LEAVES)
        elif field == "value":
            fresh = X25519PrivateKey.generate().public_key().public_bytes_raw()
            pool = [fresh, *LOW_ORDER, *_other_values(w, target)]
            changes[field] = draw(st.one_of(st.sampled_from(pool), st.binary(min_size=32, max_size=32)))
    if "attempt" in changes and "next_attempt_bad" not in ENABLED:
        # Today a signed message of another attempt switches the receiver to it before the
        # other checks run (test_a_bad_next_attempt_round_is_refused_without_a_switch below):
        # only a well-formed round 1 of another attempt, which is accepted.
        if msg.round == 1 and draw(st.booleans()):
            changes = {"attempt": changes["attempt"]}
        else:
            del changes["attempt"]
    if VIEW in changes and changes.get("round", msg.round) == 1:
        changes[VIEW] = b""
    try:
        data = _resign(target.data, w, **changes)
    except GroupChatError:  # a field our own encoder refuses (a UsageError): keep the genuine one
        data = target.data
    if draw(st.integers(0, 4)) == 0:
        data = data[:-64] + msg.signature  # not re-signed: the genuine signature on other content
    return draw(raw_mutation(data))


@pytest.mark.parametrize("name", ["round 1", "round 2", "round 3"])
@FUZZ
@given(data=st.data())
def test_mutated_and_re_signed_ring_rounds(name: str, data: st.DataObject) -> None:
    w = world()
    receiver = w.targets[name].fresh()
    bad = data.draw(mutated_round(name))
    feed(lambda: receiver.receive(bad), lambda: ring_state(receiver))


# --- the restart commit --------------------------------------------------------------------------


@st.composite
def mutated_restart(draw: st.DrawFn) -> bytes:
    w = world()
    target = w.targets["restart commit"]
    msg = CommitMessage.decode(target.data)
    c = msg.content
    ops = list(msg.commit.operations)
    epoch, sender, ad = c.epoch, c.sender, c.authenticated_data
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["leaf", "type", "dup", "drop", "add", "epoch", "sender", "ad"]))
        op = ops[0] if ops else None
        if kind == "leaf" and op:
            ops[0] = dataclasses.replace(op, leaf=draw(st.one_of(LEAVES, st.just(w.attacker.my_leaf))))
        elif kind == "type" and op:
            ops[0] = Operation(OpType.UPDATE, w.attacker.my_leaf, ())
        elif kind == "dup" and op:
            ops.append(op)
        elif kind == "drop":
            ops = []
        elif kind == "add":
            ops.append(Operation(OpType.ADD, 3, (), w.fresh_joiner().request))
        elif kind == "epoch":
            epoch = draw(st.sampled_from([0, epoch - 1, epoch + 1, U64]))
        elif kind == "sender":
            sender = draw(LEAVES)
        elif kind == "ad":
            ad = draw(st.binary(max_size=32))
    context = draw(st.sampled_from([target.resign_context, target.receiver._ctx_bytes]))
    try:
        body = Commit(tuple(ops), msg.commit.changes)
        content = FramedContent(c.group_id, epoch, sender, ad, ContentType.COMMIT, body.encode())
        key = w.attacker._identity.signing_key
        signature = sign_framed_content(w.attacker.suite, key, WireFormat.PUBLIC_MESSAGE, content, context)
        data = CommitMessage(content, body, signature, msg.confirmation_tag).encode()
    except (ValueError, struct.error, AssertionError, GroupChatError):
        data = target.data
    return draw(raw_mutation(data))


@FUZZ
@given(data=st.data())
def test_mutated_and_re_signed_restart_commits(data: st.DataObject) -> None:
    w = world()
    receiver = w.targets["restart commit"].fresh()
    bad = data.draw(mutated_restart())
    feed(lambda: receiver.receive(bad), lambda: ring_state(receiver))


# --- the ring Welcome -------------------------------------------------------------------------------


def _with_joiner_listed(w: World, roster: bytes) -> bytes:
    """The roster with the joiner's own (genuine, signed) request at a free leaf past the others."""
    r = Reader(roster, "ring roster")
    count = r.u32("count")
    items = [(r.u32("leaf"), r.opaque("request", 4096)) for _ in range(count)]
    items.append((max(leaf for leaf, _ in items) + 3, w.joiner.request.encoded))
    out = Writer().u32(len(items))
    for leaf, req in items:
        out.u32(leaf).opaque(req)
    return out.bytes()


def _roster_hash(w: World, roster: bytes) -> bytes | None:
    from groupchat.core.schemes.ring_scheme import RingScheme

    try:
        members = RingScheme.decode_roster(roster)
    except GroupChatError:
        return None
    scheme = RingScheme(
        w.attacker.suite, members, identity=w.attacker._identity, rand=os.urandom, clock=lambda: 0.0
    )
    return scheme.public_hash


def _reinfo(info: GroupInfo, ctx: object, parts: dict[int, bytes], drop: set[int], signer: int) -> GroupInfo:
    """The genuine GroupInfo with ``parts`` replacing its ring extensions (the others kept, in
    place), ``drop`` left out, another GroupContext and signer; to be signed again."""
    items = [(t, parts.get(t, d)) for t, d in decode_extensions(info.extensions) if t not in drop]
    return dataclasses.replace(info, group_context=ctx, extensions=encode_extensions(items), signer=signer)


@st.composite
def mutated_ring_welcome(draw: st.DrawFn) -> bytes:
    w = world()
    suite = w.attacker.suite
    info, joiner_secret, init_secret = w.welcome_parts
    ctx = info.group_context
    ext = dict(decode_extensions(info.extensions))
    roster = w.roster
    commit = CommitMessage.decode(ext[wire.RING_COMMIT_EXTENSION])
    interim = ext[wire.RING_INTERIM_EXTENSION]
    signer = info.signer
    drop: set[int] = set()
    ops = list(commit.commit.operations)
    kinds = ["epoch", "group", "roster-cut", "roster-byte", "commit-ops", "interim", "signer", "drop-ext",
             "init-secret"]  # fmt: skip
    if "welcome_lists_joiner" in ENABLED:
        kinds.append("roster-lists-joiner")
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(kinds))
        if kind == "epoch":
            ctx = dataclasses.replace(ctx, epoch=draw(st.sampled_from([0, ctx.epoch + 1, U64 - 1, U64])))
        elif kind == "group":
            ctx = dataclasses.replace(ctx, group_id=b"other group")
        elif kind == "roster-cut" and roster:
            roster = roster[: draw(st.integers(0, len(roster) - 1))]
        elif kind == "roster-byte" and roster:
            i = draw(st.integers(0, len(roster) - 1))
            roster = roster[:i] + bytes([draw(st.integers(0, 255))]) + roster[i + 1 :]
        elif kind == "roster-lists-joiner":
            with contextlib.suppress(GroupChatError):  # a roster cut short above stays as it is
                roster = _with_joiner_listed(w, roster)
        elif kind == "commit-ops":
            ops = draw(st.sampled_from([[], ops + ops, [Operation(OpType.UPDATE, signer, ())]]))
        elif kind == "interim":
            interim = draw(st.binary(min_size=32, max_size=32))
        elif kind == "signer":
            signer = draw(LEAVES)
        elif kind == "drop-ext":
            drop.add(draw(st.sampled_from(sorted(ext))))
        elif kind == "init-secret":
            init_secret = draw(st.binary(min_size=32, max_size=32))
    if draw(st.booleans()):  # the malicious committer keeps the roster hash consistent
        fixed = _roster_hash(w, roster)
        if fixed is not None:
            ctx = dataclasses.replace(ctx, tree_hash=fixed)
    try:  # and re-signs its commit over the (mutated) GroupContext
        c = commit.content
        body = Commit(tuple(ops), commit.commit.changes)
        content = FramedContent(ctx.group_id, ctx.epoch, c.sender, c.authenticated_data, ContentType.COMMIT,
                                body.encode())  # fmt: skip
        key = w.attacker._identity.signing_key
        sig = sign_framed_content(suite, key, WireFormat.PUBLIC_MESSAGE, content, ctx.encode())
        commit_bytes = CommitMessage(content, body, sig, commit.confirmation_tag).encode()
    except (ValueError, struct.error, AssertionError, GroupChatError):
        commit_bytes = ext[wire.RING_COMMIT_EXTENSION]
    parts = {wire.RING_COMMIT_EXTENSION: commit_bytes, wire.RING_INTERIM_EXTENSION: interim}
    try:
        new_info = _reinfo(info, ctx, parts, drop, signer).sign(suite, w.attacker._identity.signing_key)
        gs = GroupSecrets(joiner_secret, init_secret, [])
        pj = w.joiner
        recipient = (pj.request.ref(suite), pj.request.init_key, gs)
        sealed = seal_welcome(
            suite, new_info.encode(), derive_welcome_secret(suite, joiner_secret), [recipient], roster
        )
        welcome = sealed.encode()
    except (ValueError, struct.error, GroupChatError):
        welcome = w.welcome
    return draw(raw_mutation(welcome))


def _join_then_genuine(w: World, bad: bytes, *, note: bool = True) -> None:
    """A refused Welcome: only a RemoteError, and the same join request still joins from the genuine one."""
    pj = w.fresh_joiner()
    try:
        joined = Group.join(pj, bad, w.room.config)
    except RemoteError as exc:
        if note:
            event(f"rejected: {type(exc).__name__}")
        genuine = Group.join(pj, w.welcome, w.room.config)  # raises if the refusal burnt the request
        assert genuine.joining
        return
    if note:
        event("accepted")
    assert joined.joining  # a ring joiner until its first ring is done


@FUZZ
@given(data=st.data())
def test_mutated_and_re_signed_ring_welcomes(data: st.DataObject) -> None:
    _join_then_genuine(world(), data.draw(mutated_ring_welcome()))


def test_a_ring_welcome_listing_the_joiner_twice_is_refused_remotely_and_burns_nothing() -> None:
    """The malicious committer lists the joiner's own request in the old roster too (hash fixed,
    commit re-signed): today ``Group.join`` marks the request used, then its ring refuses the
    roster with a UsageError, so the genuine Welcome is refused "already used"."""
    w = world()
    suite = w.attacker.suite
    info, joiner_secret, init_secret = w.welcome_parts
    ext = dict(decode_extensions(info.extensions))
    roster = _with_joiner_listed(w, w.roster)
    fixed = _roster_hash(w, roster)
    assert fixed is not None
    ctx = dataclasses.replace(info.group_context, tree_hash=fixed)
    commit = CommitMessage.decode(ext[wire.RING_COMMIT_EXTENSION])
    key = w.attacker._identity.signing_key
    sig = sign_framed_content(suite, key, WireFormat.PUBLIC_MESSAGE, commit.content, ctx.encode())
    commit_bytes = dataclasses.replace(commit, signature=sig).encode()
    parts = {wire.RING_COMMIT_EXTENSION: commit_bytes}
    new_info = _reinfo(info, ctx, parts, set(), info.signer).sign(suite, key)
    pj = w.joiner
    gs = GroupSecrets(joiner_secret, init_secret, [])
    bad = seal_welcome(
        suite,
        new_info.encode(),
        derive_welcome_secret(suite, joiner_secret),
        [(pj.request.ref(suite), pj.request.init_key, gs)],
        roster,
    ).encode()
    _join_then_genuine(w, bad, note=False)


def test_a_bad_next_attempt_round_is_refused_without_a_switch() -> None:
    """m1's round 2 re-signed for the next attempt: today the receiver switches to that attempt
    (its own round 1 of it lost), then refuses the message (round 2 before round 1)."""
    w = world()
    target = w.targets["round 2"]
    receiver = target.fresh()
    bad = _resign(target.data, w, attempt=RingRound.decode(target.data).attempt + 1)
    feed(lambda: receiver.receive(bad), lambda: ring_state(receiver), note=False)
