"""Events the protocol core returns from :meth:`groupchat.core.group.Group.receive` (and ``tick``).

They are frozen dataclasses, like h11's events: the session and the TUI pattern-match on them.
None of them carries key material.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from .admission import Invite, RemovalReason
from .identity import fingerprint

__all__ = [
    "EpochChanged",
    "Event",
    "FailureKind",
    "Member",
    "MessageEchoed",
    "MessageReceived",
    "RekeyFailed",
    "RekeyProgress",
    "RekeyTimedOut",
    "RemovedFromGroup",
]


@dataclass(frozen=True, slots=True)
class Member:
    """A member as shown to users: leaf position, name and long-term identity key."""

    leaf: int
    display_name: str
    identity_key: bytes = field(repr=False)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.identity_key)


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """An application message from another member, authenticated by its signature."""

    sender: Member
    plaintext: bytes
    epoch: int
    generation: int
    authenticated_data: bytes = b""


@dataclass(frozen=True, slots=True)
class MessageEchoed:
    """The relay delivered one of our own application messages back to us (delivery receipt).

    ``message_id`` is the SHA-256 of the exact bytes :meth:`Group.encrypt` returned."""

    epoch: int
    message_id: bytes


@dataclass(frozen=True, slots=True)
class EpochChanged:
    """A commit was applied: the group has a new epoch, key and (maybe) roster.

    ``own`` is true when the commit was ours and the relay's echo confirmed it won the epoch.
    ``superseded_own_commit`` is true when someone else's commit won over one we had pending;
    what is left of it comes out of ``Group.data_to_send()`` rebuilt on the new epoch. The Welcome
    of our commit is there too, addressed to each joiner (:class:`~groupchat.core.outbox.Outbound`).

    What the signed commit said about admission: ``removal_reasons`` (by removed identity key;
    a removal without a reason is absent), ``admitted_by_invite`` (added identity key -> the
    invite key it used; an added member absent from it was approved by the committer),
    ``invites_created`` and ``invites_revoked`` (invite keys).
    """

    epoch: int
    committer: Member
    added: tuple[Member, ...]
    removed: tuple[Member, ...]
    updated: bool
    epoch_authenticator: bytes = field(repr=False)
    own: bool = False
    superseded_own_commit: bool = False
    removal_reasons: Mapping[bytes, RemovalReason] = field(default_factory=dict)
    admitted_by_invite: Mapping[bytes, bytes] = field(default_factory=dict)
    invites_created: tuple[Invite, ...] = ()
    invites_revoked: tuple[bytes, ...] = ()
    # Joiners of a multi-round commit that a restart dropped before they reached an epoch (their
    # reasons are in ``removal_reasons``): never members, they may simply ask again.
    not_admitted: tuple[Member, ...] = ()


@dataclass(frozen=True, slots=True)
class RemovedFromGroup:
    """A valid, signed commit removed us. All our secrets for the group are deleted.

    ``reason`` is the one the commit gave (``None`` if it gave none).
    """

    epoch: int
    by: Member
    reason: RemovalReason | None = None


@dataclass(frozen=True, slots=True)
class RekeyProgress:
    """A multi-round key agreement (the ring) for ``epoch`` is under way; the epoch has not changed.

    ``waiting_for`` lists the members whose message of the current round (1 to 3, or 4 while an
    attempt whose values did not add up names the liar) we still need. Messages keep flowing in
    the old epoch, unless the change removes someone (``Group.holding_messages``).
    """

    epoch: int
    waiting_for: tuple[Member, ...]
    # Set when this step put a later attempt in force at another member's signed message: who
    # started it, and whether that came before our own deadline for the attempt it replaced (a
    # member that keeps doing so stalls the ring as surely as one that withholds: it is named).
    retried_by: Member | None = None
    early: bool = False


@dataclass(frozen=True, slots=True)
class RekeyTimedOut:
    """A round of the multi-round agreement for ``epoch`` missed its deadline (from ``Group.tick``).

    ``missing`` names the members whose message of round ``round`` of ``attempt`` never came; our
    proposal of attempt ``attempt + 1`` (fresh keys) is in ``Group.data_to_send()``. It is in force
    from where the relay orders its first message; until then late messages of this one still count.
    """

    epoch: int
    round: int
    attempt: int
    missing: tuple[Member, ...]
    retry: bool = True  # False only at the last attempt number: a restart commit is the way on


class FailureKind(enum.Enum):
    """Why an attempt of the multi-round agreement can never complete (docs/protocol.md §8.2)."""

    ROUND1_DIVERGED = "round 1 diverged"  # a member signed round 2 over another round 1
    ROUND2_DIVERGED = "round 2 diverged"  # a member signed its confirmation over another round 2
    VALUES_INCONSISTENT = "values inconsistent"  # the round-2 values do not XOR to zero
    CONFIRMATION_MISMATCH = "confirmation mismatch"  # same rounds, another epoch state
    WRONG_VALUE = "wrong value"  # after VALUES_INCONSISTENT: the revealed key names the liar


@dataclass(frozen=True, slots=True)
class RekeyFailed:
    """Attempt ``attempt`` of the agreement for ``epoch`` can never complete here; we will not enter
    that epoch from it. The signed message that showed it was taken (a replacement would be
    equivocation), so this is an outcome, not a refusal: its deadline proposes the next attempt.

    ``signer`` is the member whose signed message showed the divergence (``None`` when nobody can
    be named: values that do not add up). It is not proof that the signer lied: an equivocating
    member or relay may have shown it, or us, another round. ``detail`` says what differed.
    """

    epoch: int
    attempt: int
    kind: FailureKind
    signer: Member | None
    detail: str


Event = (
    MessageReceived
    | MessageEchoed
    | EpochChanged
    | RemovedFromGroup
    | RekeyProgress
    | RekeyFailed
)
