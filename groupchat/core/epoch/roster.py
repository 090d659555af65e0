"""A join's roster check, deferred: read the group at once, verify every member's request after.

``Group.join`` checks everything a welcome says, including the n join requests of its members
(RFC 9420 §12.4.3.1): n Ed25519 verifications, most of a large join. With
``verify_roster=False`` it checks everything but those (the welcome's HPKE open, the tree against
its signed hash, the signer's request and signature, our path and the confirmation tag) and
enters the CHECKING phase. A checking joiner reads: the sender of each message or commit is
verified before it is used (``Admission._verify_member``), so a ghost the welcome lists (someone's
identity key under a request they never signed) can neither speak nor be mistaken for a sender.
It sends and commits nothing until the rest of the roster is verified: until then the members it
would be talking to are only the welcome signer's claim.

The check is a :class:`RosterCheck`, pure data with no reference to the group, so the caller can
run it on a worker thread while the group goes on reading on its own; :meth:`~RosterChecking.roster_verified`
then applies the result. A forged leaf makes :meth:`RosterCheck.run` raise the
:class:`~groupchat.core.errors.ForgedMemberError` naming the welcome's signer: the group stays
checking for good (it can never send), and the caller should leave it and ask to join again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..errors import UsageError
from ..identity import JoinRequest
from ..suite import CipherSuite
from .admission import verify_listed_members
from .machine import Input, check_transition
from .processing import Processing

__all__ = ["RosterCheck", "RosterChecking", "RosterVerified"]

_TOKEN: Final = object()  # only RosterCheck.run makes a RosterVerified


@dataclass(frozen=True, slots=True)
class RosterCheck:
    """The join requests a deferred join has yet to verify: immutable, safe on another thread."""

    suite: CipherSuite
    group_id: bytes
    signer: tuple[int, JoinRequest]  # the welcome's signer, named if a leaf is forged
    leaves: tuple[tuple[int, JoinRequest], ...]

    def run(self) -> RosterVerified:
        """Verify every listed request; raise the ForgedMemberError of the first that fails."""
        verify_listed_members(self.suite, self.group_id, self.leaves, self.signer)
        return RosterVerified(self, _TOKEN)


@dataclass(frozen=True, slots=True)
class RosterVerified:
    """Proof that every request of :attr:`check` verified (made only by :meth:`RosterCheck.run`)."""

    check: RosterCheck
    token: object

    def __post_init__(self) -> None:
        if self.token is not _TOKEN:
            raise UsageError("a RosterVerified comes only from RosterCheck.run()")


class RosterChecking(Processing):
    """The deferred roster check of a joiner (see the module docstring)."""

    @property
    def checking_roster(self) -> bool:
        """True while some members our welcome listed are unverified: we read, but cannot send."""
        return bool(self._unchecked)

    @property
    def unchecked_leaves(self) -> frozenset[int]:
        """The leaves whose join requests are not verified yet (shown as the welcome's claim)."""
        return frozenset(self._unchecked)

    def roster_check(self) -> RosterCheck | None:
        """The work left to leave CHECKING, or ``None`` if there is none; run it anywhere."""
        scheme = self._scheme
        if not self._unchecked:
            return None
        signer = self._roster_signer
        assert signer is not None, "Group.join sets the unchecked leaves and their signer together"
        left = tuple((leaf, r) for leaf, r in self._unchecked.items() if not scheme.is_verified(leaf))
        return RosterCheck(self.suite, self.group_id, signer, left)

    def roster_verified(self, result: RosterVerified) -> None:
        """Apply a finished check: its leaves are verified; with none left we may send.

        Stale results are fine: a leaf removed (or refilled by a verified Add) since the check
        was made is skipped, and a result for a group with nothing left to check changes nothing.
        """
        self._require(Input.CHECK_ROSTER)
        check = result.check
        if check.group_id != self.group_id or check.suite.id != self.suite.id:
            raise UsageError("this roster check was made for another group: it verifies nothing here")
        before = self.phase
        scheme = self._scheme
        for leaf, request in check.leaves:
            if scheme.member(leaf) == request:
                scheme.mark_verified(leaf)
        self._unchecked = {
            leaf: r
            for leaf, r in self._unchecked.items()
            if scheme.member(leaf) == r and not scheme.is_verified(leaf)
        }
        if not self._unchecked:
            self._roster_signer = None
        check_transition(before, Input.CHECK_ROSTER, self.phase)

    def verify_roster(self) -> None:
        """Run and apply the roster check here (raises its ForgedMemberError); a no-op if none."""
        check = self.roster_check()
        if check is not None:
            self.roster_verified(check.run())
