"""The ring scheme: an XOR ring over pairwise X25519 (Kim-Lee-Lee style) that agrees ``commit_secret``.

Theory of operation
-------------------
A rekey runs over the roster of the epoch it creates, ordered by leaf; position ``i`` of ``n``
has neighbours ``i-1`` and ``i+1`` (mod n), and edge ``j`` joins positions ``j`` and ``j+1``.

* **Round 1.** Every member draws a *fresh* ephemeral X25519 key ``e_i`` and broadcasts
  ``E_i = X25519(e_i, 9)`` in a signed :class:`~.ring_message.RingRound`.
* **Round 2.** Once it holds every ``E_j``, member ``i`` derives its two edge keys::

      ring_id = RefHash("ring id", V(group_id) || epoch || attempt || V(roster_hash) || V(context))
      k_j     = ExpandWithLabel(Extract(ring_id, X25519(e, E_other)), "ring edge",
                                uint32 j || V(E_j) || V(E_{j+1}), 32)

  for ``j = i-1`` and ``j = i``, drops ``e_i``, and broadcasts ``X_i = k_{i-1} XOR k_i``, signed
  together with the hash of all round-1 messages (its view of round 1).
* **Walk.** With every ``X_j``, member ``i`` checks that they XOR to zero and walks the ring from
  its own edge: ``k_{j} = X_j XOR k_{j-1}`` for ``j = i+1, ..., i-1``. Then::

      round1_hash     = RefHash("ring round 1", ring_id || V(round1_0) || ... || V(round1_{n-1}))
      transcript_hash = RefHash("ring transcript", round1_hash || V(round2_0) || ... )
      commit_secret   = ExpandWithLabel(Extract(transcript_hash, k_0 || ... || k_{n-1}),
                                        "ring commit", ring_id, 32)

  Messages enter the hashes in roster order, not arrival order, so every member that accepted
  the same 2n signed messages derives the same secret whatever order the relay delivered them in.

The raw X25519 output is only ever the input of the labelled KDF, and the KDF binds the edge to
its index, both public keys and the whole rekey (``ring_id``), so an edge key of one rekey says
nothing about any other.

Small rings. With **one member** there is nobody to agree with: no message is sent, the lone
edge ``k_0`` is 32 fresh random bytes, and ``commit_secret`` follows from the formulas above with
an empty transcript. With **two members** the ring has two edges, both between the same pair:
edge 0 (positions 0, 1) and edge 1 (positions 1, 0). They share one X25519 output and are told
apart by the edge index and the order of the public keys in the KDF context, so the general
formulas hold unchanged; each member does one X25519, and ``X_0 = X_1 = k_0 XOR k_1``, which tells
an outsider nothing because it knows neither key. Round 2 still runs: it is each member's signed
confirmation of round 1.

Security argument
-----------------
* **Forward secrecy.** A member drops its ephemeral private key as soon as it has its two edge
  keys (end of round 1), and the edge keys as soon as ``commit_secret`` is derived (or the attempt
  fails). A later theft of the member's state therefore finds nothing that recomputes this epoch's
  ``commit_secret``: every input was an ephemeral secret that no longer exists, and the long-term
  identity key only signs. (Python cannot zero memory; dropping means dropping the last reference.)
* **A removed member learns nothing** of the next epoch, even if it kept every secret it ever had
  and sees every new broadcast. Every member of the new roster takes a fresh ephemeral, so every
  new edge is the KDF of a DH between two keys the leaver never held, under a new ``ring_id``: its
  old ephemerals pair with no new key, and its old edge keys are KDF outputs of other DH values
  under another ``ring_id``. The ``X_j`` give only the XOR of adjacent edges: n values with one
  linear relation (they XOR to zero), so they fix every edge once one edge is known and reveal
  nothing while none is. Recovering one new edge is computing a DH of two fresh keys (CDH).
  Reusing old ephemerals instead would break this for the leaver's neighbours' edges in a
  scheme without ``ring_id`` (group-key-notes.md, weakness 1); we never reuse them.
* **Authentication and binding.** Every message is signed (``"RingRoundTBS"``) over group id,
  epoch, attempt, roster hash, the caller's ``context``, round, sender and value; the transcript of
  all of them goes into the secret. A relay cannot inject, move or alter a message; a member who
  signs two different messages for one round is refused (the first stands), and a round-2 message
  signed over another round-1 view is detected at once (:class:`DivergentViewError`).
* **What the XOR check does not catch.** Two colluding members can change their ``X`` by the same
  amount, keeping the XOR at zero; honest members between them then walk to different edge keys
  and derive different secrets. They learn nothing they did not know (they are members); the
  split is caught by the epoch machine's confirmation tag, as for a tree member who sends an
  inconsistent path. The last member to speak in round 1 can grind its ephemeral key to bias a
  few bits of the secret (threats.md item 7); a commit-then-reveal round would stop it at the
  price of a third round.

Limits
------
All members must take part. Each round has a deadline (``timeout`` seconds after the round
started for us, read from the injected clock); :meth:`RingRekey.check_timeout` raises
:class:`RingTimeoutError` naming the members whose message is missing, and the attempt is dead.
A retry is a new :class:`RingRekey` with ``attempt + 1`` and fresh ephemerals from everyone.

Costs (per member, n members): 2 rounds, 2 broadcasts each (2n in all, ``message_size`` bytes
each), 1 key generation, 2 X25519 (1 when n = 2), 2 Ed25519 signatures, 2(n-1) signature
verifications and O(n) 32-byte XORs. The verifications dominate from n of about 4.

Joiners
-------
A joiner takes part in the ring of the epoch it joins: the ring's roster is always the roster of
the new epoch. Its round messages are checked against the identity key of the join request every
member verified in the Add, so nobody has to choose or seal a secret for it (nothing to taint),
and the new epoch's ``commit_secret`` is contributory for it too. What its Welcome must carry is
the *previous* epoch's state (GroupContext, roster, and ``init_secret`` sealed to its init key),
so that it runs the same key schedule as everyone; unlike a tree Welcome, a stolen init key then
does not give the new epoch, which also needs the joiner's own ephemeral. The joiner is online
(it just asked to join); if it vanishes the ring times out naming it, and the members remove it.

The interface this wants from the epoch machine
-----------------------------------------------
See :mod:`groupchat.core.schemes`: a scheme run takes the roster of the new epoch, the group id,
the new epoch number, an opaque ``context`` (the hash of the previous GroupContext and of the
commit that triggered the rekey) and the injected clock and random source; it returns outbound
bytes for the room and, at the end, a :class:`RingResult` with ``commit_secret`` and
``transcript_hash``. The previous ``init_secret`` never enters the scheme: the epoch machine
combines it with ``commit_secret`` in the RFC 9420 key schedule as for the tree.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ..codec import Writer, encode_varint
from ..errors import (
    DuplicateKeyError,
    EpochError,
    InvalidPublicKeyError,
    RemoteError,
    ReplayError,
    UnknownMemberError,
    UsageError,
    WrongGroupError,
)
from ..events import Member
from ..identity import MAX_GROUP_ID, Identity
from ..suite import CipherSuite, check_x25519_public
from .ring_errors import (
    AttemptFailedError,
    DivergentViewError,
    EquivocationError,
    RingInconsistentError,
    RingTimeoutError,
    RosterMismatchError,
    RoundOrderError,
    WrongAttemptError,
    describe,
)
from .ring_message import MAX_CONTEXT, RingRound

__all__ = [
    "DEFAULT_TIMEOUT",
    "RingRekey",
    "RingResult",
    "RingState",
    "RingStep",
    "commit_secret",
    "edge_key",
    "message_size",
    "ring_id",
    "roster_hash",
    "round1_hash",
    "transcript_hash",
    "walk_ring",
    "xor",
]

DEFAULT_TIMEOUT: Final = 30.0  # seconds per round
_KEY_LEN: Final = 32
_ZERO: Final = bytes(_KEY_LEN)
_MAX_ATTEMPT: Final = 2**32 - 1

Random = Callable[[int], bytes]
Clock = Callable[[], float]


# --- the pure derivations (shared by every member; the keeper test and the bench use them too) ---


def roster_hash(suite: CipherSuite, roster: Sequence[Member]) -> bytes:
    """Hash of the roster in leaf order: ``RefHash("ring roster", (uint32 leaf || V(identity))*)``."""
    w = Writer()
    for m in sorted(roster, key=lambda m: m.leaf):
        w.u32(m.leaf).opaque(m.identity_key)
    return suite.ref_hash(suite.label_prefix + b"ring roster", w.bytes())


def ring_id(
    suite: CipherSuite, group_id: bytes, epoch: int, attempt: int, roster: bytes, context: bytes
) -> bytes:
    """The name of one rekey attempt; it salts every edge key and labels the commit secret."""
    body = Writer().opaque(group_id).u64(epoch).u32(attempt).opaque(roster).opaque(context).bytes()
    return suite.ref_hash(suite.label_prefix + b"ring id", body)


def edge_key(suite: CipherSuite, rid: bytes, index: int, dh: bytes, left: bytes, right: bytes) -> bytes:
    """``k_index`` from the raw X25519 output of its two endpoints' ephemeral keys ``left``, ``right``."""
    context = Writer().u32(index).opaque(left).opaque(right).bytes()
    return suite.expand_with_label(suite.extract(rid, dh), b"ring edge", context, _KEY_LEN)


