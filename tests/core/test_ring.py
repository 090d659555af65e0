"""The ring scheme on its own: agreement, the keeper adversary, every rejection, timeouts and retries.

Members are real :class:`RingRekey` objects doing real X25519, Ed25519 and HKDF; the "relay" is a
list delivered in one total order to every member, the sender included (it gets its echo). Round 3
confirms a stand-in for the epoch machine's tag (:func:`tag_of`). Each rejection test pins the
exact error class and checks that the rejected input changed nothing (:func:`state`), then that
the legitimate messages still complete the ring.
"""

from __future__ import annotations

import os
import random
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from groupchat.core.codec import Writer
from groupchat.core.errors import (
    DecodeError,
    DuplicateKeyError,
    EpochError,
    InvalidPublicKeyError,
    InvalidValueError,
    ReplayError,
    SignatureError,
    TrailingDataError,
    UnknownMemberError,
    UnknownVersionError,
    UsageError,
    WrongGroupError,
)
from groupchat.core.events import FailureKind, Member, RekeyFailed
from groupchat.core.identity import Identity
from groupchat.core.key_schedule import GroupContext, derive_epoch_secrets
from groupchat.core.schemes import (
    AttemptFailedError,
    EquivocationError,
    RingRekey,
    RingResult,
    RingRound,
    RingState,
    RingStep,
    RingTimeoutError,
    RosterMismatchError,
    RoundOrderError,
    WrongAttemptError,
)
from groupchat.core.schemes.ring import (
    commit_secret,
    edge_key,
    message_size,
    ring_id,
    roster_hash,
    round1_hash,
    transcript_hash,
    walk_ring,
    xor,
)
from groupchat.core.suite import CipherSuite
from groupchat.lab.clock import ManualClock
from groupchat.lab.room import Receiver
from groupchat.lab.room import Room as LabRoom

SUITE = CipherSuite()
GROUP = b"ring-test"
TIMEOUT = 30.0
P = 2**255 - 19


def tag_of(result: RingResult) -> bytes:
    """What the epoch machine would confirm in round 3: here a hash of the agreed secret."""
    return SUITE.hash(b"tag" + result.commit_secret)


def u(n: int) -> bytes:
    return n.to_bytes(32, "little")


LOW_ORDER = {
    "zero": u(0),
    "one": u(1),
    "order8": u(325606250916557431795983626356110631294008115727848805560023387167927233504),
    "order8b": u(39382357235489614581723060781553021112529911719440698176882885853963445705823),
    "p-1": u(P - 1),
    "p": u(P),  # non-canonical encodings of low-order points
    "p+1": u(P + 1),
    "top-bit": u(9 + (1 << 255)),
}


class RecordingRandom:
    """``os.urandom`` that remembers every byte string it returned: what a keeper keeps."""

    def __init__(self) -> None:
        self.outputs: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        out = os.urandom(n)
        self.outputs.append(out)
        return out


@dataclass
class Cast:
    """Identities and the roster they form (leaves 0, 2, 4, ...: leaves need not be contiguous)."""

    identities: list[Identity]
    roster: list[Member]
    rands: list[RecordingRandom] = field(default_factory=list)

    @classmethod
    def of(cls, n: int) -> Cast:
        ids = [Identity.generate() for _ in range(n)]
        roster = [Member(2 * i, f"m{i}", idn.public_key) for i, idn in enumerate(ids)]
        return cls(ids, roster, [RecordingRandom() for _ in range(n)])

    def without(self, index: int) -> Cast:
        keep = [i for i in range(len(self.identities)) if i != index]
        return Cast(
            [self.identities[i] for i in keep], [self.roster[i] for i in keep], [self.rands[i] for i in keep]
        )

    def runs(
        self,
        *,
        epoch: int = 1,
        attempt: int = 0,
        context: bytes = b"ctx",
        clock: Callable[[], float] = lambda: 0.0,
        group_id: bytes = GROUP,
    ) -> list[RingRekey]:
        return [
            RingRekey(
                suite=SUITE,
                identity=idn,
                group_id=group_id,
                epoch=epoch,
                roster=self.roster,
                rand=self.rands[i],
                clock=clock,
                attempt=attempt,
                context=context,
                timeout=TIMEOUT,
            )
            for i, idn in enumerate(self.identities)
        ]


