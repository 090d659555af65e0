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

  Messages enter the hashes by their signed content (never their signature bytes) in roster
  order, not arrival order, so every member that accepted the same 2n signed contents derives the
  same secret whatever order the relay delivered them in (:mod:`.ring_kdf`).
* **Round 4, only to blame.** When the round-2 values do not XOR to zero, nobody can tell whose
  value was wrong; every member then reveals the attempt's ephemeral private key (the attempt is
  dead: nobody can enter it without everyone's confirmation), and each member recomputes every
  ``X_j`` from it: a value its own revealed key does not give, or a reveal that is not the key its
  sender published, names the liar. That is why the ephemeral key is kept until round 2 ends.
* **Round 3.** The caller (the epoch machine) derives the new epoch from ``commit_secret`` and
  hands back its confirmation tag (:meth:`RingRekey.confirm`); every member broadcasts it, signed
  with ``transcript_hash`` as its view of round 2. The attempt completes only when every member's
  confirmation came through the relay and matched ours: a member that saw another round 2, or
  derived another epoch, shows it here, signed, and nobody enters an epoch whose key not every
  member confirmed.

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
* **Forward secrecy.** A member drops its ephemeral private key and its edge keys as soon as
  ``commit_secret`` is derived (end of round 2), or reveals it if the values do not add up (the
  attempt is then dead) and drops it then. A later theft of the member's state therefore finds
  nothing that recomputes this epoch's ``commit_secret``: every input was an ephemeral secret that
  no longer exists, and the long-term identity key only signs (Python cannot zero memory:
  dropping means dropping the last reference).
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
  signed over another round-1 view is detected at once (:class:`~groupchat.core.events.RekeyFailed`).
* **What round 3 catches.** Two colluding members can change their ``X`` by the same amount,
  keeping the XOR at zero, and show different values to different members (with a relay that
  equivocates per recipient); honest members then walk to different edge keys. Round 2 has no
  later round of its own to expose this, so round 3 is that cross-check: each member signs its
  view of round 2 and the tag of the epoch it derived, and completion needs all n to match. Two
  honest members therefore never enter one epoch with different keys: at least one of them sees a
  signed confirmation that differs (:class:`~groupchat.core.events.RekeyFailed`), or never
  receives them all and times out.
* **Who can bias the secret.** Signatures never enter a hash, so nobody steers the secret by
  choosing signature nonces (the last round-2 sender could, when signatures were hashed: it can
  walk the ring and evaluate each candidate). A round-1 sender cannot evaluate the secret while it
  chooses its key (it knows only its own two edges), and rounds 2 and 3 leave no choice. The bias
  left is aborting: a member that dislikes the secret it computed can withhold its next message
  and force a retry, at the cost of a timeout that names it.

Limits
------
All members must take part. Each round has a deadline (``timeout`` seconds after the round
started for us, read from the injected clock); :meth:`RingRekey.overdue` names the members whose
message is missing. A retry is a new :class:`RingRekey` with ``attempt + 1`` and fresh ephemerals
from everyone (the caller, :class:`~.ring_scheme.RingScheme`, decides when one is in force).

Every check of a received message happens before anything is stored: a refused message raises
and changes nothing. A signed message that proves the attempt can never complete (a divergent
view, values that do not add up, a confirmation that differs) is *taken*, because a replacement
would be equivocation; it fails the attempt and the step reports it as
:class:`~groupchat.core.events.RekeyFailed`.

