"""Multi-round agreement: the epoch change of a scheme whose ``commit_secret`` takes rounds.

When a commit of a multi-round scheme (``KeyAgreementScheme.multi_round``, the ring) wins its
epoch, :class:`PendingEpoch` holds it while the scheme's run agrees the new epoch's secret: the run's
round messages (:meth:`Agreement._receive_handshake`), restarts that remove members the run waits
for (docs/protocol.md §8.3), the deadline (:meth:`Agreement.tick`) and the confirmation that
enters the epoch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from ..admission import (
    AdmissionChange,
    AdmissionOutcome,
    ChangeType,
    RemovalReason,
    apply_changes,
)
from ..codec import Writer, opaque
from ..commit import Commit, CommitMessage, Operation, OpType
from ..errors import (
    AdmissionChangeError,
    EpochError,
    InvalidCommitError,
    LateRestartError,
    RemoteError,
    ReplayError,
    SignatureError,
    UnknownMemberError,
    UsageError,
    WrongSchemeError,
)
from ..events import (
    EpochChanged,
    Event,
    Member,
    MessageEchoed,
    RekeyProgress,
    RekeyTimedOut,
)
from ..identity import JoinRequest
from ..key_schedule import (
    GroupContext,
    confirmation_tag,
    confirmed_transcript_hash,
    derive_epoch_secrets,
    interim_transcript_hash,
)
from ..message_protection import (
    ContentType,
    FramedContent,
    WireFormat,
    confirmed_transcript_input,
    sign_framed_content,
    verify_framed_content,
)
from ..outbox import ROOM, Outbound, OutboundKind
from ..schemes.base import EpochInput, KeyAgreementScheme, RunStep
from .admission import Admission, signed_by
from .state import Intent, PendingCommit, PendingEpoch
from .wire import LAST_EPOCH, RESTART_LABEL


class Agreement(Admission):
    """A multi-round scheme's epoch change, from the winning commit to the confirmation."""

    def _restart_context(self, ring: PendingEpoch) -> bytes:
        """What a restart commit is signed over: this epoch's context and the commit whose ring it
        restarts, so that a commit built before that ring (a lost race) is never taken for one."""
        return Writer().raw(self._ctx_bytes).opaque(RESTART_LABEL).opaque(ring.latest).bytes()

    def _commit_restart(
        self, removes: list[int], authenticated_data: bytes, reasons: Mapping[int, RemovalReason]
    ) -> bytes:
        """A commit on this epoch, while its ring runs, that removes members and restarts the ring.

        It may give reasons for its removes, no other admission change."""
        ring = self._ring
        assert ring is not None
        scheme = self._multi_round_scheme()
        for leaf in removes:
            if leaf == self.my_leaf:
                raise UsageError("a member cannot remove itself; ask another member to commit the remove")
            if scheme.member(leaf) is None:
                raise UnknownMemberError(f"cannot remove leaf {leaf}: it holds no member")
        removed = tuple(self.member(leaf) for leaf in removes)
        epoch_input, rand = EpochInput(self.group_id, self.epoch), self.config.rand
        change = scheme.build_commit(epoch_input, removes=removes, adds=[], update=False, rand=rand)
        changes = tuple(
            AdmissionChange(ChangeType.REASON, leaf, reason=reasons[leaf]) for leaf in sorted(reasons)
        )
        outcome = self._restart_admission(ring, change.operations, changes, self._identity.public_key)
        commit = Commit(change.operations, changes)
        content = FramedContent(
            self.group_id, self.epoch, self.my_leaf, authenticated_data, ContentType.COMMIT, commit.encode()
        )
        context = self._restart_context(ring)
        signing_key = self._identity.signing_key
        signature = sign_framed_content(self.suite, signing_key, WireFormat.PUBLIC_MESSAGE, content, context)
        message = CommitMessage(content, commit, signature, bytes(32)).encode()
        intent = Intent(
            (),
            tuple(m.identity_key for m in removed),
            False,
            authenticated_data,
            reasons=tuple((m.identity_key, reasons[m.leaf]) for m in removed if m.leaf in reasons),
        )
        self._pending = PendingCommit(
            message,
            change,
            self._ctx,
            self._secrets,
            self._interim,
            None,
            (),
            removed,
            False,
            intent,
            outcome,
        )
        return message

    def _receive_restart(self, data: bytes, digest: bytes, msg: CommitMessage) -> Event:
        """A commit on our epoch while its ring runs: a restart that removes members (§8.3), or a
        commit that lost the race to the ring's own."""
        ring = self._ring
        assert ring is not None
        if digest == ring.digest or digest in ring.digests:
            # A ring joiner reads the room from the commit that added it: it already started the ring.
            raise ReplayError("this commit was already applied: it started the ring that is running")
        # Until every member's confirmation came through (the same point of the order for all),
        # nobody is in the next epoch, so a restart ordered before that is one for everyone; one
        # ordered after it is on an old epoch and never gets here.
        scheme = self._multi_round_scheme()
        pending = self._pending
        if pending is not None and pending.message == data:
            removed = {m.leaf: m for m in pending.removed}
            overrides = {leaf: self._override_of(ring, leaf) for leaf in removed}
            scheme.apply_own(pending.change)
            self._pending = None
            me = self.member(self.my_leaf)
            return self._restart_run(ring, data, msg, me, removed, overrides, pending.admission, own=True)
        content = msg.content
        request = scheme.member(content.sender)
        stale = EpochError(
            f"commit on epoch {self.epoch} arrived while the ring agrees epoch {self.epoch + 1} "
            "(another commit already won this epoch)",
            self.epoch,
            self.epoch,
        )
        if request is None:
            raise stale
        self._verify_member(content.sender, request)
        try:
            verify_framed_content(
                self.suite,
                request.identity_key,
                WireFormat.PUBLIC_MESSAGE,
                content,
                self._restart_context(ring),
                msg.signature,
            )
        except SignatureError:
            raise stale from None  # not signed as a restart of this ring: built before it
        if content.sender == self.my_leaf:
            raise InvalidCommitError("restart is signed by our own leaf but is not the one we have pending")
        ops = msg.commit.operations
        if any(msg.confirmation_tag):  # unsigned, so not the restarter's doing: it names nobody
            raise InvalidCommitError("ring restart with a non-zero confirmation tag: altered on the way")
        with signed_by(content.sender, request.display_name, identity_key=request.identity_key):
            if any(op.type != OpType.REMOVE for op in ops):
                raise InvalidCommitError("a commit that restarts a running ring may only remove members")
            self._check_operations(content.sender, ops)
            admission = self._restart_admission(ring, ops, msg.commit.changes, request.identity_key)
        committer = self._member(content.sender, request)
        removed = {op.leaf: self.member(op.leaf) for op in ops}
        if self.my_leaf in removed:
            return self._removed(committer, admission.reasons.get(self._identity.public_key))
        overrides = {leaf: self._override_of(ring, leaf) for leaf in removed}
        scheme.confirm(scheme.stage_commit(EpochInput(self.group_id, self.epoch), content.sender, ops))
        lost = self._pending
        self._pending = None
        superseded = lost is not None
        return self._restart_run(
            ring, data, msg, committer, removed, overrides, admission, own=False, lost=superseded
        )

    def _restart_admission(
        self,
        ring: PendingEpoch,
        ops: Sequence[Operation],
        changes: Sequence[AdmissionChange],
        committer: bytes,
    ) -> AdmissionOutcome:
        """A restart's changes (reasons only) on top of the admission state the ring's commit leads to."""
        if any(c.type != ChangeType.REASON for c in changes):
            raise AdmissionChangeError("a commit that restarts a running ring may only give removal reasons")
        scheme = self._scheme
        removed = {op.leaf: req for op in ops if (req := scheme.member(op.leaf)) is not None}
        before = ring.admission
        if not changes and not before.state.returning and not removed:
            return before
        after = apply_changes(
            before.state,
            changes,
            added={},
            removed=removed,
            committer=committer,
            group_id=self.group_id,
            suite=self.suite,
        )
        return AdmissionOutcome(
            after.state,
            {**before.reasons, **after.reasons},
            {k: v for k, v in before.admitted.items() if k not in removed_identities(removed)},
            before.created,
            before.revoked,
        )

    def _late_restart(self, msg: CommitMessage) -> LateRestartError | None:
        """The refusal of a commit on the epoch before ours that verifies as a restart of the ring
        that created ours (§8.3): its signer missed our last confirmation and went on without
        us. ``None`` when it is not one (a plain lost race)."""
        done, content = self._completed_ring, msg.content
        if done is None or content.epoch != done[0]:
            return None
        request = self._scheme.member(content.sender)
        if request is None:
            return None
        try:
            verify_framed_content(
                self.suite, request.identity_key, WireFormat.PUBLIC_MESSAGE, content, done[1], msg.signature
            )
        except SignatureError:
            return None
        exc = LateRestartError(
            f"{request.display_name!r} restarted the rekey to epoch {self.epoch} after we entered it: "
            "the last confirmation was kept from them, and they now hold another epoch "
            f"{self.epoch} than ours (a fork); our group stands",
            content.epoch,
            self.epoch,
        )
        exc.signed_by(content.sender, request.display_name, request.identity_key)
        return exc

    def _override_of(self, ring: PendingEpoch, leaf: int) -> JoinRequest | None:
        """Who held ``leaf`` at this epoch (before the ring's commit), for late messages of it."""
        if leaf in ring.overrides:
            return ring.overrides[leaf]
        return self._scheme.member(leaf)

    def _restart_run(
        self,
        ring: PendingEpoch,
        data: bytes,
        msg: CommitMessage,
        committer: Member,
        removed: dict[int, Member],
        overrides: dict[int, JoinRequest | None],
        admission: AdmissionOutcome,
        *,
        own: bool,
        lost: bool = False,
    ) -> Event:
        """The ring restarts over the roster without the removed: new run, bound to every commit so
        far; the last restarter confirms the epoch (the ring's committer may be among the removed)."""
        joined = {m.leaf for m in ring.added}
        restarted = dataclasses.replace(
            ring,
            data=ring.data + data,
            committer=committer,
            added=tuple(m for m in ring.added if m.leaf not in removed),
            dropped=ring.dropped + tuple(m for m in ring.added if m.leaf in removed),
            removed=ring.removed + tuple(m for leaf, m in removed.items() if leaf not in joined),
            overrides={**overrides, **ring.overrides},
            own=own,
            admission=admission,
            superseded=ring.superseded or lost,
            done=None,
            restarts=(*ring.restarts, (msg.content, msg.signature)),
            digests=ring.digests | {self.suite.hash(data)},
            restart_digest=self.suite.hash(data),
        )
        return self._begin_agreement(restarted)

    # --- the run: deadline, handshakes, confirmation ------------------------------------------------

    def _tick(self) -> RekeyTimedOut | None:
        """The running agreement's deadline (see ``Group.tick``): on a timeout, queue our proposal
        of the next attempt (fresh ephemerals) and say who is missing, once per attempt."""
        self._expire_previous_epoch()
        scheme = self._scheme
        if self._ring is None or not scheme.multi_round:
            return None
        timeout = scheme.overdue()
        if timeout is None:
            return None
        # Propose the next attempt; it is in force from where the relay orders its first
        # message (docs/protocol.md §8.3), so the late messages of this one may still finish it.
        proposal = scheme.propose_retry()
        if proposal is not None:
            self._queue_handshake([proposal])
        return RekeyTimedOut(
            self.epoch + 1, timeout.round, timeout.attempt, timeout.missing, retry=proposal is not None
        )

    def _multi_round_scheme(self) -> KeyAgreementScheme:
        """Our scheme, which must agree its secrets in rounds for a handshake message to mean anything."""
        scheme = self._scheme
        if not scheme.multi_round:
            raise WrongSchemeError(
                f"ring handshake message for a group that agrees its keys with the {scheme.name} scheme"
            )
        return scheme

    def _queue_handshake(self, messages: Iterable[bytes]) -> None:
        for m in messages:
            self._outbox.append(Outbound(ROOM, m, OutboundKind.HANDSHAKE))
            self._note_sent(m)  # its echo is recognised by its bytes, even after the run is done

    def _begin_agreement(self, ring: PendingEpoch) -> Event:
        """A multi-round commit won its epoch: start the run over the new roster (all members, fresh keys)."""
        scheme = self._multi_round_scheme()
        self._ring = ring
        # Binds the run to the state it continues, so it cannot be replayed into a fork.
        context = self.suite.hash(self._ctx_bytes + ring.data)
        return self._after(scheme.start(self.group_id, self.epoch + 1, context))

    def _receive_handshake(self, data: bytes) -> Event:
        scheme = self._multi_round_scheme()
        ring = self._ring
        digest = self.suite.hash(data)
        sent_in = self._pop_unechoed_digest(digest)
        if sent_in is not None:
            if ring is None:
                return MessageEchoed(sent_in, digest)
            # Our own round message counts where the relay ordered it (§8.3).
            if scheme.is_own_proposal(data):
                scheme.adopt_proposal()  # our retry's place in the order: its attempt is in force
            try:
                step = scheme.handshake(data)
            except RemoteError:
                # Ours, so not forged: of an attempt or a run (before a restart) no longer in force.
                return MessageEchoed(sent_in, digest)
            return self._after(step)
        if ring is None:
            raise EpochError(
                f"ring message, but no ring rekey is running (we are at epoch {self.epoch})",
                current=self.epoch,
            )
        return self._after(scheme.handshake(data))

    def _after(self, step: RunStep) -> Event:
        """Send what the run sends, then act on what it reached: a secret (derive the epoch and
        confirm it), every confirmation (enter the epoch), or a failure (say so; the deadline
        proposes the next attempt)."""
        self._queue_handshake(step.outbound)
        if step.confirmed:
            return self._enter_agreed_epoch()
        ring = self._ring
        if ring is not None and not self._scheme.keyed:
            ring.done = None  # the attempt in force (a retry) has not derived its epoch yet
        if step.failure is not None:
            return step.failure
        if step.secret is not None:
            return self._run_finished(step.secret)
        return RekeyProgress(self.epoch + 1, self._scheme.missing(), step.retried_by, step.early)

    def _run_finished(self, commit_secret: bytes) -> Event:
        """Rounds 1 and 2 agreed ``commit_secret``: derive the new epoch's GroupContext and secrets,
        and confirm its tag in round 3; the epoch is entered once every member confirmed it."""
        ring = self._ring
        scheme = self._scheme
        assert ring is not None and scheme.multi_round
        # A commit at the last epoch is refused by its committer and by every receiver.
        assert self.epoch < LAST_EPOCH
        # The ring's transcript (every signed round content) joins the commit in the transcript.
        confirmed = confirmed_transcript_hash(
            self.suite,
            self._interim,
            confirmed_transcript_input(WireFormat.PUBLIC_MESSAGE, ring.content, ring.signature)
            + b"".join(
                confirmed_transcript_input(WireFormat.PUBLIC_MESSAGE, content, signature)
                for content, signature in ring.restarts
            )
            + opaque(scheme.last_transcript),
        )
        ctx = GroupContext(
            self.suite.id,
            self.group_id,
            self.epoch + 1,
            scheme.public_hash,
            confirmed,
            self._extensions_after(ring.admission),
        )
        secrets = derive_epoch_secrets(self.suite, self._secrets.init_secret, commit_secret, ctx.encode())
        tag = confirmation_tag(self.suite, secrets.confirmation_key, confirmed)
        ring.done = (ctx, secrets, confirmed, tag)
        return self._after(scheme.send_confirmation(tag))

    def _enter_agreed_epoch(self) -> Event:
        """Every member confirmed the tag of the epoch our run derived: enter it."""
        ring = self._ring
        assert ring is not None and ring.done is not None
        ctx, secrets, confirmed, tag = ring.done
        self._completed_ring = (self.epoch, self._restart_context(ring))
        self._ring = None
        # A restart of ours still in flight is moot now (even if the ring's commit was ours).
        superseded = ring.superseded or self._pending is not None
        self._pending = None
        interim = interim_transcript_hash(self.suite, confirmed, tag)
        self._enter_epoch(ctx, secrets, interim, ring.overrides, ring.digest)
        return EpochChanged(
            ctx.epoch,
            ring.committer,
            ring.added,
            ring.removed,
            ring.updated,
            secrets.epoch_authenticator,
            own=ring.own,
            superseded_own_commit=superseded,
            removal_reasons=ring.admission.reasons,
            admitted_by_invite=ring.admission.admitted,
            invites_created=ring.admission.created,
            invites_revoked=ring.admission.revoked,
            not_admitted=ring.dropped,
        )


def removed_identities(removed: Mapping[int, JoinRequest]) -> set[bytes]:
    return {r.identity_key for r in removed.values()}