class Room:
    """A relay with one total order (the lab's Room, sequencing only): every posted message is
    delivered to every member in order, each member reading from its own cursor."""

    def __init__(self, runs: Sequence[RingRekey]) -> None:
        self.runs = list(runs)
        self.relay: LabRoom[int, Receiver] = LabRoom()
        self.results: dict[int, RingResult] = {}
        self.confirmed: set[int] = set()
        self.failures: dict[int, RekeyFailed] = {}
        self.cursor = [0] * len(runs)

    @property
    def log(self) -> list[bytes]:
        return [d.payload for d in self.relay.log]

    def post(self, k: int, step: RingStep) -> None:
        for data in step.outbound:
            self.relay.publish(data, k)
        if step.failure is not None:
            self.failures[k] = step.failure
        if step.confirmed:
            assert k not in self.confirmed, "a run confirmed twice"
            self.confirmed.add(k)
        if step.result is not None:
            assert k not in self.results, "a run produced two results"
            self.results[k] = step.result
            self.post(k, self.runs[k].confirm(tag_of(step.result)))  # as the epoch machine does

    def start(self, members: Sequence[int] | None = None) -> None:
        for k in range(len(self.runs)) if members is None else members:
            self.post(k, self.runs[k].start())

    def step(self, k: int) -> RingStep:
        """Deliver the next pending message to member ``k`` only."""
        data = self.relay.log[self.cursor[k]].payload
        self.cursor[k] += 1
        step = self.runs[k].receive(data)
        self.post(k, step)
        return step

    def deliver(self, members: Sequence[int] | None = None) -> None:
        """Deliver everything pending to ``members`` (default all), repeating until quiet."""
        who = range(len(self.runs)) if members is None else members
        for _ in range(6 * len(self.runs) + 6):  # bounded: each pass delivers a round or more
            progressed = False
            for k in who:
                while self.cursor[k] < self.relay.head:
                    data = self.relay.log[self.cursor[k]].payload
                    self.cursor[k] += 1
                    self.post(k, self.runs[k].receive(data))
                    progressed = True
            if not progressed:
                return
        raise AssertionError("delivery did not settle")

    def run(self) -> dict[int, RingResult]:
        self.start()
        self.deliver()
        assert self.confirmed == set(self.results), "a member derived the secret but did not confirm"
        return self.results


def run_ring(cast: Cast, **kw: object) -> tuple[list[RingRekey], dict[int, RingResult], list[bytes]]:
    runs = cast.runs(**kw)  # type: ignore[arg-type]
    room = Room(runs)
    results = room.run()
    return runs, results, room.log


def status(run: RingRekey) -> RingState:
    """The run's state, read through a call so that type narrowing does not outlive a transition."""
    return run.state


def of_round(log: Sequence[bytes], round_: int) -> list[RingRound]:
    """The decoded messages of one round of a log, in roster (leaf) order."""
    msgs = [RingRound.decode(m) for m in log]
    return sorted((m for m in msgs if m.round == round_), key=lambda m: m.sender)


def agreed(results: dict[int, RingResult], n: int) -> RingResult:
    assert sorted(results) == list(range(n)), f"only {sorted(results)} of {n} finished"
    first = results[0]
    for r in results.values():
        assert r.commit_secret == first.commit_secret
        assert r.transcript_hash == first.transcript_hash
        assert r.roster_hash == first.roster_hash
    return first


def state(run: RingRekey) -> tuple[object, ...]:
    """Everything a rejected message must leave untouched, secrets included."""
    eph = run._ephemeral
    return (
        run.state,
        tuple(tuple(None if s is None else s.encoded for s in run._rounds[r]) for r in (1, 2, 3)),
        frozenset(run._echoed),
        None if eph is None else eph.private_bytes_raw(),
        run._edges,
        run._round1_hash,
        run._confirmation,
        run._round_started,
        run._failure,
        run.result,
        tuple(run._held.items()),
        tuple(run._ephemerals.items()),
    )


def craft(
    signer: Identity,
    like: RingRekey,
    *,
    round_: int = 1,
    sender: int,
    value: bytes | None = None,
    view: bytes | None = None,
    **overrides: object,
) -> bytes:
    """A correctly signed ring message bound like ``like`` unless ``overrides`` say otherwise."""
    fields: dict[str, object] = {
        "group_id": like.group_id,
        "epoch": like.epoch,
        "attempt": like.attempt,
        "roster_hash": like.roster_hash,
        "context": like.context,
    }
    fields.update(overrides)
    if value is None:
        value = X25519PrivateKey.generate().public_key().public_bytes_raw()
    if view is None:
        view = b"" if round_ == 1 else bytes(32)
    return RingRound.create(
        SUITE, signer.signing_key, round_=round_, sender=sender, value=value, view=view,
        **fields,  # type: ignore[arg-type]
    ).encoded  # fmt: skip


def assert_rejected(
    run: RingRekey, data: bytes, error: type[Exception], match: str | None = None
) -> Exception:
    """``data`` raises exactly ``error`` and leaves ``run`` untouched."""
    before = state(run)
    with pytest.raises(error, match=match) as info:
        run.receive(data)
    assert type(info.value) is error, f"expected {error.__name__}, got {type(info.value).__name__}"
    assert state(run) == before
    return info.value


# --- agreement -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 8, 33])
def test_all_members_agree(n: int) -> None:
    cast = Cast.of(n)
    runs, results, log = run_ring(cast)
    first = agreed(results, n)
    assert first.roster_hash == roster_hash(SUITE, cast.roster)
    assert len(log) == (0 if n == 1 else 3 * n)  # 3n broadcasts; a lone member sends nothing
    assert all(r.state is RingState.DONE for r in runs)
    # Every ephemeral private key and edge key is gone once the secret is derived.
    assert all(r._ephemeral is None and r._edges is None for r in runs)
    # A second run of the same attempt (fresh ephemerals) and the next attempt give other secrets.
    _, again, _ = run_ring(cast)
    _, retry, _ = run_ring(cast, attempt=1)
    secrets = {first.commit_secret, agreed(again, n).commit_secret, agreed(retry, n).commit_secret}
    assert len(secrets) == 3


