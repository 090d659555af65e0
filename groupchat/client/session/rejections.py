"""The rejection table of docs/session.md ("Forks and rejections"): which core error, on which
kind of message, leads to which outcome. Every rejection has its own outcome; none is silent.

:func:`commit_rejection`, :func:`ring_rejection` and :func:`message_rejection` are pure: they
read the error and a few facts (epochs, whether the commit was one of ours) and return a
:class:`Rejection` that the machine carries out. The core has already rejected the input and
changed nothing; what is decided here is only what we show and whether it hints that we fell
behind. Nothing here drops the group: a refused input is either unsigned or not verifiable by us,
so it may only prompt a check (:mod:`.behind`), never a reset.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ...core.errors import (
    ConfirmationError,
    DecodeError,
    DecryptionError,
    EpochError,
    GenerationError,
    GroupChatError,
    InconsistentPathError,
    LateRestartError,
    RemoteError,
    RemovedSenderError,
    ReplayError,
    SignatureError,
    TaintRuleError,
    UnknownMemberError,
    WrongGroupError,
)
from ...core.events import Member
from ...core.schemes.ring_errors import AttemptFailedError, WrongAttemptError
from .. import wording, wording_ring
from ..notices import UnreadableReason

__all__ = [
    "Outcome",
    "Rejection",
    "commit_rejection",
    "message_rejection",
    "ring_rejection",
    "welcome_unopened",
]


class Outcome(enum.Enum):
    IGNORE = "ignore"  # normal under the relay's order: a debug log line
    WARN = "warn"  # a timeline warning
    BEHIND = "behind"  # we may have fallen behind or diverged: a hint for behind.py; the group is kept
    PLACEHOLDER = "placeholder"  # an unreadable message, shown as such
    SPLIT = "split"  # a signed commit at our epoch we cannot follow: cut off, ask to be re-added


@dataclass(frozen=True, slots=True)
class Rejection:
    outcome: Outcome
    text: str = ""  # the log line (IGNORE) or the sentence shown (WARN, REJOIN)
    reason: UnreadableReason | None = None  # PLACEHOLDER: which
    sender: str | None = None
    detail: str = ""
    behind_epoch: int | None = None  # BEHIND, or a placeholder that also hints it: the epoch claimed
    signer: int | None = None  # SPLIT: the leaf of the committer who signed what we cannot follow


def commit_rejection(
    exc: GroupChatError,
    ours: int,
    superseded_own: bool,
    ring_running: bool,
    label: Callable[[Member], str] | None = None,
) -> Rejection:
    """A commit (PublicMessage) the core refused (``exc.epoch``: the commit's); ``ours`` our epoch.

    A refusal after the committer's signature checked names the committer (``label``: how the
    session shows a member, so a look-alike name carries its fingerprint)."""
    if isinstance(exc, ReplayError):
        return Rejection(Outcome.IGNORE, f"replayed commit ignored: {exc}")
    if isinstance(exc, LateRestartError):
        # Signed as a restart of the ring that made our epoch: its signer went on without us.
        restarter = _signer(exc, label) or exc.signer_name
        return Rejection(Outcome.WARN, wording_ring.late_restart(restarter, ours))
    if isinstance(exc, EpochError):
        e = -1 if exc.epoch is None else exc.epoch
        if superseded_own or 0 <= e < ours:
            return Rejection(Outcome.IGNORE, f"commit for epoch {e} lost the race to the one we applied")
        if ring_running and e == ours:
            # Another commit won this epoch and its ring is running: this one lost the race.
            return Rejection(
                Outcome.IGNORE, f"commit for epoch {e} lost the race to the running ring's commit"
            )
        return Rejection(Outcome.BEHIND, wording.missed_commit(e, ours), behind_epoch=e)
    who = _signer(exc, label)
    if isinstance(exc, InconsistentPathError) and exc.signer is not None:
        # Signed by a member over our epoch's context (the relay cannot make this up; the core
        # checked the epoch and the signature before the path): in a DH tree the members
        # above the node where the path lies accept it, so the group moves on without us (§7).
        by = who or exc.signer_name
        text = wording.cut_off(by, exc)
        return Rejection(Outcome.SPLIT, text, sender=by, behind_epoch=ours + 1, signer=exc.signer)
    if isinstance(exc, InconsistentPathError | ConfirmationError):
        # A confirmation tag is not covered by the signature: the relay can flip it, so this is no
        # evidence that we diverged. If the others applied the commit, their traffic will say so.
        return Rejection(Outcome.BEHIND, wording.cannot_follow_change(exc), behind_epoch=ours + 1)
    if who is not None:
        problem = wording.BROKEN_REKEY if isinstance(exc, TaintRuleError) else wording.BROKEN_CHANGE
        return Rejection(Outcome.WARN, wording.signed_change_refused(who, problem, str(exc)))
    return Rejection(Outcome.WARN, wording.invalid_change(exc))


def welcome_unopened(refusals: Sequence[GroupChatError]) -> str:
    """Why the next join request is fresh after no held request opened a welcome: a refusal whose
    signature checked names the welcome's signer (name and fingerprint: we hold no roster yet)."""
    for exc in refusals:
        if isinstance(exc, RemoteError) and exc.signer is not None and exc.signer_key is not None:
            return wording.welcome_refused(
                exc.signer_name, exc.signer_fingerprint, wording.BROKEN_WELCOME, str(exc)
            )
    return wording.WELCOME_UNOPENED