def round1_hash(suite: CipherSuite, rid: bytes, messages: Sequence[bytes]) -> bytes:
    """Hash of every round-1 message in roster order: what a round-2 message signs as its view."""
    w = Writer().raw(rid)
    for m in messages:
        w.opaque(m)
    return suite.ref_hash(suite.label_prefix + b"ring round 1", w.bytes())


def transcript_hash(suite: CipherSuite, r1_hash: bytes, messages: Sequence[bytes]) -> bytes:
    """Hash of the whole transcript: the round-1 hash, then every round-2 message in roster order."""
    w = Writer().raw(r1_hash)
    for m in messages:
        w.opaque(m)
    return suite.ref_hash(suite.label_prefix + b"ring transcript", w.bytes())


def commit_secret(suite: CipherSuite, rid: bytes, edges: Sequence[bytes], transcript: bytes) -> bytes:
    """``ExpandWithLabel(Extract(transcript_hash, k_0 || ... || k_{n-1}), "ring commit", ring_id)``."""
    return suite.expand_with_label(suite.extract(transcript, b"".join(edges)), b"ring commit", rid, _KEY_LEN)


def xor(a: bytes, b: bytes) -> bytes:
    """XOR of two equal-length byte strings."""
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _exchange(private: X25519PrivateKey, public: bytes) -> bytes:
    """Raw X25519; every key was checked by ``check_x25519_public``, so zero output cannot occur."""
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError as exc:  # all-zero output: a low-order key the decode check missed
        raise InvalidPublicKeyError("ring X25519 exchange with a low-order public key") from exc