def test_message_sizes_match_the_wire() -> None:
    cast = Cast.of(3)
    _, _, log = run_ring(cast, context=b"c" * 40)
    sizes = sorted({len(m) for m in log})
    # Rounds 2 and 3 have the same shape (a value and a view).
    assert sizes == [message_size(len(GROUP), 40, 1), message_size(len(GROUP), 40, 2)]
    assert message_size(len(GROUP), 40, 3) == message_size(len(GROUP), 40, 2)


def reference_secret(cast: Cast, runs: Sequence[RingRekey], log: Sequence[bytes]) -> bytes:
    """The commit secret recomputed from the documented formulas and every member's ephemeral key."""
    n = len(cast.roster)
    r1, r2 = of_round(log, 1), of_round(log, 2)
    first = runs[0]
    rid = ring_id(SUITE, GROUP, first.epoch, first.attempt, roster_hash(SUITE, cast.roster), first.context)
    privates = [X25519PrivateKey.from_private_bytes(cast.rands[i].outputs[-1]) for i in range(n)]
    publics = [m.value for m in r1]
    edges = []
    for j in range(n):
        dh = privates[j].exchange(X25519PublicKey.from_public_bytes(publics[(j + 1) % n]))
        edges.append(edge_key(SUITE, rid, j, dh, publics[j], publics[(j + 1) % n]))
    for i, m in enumerate(r2):
        assert m.value == xor(edges[i - 1], edges[i])
    # The hashes cover each message's signed content, never its signature bytes.
    h1 = round1_hash(SUITE, rid, [m.content for m in r1])
    assert all(m.view == h1 for m in r2)
    transcript = transcript_hash(SUITE, h1, [m.content for m in r2])
    assert all(m.view == transcript for m in of_round(log, 3))
    return commit_secret(SUITE, rid, edges, transcript)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_secret_follows_the_documented_formulas(n: int) -> None:
    cast = Cast.of(n)
    runs, results, log = run_ring(cast)
    assert agreed(results, n).commit_secret == reference_secret(cast, runs, log)


def test_two_members_share_one_dh_but_two_distinct_edges() -> None:
    cast = Cast.of(2)
    runs, results, log = run_ring(cast)
    r2 = of_round(log, 2)
    assert r2[0].value == r2[1].value  # X_0 = X_1 = k_0 XOR k_1
    assert r2[0].value != bytes(32)  # the edges differ (edge index and key order in the KDF)
    assert agreed(results, 2).commit_secret == reference_secret(cast, runs, log)


def test_one_member_derives_alone_from_fresh_randomness() -> None:
    cast = Cast.of(1)
    run = cast.runs()[0]
    step = run.start()
    assert step.outbound == () and step.result is not None and run.state is RingState.KEYED
    assert run.confirm(tag_of(step.result)) == RingStep(confirmed=True) and status(run) is RingState.DONE
    rid = ring_id(SUITE, GROUP, 1, 0, roster_hash(SUITE, cast.roster), b"ctx")
    transcript = transcript_hash(SUITE, round1_hash(SUITE, rid, []), [])
    assert step.result.transcript_hash == transcript
    assert step.result.commit_secret == commit_secret(SUITE, rid, [cast.rands[0].outputs[-1]], transcript)
    assert cast.runs()[0].start().result != step.result


def test_late_starter_sends_both_rounds_at_once() -> None:
    """A member that starts after every other round-1 message arrived answers with rounds 1 and 2."""
    cast = Cast.of(4)
    runs = cast.runs()
    room = Room(runs)
    room.start([0, 1, 2])
    room.deliver([3])  # member 3 buffers the three round-1 messages before it starts
    assert runs[3].state is RingState.NEW
    step = runs[3].start()
    assert [RingRound.decode(m).round for m in step.outbound] == [1, 2]
    room.post(3, step)
    room.deliver()
    agreed(room.results, 4)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 9), rng=st.randoms(use_true_random=False), late=st.integers(0, 9))
def test_agreement_under_any_total_order(n: int, rng: random.Random, late: int) -> None:
    """The relay sequences in-flight messages in a random order; some members start late.

    The only constraint kept is the one a relay over one connection per member gives: a member's
    own messages are sequenced in the order it sent them.
    """
    cast = Cast.of(n)
    runs = cast.runs()
    results: dict[int, RingResult] = {}
    confirmed: set[int] = set()
    in_flight: dict[int, deque[bytes]] = {k: deque() for k in range(n)}  # per-connection FIFO
    late_members = set(rng.sample(range(n), min(late, n)))

    def take(k: int, step: RingStep) -> None:
        in_flight[k].extend(step.outbound)
        assert step.failure is None, step.failure
        if step.result is not None:
            results[k] = step.result
            take(k, runs[k].confirm(tag_of(step.result)))
        if step.confirmed:
            confirmed.add(k)

    for k in range(n):
        if k not in late_members:
            take(k, runs[k].start())
    for _ in range(15 * n + 15):
        senders = [k for k, q in in_flight.items() if q]
        if not senders:
            if not late_members:
                break
            k = late_members.pop()
            take(k, runs[k].start())
            continue
        data = in_flight[rng.choice(senders)].popleft()  # the relay's next sequence number
        for k in range(n):
            if k in late_members and rng.random() < 0.3:
                late_members.discard(k)
                take(k, runs[k].start())
            take(k, runs[k].receive(data))
    agreed(results, n)
    assert confirmed == set(range(n))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 8), rng=st.randoms(use_true_random=False))
