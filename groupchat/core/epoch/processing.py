"""Processing a received commit, in the order of docs/protocol.md §4.2.

Replay, group, epoch and last-epoch checks; a restart while an agreement runs; our own echo; the
committer's membership and signature; the operations' rules; our removal; then the scheme's
staged change, the key schedule and the confirmation tag, and only then the new epoch.
"""

from __future__ import annotations

from typing import Final

from ..commit import CommitMessage, OpType
from ..errors import (
    ConfirmationError,
    CounterLimitError,
    EpochError,
    InvalidCommitError,
    ReplayError,
    UnknownMemberError,
    WrongGroupError,
)
from ..events import (
    EpochChanged,
    Event,
    Member,
)
from ..key_schedule import (
    interim_transcript_hash,
    verify_confirmation_tag,
)
from ..message_protection import (
    WireFormat,
    verify_framed_content,
)
from ..schemes.base import EpochInput, KeyAgreementScheme
from .admission import signed_by
from .building import Building
from .state import PendingEpoch
from .wire import (
    LAST_EPOCH,
)

# OpType's members as module constants, compared on every received commit: reading an Enum
# member through its class costs 0.05-0.1 µs in Python 3.11 (EnumType's attribute hooks), a
# module constant a few ns (issue 16).
_ADD: Final = OpType.ADD
_REMOVE: Final = OpType.REMOVE
_UPDATE: Final = OpType.UPDATE


class Processing(Building):
    """Another member's commit (or our echo), checked and applied in the order of §4.2."""

    def _receive_commit(self, data: bytes) -> Event:
        """Steps 1-5 of §4.2 (decode, replay, group and epoch, our echo, the committer's
        signature); then :meth:`_apply_commit`, whose refusals name the committer who signed."""
        digest = self.suite.hash(data)  # 2: the last commits applied
        if digest in self._recent_commits:
            raise ReplayError("this commit was already applied")
        msg = CommitMessage.decode(data)  # 1: decodes completely
        content = msg.content
        if content.group_id != self.group_id:  # 3: group, epoch, the last epoch
            raise WrongGroupError("commit belongs to another group")
        if content.epoch != self.epoch:
            late = self._late_restart(msg) if content.epoch == self.epoch - 1 else None
            if late is not None:
                raise late
            when = "an earlier" if content.epoch < self.epoch else "a later"
            raise EpochError(
                f"commit was built on {when} epoch ({content.epoch}) than ours ({self.epoch}); "
                + ("another commit won that epoch" if content.epoch < self.epoch else "we missed a commit"),
                content.epoch,
                self.epoch,
            )
        if self.epoch >= LAST_EPOCH:
            raise CounterLimitError(
                f"commit for epoch {self.epoch}, the last a uint64 holds: no epoch can follow it"
            )
        if self._ring is not None:  # while an agreement runs: a restart (multi-round, §8.3)
            return self._receive_restart(data, digest, msg)
        pending = self._pending
        if pending is not None and pending.message == data:  # 4: our own echo
            return self._apply_own(pending, digest)

        scheme = self._scheme  # 5: the sender is a member and signed it
        sender = content.sender
        request = scheme.member(sender)
        if request is None:
            raise UnknownMemberError(f"commit is from leaf {sender}, which holds no member")
        self._verify_member(sender, request)
        verify_framed_content(
            self.suite,
            request.identity_key,
            WireFormat.PUBLIC_MESSAGE,
            content,
            self._ctx_bytes,
            msg.signature,
        )
        if sender == self.my_leaf:
            # Our own commits are applied only from the pending state, never re-derived: we
            # deleted the secrets needed to process them as a receiver.
            raise InvalidCommitError(
                "commit is signed by our own leaf but is not the commit we have pending "
                "(an altered echo, or one we already discarded)"
            )
        committer = self._member(sender, request)
        # The confirmation tag is outside the signature (RFC 9420 §6.1): its refusal names no one.
        with signed_by(committer.leaf, committer.display_name, (ConfirmationError,), committer.identity_key):
            return self._apply_commit(data, digest, msg, committer)

    def _apply_commit(self, data: bytes, digest: bytes, msg: CommitMessage, committer: Member) -> Event:
        """Steps 6-11 of §4.2 for a commit whose signature checked: operations and taint rules
        (the scheme), our removal, the staged change, the key schedule and the confirmation tag."""
        scheme, content, sender = self._scheme, msg.content, committer.leaf
        ops = msg.commit.operations
        self._check_operations(sender, ops)  # 6-7
        check_zero_tag(scheme, msg)
        admission = self._admission_after(ops, msg.commit.changes, committer.identity_key)  # 7b
        removed = tuple(self.member(op.leaf) for op in ops if op.type == _REMOVE)
        if any(m.leaf == self.my_leaf for m in removed):  # 8
            return self._removed(committer, admission.reasons.get(self._identity.public_key))

        overrides = {op.leaf: scheme.member(op.leaf) for op in ops if op.type in (_ADD, _REMOVE)}
        staged = scheme.stage_commit(EpochInput(self.group_id, self.epoch), sender, ops)  # 9-10
        if staged.commit_secret is None:  # ring: the roster changes now, the epoch when it is done
            scheme.confirm(staged)
            lost = self._pending
            self._pending = None
            if lost is not None:
                self._rebuild = self._rebuild_intent(lost)
            ring = PendingEpoch(
                data,
                content,
                msg.signature,
                committer,
                tuple(self.member(op.leaf) for op in ops if op.type == _ADD),
                removed,
                any(op.type == _UPDATE for op in ops),
                overrides,
                digest,
                own=False,
                admission=admission,
                superseded=lost is not None,
            )
            return self._begin_agreement(ring)
        try:
            assert staged.commit_secret is not None  # a one-round scheme
            ctx, secrets, confirmed, ctx_bytes = self._next_epoch(
                content,
                msg.signature,
                staged.public_hash,
                staged.commit_secret,
                self._extensions_after(admission),
            )
            # 11: the confirmation tag
            verify_confirmation_tag(self.suite, secrets.confirmation_key, confirmed, msg.confirmation_tag)
        except BaseException:
            scheme.rollback(staged)
            raise
        scheme.confirm(staged)
        lost = self._pending
        self._pending = None
        added = tuple(self.member(op.leaf) for op in ops if op.type == _ADD)
        updated = any(op.type == _UPDATE for op in ops)
        interim = interim_transcript_hash(self.suite, confirmed, msg.confirmation_tag)
        self._enter_epoch(ctx, secrets, interim, overrides, digest, admission.state, ctx_bytes)
        if lost is not None:
            # Another commit won the epoch ours was built on: what is left of ours is rebuilt
            # on the new epoch by the next data_to_send().
            self._rebuild = self._rebuild_intent(lost)
        return EpochChanged(
            ctx.epoch,
            committer,
            added,
            removed,
            updated,
            secrets.epoch_authenticator,
            superseded_own_commit=lost is not None,
            removal_reasons=admission.reasons,
            admitted_by_invite=admission.admitted,
            invites_created=admission.created,
            invites_revoked=admission.revoked,
        )


def check_zero_tag(scheme: KeyAgreementScheme, msg: CommitMessage) -> None:
    """A multi-round commit's tag is all zero (its epoch is confirmed in the ring's round 3). The
    tag is outside the signature, so a changed one was changed on the way: refused, or the run
    would be bound to bytes nobody else holds."""
    if scheme.multi_round and any(msg.confirmation_tag):
        raise InvalidCommitError("ring commit with a non-zero confirmation tag: altered on the way")