def walk_ring(values: Sequence[bytes], start: int, start_key: bytes) -> list[bytes]:
    """Every edge key from one: ``k_start`` is known, and ``k_j = X_j XOR k_{j-1}`` around the ring.

    ``values[j]`` is ``X_j = k_{j-1} XOR k_j``. The result is indexed by edge.
    """
    n = len(values)
    edges = [b""] * n
    edges[start] = start_key
    for step in range(1, n):
        j = (start + step) % n
        edges[j] = xor(values[j], edges[j - 1])
    return edges


def _vector_size(length: int) -> int:
    return len(encode_varint(length)) + length


def message_size(group_id_len: int, context_len: int, round_: int) -> int:
    """Exact size in bytes of one ring round message (for the bench and capacity planning)."""
    fixed = 2 + 2 + 8 + 4 + 1 + 4  # version, wire format, epoch, attempt, round, sender
    vectors = (group_id_len, _KEY_LEN, context_len, _KEY_LEN, 0 if round_ == 1 else _KEY_LEN, 64)
    return fixed + sum(_vector_size(k) for k in vectors)


# --- the per-attempt state machine ---------------------------------------------------------------


class RingState(enum.Enum):
    NEW = "new"  # built; may already buffer round-1 messages of others
    ROUND1 = "round 1"  # our round-1 message is out; waiting for everyone's
    ROUND2 = "round 2"  # our round-2 message is out; waiting for everyone's
    DONE = "done"  # commit_secret derived, ephemeral secrets dropped
    FAILED = "failed"  # timed out or proven unable to complete; secrets dropped