def test_agreement_does_not_depend_on_arrival_order(n: int, rng: random.Random) -> None:
    """Each member receives the round messages in its own order: the transcript is in roster order."""
    cast = Cast.of(n)
    runs = cast.runs()
    round1 = [r.start().outbound[0] for r in runs]
    round2: list[bytes | None] = [None] * n
    for k in range(n):
        for data in rng.sample(round1, n):
            out = runs[k].receive(data).outbound
            if out:
                round2[k] = out[0]
    sent = [m for m in round2 if m is not None]
    assert len(sent) == n
    results = {}
    round3: list[bytes] = []
    for k in range(n):
        for data in rng.sample(sent, n):
            step = runs[k].receive(data)
            if step.result is not None:
                results[k] = step.result
                round3 += runs[k].confirm(tag_of(step.result)).outbound
    agreed(results, n)
    assert all(
        [runs[k].receive(data).confirmed for data in rng.sample(round3, n)][-1] for k in range(n)
    )


# --- the keeper adversary ----------------------------------------------------------------------


def keeper_candidates(kept: Sequence[bytes], publics: Sequence[bytes], rid: bytes) -> set[bytes]:
    """Every 32-byte value a keeper can offer as a new edge key from what it kept.

    Each kept value is tried as an edge key itself and as an X25519 scalar against every new
    ephemeral key, fed through the edge KDF at every index with every key order.
    """
    n = len(publics)
    out = set(kept)
    for secret in kept:
        sk = X25519PrivateKey.from_private_bytes(secret)
        for pub in publics:
            dh = sk.exchange(X25519PublicKey.from_public_bytes(pub))
            out.add(dh)
            for j in range(n):
                out.add(edge_key(SUITE, rid, j, dh, publics[j], publics[(j + 1) % n]))
                out.add(edge_key(SUITE, rid, j, dh, publics[(j + 1) % n], publics[j]))
    return out


def keeper_secrets(
    candidates: set[bytes], values: Sequence[bytes], rid: bytes, transcript: bytes
) -> set[bytes]:
    """Walk the new ring from every candidate at every position, as the keeper would."""
    n = len(values)
    return {
        commit_secret(SUITE, rid, walk_ring(values, j, c), transcript) for c in candidates for j in range(n)
    }


def test_removed_keeper_cannot_compute_the_next_secret() -> None:
    cast = Cast.of(5)
    keeper = 2
    # Epoch 1: the keeper is a member. It keeps every random byte it drew, every message it saw,
    # every edge key (it can walk the ring) and the secret.
    runs, results, log1 = run_ring(cast, epoch=1)
    old = agreed(results, 5)
    old_r1, old_r2 = of_round(log1, 1), of_round(log1, 2)
    old_rid = runs[0].ring_id
    k_eph = X25519PrivateKey.from_private_bytes(cast.rands[keeper].outputs[-1])
    right = old_r1[(keeper + 1) % 5].value
    dh = k_eph.exchange(X25519PublicKey.from_public_bytes(right))
    own_edge = edge_key(SUITE, old_rid, keeper, dh, old_r1[keeper].value, right)
    old_edges = walk_ring([m.value for m in old_r2], keeper, own_edge)
    assert commit_secret(SUITE, old_rid, old_edges, old.transcript_hash) == old.commit_secret
    kept = [*cast.rands[keeper].outputs, *old_edges, old.commit_secret, old.transcript_hash]

    # Epoch 2: the keeper is removed; it sees every broadcast of the new ring.
    rest = cast.without(keeper)
    new_runs, new_results, log2 = run_ring(rest, epoch=2)
    new = agreed(new_results, 4)
    r1, r2 = of_round(log2, 1), of_round(log2, 2)
    rid, values, transcript = new_runs[0].ring_id, [m.value for m in r2], new.transcript_hash
    real_edges = walk_ring(values, 0, reference_edge(rest, r1, rid, 0))

    candidates = keeper_candidates(kept, [m.value for m in r1], rid)
    assert not candidates & set(real_edges)
    guesses = keeper_secrets(candidates, values, rid, transcript)
    assert new.commit_secret not in guesses

    # Through the key schedule, as the epoch machine runs it: the keeper also knows epoch 1's
    # init_secret, so commit_secret is all that stands between it and epoch 2's authenticator.
    def context(epoch: int, result: RingResult) -> bytes:
        return GroupContext(SUITE.id, GROUP, epoch, result.roster_hash, result.transcript_hash).encode()

    init_1 = derive_epoch_secrets(SUITE, bytes(32), old.commit_secret, context(1, old)).init_secret
    ctx_2 = context(2, new)
    real = derive_epoch_secrets(SUITE, init_1, new.commit_secret, ctx_2).epoch_authenticator
    tried = {derive_epoch_secrets(SUITE, init_1, g, ctx_2).epoch_authenticator for g in guesses | candidates}
    assert real not in tried
    # Control: the same procedure with one new edge key (which any current member holds) succeeds,
    # so the failure above is the keeper's lack of knowledge, not a blind procedure.
    assert new.commit_secret in keeper_secrets({*candidates, real_edges[3]}, values, rid, transcript)