def _signer(exc: GroupChatError, label: Callable[[Member], str] | None) -> str | None:
    """The label of the member who signed the refused material, if the core names one."""
    if not isinstance(exc, RemoteError) or exc.signer is None:
        return None
    if label is None or exc.signer_key is None:
        return exc.signer_name or None
    return label(Member(exc.signer, exc.signer_name, exc.signer_key))


def ring_rejection(exc: GroupChatError, label: Callable[[Member], str] | None = None) -> Rejection:
    """A ring round we could not take. Stale ones (a finished or abandoned attempt, our own echo
    twice, a second signature of one content) are normal under the relay's order; anything else
    was refused and changed nothing (a message that shows the attempt cannot complete is not
    refused: the core reports it as RekeyFailed). A signed one that failed a check names its sender."""
    if isinstance(exc, ReplayError | WrongAttemptError | AttemptFailedError | EpochError):
        return Rejection(Outcome.IGNORE, f"stale ring message ignored: {exc}")
    who = _signer(exc, label)
    if who is not None:
        return Rejection(Outcome.WARN, wording.signed_ring_message_refused(who, str(exc)))
    return Rejection(Outcome.WARN, wording.invalid_ring_message(exc))


def message_rejection(exc: GroupChatError, ours: int, joined: int, code: str) -> Rejection:
    """An application message we cannot read (``exc.epoch``: its epoch): which placeholder, and
    whether it hints that we are behind (a later epoch: its header is unsigned, so only a hint)."""
    epoch = exc.epoch if isinstance(exc, RemoteError) else None

    def shown(reason: UnreadableReason, detail: str = "", sender: str | None = None) -> Rejection:
        return Rejection(Outcome.PLACEHOLDER, reason=reason, sender=sender, detail=detail)

    if isinstance(exc, EpochError) and epoch is not None:
        if epoch < joined:
            return shown(UnreadableReason.BEFORE_JOIN)
        if epoch < ours:
            return shown(UnreadableReason.EXPIRED_EPOCH, wording.sent_at_epoch(epoch))
        return Rejection(
            Outcome.PLACEHOLDER,
            reason=UnreadableReason.POSSIBLE_FORK,
            detail=wording.fork_detail(epoch, ours),
            behind_epoch=epoch,
        )
    if isinstance(exc, DecryptionError) and epoch == ours:
        # Our epoch's number, not its keys: a fork, or bytes the relay made up. A hint either way.
        return Rejection(
            Outcome.PLACEHOLDER,
            reason=UnreadableReason.POSSIBLE_FORK,
            detail=wording.epoch_code_hint(ours, code),
            behind_epoch=ours,
        )
    if isinstance(exc, RemovedSenderError):
        # The core checked the signature first, so the name is the sender's own.
        return shown(UnreadableReason.AFTER_REMOVAL, wording.at_epoch(epoch), exc.name or None)
    if isinstance(exc, UnknownMemberError | WrongGroupError):
        return shown(UnreadableReason.UNKNOWN_SENDER, str(exc))
    if isinstance(exc, ReplayError):
        # Its ratchet key is used up: the relay (or a peer) sent a copy again; the original was
        # shown once, or its key was let go as too old (max_skipped).
        return shown(UnreadableReason.REPLAYED, str(exc))
    if isinstance(exc, SignatureError | DecryptionError | GenerationError | DecodeError):
        return shown(UnreadableReason.TAMPERED, str(exc))
    return shown(UnreadableReason.TAMPERED, f"{type(exc).__name__}: {exc}")