Costs are in docs/protocol.md §8.6 (3 rounds; the 3(n-1) signature checks dominate), joiners in
§8.4, and the epoch machine's side of a run in :mod:`groupchat.core.schemes.base`.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ..config import DEFAULT_ROUND_TIMEOUT
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
from ..events import FailureKind, Member, RekeyFailed
from ..identity import MAX_GROUP_ID, Identity
from ..suite import CipherSuite, check_x25519_public
from .ring_errors import (
    AttemptFailedError,
    EquivocationError,
    RingTimeoutError,
    RosterMismatchError,
    RoundOrderError,
    WrongAttemptError,
    describe,
)
from .ring_kdf import (
    KEY_LEN,
    commit_secret,
    edge_key,
    message_size,
    revealed_value,
    ring_id,
    roster_hash,
    round1_hash,
    transcript_hash,
    walk_ring,
    xor,
)
from .ring_message import MAX_CONTEXT, RingRound

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_ATTEMPT",
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

DEFAULT_TIMEOUT: Final = DEFAULT_ROUND_TIMEOUT  # seconds per round (GroupConfig.ring_round_timeout)
MAX_ATTEMPT: Final = 2**32 - 1  # the last attempt number a uint32 holds
_ZERO: Final = bytes(KEY_LEN)

Random = Callable[[int], bytes]
Clock = Callable[[], float]


def _exchange(private: X25519PrivateKey, public: bytes) -> bytes:
    """Raw X25519; every key was checked by ``check_x25519_public``, so zero output cannot occur."""
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError as exc:  # all-zero output: a low-order key the decode check missed
        raise InvalidPublicKeyError("ring X25519 exchange with a low-order public key") from exc


# --- the per-attempt state machine ---------------------------------------------------------------


class RingState(enum.Enum):
    NEW = "new"  # built; may already buffer round-1 messages of others
    ROUND1 = "round 1"  # our round-1 message is out; waiting for everyone's
    ROUND2 = "round 2"  # our round-2 message is out; waiting for everyone's
    KEYED = "keyed"  # commit_secret derived, secrets dropped; waiting for the caller's confirmation
    BLAME = "blame"  # the values did not add up: our key is revealed, theirs name the liar
    ROUND3 = "round 3"  # our confirmation is out; waiting for everyone's
    DONE = "done"  # every member confirmed the same epoch
    FAILED = "failed"  # proven unable to complete, or given up; secrets dropped


_WAITING: Final = (RingState.ROUND1, RingState.ROUND2, RingState.ROUND3, RingState.BLAME)


@dataclass(frozen=True, slots=True)
class RingResult:
    """What one rekey's rounds 1 and 2 give the epoch machine (before round 3 confirms it)."""

    epoch: int
    attempt: int
    roster_hash: bytes
    transcript_hash: bytes
    commit_secret: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class RingStep:
    """The outcome of one call into :class:`RingRekey`.

    ``outbound`` are messages to broadcast to the room, in order; ``result`` is set exactly once,
    by the call that completed round 2; ``confirmed`` by the call that completed round 3;
    ``failure`` by the call whose signed message showed that the attempt can never complete.
    """

    outbound: tuple[bytes, ...] = ()
    result: RingResult | None = None
    confirmed: bool = False
    failure: RekeyFailed | None = None