def reference_edge(cast: Cast, r1: Sequence[RingRound], rid: bytes, j: int) -> bytes:
    """Edge ``j`` of the ring just run, from member ``j``'s recorded ephemeral key."""
    n = len(r1)
    sk = X25519PrivateKey.from_private_bytes(cast.rands[j].outputs[-1])
    dh = sk.exchange(X25519PublicKey.from_public_bytes(r1[(j + 1) % n].value))
    return edge_key(SUITE, rid, j, dh, r1[j].value, r1[(j + 1) % n].value)


# --- rejections ----------------------------------------------------------------------------------


@pytest.fixture
def trio() -> tuple[Cast, list[RingRekey], Room]:
    """Three members; everyone has started, nothing is delivered yet."""
    cast = Cast.of(3)
    runs = cast.runs()
    room = Room(runs)
    room.start()
    return cast, runs, room


def finish(room: Room, n: int) -> None:
    room.deliver()
    agreed(room.results, n)


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ({"group_id": b"other-group"}, WrongGroupError),
        ({"epoch": 7}, EpochError),
        ({"attempt": 1}, WrongAttemptError),
        ({"roster_hash": bytes(32)}, RosterMismatchError),
        ({"context": b"another state"}, RosterMismatchError),
    ],
)
def test_messages_bound_elsewhere_are_refused(
    trio: tuple[Cast, list[RingRekey], Room], override: dict[str, Any], error: type[Exception]
) -> None:
    cast, runs, room = trio
    assert_rejected(runs[0], craft(cast.identities[1], runs[0], sender=2, **override), error)
    finish(room, 3)


def test_wrong_attempt_says_which_way(trio: tuple[Cast, list[RingRekey], Room]) -> None:
    cast, _, room = trio
    later = cast.runs(attempt=17)
    err = assert_rejected(later[0], room.log[1], WrongAttemptError, "earlier attempt")
    assert isinstance(err, WrongAttemptError) and (err.attempt, err.ours) == (0, 17)
    future = later[1].start().outbound[0]
    err = assert_rejected(room.runs[0], future, WrongAttemptError, r"m1. \(leaf 2.*than 16 attempts ahead")
    assert isinstance(err, WrongAttemptError) and (err.attempt, err.ours) == (17, 0)
    following = cast.runs(attempt=1)[1].start().outbound[0]
    err = assert_rejected(room.runs[0], following, WrongAttemptError, "a later attempt, in force from here")
    assert isinstance(err, WrongAttemptError) and (err.attempt, err.ours) == (1, 0)
    # Only a signed message can make a caller leave its attempt: a forged one is a SignatureError.
    forged = future[:-1] + bytes([future[-1] ^ 1])
    assert_rejected(room.runs[0], forged, SignatureError)


def test_sender_outside_the_roster(trio: tuple[Cast, list[RingRekey], Room]) -> None:
    cast, runs, room = trio
    assert_rejected(runs[0], craft(cast.identities[1], runs[0], sender=99), UnknownMemberError, "leaf 99")
    finish(room, 3)


def test_bad_signatures(trio: tuple[Cast, list[RingRekey], Room]) -> None:
    cast, runs, room = trio
    good = room.log[1]
    flipped = good[:-1] + bytes([good[-1] ^ 1])
    assert_rejected(runs[0], flipped, SignatureError, "ring round 1 from 'm1'")
    # Correctly signed, but by member 2's key while it claims member 1 (leaf 2).
    assert_rejected(runs[0], craft(cast.identities[2], runs[0], sender=2), SignatureError)
    # A changed value under the original signature.
    msg = RingRound.decode(good)
    tampered = good.replace(msg.value, X25519PrivateKey.generate().public_key().public_bytes_raw())
    assert_rejected(runs[0], tampered, SignatureError)
    finish(room, 3)


def test_duplicates_and_own_echo(trio: tuple[Cast, list[RingRekey], Room]) -> None:
    _, runs, room = trio
    own, theirs = room.log[0], room.log[1]
    before = state(runs[0])
    assert room.step(0) == RingStep()  # the relay's echo of our own message: nothing to do
    assert state(runs[0])[:2] == before[:2]
    assert_rejected(runs[0], own, ReplayError, r"duplicate round-1 message from 'm0' \(leaf 0")
    room.step(0)
    assert_rejected(runs[0], theirs, ReplayError, r"duplicate round-1 message from 'm1' \(leaf 2")
    finish(room, 3)
    assert_rejected(runs[0], theirs, ReplayError)  # and after completion


def test_equivocation_first_message_stands(trio: tuple[Cast, list[RingRekey], Room]) -> None:
    cast, runs, room = trio
    room.step(0)
    room.step(0)  # our echo, then member 1's round-1 message
    second = craft(cast.identities[1], runs[0], sender=2)
    assert_rejected(runs[0], second, EquivocationError, r"'m1' \(leaf 2, .*\) signed two different round-1")
    finish(room, 3)


def test_round2_equivocation(trio: tuple[Cast, list[RingRekey], Room]) -> None:
    cast, runs, room = trio
    room.deliver([0, 1])  # 0 and 1 finish round 1 and exchange their round-2 messages
    r2_of_1 = next(m for m in of_round(room.log, 2) if m.sender == 2)
    other = craft(cast.identities[1], runs[0], round_=2, sender=2, value=bytes(32), view=r2_of_1.view)
    assert_rejected(runs[0], other, EquivocationError, "round-2")
    finish(room, 3)