@dataclass(frozen=True, slots=True)
class RingResult:
    """What one completed rekey gives the epoch machine."""

    epoch: int
    attempt: int
    roster_hash: bytes
    transcript_hash: bytes
    commit_secret: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class RingStep:
    """The outcome of :meth:`RingRekey.start` or :meth:`RingRekey.receive`.

    ``outbound`` are messages to broadcast to the room, in order; ``result`` is set exactly once,
    by the call that completed the rekey.
    """

    outbound: tuple[bytes, ...] = ()
    result: RingResult | None = None


class RingRekey:
    """One member's run of one attempt of one ring rekey. Sans-I/O: bytes in, bytes and a result out.

    Rejected input raises a :class:`~groupchat.core.errors.GroupChatError` subclass and changes
    nothing, with two exceptions that are fatal to the attempt because no message can ever repair
    them (a replacement would be equivocation): :class:`RingInconsistentError` and
    :class:`DivergentViewError`. After them, and after a timeout, the attempt is ``FAILED``.
    """

    def __init__(
        self,
        *,
        suite: CipherSuite,
        identity: Identity,
        group_id: bytes,
        epoch: int,
        roster: Sequence[Member],
        rand: Random,
        clock: Clock,
        attempt: int = 0,
        context: bytes = b"",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        members = sorted(roster, key=lambda m: m.leaf)
        if not members:
            raise UsageError("a ring rekey needs at least one member")
        if len({m.leaf for m in members}) != len(members):
            raise UsageError("the ring roster lists a leaf twice")
        if len({m.identity_key for m in members}) != len(members):
            raise UsageError("the ring roster lists an identity key twice")
        mine = [i for i, m in enumerate(members) if m.identity_key == identity.public_key]
        if not mine:
            raise UsageError("our identity is not in the ring roster")
        if not 0 < len(group_id) <= MAX_GROUP_ID:
            raise UsageError(f"group id must be 1..{MAX_GROUP_ID} bytes")
        if len(context) > MAX_CONTEXT:
            raise UsageError(f"ring context must be at most {MAX_CONTEXT} bytes")
        if not 0 <= attempt <= _MAX_ATTEMPT or not 0 <= epoch < 2**64:
            raise UsageError("ring attempt or epoch out of range")
        if not timeout > 0:
            raise UsageError("ring round timeout must be positive")
        self.suite = suite
        self.group_id = group_id
        self.epoch = epoch
        self.attempt = attempt
        self.context = context
        self.timeout = timeout
        self.roster: tuple[Member, ...] = tuple(members)
        self.roster_hash = roster_hash(suite, members)
        self.ring_id = ring_id(suite, group_id, epoch, attempt, self.roster_hash, context)
        self._identity = identity
        self._rand = rand
        self._clock = clock
        self._me = mine[0]
        self._position = {m.leaf: i for i, m in enumerate(members)}
        n = len(members)
        self._rounds: dict[int, list[RingRound | None]] = {1: [None] * n, 2: [None] * n}
        self._held = {1: 0, 2: 0}  # filled slots per round: completion is an O(1) check
        self._ephemerals: dict[bytes, int] = {}  # round-1 value -> position, for duplicate keys
        self._echoed: set[int] = set()  # rounds whose echo of our own message we have seen
        self._ephemeral: X25519PrivateKey | None = None
        self._edges: tuple[bytes, bytes] | None = None  # (k_{me-1}, k_me): only between the rounds
        self._round1_hash: bytes | None = None
        self._round_started: float | None = None
        self._failure: str | None = None
        self.state = RingState.NEW
        self.result: RingResult | None = None

    # --- read-only view ----------------------------------------------------------------------

    @property
    def me(self) -> Member:
        return self.roster[self._me]

    @property
    def round(self) -> int:
        """The round we are waiting on: 1 until round 1 is complete, then 2."""
        return 1 if self._round1_hash is None else 2

    def missing(self) -> tuple[Member, ...]:
        """Members whose message of the current round we do not have (in roster order)."""
        slots = self._rounds[self.round]
        return tuple(m for m, slot in zip(self.roster, slots, strict=True) if slot is None)

    def __repr__(self) -> str:
        return (
            f"RingRekey(epoch={self.epoch}, attempt={self.attempt}, n={len(self.roster)}, "
            f"me={self.me.leaf}, state={self.state.value})"
        )

    # --- driving -----------------------------------------------------------------------------

    def start(self) -> RingStep:
        """Send our round-1 message (or, alone, derive the secret at once)."""
        if self.state is not RingState.NEW:
            raise UsageError(f"this ring attempt was already started (it is in state {self.state.value})")
        if len(self.roster) == 1:
            # Nobody to agree with: the one edge is fresh randomness and the transcript is empty.
            r1 = round1_hash(self.suite, self.ring_id, [])
            transcript = transcript_hash(self.suite, r1, [])
            secret = commit_secret(self.suite, self.ring_id, [self._rand(_KEY_LEN)], transcript)
            self.state = RingState.DONE
            self.result = RingResult(self.epoch, self.attempt, self.roster_hash, transcript, secret)
            return RingStep((), self.result)
        self._ephemeral = X25519PrivateKey.from_private_bytes(self._rand(_KEY_LEN))
        public = self._ephemeral.public_key().public_bytes_raw()
        if public in self._ephemerals:
            # Only a broken random source gets here; a member who reused our key knows our secret.
            self._ephemeral = None
            raise UsageError("the random source repeated another member's ephemeral key")
        own = self._sign(1, public, b"")
        self._store(self._me, own)
        self.state = RingState.ROUND1
        self._round_started = self._clock()
        return RingStep((own.encoded, *self._after_round1()))

    def receive(self, data: bytes) -> RingStep:
        """Process one ring message from the room; raise and change nothing if it is not acceptable."""
        msg = RingRound.decode(data)
        self._check_binding(msg)
        pos = self._position.get(msg.sender)
        if pos is None:
            raise UnknownMemberError(f"ring message claims to come from leaf {msg.sender}, not in the roster")
        member = self.roster[pos]
        if msg.attempt != self.attempt:
            # Checked after the signature: a caller may abandon this attempt for a later one on
            # this error, so only a roster member's signed word can trigger it, never the relay's.
            msg.verify(self.suite, member.identity_key, describe(member))
            raise WrongAttemptError(msg.attempt, self.attempt, describe(member)).signed_by(
                member.leaf, member.display_name
            )
        if self.state is RingState.FAILED:
            raise AttemptFailedError(
                f"ring message from {describe(member)} for attempt {self.attempt}, which failed here "
                f"({self._failure}); the next attempt replaces it"
            )
        slots = self._rounds[msg.round]
        held = slots[pos]
        if held is not None and held.encoded == msg.encoded:
            if pos == self._me and msg.round not in self._echoed:
                self._echoed.add(msg.round)  # the relay's echo of our own message
                return RingStep((), self._complete() if msg.round == 2 else None)
            raise ReplayError(f"duplicate round-{msg.round} message from {describe(member)}")
        # Verify before judging a second message: only a signed one proves equivocation.
        msg.verify(self.suite, member.identity_key, describe(member))
        if held is not None or pos == self._me:
            ours = " (ours: an earlier run of this attempt spoke; retry with a new attempt)"
            raise EquivocationError(
                f"{describe(member)} signed two different round-{msg.round} messages for attempt "
                f"{self.attempt}; the first one stands" + (ours if pos == self._me else "")
            ).signed_by(member.leaf, member.display_name)
        try:
            if msg.round == 1:
                return RingStep(self._accept_round1(pos, msg, member))
            return RingStep((), self._accept_round2(pos, msg, member))
        except RingInconsistentError:
            raise  # the values of everyone do not add up: it names no one, not the last signer
        except RemoteError as exc:
            exc.signed_by(member.leaf, member.display_name)  # a signed message refused
            raise

    def check_timeout(self) -> None:
        """Fail the attempt with :class:`RingTimeoutError` if the current round is past its deadline."""
        if self.state not in (RingState.ROUND1, RingState.ROUND2) or self._round_started is None:
            return
        if self._clock() - self._round_started < self.timeout:
            return
        missing, round_ = self.missing(), self.round
        self._fail(f"round {round_} timed out")
        raise RingTimeoutError(round_, self.attempt, missing)

    def overdue(self) -> RingTimeoutError | None:
        """The timeout, if the current round (or the failed attempt) is past its deadline; unlike
        :meth:`check_timeout` the attempt stays as it is: its late messages may still complete it."""
        if self.state not in (RingState.ROUND1, RingState.ROUND2, RingState.FAILED):
            return None
        if self._round_started is None or self._clock() - self._round_started < self.timeout:
            return None
        return RingTimeoutError(self.round, self.attempt, self.missing())

    def abort(self) -> None:
        """Give up on this attempt (for example to join a later one) and drop its secrets."""
        if self.state is not RingState.DONE:
            self._fail("aborted by the caller")

    # --- internals ---------------------------------------------------------------------------

    def _check_binding(self, msg: RingRound) -> None:
        if msg.group_id != self.group_id:
            raise WrongGroupError("ring message belongs to another group")
        if msg.epoch != self.epoch:
            raise EpochError(
                f"ring message is for epoch {msg.epoch}; this rekey creates epoch {self.epoch}",
                msg.epoch,
                self.epoch - 1,
            )
        if msg.roster_hash != self.roster_hash:
            raise RosterMismatchError(
                "ring message is bound to another roster: its sender sees other members in this epoch"
            )
        if msg.context != self.context:
            raise RosterMismatchError(
                "ring message is bound to another group state (its context differs): a fork or a stale rekey"
            )

    def _sign(self, round_: int, value: bytes, r1_hash: bytes) -> RingRound:
        return RingRound.create(
            self.suite,
            self._identity.signing_key,
            group_id=self.group_id,
            epoch=self.epoch,
            attempt=self.attempt,
            roster_hash=self.roster_hash,
            context=self.context,
            round_=round_,
            sender=self.me.leaf,
            value=value,
            round1_hash=r1_hash,
        )

    def _accept_round1(self, pos: int, msg: RingRound, member: Member) -> tuple[bytes, ...]:
        check_x25519_public(msg.value, f"ephemeral key of {describe(member)}")
        other = self._ephemerals.get(msg.value)
        if other is not None:
            raise DuplicateKeyError(
                f"{describe(member)} sent the same ephemeral key as {describe(self.roster[other])}"
            )
        self._store(pos, msg)
        return self._after_round1()

    def _after_round1(self) -> tuple[bytes, ...]:
        """If round 1 is complete and we have spoken, derive our edges and send round 2."""
        slots = self._rounds[1]
        if self.state is not RingState.ROUND1 or self._held[1] < len(slots):
            return ()
        publics = [s.value for s in slots if s is not None]
        n, me, ephemeral = len(publics), self._me, self._ephemeral
        assert ephemeral is not None  # set by start() in the same transition to ROUND1
        left, right = (me - 1) % n, (me + 1) % n
        dh_right = _exchange(ephemeral, publics[right])
        # With two members both edges join the same pair: one X25519, two edge keys (see above).
        dh_left = dh_right if left == right else _exchange(ephemeral, publics[left])
        k_left = edge_key(self.suite, self.ring_id, left, dh_left, publics[left], publics[me])
        k_right = edge_key(self.suite, self.ring_id, me, dh_right, publics[me], publics[right])
        # Forward secrecy: the ephemeral key is needed for nothing else; drop it now.
        self._ephemeral = None
        self._edges = (k_left, k_right)
        self._round1_hash = round1_hash(self.suite, self.ring_id, [s.encoded for s in slots if s is not None])
        own = self._sign(2, xor(k_left, k_right), self._round1_hash)
        self._store(me, own)
        self.state = RingState.ROUND2
        self._round_started = self._clock()
        return (own.encoded,)

    def _accept_round2(self, pos: int, msg: RingRound, member: Member) -> RingResult | None:
        if self._round1_hash is None:
            raise RoundOrderError(
                f"round-2 message from {describe(member)} arrived before round 1 was complete "
                f"(still missing: {', '.join(describe(m) for m in self.missing())})"
            )
        if not hmac.compare_digest(msg.round1_hash, self._round1_hash):
            self._fail(f"{describe(member)} saw a different round 1")
            raise DivergentViewError(
                f"{describe(member)} signed its round-2 value over a different round 1 than ours: a "
                "member or the relay equivocated; this attempt cannot complete, "
                f"retry with attempt {self.attempt + 1}"
            )
        self._store(pos, msg)
        return self._complete()

    def _complete(self) -> RingResult | None:
        """Derive the secret once every round-2 message has come *through the relay*, our own
        included: the attempt completes at the same point of the total order for every member, so
        a retry ordered before our round-2 message replaces this attempt here as it does elsewhere."""
        slots = self._rounds[2]
        if self.state is not RingState.ROUND2 or self._held[2] < len(slots) or 2 not in self._echoed:
            return None
        assert self._round1_hash is not None
        values = [s.value for s in slots if s is not None]
        total = _ZERO
        for v in values:
            total = xor(total, v)
        if not hmac.compare_digest(total, _ZERO):
            self._fail("ring values are inconsistent")
            raise RingInconsistentError(
                "ring values are inconsistent: the round-2 values do not XOR to zero, so a member or the "
                f"relay sent a wrong one; this attempt cannot complete, retry with attempt {self.attempt + 1}"
            )
        assert self._edges is not None  # set with _round1_hash
        # Walking from our right edge ends at our left edge exactly because the values XOR to zero.
        edges = walk_ring(values, self._me, self._edges[1])
        messages = [s.encoded for s in slots if s is not None]
        transcript = transcript_hash(self.suite, self._round1_hash, messages)
        secret = commit_secret(self.suite, self.ring_id, edges, transcript)
        self._edges = None  # forward secrecy: nothing left recomputes the secret
        self.state = RingState.DONE
        self.result = RingResult(self.epoch, self.attempt, self.roster_hash, transcript, secret)
        return self.result

    def _store(self, pos: int, msg: RingRound) -> None:
        self._rounds[msg.round][pos] = msg
        self._held[msg.round] += 1
        if msg.round == 1:
            self._ephemerals[msg.value] = pos

    def _fail(self, reason: str) -> None:
        self.state = RingState.FAILED
        self._failure = reason
        self._ephemeral = None
        self._edges = None