class RingRekey:
    """One member's run of one attempt of one ring rekey. Sans-I/O: bytes in, bytes and a result out.

    A refused input raises a :class:`~groupchat.core.errors.GroupChatError` subclass and changes
    nothing. A signed message that shows the attempt cannot complete is taken and reported in
    :attr:`RingStep.failure`; the attempt is then ``FAILED``.
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
        if not 0 <= attempt <= MAX_ATTEMPT or not 0 <= epoch < 2**64:
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
        self._rounds: dict[int, list[RingRound | None]] = {r: [None] * n for r in (1, 2, 3, 4)}
        self._held = {1: 0, 2: 0, 3: 0, 4: 0}  # filled slots per round: completion is an O(1) check
        self._ephemerals: dict[bytes, int] = {}  # round-1 value -> position, for duplicate keys
        self._echoed: set[int] = set()  # rounds whose echo of our own message we have seen
        self._ephemeral: X25519PrivateKey | None = None
        self._edges: tuple[bytes, bytes] | None = None  # (k_{me-1}, k_me): only between the rounds
        self._round1_hash: bytes | None = None
        self._confirmation = b""  # our round-3 value, once the caller gave it
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
        """The round we are waiting on: 1 until round 1 is complete, 2 until the secret, then 3 (4
        while the members reveal the keys of an attempt whose values did not add up)."""
        if self.state is RingState.BLAME:
            return 4
        if self._round1_hash is None:
            return 1
        return 2 if self.result is None else 3

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
            secret = commit_secret(self.suite, self.ring_id, [self._rand(KEY_LEN)], transcript)
            self._round1_hash = r1
            self.state = RingState.KEYED
            self.result = RingResult(self.epoch, self.attempt, self.roster_hash, transcript, secret)
            return RingStep((), self.result)
        ephemeral = X25519PrivateKey.from_private_bytes(self._rand(KEY_LEN))
        public = ephemeral.public_key().public_bytes_raw()
        if public in self._ephemerals:
            # Only a broken random source gets here; a member who reused our key knows our secret.
            raise UsageError("the random source repeated another member's ephemeral key")
        self._ephemeral = ephemeral
        own = self._sign(1, public, b"")
        self._store(self._me, own)
        self._enter(RingState.ROUND1)
        return RingStep((own.encoded, *self._after_round1()))

    def confirm(self, value: bytes) -> RingStep:
        """Round 3: sign and send the confirmation ``value`` (the new epoch's tag) over our view of
        round 2. Alone, the attempt is confirmed at once."""
        if self.state is not RingState.KEYED or self.result is None:
            raise UsageError(f"nothing to confirm: this ring attempt is in state {self.state.value}")
        if len(value) != KEY_LEN:
            raise UsageError(f"a ring confirmation is {KEY_LEN} bytes, not {len(value)}")
        self._confirmation = value
        if len(self.roster) == 1:
            self.state = RingState.DONE
            return RingStep(confirmed=True)
        own = self._sign(3, value, self.result.transcript_hash)
        self._store(self._me, own)
        self._enter(RingState.ROUND3)
        return RingStep((own.encoded,))

    def receive(self, data: bytes) -> RingStep:
        """Process one ring message from the room; raise and change nothing if it is not acceptable."""
        msg = RingRound.decode(data)
        self._check_binding(msg)
        pos = self._position.get(msg.sender)
        if pos is None:
            raise UnknownMemberError(f"ring message claims to come from leaf {msg.sender}, not in the roster")
        member = self.roster[pos]
        if msg.attempt != self.attempt:
            # Checked after the signature: a caller may switch to another attempt on this error,
            # so only a roster member's signed word can trigger it, never the relay's.
            msg.verify(self.suite, member.identity_key, describe(member))
            raise WrongAttemptError(msg.attempt, self.attempt, describe(member)).signed_by(
                member.leaf, member.display_name, member.identity_key
            )
        if self.state is RingState.FAILED or (self.state is RingState.BLAME and msg.round != 4):
            raise AttemptFailedError(
                f"ring message from {describe(member)} for attempt {self.attempt}, which failed here "
                f"({self._failure}); the next attempt replaces it"
            )
        if self.state is RingState.DONE:
            raise ReplayError(f"ring message from {describe(member)}: attempt {self.attempt} is already done")
        held = self._rounds[msg.round][pos]
        if held is not None and held.encoded == msg.encoded:
            if pos == self._me and msg.round not in self._echoed:
                self._echoed.add(msg.round)  # the relay's echo of our own message
                return self._progress(msg.round)
            raise ReplayError(f"duplicate round-{msg.round} message from {describe(member)}")
        if held is not None and held.content == msg.content:
            # Another signature of the same content (Ed25519 signers choose their nonces): it says
            # nothing new, and no hash covers signature bytes, so it cannot change the secret.
            raise ReplayError(f"round-{msg.round} message from {describe(member)} signed again")
        # Verify before judging a second message: only a signed one proves equivocation.
        msg.verify(self.suite, member.identity_key, describe(member))
        if held is not None or pos == self._me:
            ours = " (ours: an earlier run of this attempt spoke; retry with a new attempt)"
            raise EquivocationError(
                f"{describe(member)} signed two different round-{msg.round} messages for attempt "
                f"{self.attempt}; the first one stands" + (ours if pos == self._me else "")
            ).signed_by(member.leaf, member.display_name, member.identity_key)
        try:
            if msg.round == 1:
                return RingStep(self._accept_round1(pos, msg, member))
            if msg.round == 2:
                return self._accept_round2(pos, msg, member)
            if msg.round == 4:
                return self._accept_reveal(pos, msg, member)
            return self._accept_round3(pos, msg, member)
        except RemoteError as exc:
            exc.signed_by(member.leaf, member.display_name, member.identity_key)  # a signed one refused
            raise

    def overdue(self) -> RingTimeoutError | None:
        """The timeout, if the current round (or the failed attempt) is past its deadline. The
        attempt stays as it is: its late messages may still complete it (the caller decides)."""
        if self.state not in (*_WAITING, RingState.FAILED):
            return None
        if self._round_started is None or self._clock() - self._round_started < self.timeout:
            return None
        return RingTimeoutError(self.round, self.attempt, self.missing())

    def early(self) -> bool:
        """Whether less than half of the current round's deadline has passed: a retry that comes in
        force now was not proposed at a deadline (members' deadlines differ by far less)."""
        if self._round_started is None or self.state not in (*_WAITING, RingState.FAILED):
            return False
        return self._clock() - self._round_started < self.timeout / 2

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

    def _sign(self, round_: int, value: bytes, view: bytes) -> RingRound:
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
            view=view,
        )

    def _enter(self, state: RingState) -> None:
        self.state = state
        self._round_started = self._clock()

    def _progress(self, round_: int) -> RingStep:
        """After the echo of our own message of ``round_``: it may be the one that completes it."""
        if round_ == 2:
            return self._complete()
        if round_ == 3:
            return self._confirmed()
        return RingStep()

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
        # Kept until round 2 ends: revealed only if the values do not add up (round 4).
        self._edges = (k_left, k_right)
        self._round1_hash = round1_hash(self.suite, self.ring_id, [s.content for s in slots if s is not None])
        own = self._sign(2, xor(k_left, k_right), self._round1_hash)
        self._store(me, own)
        self._enter(RingState.ROUND2)
        return (own.encoded,)

    def _accept_round2(self, pos: int, msg: RingRound, member: Member) -> RingStep:
        if self._round1_hash is None:
            raise RoundOrderError(
                f"round-2 message from {describe(member)} arrived before round 1 was complete "
                f"(still missing: {', '.join(describe(m) for m in self.missing())})"
            )
        self._store(pos, msg)
        if not hmac.compare_digest(msg.view, self._round1_hash):
            return self._failed(
                FailureKind.ROUND1_DIVERGED,
                member,
                f"{describe(member)} signed its round-2 value over a different round 1 than ours: a "
                "member or the relay showed us different round-1 messages",
            )
        return self._complete()

    def _complete(self) -> RingStep:
        """Derive the secret once every round-2 message has come *through the relay*, our own
        included: round 2 completes at the same point of the total order for every member."""
        slots = self._rounds[2]
        if self.state is not RingState.ROUND2 or self._held[2] < len(slots) or 2 not in self._echoed:
            return RingStep()
        assert self._round1_hash is not None
        values = [s.value for s in slots if s is not None]
        total = _ZERO
        for v in values:
            total = xor(total, v)
        if not hmac.compare_digest(total, _ZERO):
            # The attempt is dead (nobody can confirm it): reveal our key so the liar is named.
            assert self._ephemeral is not None
            reveal = self._sign(4, self._ephemeral.private_bytes_raw(), self._round1_hash)
            step = self._failed(
                FailureKind.VALUES_INCONSISTENT,
                None,
                "the round-2 values do not XOR to zero, so a member or the relay sent a wrong one; "
                "every member now reveals this dead attempt's key to find whose",
            )
            self._store(self._me, reveal)
            self._enter(RingState.BLAME)
            return RingStep((reveal.encoded,), failure=step.failure)
        assert self._edges is not None  # set with _round1_hash
        # Walking from our right edge ends at our left edge exactly because the values XOR to zero.
        edges = walk_ring(values, self._me, self._edges[1])
        contents = [s.content for s in slots if s is not None]
        transcript = transcript_hash(self.suite, self._round1_hash, contents)
        secret = commit_secret(self.suite, self.ring_id, edges, transcript)
        self._edges, self._ephemeral = None, None  # forward secrecy: nothing recomputes the secret
        self.state = RingState.KEYED
        self.result = RingResult(self.epoch, self.attempt, self.roster_hash, transcript, secret)
        return RingStep((), self.result)

    def _accept_round3(self, pos: int, msg: RingRound, member: Member) -> RingStep:
        if self.state is not RingState.ROUND3 or self.result is None:
            raise RoundOrderError(
                f"confirmation from {describe(member)} arrived before our round 2 was complete "
                f"(still missing: {', '.join(describe(m) for m in self.missing()) or 'our confirmation'})"
            )
        self._store(pos, msg)
        if not hmac.compare_digest(msg.view, self.result.transcript_hash):
            return self._failed(
                FailureKind.ROUND2_DIVERGED,
                member,
                f"{describe(member)} confirmed a different round 2 than ours: a member or the relay "
                "showed us different round-2 messages",
            )
        if not hmac.compare_digest(msg.value, self._confirmation):
            return self._failed(
                FailureKind.CONFIRMATION_MISMATCH,
                member,
                f"{describe(member)} confirmed the same rounds but another epoch: its group state "
                "differs from ours (it or we hold a wrong one)",
            )
        return self._confirmed()

    def _accept_reveal(self, pos: int, msg: RingRound, member: Member) -> RingStep:
        """Round 4: a member's revealed key of this dead attempt. A key that is not the one it
        published, or that does not give the value it signed in round 2, names it."""
        if self.state is not RingState.BLAME or self._round1_hash is None:
            raise RoundOrderError(f"key reveal from {describe(member)} for an attempt that did not fail so")
        if not hmac.compare_digest(msg.view, self._round1_hash):
            raise RosterMismatchError(f"key reveal from {describe(member)} is bound to another round 1")
        self._store(pos, msg)
        publics = [s.value for s in self._rounds[1] if s is not None]
        signed = self._rounds[2][pos]
        assert signed is not None and len(publics) == len(self.roster)
        given = revealed_value(self.suite, self.ring_id, pos, msg.value, publics)
        if given is None or not hmac.compare_digest(given, signed.value):
            what = "is not the key it published" if given is None else "does not give the value it signed"
            detail = f"{describe(member)} sent a wrong round-2 value: the key it revealed {what}"
            blamed = RekeyFailed(self.epoch, self.attempt, FailureKind.WRONG_VALUE, member, detail)
            return RingStep(failure=blamed)
        return RingStep()

    def _confirmed(self) -> RingStep:
        """Done once every confirmation, our own echo included, came through and matched ours."""
        if self.state is not RingState.ROUND3 or self._held[3] < len(self.roster) or 3 not in self._echoed:
            return RingStep()
        self.state = RingState.DONE
        self._round_started = None
        return RingStep(confirmed=True)

    def _failed(self, kind: FailureKind, signer: Member | None, detail: str) -> RingStep:
        self._fail(detail)
        return RingStep(failure=RekeyFailed(self.epoch, self.attempt, kind, signer, detail))

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