def test_own_signature_we_did_not_produce(trio: tuple[Cast, list[RingRekey], Room]) -> None:
    """A message signed by us for this attempt that is not ours: an earlier run of us spoke."""
    cast, _, _ = trio
    late = cast.runs()[0]  # a restarted member 0 that has not started yet
    assert_rejected(late, craft(cast.identities[0], late, sender=0), EquivocationError, "earlier run")


@pytest.mark.parametrize("name", sorted(LOW_ORDER))
def test_low_order_and_non_canonical_ephemerals(trio: tuple[Cast, list[RingRekey], Room], name: str) -> None:
    cast, runs, room = trio
    bad = craft(cast.identities[1], runs[0], sender=2, value=LOW_ORDER[name])
    assert_rejected(runs[0], bad, InvalidPublicKeyError, "ephemeral key of 'm1'")
    finish(room, 3)


def test_reused_ephemeral_key(trio: tuple[Cast, list[RingRekey], Room]) -> None:
    cast, runs, room = trio
    room.step(0)
    room.step(0)
    copied = craft(cast.identities[2], runs[0], sender=4, value=RingRound.decode(room.log[1]).value)
    assert_rejected(
        runs[0], copied, DuplicateKeyError, r"'m2' \(leaf 4, .*\) sent the same ephemeral key as 'm1'"
    )
    own = craft(cast.identities[2], runs[0], sender=4, value=RingRound.decode(room.log[0]).value)
    assert_rejected(runs[0], own, DuplicateKeyError, "as 'm0'")
    finish(room, 3)


def test_round2_before_round1_is_complete(trio: tuple[Cast, list[RingRekey], Room]) -> None:
    cast, runs, room = trio
    early = craft(cast.identities[1], runs[0], round_=2, sender=2)
    assert_rejected(runs[0], early, RoundOrderError, "still missing: 'm1'.*'m2'")
    finish(room, 3)


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda b: b[:2] + b"\xf0\x02" + b[4:], InvalidValueError),  # another wire format
        (lambda b: b"\x00\x02" + b[2:], UnknownVersionError),
        (lambda b: b + b"\x00", TrailingDataError),
    ],
)
def test_malformed(
    trio: tuple[Cast, list[RingRekey], Room], mutate: Callable[[bytes], bytes], error: type[Exception]
) -> None:
    _, runs, room = trio
    assert_rejected(runs[0], mutate(room.log[1]), error)
    finish(room, 3)


def test_truncated_anywhere_and_bad_round(trio: tuple[Cast, list[RingRekey], Room]) -> None:
    _, runs, room = trio
    good = room.log[1]
    before = state(runs[0])
    for cut in range(len(good)):
        with pytest.raises(DecodeError):
            runs[0].receive(good[:cut])
    assert state(runs[0]) == before
    msg = RingRound.decode(good)
    w = Writer().u16(1).u16(0xF001).opaque(GROUP).u64(1).u32(0).opaque(msg.roster_hash).opaque(b"ctx")
    head = w.bytes()
    bad_round = head + b"\x05" + good[len(head) + 1 :]
    assert_rejected(runs[0], bad_round, InvalidValueError, "round must be 1 to 4")
    finish(room, 3)


# --- fatal checks ----------------------------------------------------------------------------------


def test_divergent_round1_view_fails_the_attempt(trio: tuple[Cast, list[RingRekey], Room]) -> None:
    """A signed round-2 message over another round 1 is taken (a replacement would be
    equivocation) and fails the attempt: an outcome, reported as an event naming its signer."""
    cast, runs, room = trio
    room.deliver([0])
    assert status(runs[0]) is RingState.ROUND2
    liar = craft(cast.identities[1], runs[0], round_=2, sender=2, view=bytes(32))
    step = runs[0].receive(liar)
    failure = step.failure
    assert failure is not None and failure.kind is FailureKind.ROUND1_DIVERGED
    assert failure.signer == cast.roster[1] and (failure.epoch, failure.attempt) == (1, 0)
    assert re.search(r"'m1' \(leaf 2, .*\) signed its round-2 value over a different round 1", failure.detail)
    assert status(runs[0]) is RingState.FAILED and runs[0]._edges is None
    # A failed attempt refuses the rest of its messages as the peer input they are (not as our
    # mistake); a message of a later attempt is still recognised, so the caller can switch to it.
    with pytest.raises(AttemptFailedError, match="for attempt 0, which failed here"):
        runs[0].receive(room.log[1])


