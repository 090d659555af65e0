"""The ring behind the key-agreement interface: a roster of join requests and one run per epoch.

A ring commit carries only the roster change (Add, Remove, and Update meaning "/rekey"), with no
path keys and no re-keys: nobody ever chooses a secret for anybody else, so there is no taint to
track. When a commit wins its epoch, every member of the new roster (the joiners included) runs
the ring (:class:`~.ring.RingRekey`) with fresh ephemerals; the epoch machine feeds it the room's
round messages through :meth:`RingScheme.handshake` and polls it for timeouts. A timed-out attempt
is retried with ``attempt + 1`` and fresh ephemerals from everyone (:meth:`RingScheme.propose_retry`,
in force from its place in the relay's order). The run's round 3 confirms the epoch the epoch
machine derived from its secret (:meth:`RingScheme.send_confirmation`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import ClassVar

from ..codec import Reader, Writer
from ..commit import Operation, OpType
from ..errors import (
    DuplicateKeyError,
    EpochError,
    GroupChatError,
    InvalidCommitError,
    InvalidValueError,
    UnknownMemberError,
    UsageError,
    WrongSchemeError,
)
from ..events import Member
from ..identity import Identity, JoinRequest
from ..suite import CipherSuite
from .base import EpochInput, KeyAgreementScheme, OwnChange, RunStep, StagedChange
from .ring import DEFAULT_TIMEOUT, MAX_ATTEMPT, RingRekey, RingStep
from .ring_errors import AttemptFailedError, RingTimeoutError, RosterMismatchError, WrongAttemptError
from .ring_message import ATTEMPT_WINDOW, RingRound

__all__ = ["RingScheme"]

_MAX_MEMBERS = 1 << 16
_ROSTER_LABEL = b"groupchat ring roster"


class RingScheme(KeyAgreementScheme):
    """One member's ring roster and its current rekey run, if any."""

    name: ClassVar[str] = "ring"
    multi_round: ClassVar[bool] = True

    def __init__(
        self,
        suite: CipherSuite,
        roster: dict[int, JoinRequest],
        *,
        identity: Identity,
        rand: Callable[[int], bytes],
        clock: Callable[[], float],
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.suite = suite
        self._roster = dict(sorted(roster.items()))
        self._identity = identity
        self._rand = rand
        self._clock = clock
        self._timeout = timeout
        self._verified: set[int] = set()
        self._run: RingRekey | None = None
        # Our proposal of the next attempt after a timeout: sent, but not yet in force. The switch
        # happens where the relay's order puts the first message of that attempt (ours or
        # another's), never at a local clock: members whose deadlines differ still agree on which
        # attempt's messages count.
        self._proposal: RingRekey | None = None
        self._proposal_message = b""
        self._run_input: tuple[bytes, int, bytes] | None = None  # group_id, epoch, context
        self._timed_out: int | None = None  # the attempt whose timeout was reported
        self._proposed_at = 0.0  # when our proposal was (last) queued
        # (roster hash, context) of the runs of this epoch that a restart replaced: their late
        # messages are stale, not invalid.
        self._replaced: set[tuple[bytes, bytes]] = set()
        self.last_transcript = b""  # transcript hash of the last completed run

    @classmethod
    def found(
        cls,
        suite: CipherSuite,
        request: JoinRequest,
        *,
        identity: Identity,
        group_id: bytes,
        rand: Callable[[int], bytes],
        clock: Callable[[], float],
    ) -> tuple[RingScheme, bytes]:
        ring = cls(suite, {0: request}, identity=identity, rand=rand, clock=clock)
        ring.mark_verified(0)
        step = ring.start(group_id, 0, b"")  # alone: no message, keyed at once
        assert step.secret is not None
        ring.forget_secrets()  # nobody to confirm with: epoch 0 needs no round 3
        return ring, step.secret

    @classmethod
    def from_public(
        cls,
        suite: CipherSuite,
        public_state: bytes,
        *,
        identity: Identity,
        rand: Callable[[int], bytes],
        clock: Callable[[], float],
    ) -> RingScheme:
        return cls(suite, cls.decode_roster(public_state), identity=identity, rand=rand, clock=clock)

    @classmethod
    def decode_roster(cls, data: bytes) -> dict[int, JoinRequest]:
        r = Reader(data, "ring roster")
        count = r.u32("member count")
        if not 0 < count <= _MAX_MEMBERS:
            raise InvalidValueError(f"ring roster lists {count} members")
        roster: dict[int, JoinRequest] = {}
        for _ in range(count):
            leaf = r.u32("leaf")
            if leaf in roster or (roster and leaf < max(roster)):
                raise InvalidValueError("ring roster leaves must be strictly ascending")
            roster[leaf] = JoinRequest.decode(r.opaque("join request", 4096))
        r.end()
        return roster

    # --- the roster ----------------------------------------------------------------------------

    @property
    def my_leaf(self) -> int:
        leaf = self.leaf_of_identity(self._identity.public_key)
        if leaf is None:
            raise UsageError("we are not in this ring's roster")
        return leaf

    @property
    def capacity(self) -> int:
        width = 1
        while width <= max(self._roster, default=0):
            width *= 2
        return width

    def members(self) -> Iterator[tuple[int, JoinRequest]]:
        return iter(list(self._roster.items()))

    def member(self, leaf: int) -> JoinRequest | None:
        return self._roster.get(leaf)

    @property
    def member_count(self) -> int:
        return len(self._roster)

    def leaf_of_identity(self, identity_key: bytes) -> int | None:
        return next((leaf for leaf, r in self._roster.items() if r.identity_key == identity_key), None)

    def has_init_key(self, init_key: bytes) -> bool:
        return any(r.init_key == init_key for r in self._roster.values())

    def is_verified(self, leaf: int) -> bool:
        return leaf in self._verified

    def mark_verified(self, leaf: int) -> None:
        self._verified.add(leaf)

    @property
    def public_hash(self) -> bytes:
        return self._hash(self._roster)

    def _hash(self, roster: dict[int, JoinRequest]) -> bytes:
        return self.suite.hash(_ROSTER_LABEL + _encode(roster))

    def encode_public(self) -> bytes:
        return _encode(self._roster)

    def roster_members(self) -> list[Member]:
        return [Member(leaf, r.display_name, r.identity_key) for leaf, r in self._roster.items()]

    # --- commits -------------------------------------------------------------------------------

    def plan_update(self, has_changes: bool, update: bool) -> bool:
        return update or not has_changes  # nothing is ever tainted: no rule forces an update

    def build_commit(
        self,
        ctx: EpochInput,
        *,
        removes: Sequence[int],
        adds: Sequence[JoinRequest],
        update: bool,
        rand: Callable[[int], bytes],
    ) -> OwnChange:
        me = self.my_leaf
        ops = [Operation(OpType.REMOVE, leaf, ()) for leaf in removes]
        targets = _add_targets(self._roster, set(removes), len(adds))
        ops += [Operation(OpType.ADD, leaf, (), req) for leaf, req in zip(targets, adds, strict=True)]
        if update:
            ops.append(Operation(OpType.UPDATE, me, ()))
        roster = self._after(ops)
        public = (_encode(self._roster),) if adds else None  # a ring Welcome carries the *old* roster
        return OwnChange(tuple(ops), self._hash(roster), None, public, {}, roster)

    def apply_own(self, change: OwnChange) -> None:
        assert isinstance(change.state, dict)
        self._verified.update(leaf for leaf in change.state if leaf not in self._roster)
        self._roster = change.state

    def check_commit(self, sender: int, ops: Sequence[Operation]) -> None:
        if any(op.path or op.sealed is not None or op.type == OpType.REKEY for op in ops):
            raise WrongSchemeError(
                "commit carries tree paths or re-keys: it was built for a tree group, and this group "
                "agrees its keys with the ring"
            )
        removed = {op.leaf for op in ops if op.type == OpType.REMOVE}
        targets = iter(_add_targets(self._roster, removed, sum(op.type == OpType.ADD for op in ops)))
        for op in ops:
            if op.type == OpType.ADD and op.leaf != (expected := next(targets)):
                raise InvalidCommitError(f"add must use leaf {expected} (the leftmost free), not {op.leaf}")
            if op.type == OpType.UPDATE and op.leaf != sender:
                raise InvalidCommitError("a member can only update its own leaf")
            if op.type == OpType.REMOVE:
                if op.leaf == sender:
                    raise InvalidCommitError("a committer cannot remove itself")
                if op.leaf not in self._roster:
                    raise UnknownMemberError(f"commit removes leaf {op.leaf}, which holds no member")

    def stage_commit(self, ctx: EpochInput, sender: int, ops: Sequence[Operation]) -> StagedChange:
        roster = self._after(ops)
        return StagedChange(self._hash(roster), None, roster)

    def confirm(self, staged: StagedChange) -> None:
        assert isinstance(staged.state, dict)
        # New leaves' join requests were verified by the epoch machine's add checks.
        self._verified.update(leaf for leaf in staged.state if leaf not in self._roster)
        self._roster = staged.state

    def rollback(self, staged: StagedChange) -> None:
        """Nothing to undo: staging computed the new roster aside."""

    # --- stored state (docs/protocol.md §12) -------------------------------------------------

    def encode_state(self) -> bytes:
        """``V(roster) || (uint32 verified leaf)<V> || V(last transcript) || uint32 timeout_ms``.

        A run in progress is not stored: its ephemeral keys and the rounds it saw would have to be
        written before each message it sends, and a member that lost them can only be dropped by
        a restart; so a ring stores only between epochs (UsageError otherwise)."""
        if self._run is not None or self._proposal is not None:
            raise UsageError(
                "the ring is agreeing an epoch: a run in progress cannot be stored or resumed; "
                "store the state once the new epoch is entered"
            )
        verified = [Writer().u32(leaf).bytes() for leaf in sorted(self._verified) if leaf in self._roster]
        return (
            Writer()
            .opaque(_encode(self._roster))
            .vector(verified)
            .opaque(self.last_transcript)
            .u32(min(round(self._timeout * 1000), 0xFFFFFFFF))
            .bytes()
        )

    @classmethod
    def decode_state(
        cls,
        suite: CipherSuite,
        data: bytes,
        *,
        identity: Identity,
        rand: Callable[[int], bytes],
        clock: Callable[[], float],
    ) -> RingScheme:
        """Read :meth:`encode_state`'s output; ``identity`` must be in the roster."""
        r = Reader(data, "stored ring state")
        roster = cls.decode_roster(r.opaque("roster", _MAX_MEMBERS * 4200))
        verified = r.vector("verified leaves", 4 * _MAX_MEMBERS, lambda rr: rr.u32("leaf"), _MAX_MEMBERS)
        last = r.opaque("last transcript", suite.hash_len)
        timeout = r.u32("timeout")
        r.end()
        if len(last) not in (0, suite.hash_len) or timeout == 0:
            raise InvalidValueError(
                f"stored ring transcript hash ({len(last)} bytes) or timeout ({timeout}) is invalid"
            )
        if verified != sorted(set(verified)) or not set(verified) <= set(roster):
            raise InvalidValueError("stored verified leaves are not distinct members in ascending order")
        ring = cls(suite, roster, identity=identity, rand=rand, clock=clock, timeout=timeout / 1000)
        if ring.leaf_of_identity(identity.public_key) is None:
            raise UsageError("this stored group state is not ours: our identity is not in its roster")
        ring._verified = set(verified)
        ring.last_transcript = last
        return ring

    def encode_change(self, change: OwnChange) -> bytes:
        """Nothing: the roster after our commit follows from its operations."""
        return b""

    def decode_change(self, data: bytes, operations: Sequence[Operation]) -> OwnChange:
        if data:
            raise InvalidValueError("a stored ring commit carries no scheme change")
        try:
            self.check_commit(self.my_leaf, operations)
        except GroupChatError as exc:
            raise InvalidValueError(f"stored ring commit does not fit the stored roster: {exc}") from exc
        roster = self._after(operations)
        return OwnChange(tuple(operations), self._hash(roster), None, None, {}, roster)

    def forget_secrets(self) -> None:
        if self._run is not None:
            self._run.abort()
        self._run = None
        self._drop_proposal()

    def _drop_proposal(self) -> None:
        if self._proposal is not None:
            self._proposal.abort()
        self._proposal, self._proposal_message = None, b""

    def _after(self, ops: Sequence[Operation]) -> dict[int, JoinRequest]:
        roster = dict(self._roster)
        for op in ops:
            if op.type == OpType.REMOVE:
                del roster[op.leaf]
            elif op.type == OpType.ADD:
                assert op.request is not None
                roster[op.leaf] = op.request
        return dict(sorted(roster.items()))

    # --- the run -------------------------------------------------------------------------------

    @property
    def timeout(self) -> float:
        """Seconds each round (and the wait for the confirmation) may take."""
        return self._timeout

    def set_round_timeout(self, seconds: float) -> None:
        self._timeout = seconds

    @property
    def running(self) -> bool:
        return self._run is not None

    def missing(self) -> tuple[Member, ...]:
        return () if self._run is None else self._run.missing()

    @property
    def keyed(self) -> bool:
        return self._run is not None and self._run.result is not None

    def start(self, group_id: bytes, epoch: int, context: bytes, attempt: int = 0) -> RunStep:
        """Start (or restart) the run creating ``epoch`` over the current roster."""
        if self._run_input is None or self._run_input[1] != epoch:
            self._replaced.clear()
        if self._run is not None:
            self._replaced.add((self._run.roster_hash, self._run.context))
            self._run.abort()
        self._drop_proposal()
        self._timed_out = None
        self._run_input = (group_id, epoch, context)
        self._run = self._new_run(group_id, epoch, context, attempt)
        return self._finish(self._run.start())

    def _new_run(self, group_id: bytes, epoch: int, context: bytes, attempt: int) -> RingRekey:
        return RingRekey(
            suite=self.suite,
            identity=self._identity,
            group_id=group_id,
            epoch=epoch,
            roster=self.roster_members(),
            rand=self._rand,
            clock=self._clock,
            attempt=attempt,
            context=context,
            timeout=self._timeout,
        )

    def overdue(self) -> RingTimeoutError | None:
        """The running attempt's timeout, once per deadline: when its deadline passed and no retry
        was proposed for it yet, or when our proposal has not come in force within another one
        (the relay may have dropped it: it is sent again)."""
        run = self._run
        if run is None:
            return None
        if self._proposal is not None:
            if self._clock() - self._proposed_at < self._timeout:
                return None
            return RingTimeoutError(run.round, run.attempt, run.missing())
        if self._timed_out == run.attempt:
            return None  # at the last attempt number: reported once, nothing to propose
        return run.overdue()

    def propose_retry(self) -> bytes | None:
        """Our round-1 message of the next attempt (fresh ephemerals), to send after a timeout;
        ``None`` at the last attempt number (only a restart commit goes on from there).

        The running attempt stays in force: its late messages ordered before the first message of
        the next attempt still count, and may complete it (then the proposal is dropped)."""
        run = self._run
        if run is None or self._run_input is None:
            raise UsageError("no ring rekey to retry")
        self._timed_out = run.attempt
        if run.attempt >= MAX_ATTEMPT:
            return None
        if self._proposal is None:
            group_id, epoch, context = self._run_input
            proposal = self._new_run(group_id, epoch, context, run.attempt + 1)
            (message,) = proposal.start().outbound  # two or more members: exactly our round 1
            self._proposal, self._proposal_message = proposal, message
        self._proposed_at = self._clock()  # the same bytes again if it does not come in force
        return self._proposal_message

    def is_own_proposal(self, data: bytes) -> bool:
        return bool(self._proposal_message) and data == self._proposal_message

    def adopt_proposal(self) -> None:
        """The relay's echo of our proposal: from here on in the order, its attempt is in force."""
        if self._proposal is not None and self._run is not None:
            self._run.abort()
            self._run, self._proposal, self._proposal_message = self._proposal, None, b""

    def handshake(self, data: bytes) -> RunStep:
        run = self._run
        if run is None:
            msg = RingRound.decode(data)
            raise EpochError(
                f"ring message for epoch {msg.epoch}: our run for it is already done (a late retry)",
                msg.epoch,
            )
        try:
            step = run.receive(data)
        except RosterMismatchError:
            msg = RingRound.decode(data)
            if (msg.roster_hash, msg.context) in self._replaced:
                raise AttemptFailedError(
                    f"ring message from leaf {msg.sender} of a run that a restart replaced: stale"
                ) from None
            raise
        except WrongAttemptError as exc:
            if not run.attempt < exc.attempt <= run.attempt + ATTEMPT_WINDOW or self._run_input is None:
                raise  # stale, or too far ahead: one message cannot jump the group far
            return self._switch(run, exc.attempt, data)
        return self._finish(step)

    def _switch(self, run: RingRekey, attempt: int, data: bytes) -> RunStep:
        """The first message of the next attempt in the relay's order: that attempt comes in force,
        but only if the message is acceptable to it (check, then switch: a refused one leaves the
        running attempt and our proposal as they were)."""
        assert self._run_input is not None
        proposal = self._proposal
        out: tuple[bytes, ...] = ()
        candidate: RingRekey | None = None
        step: RingStep | None = None
        if proposal is not None and proposal.attempt == attempt:
            try:
                step, candidate = proposal.receive(data), proposal  # ours: its round 1 is out
            except DuplicateKeyError:
                # It copies our proposal's key (shown to its sender before the relay ordered it).
                # Judge it as a member without a proposal does, so every member decides alike.
                candidate = None
        if candidate is None:
            candidate = self._new_run(*self._run_input, attempt)
            out = candidate.start().outbound
        if step is None:
            step = candidate.receive(data)  # raises, and nothing of ours changed, if refused
        early = run.early()  # far from our own deadline for the replaced attempt
        run.abort()
        if proposal is not None and proposal is not candidate:
            proposal.abort()
        self._run, self._proposal, self._proposal_message = candidate, None, b""
        done = self._finish(step)
        sender = RingRound.decode(data).sender
        by = next(m for m in candidate.roster if m.leaf == sender)
        return RunStep(out + done.outbound, done.secret, done.confirmed, done.failure, by, early)

    def send_confirmation(self, value: bytes) -> RunStep:
        """Round 3: our signed confirmation of the epoch the run's secret created."""
        if self._run is None:
            raise UsageError("no ring rekey to confirm")
        return self._finish(self._run.confirm(value))

    def _finish(self, step: RingStep) -> RunStep:
        secret = None
        if step.result is not None:
            self.last_transcript = step.result.transcript_hash
            secret = step.result.commit_secret
        if step.confirmed:
            self._run = None
            self._drop_proposal()  # the attempt in force completed: a proposed retry is moot
            self._timed_out = None
        return RunStep(step.outbound, secret, step.confirmed, step.failure)


def _encode(roster: dict[int, JoinRequest]) -> bytes:
    w = Writer().u32(len(roster))
    for leaf, req in roster.items():
        w.u32(leaf).opaque(req.encoded)
    return w.bytes()


def _add_targets(roster: dict[int, JoinRequest], removed: set[int], count: int) -> list[int]:
    out: list[int] = []
    leaf = 0
    while len(out) < count:
        if leaf not in roster and leaf not in removed:
            out.append(leaf)
        leaf += 1
    return out
