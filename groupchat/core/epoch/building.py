"""Building our commit: operations, signature, key schedule, Welcome, and what a lost race leaves.

:meth:`Building.commit` asks the scheme for the operations, seals the commit (one-round: with its
confirmation tag and the Welcome of the next epoch; multi-round: the Welcome of the current one)
and keeps it pending until the relay's echo (:meth:`Building._apply_own`). If another commit wins
the epoch, :meth:`Building._rebuild_intent` keeps what is left to redo.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ..admission import (
    MAX_LABEL,
    AdmissionChange,
    AdmissionOutcome,
    Admit,
    ChangeType,
    NewInvite,
    RemovalReason,
)
from ..commit import Commit, CommitMessage, Operation
from ..errors import (
    ConfigError,
    EpochLimitError,
    RemoteError,
    UnknownMemberError,
    UsageError,
)
from ..events import (
    EpochChanged,
    Event,
)
from ..identity import JoinRequest
from ..invite import verify_proof
from ..key_schedule import (
    EpochSecrets,
    GroupContext,
    confirmation_tag,
    confirmed_transcript_hash,
    derive_epoch_secrets,
    interim_transcript_hash,
    welcome_secret,
)
from ..message_protection import (
    MAX_AUTHENTICATED_DATA,
    ContentType,
    FramedContent,
    WireFormat,
    confirmed_transcript_input,
    sign_framed_content,
)
from ..outbox import ROOM, Joiner, Outbound, OutboundKind
from ..schemes.base import EpochInput, OwnChange
from ..welcome import (
    SECRETS_EXTENSION,
    GroupSecrets,
    seal_welcome,
    secrets_commitment,
    signed_group_info,
)
from .agreement import Agreement
from .machine import Input
from .state import Intent, PendingCommit, PendingEpoch
from .wire import (
    LAST_EPOCH,
    RING_COMMIT_EXTENSION,
    RING_INTERIM_EXTENSION,
)


class Building(Agreement):
    """Our own commit, from the caller's request to its echo."""

    def commit(
        self,
        *,
        add: Iterable[JoinRequest | bytes | Admit] = (),
        remove: Iterable[int] = (),
        update: bool = False,
        authenticated_data: bytes = b"",
        reasons: Mapping[int, RemovalReason] | None = None,
        invite: Iterable[NewInvite] = (),
        revoke: Iterable[bytes] = (),
    ) -> bytes:
        """Build a commit and return its bytes; it takes effect when the relay echoes it to :meth:`receive`.

        The scheme decides the operations (for the tree: removes, the re-keys the taint rules
        require, adds into the leftmost free leaves, then our update, in
        :data:`~groupchat.core.commit.OPERATION_ORDER`). A commit with nothing else in it is a
        self-update; while our own leaf is tainted every commit includes our update. The caller
        sends the returned bytes itself (it asked for them); everything the protocol sends on its
        own, including the Welcome this commit releases, comes out of :meth:`data_to_send`. An
        explicit commit replaces a rebuild of a lost commit that was not drained yet.

        Admission changes ride in the same signed commit: an :class:`~groupchat.core.admission.Admit`
        in ``add`` uses an invite (refused here if it is not live, expired by our wall clock, or
        its proof is bad), ``reasons`` gives the reason of removes (by leaf), ``invite`` creates
        invites (we are the inviter), ``revoke`` drops live ones. A commit of admission changes
        only carries our own update, like any commit with no operations.
        """
        self._require(Input.COMMIT_REMOVALS)  # a member with no commit in flight
        if self.epoch >= LAST_EPOCH:
            # Refused here for every scheme (a ring commit carries no key schedule of its own, so
            # nothing further on would notice): every receiver would refuse it.
            raise EpochLimitError(
                f"the group is at epoch {self.epoch}, the last a uint64 holds: no further commit is "
                "possible; start a new group"
            )
        if len(authenticated_data) > MAX_AUTHENTICATED_DATA:
            raise UsageError(f"authenticated data is longer than {MAX_AUTHENTICATED_DATA} bytes")
        requests: list[JoinRequest] = []
        admits: dict[bytes, Admit] = {}
        for r in add:
            if isinstance(r, Admit):
                admits[r.request.identity_key] = r
                r = r.request
            requests.append(JoinRequest.decode(r) if isinstance(r, bytes) else r)
        removes = list(dict.fromkeys(remove))
        reasons = dict(reasons or {})
        invites, revokes = list(invite), list(dict.fromkeys(revoke))
        if requests or update or not removes or invites or revokes:
            self._require(Input.COMMIT)  # while an agreement runs, only removals (a restart)
        for leaf in reasons:
            if leaf not in removes:
                raise UsageError(f"a removal reason for leaf {leaf}, which this commit does not remove")
        if self._ring is not None:
            return self._commit_restart(removes, authenticated_data, reasons)
        scheme = self._scheme
        removed_requests: list[JoinRequest] = []
        for leaf in removes:
            if leaf == self.my_leaf:
                raise UsageError("a member cannot remove itself; ask another member to commit the remove")
            gone = scheme.member(leaf)
            if gone is None:
                raise UnknownMemberError(f"cannot remove leaf {leaf}: it holds no member")
            removed_requests.append(gone)
        self._check_adds(requests, removed=set(removes))
        self._check_own_admission(admits.values(), invites, revokes)
        # What the caller asked for, to rebuild it on the next epoch if another commit wins.
        intent = Intent(
            tuple(requests),
            tuple(r.identity_key for r in removed_requests),
            update or not (requests or removes),
            authenticated_data,
            tuple(admits.values()),
            tuple(
                (scheme_req.identity_key, reasons[leaf])
                for leaf, scheme_req in zip(removes, removed_requests, strict=True)
                if leaf in reasons
            ),
            tuple(invites),
            tuple(revokes),
        )
        update = scheme.plan_update(bool(requests or removes), update)
        removed = tuple(self.member(leaf) for leaf in removes)
        change = scheme.build_commit(
            EpochInput(self.group_id, self.epoch),
            removes=removes,
            adds=requests,
            update=update,
            rand=self.config.rand,
        )
        prune = self._own_prune(removed_requests)
        changes = own_changes(change.operations, admits, reasons, invites, revokes, prune)
        try:
            outcome = self._admission_after(change.operations, changes, self._identity.public_key)
        except RemoteError as exc:  # never build what every receiver would refuse
            raise UsageError(f"this commit's admission changes would be refused: {exc}") from None
        message, ctx, secrets, interim, welcome = self._seal_commit(
            change, authenticated_data, changes, outcome
        )
        joiners = tuple((op.leaf, op.request) for op in change.operations if op.request is not None)
        self._pending = PendingCommit(
            message, change, ctx, secrets, interim, welcome, joiners, removed, update, intent, outcome
        )
        self._rebuild = None
        return message

    def _check_own_admission(
        self, admits: Iterable[Admit], invites: Sequence[NewInvite], revokes: Sequence[bytes]
    ) -> None:
        """An honest committer's checks: live, unexpired invites with valid proofs; sane new invites."""
        state, now = self._admission, self.config.wall_clock()
        for a in admits:
            live = state.invite(a.invite_key)
            if live is None:
                raise UsageError(
                    f"cannot admit {a.request.display_name!r}: that invite is not live (revoked or used up)"
                )
            if live.expired(now):
                raise UsageError(f"cannot admit {a.request.display_name!r}: that invite has expired")
            verify_proof(a.invite_key, self.group_id, a.request, a.proof, self.suite)
        for inv in invites:
            if len(inv.public_key) != 32 or not 1 <= inv.uses <= 0xFFFF or not 0 <= inv.not_after < 1 << 64:
                raise ConfigError("an invite needs a 32-byte key, 1..65535 uses and a Unix expiry (0 = none)")
            if len(inv.label.encode()) > MAX_LABEL:
                raise ConfigError(f"an invite label is at most {MAX_LABEL} bytes of UTF-8")
            if state.invite(inv.public_key) is not None:
                raise UsageError("this invite is already live")
        for key in revokes:
            if state.invite(key) is None:
                raise UsageError("cannot revoke an invite that is not live")

    def _seal_commit(
        self,
        change: OwnChange,
        authenticated_data: bytes,
        changes: tuple[AdmissionChange, ...],
        outcome: AdmissionOutcome,
    ) -> tuple[bytes, GroupContext, EpochSecrets, bytes, bytes | None]:
        """Sign our commit, run the key schedule for the epoch it creates, and build its Welcome."""
        suite = self.suite
        commit = Commit(change.operations, changes)
        if change.commit_secret is None:
            return self._seal_multi_round_commit(change, commit, authenticated_data)
        content = FramedContent(
            self.group_id, self.epoch, self.my_leaf, authenticated_data, ContentType.COMMIT, commit.encode()
        )
        signature = sign_framed_content(
            suite, self._identity.signing_key, WireFormat.PUBLIC_MESSAGE, content, self._ctx_bytes
        )
        assert change.commit_secret is not None  # a one-round scheme
        ctx, secrets, confirmed, _ = self._next_epoch(
            content, signature, change.public_hash, change.commit_secret, self._extensions_after(outcome)
        )
        tag = confirmation_tag(suite, secrets.confirmation_key, confirmed)
        message = CommitMessage(content, commit, signature, tag).encode()
        welcome = None
        joiners = [op for op in change.operations if op.request is not None]
        if joiners:
            assert change.public_state is not None
            recipients = [
                (
                    op.request.ref(suite),
                    op.request.init_key,
                    GroupSecrets(secrets.joiner_secret, change.joiner_secrets[op.leaf], []),
                )
                for op in joiners
                if op.request is not None
            ]
            committed = secrets_commitment(suite, [(ref, gs) for ref, _, gs in recipients])
            extensions: list[tuple[int, bytes | tuple[bytes, ...]]] = [(SECRETS_EXTENSION, committed)]
            info = signed_group_info(suite, self._identity.signing_key, ctx, extensions, tag, self.my_leaf)
            # The tree goes beside the GroupInfo: the signature covers its hash (in ctx), not its bytes.
            welcome = seal_welcome(
                suite, info, secrets.welcome_secret, recipients, b"".join(change.public_state)
            ).encode()
        return message, ctx, secrets, interim_transcript_hash(suite, confirmed, tag), welcome

    def _seal_multi_round_commit(
        self, change: OwnChange, commit: Commit, authenticated_data: bytes
    ) -> tuple[bytes, GroupContext, EpochSecrets, bytes, bytes | None]:
        """A ring commit: signed, no confirmation tag yet (the committer sends it once the ring is done)."""
        suite = self.suite
        content = FramedContent(
            self.group_id, self.epoch, self.my_leaf, authenticated_data, ContentType.COMMIT, commit.encode()
        )
        signature = sign_framed_content(
            suite, self._identity.signing_key, WireFormat.PUBLIC_MESSAGE, content, self._ctx_bytes
        )
        message = CommitMessage(content, commit, signature, bytes(32)).encode()
        welcome = None
        joiners = [op.request for op in change.operations if op.request is not None]
        if joiners:
            assert change.public_state is not None
            # The joiner gets this epoch's init_secret; joiner_secret only protects the GroupInfo.
            joiner_secret = self.config.rand(32)
            recipients = [
                (r.ref(suite), r.init_key, GroupSecrets(joiner_secret, self._secrets.init_secret, []))
                for r in joiners
            ]
            extensions: list[tuple[int, bytes | tuple[bytes, ...]]] = [
                (RING_COMMIT_EXTENSION, message),
                (RING_INTERIM_EXTENSION, self._interim),
                (SECRETS_EXTENSION, secrets_commitment(suite, [(ref, gs) for ref, _, gs in recipients])),
            ]
            info = signed_group_info(
                suite, self._identity.signing_key, self._ctx, extensions, bytes(32), self.my_leaf
            )
            welcome = seal_welcome(
                suite, info, welcome_secret(suite, joiner_secret), recipients, b"".join(change.public_state)
            ).encode()
        return message, self._ctx, self._secrets, self._interim, welcome

    def _queue_commit(self, data: bytes) -> None:
        self._outbox.append(Outbound(ROOM, data, OutboundKind.COMMIT))

    def _leaf_of(self, identity_key: bytes) -> int | None:
        return self._scheme.leaf_of_identity(identity_key)

    def _rebuild_intent(self, lost: PendingCommit) -> Intent | None:
        """What of our lost commit is still to do on the new epoch (``None``: nothing)."""
        intent, state = lost.intent, self._admission
        adds = tuple(r for r in intent.adds if self._leaf_of(r.identity_key) is None)
        removes = tuple(k for k in intent.removes if self._leaf_of(k) is not None)
        added = {r.identity_key for r in adds}
        rest = Intent(
            adds,
            removes,
            intent.update,
            intent.authenticated_data,
            tuple(a for a in intent.admits if a.request.identity_key in added),
            tuple((k, r) for k, r in intent.reasons if k in removes),
            tuple(i for i in intent.invites if state.invite(i.public_key) is None),
            tuple(k for k in intent.revokes if state.invite(k) is not None),
        )
        return None if rest.empty else rest

    # --- the echo and the next epoch ------------------------------------------------------------

    def _apply_own(self, pending: PendingCommit, digest: bytes) -> Event:
        overrides = {leaf: self._scheme.member(leaf) for leaf in pending.added}
        overrides.update({m.leaf: self._scheme.member(m.leaf) for m in pending.removed})
        self._scheme.apply_own(pending.change)
        self._pending = None
        if pending.change.commit_secret is None:  # ring: the epoch changes when the ring is done
            self._queue_welcome(pending)
            content = CommitMessage.decode(pending.message).content
            me = self.member(self.my_leaf)
            ring = PendingEpoch(
                pending.message,
                content,
                CommitMessage.decode(pending.message).signature,
                me,
                tuple(self.member(leaf) for leaf in pending.added),
                pending.removed,
                pending.updated,
                overrides,
                digest,
                own=True,
                admission=pending.admission,
            )
            return self._begin_agreement(ring)
        # The admission state is decoded from the pending commit's context, not taken from its
        # outcome: a restored pending commit's context comes from storage, its outcome is recomputed.
        self._enter_epoch(pending.group_context, pending.secrets, pending.interim, overrides, digest)
        self._queue_welcome(pending)
        return EpochChanged(
            self.epoch,
            self.member(self.my_leaf),
            tuple(self.member(leaf) for leaf in pending.added),
            pending.removed,
            pending.updated,
            pending.secrets.epoch_authenticator,
            own=True,
            removal_reasons=pending.admission.reasons,
            admitted_by_invite=pending.admission.admitted,
            invites_created=pending.admission.created,
            invites_revoked=pending.admission.revoked,
        )

    def _queue_welcome(self, pending: PendingCommit) -> None:
        if pending.welcome is not None:
            # Only now, with the epoch won, is the Welcome safe to release (RFC 9420 §14).
            for _, request in pending.joiners:
                self._outbox.append(Outbound(Joiner.of(request), pending.welcome, OutboundKind.WELCOME))

    def _next_epoch(
        self,
        content: FramedContent,
        signature: bytes,
        public_hash: bytes,
        commit_secret: bytes,
        extensions: bytes,
    ) -> tuple[GroupContext, EpochSecrets, bytes, bytes]:
        """RFC 9420 §8.2/§12.4: confirmed transcript hash, next GroupContext, key schedule; returns
        the context, its secrets, the confirmed hash and the context's encoding (the key schedule's
        input, which the receiver keeps for the epoch rather than encoding it again)."""
        if self.epoch >= LAST_EPOCH:
            raise EpochLimitError(
                f"the group is at epoch {self.epoch}, the last a uint64 holds: no further commit is "
                "possible; start a new group"
            )
        confirmed = confirmed_transcript_hash(
            self.suite,
            self._interim,
            confirmed_transcript_input(WireFormat.PUBLIC_MESSAGE, content, signature),
        )
        ctx = GroupContext(self.suite.id, self.group_id, self.epoch + 1, public_hash, confirmed, extensions)
        encoded = ctx.encode()
        secrets = derive_epoch_secrets(self.suite, self._secrets.init_secret, commit_secret, encoded)
        return ctx, secrets, confirmed, encoded


def own_changes(
    ops: Sequence[Operation],
    admits: Mapping[bytes, Admit],
    reasons: Mapping[int, RemovalReason],
    invites: Sequence[NewInvite],
    revokes: Sequence[bytes],
    prune: int | None = None,
) -> tuple[AdmissionChange, ...]:
    """Our commit's admission changes, in the canonical order: revokes, invites, admits, reasons,
    prune (of the used init keys, :meth:`~.admission.Admission._own_prune`)."""
    out = [AdmissionChange(ChangeType.REVOKE, invite_key=k) for k in revokes]
    out += [
        AdmissionChange(
            ChangeType.INVITE, invite_key=i.public_key, uses=i.uses, not_after=i.not_after, label=i.label
        )
        for i in invites
    ]
    for op in ops:
        admit = admits.get(op.request.identity_key) if op.request is not None else None
        if admit is not None:
            out.append(AdmissionChange(ChangeType.ADMIT, op.leaf, admit.invite_key, proof=admit.proof))
    out += [AdmissionChange(ChangeType.REASON, leaf, reason=reasons[leaf]) for leaf in sorted(reasons)]
    if prune is not None:
        out.append(AdmissionChange(ChangeType.PRUNE, not_after=prune))
    return tuple(out)