def test_inconsistent_ring_values_fail_then_the_blame_round_names_the_liar() -> None:
    cast = Cast.of(4)
    runs = cast.runs()
    room = Room(runs)
    room.start()
    room.deliver([0, 1, 2])  # 3 has not sent round 2 yet; 0, 1, 2 have
    # Member 3 reads round 1 only, so its honest round-2 message is computed but not posted.
    outbound = [m for data in room.log[:4] for m in runs[3].receive(data).outbound]
    assert len(outbound) == 1
    true = RingRound.decode(outbound[0])
    wrong = craft(
        cast.identities[3], runs[0], round_=2, sender=6, value=xor(true.value, b"\x01" * 32), view=true.view
    )
    assert runs[0].missing() == (cast.roster[3],)  # member 0 holds every other round-2 value
    step = runs[0].receive(wrong)
    failure = step.failure
    assert failure is not None and failure.kind is FailureKind.VALUES_INCONSISTENT and failure.signer is None
    assert failure.detail.startswith("the round-2 values do not XOR to zero")
    assert not any(m.display_name in failure.detail or m.fingerprint in failure.detail for m in cast.roster)
    assert runs[0].state is RingState.BLAME and runs[0]._edges is None and runs[0].result is None
    # The attempt is dead: member 0 reveals its ephemeral key (round 4) so the liar can be named.
    (reveal,) = step.outbound
    assert RingRound.decode(reveal).round == 4 and runs[0]._ephemeral is None
    # Member 3's own reveal (of the key behind its true value) names it: its signed value differs.
    key = runs[3]._ephemeral  # member 3 still holds its key: its round 2 is not over
    assert key is not None
    secret = key.private_bytes_raw()
    own = craft(cast.identities[3], runs[0], round_=4, sender=6, value=secret, view=true.view)
    blamed = runs[0].receive(own).failure
    assert blamed is not None and blamed.kind is FailureKind.WRONG_VALUE and blamed.signer == cast.roster[3]
    assert "sent a wrong round-2 value" in blamed.detail


def test_a_second_signature_of_the_same_content_changes_nothing(
    trio: tuple[Cast, list[RingRekey], Room],
) -> None:
    """Ed25519 lets a signer make many valid signatures of one content. No hash covers signature
    bytes, so a member that sends its content twice (or to each member with another signature)
    cannot steer or split the key: the second copy is a replay, and the transcript is the same."""
    _, runs, room = trio
    room.deliver([0])
    held = runs[0]._rounds[1][1]
    assert held is not None
    # Another valid signature of m1's round-1 content would leave the signed content as it is;
    # without a nonce-choosing signer in this file, flip the signature: content equality is
    # judged before the signature, so the verdict is the same for any second signature.
    resigned = held.content + held.encoded[len(held.content) :][:-1] + bytes([held.encoded[-1] ^ 1])
    assert RingRound.decode(resigned).content == held.content
    assert_rejected(runs[0], resigned, ReplayError, "signed again")
    finish(room, 3)


def test_a_differing_confirmation_fails_the_attempt_and_names_its_signer() -> None:
    cast = Cast.of(3)
    runs = cast.runs()
    room = Room(runs)
    room.start()
    for _ in range(20):  # rounds 1 and 2 only: stop every member before it reads a confirmation
        for k in range(3):
            if room.cursor[k] < min(6, room.relay.head):
                room.step(k)
    assert all(r.state is RingState.ROUND3 for r in runs)
    result = runs[0].result
    assert result is not None
    transcript = result.transcript_hash
    other_tag = craft(cast.identities[1], runs[0], round_=3, sender=2, value=bytes(32), view=transcript)
    other_view = craft(cast.identities[2], runs[0], round_=3, sender=4, value=tag_of(result), view=bytes(32))
    failure = runs[0].receive(other_tag).failure
    assert failure is not None and failure.kind is FailureKind.CONFIRMATION_MISMATCH
    assert failure.signer == cast.roster[1]
    assert runs[0].state is RingState.FAILED
    failure = runs[1].receive(other_view).failure  # member 1 has not seen member 2's own one
    assert failure is not None and failure.kind is FailureKind.ROUND2_DIVERGED
    assert failure.signer == cast.roster[2]
    # The genuine confirmations no longer complete either attempt.
    genuine = [m for m in room.log if RingRound.decode(m).round == 3]
    assert len(genuine) == 3
    for k in (0, 1):
        with pytest.raises(AttemptFailedError):
            runs[k].receive(genuine[2])


def test_round3_before_round2_is_complete(trio: tuple[Cast, list[RingRekey], Room]) -> None:
    cast, runs, room = trio
    early = craft(cast.identities[1], runs[0], round_=3, sender=2, value=bytes(32))
    assert_rejected(runs[0], early, RoundOrderError, "before our round 2 was complete")
    finish(room, 3)


# --- timeouts and retries --------------------------------------------------------------------------


def test_round1_timeout_names_the_missing_member_and_retry_completes() -> None:
    cast = Cast.of(3)
    clock = ManualClock()
    runs = cast.runs(clock=clock)
    room = Room(runs)
    room.start([0, 1])  # member 2 is offline
    room.deliver([0, 1])
    clock.now += TIMEOUT - 1
    assert runs[0].overdue() is None  # not yet
    assert runs[0].missing() == (cast.roster[2],)
    clock.now += 1
    err = runs[0].overdue()
    assert isinstance(err, RingTimeoutError)
    assert err.missing == (cast.roster[2],) and err.round == 1 and err.attempt == 0
    assert f"'m2' (leaf 4, {cast.roster[2].fingerprint})" in str(err)
    # The attempt stays in force: its late messages may still complete it (the caller retries).
    assert runs[0].state is RingState.ROUND1

    # Member 2 is back: everyone retries with attempt 1 and fresh ephemerals.
    retry = cast.runs(clock=clock, attempt=1)
    with pytest.raises(WrongAttemptError):  # a late attempt-0 message is refused by attempt 1
        retry[0].receive(room.log[1])
    new_room = Room(retry)
    first = agreed(new_room.run(), 3)
    assert first.attempt == 1


def test_round2_timeout_names_who_did_not_answer() -> None:
    cast = Cast.of(4)
    clock = ManualClock()
    runs = cast.runs(clock=clock)
    room = Room(runs)
    room.start()
    room.deliver([0, 1, 2])  # member 3 receives nothing, so never sends round 2
    assert runs[0].round == 2
    clock.now += TIMEOUT
    err = runs[0].overdue()
    assert err is not None and err.missing == (cast.roster[3],)
    assert re.search(r"round 2 of attempt 0 timed out waiting for 'm3'", str(err))


def test_round2_deadline_restarts_when_round1_completes() -> None:
    cast = Cast.of(2)
    clock = ManualClock()
    runs = cast.runs(clock=clock)
    room = Room(runs)
    room.start([0])
    clock.now += TIMEOUT - 1
    room.start([1])
    room.deliver([0])  # round 1 complete for 0 just before its deadline: round 2 gets a full one
    clock.now += TIMEOUT - 1
    assert runs[0].overdue() is None
    room.deliver()
    agreed(room.results, 2)
    clock.now += 10 * TIMEOUT
    assert runs[0].overdue() is None  # done: no deadline


# --- local misuse -------------------------------------------------------------------------------


def test_local_misuse_is_a_usage_error() -> None:
    cast = Cast.of(2)
    stranger = Identity.generate()
    twin = cast.roster[0].identity_key
    base = {
        "suite": SUITE, "group_id": GROUP, "epoch": 1, "rand": os.urandom, "clock": lambda: 0.0,
    }  # fmt: skip
    cases: list[tuple[dict[str, object], str]] = [
        ({"identity": stranger, "roster": cast.roster}, "not in the ring roster"),
        ({"identity": cast.identities[0], "roster": []}, "at least one member"),
        ({"identity": cast.identities[0], "roster": [cast.roster[0], cast.roster[0]]}, "leaf twice"),
        (
            {"identity": cast.identities[0], "roster": [cast.roster[0], Member(9, "x", twin)]},
            "identity key twice",
        ),
        ({"identity": cast.identities[0], "roster": cast.roster, "context": b"x" * 65}, "at most 64"),
        ({"identity": cast.identities[0], "roster": cast.roster, "timeout": 0.0}, "positive"),
        ({"identity": cast.identities[0], "roster": cast.roster, "group_id": b""}, "group id"),
    ]
    for extra, match in cases:
        with pytest.raises(UsageError, match=match):
            RingRekey(**{**base, **extra})  # type: ignore[arg-type]
    run = cast.runs()[0]
    run.start()
    with pytest.raises(UsageError, match="already started"):
        run.start()
    run.abort()
    assert run.state is RingState.FAILED and run._ephemeral is None
    with pytest.raises(AttemptFailedError, match="aborted by the caller"):
        run.receive(cast.runs()[1].start().outbound[0])


@pytest.mark.parametrize(
    ("field_", "bad", "match"),
    [
        ("group_id", b"", "group id"),
        ("epoch", -1, "out of range"),
        ("attempt", 2**32, "out of range"),
        ("sender", -1, "out of range"),
        ("round", 5, "round must be 1 to 4"),
        ("value", b"short", "32 bytes"),
        ("context", b"x" * 65, "longer than 64"),
        ("view", bytes(32), "wrong size"),
        ("signature", b"", "64 bytes"),
    ],
)
def test_ring_round_validates_when_built(field_: str, bad: object, match: str) -> None:
    cast, runs, _ = _trio()
    good = RingRound.decode(runs[0].start().outbound[0])
    fields = {f: getattr(good, f) for f in RingRound.__dataclass_fields__}
    with pytest.raises(UsageError, match=match):
        RingRound(**{**fields, field_: bad})
    if field_ not in ("signature", "view"):
        create_kw = {k: v for k, v in fields.items() if k not in ("signature", "encoded", "round")}
        create_kw["round_"] = fields["round"]
        key = "round_" if field_ == "round" else field_
        with pytest.raises(UsageError, match=match):
            RingRound.create(SUITE, cast.identities[0].signing_key, **{**create_kw, key: bad})


def _trio() -> tuple[Cast, list[RingRekey], None]:
    cast = Cast.of(3)
    return cast, cast.runs(), None


def test_repeated_randomness_is_refused_before_it_is_sent() -> None:
    """If our random source repeats another member's ephemeral key, we must not speak."""
    cast = Cast.of(2)
    same = os.urandom(32)
    a, b = (
        RingRekey(
            suite=SUITE, identity=cast.identities[k], group_id=GROUP, epoch=1, roster=cast.roster,
            rand=lambda _n: same, clock=lambda: 0.0,
        )
        for k in (0, 1)
    )  # fmt: skip
    a.receive(b.start().outbound[0])
    before = state(a)
    with pytest.raises(UsageError, match="random source repeated"):
        a.start()
    assert state(a) == before and "state=new" in repr(a)


def test_epoch_out_of_range_is_a_usage_error() -> None:
    cast = Cast.of(1)
    with pytest.raises(UsageError, match="out of range"):
        RingRekey(
            suite=SUITE, identity=cast.identities[0], group_id=GROUP, epoch=2**64, roster=cast.roster,
            rand=os.urandom, clock=lambda: 0.0,
        )  # fmt: skip
