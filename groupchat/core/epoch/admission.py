"""Admission checks: who may enter the group and whose signed material we rely on.

The agreed admission state (``core/admission.py``): :meth:`Admission.classify_request` (how a
verified join request may come in), :meth:`Admission._admission_after` (a commit's changes,
checked and applied the same way by every member). Every Add's join request (signed, for this
group, unexpired, not valid too long, identity and init key new, init key not one of a departed
member in the agreed state), the committer's prune of that list (:meth:`Admission._own_prune`),
the structural and scheme rules of a received commit
(:meth:`Admission._check_operations`), the once-per-leaf signature backstop, and a joiner's check
of every leaf of a Welcome (:func:`verify_listed_member`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from types import TracebackType
from typing import Final

from ..admission import (
    Admissibility,
    AdmissionChange,
    AdmissionOutcome,
    AdmissionState,
    Classification,
    apply_changes,
)
from ..commit import Operation, OpType, check_operation_order
from ..errors import (
    DuplicateKeyError,
    ExpiredJoinRequestError,
    ForgedMemberError,
    InvalidPublicKeyError,
    RemoteError,
    SignatureError,
    WrongGroupError,
)
from ..identity import MAX_JOIN_REQUEST_LIFETIME, JoinRequest
from ..invite import verify_proof
from ..suite import CipherSuite
from .state import EpochState
from .wire import with_admission

# OpType's members as module constants, compared on every received commit: reading an Enum
# member through its class costs 0.05-0.1 µs in Python 3.11 (EnumType's attribute hooks), a
# module constant a few ns (issue 16).
_REMOVE: Final = OpType.REMOVE


class Admission(EpochState):
    """The checks every member runs before it relies on a join request or a commit's operations."""

    @property
    def admission(self) -> AdmissionState:
        """The admission state every member agrees on (bound into the key schedule); immutable."""
        return self._admission

    def classify_request(
        self, request: JoinRequest, proof: bytes | None, invite_key: bytes | None, now: float
    ) -> Classification:
        """How ``request`` may come in, from the agreed state only (so every member decides alike).

        First the request itself: for this group and suite, signed by its identity, valid at
        ``now`` (Unix seconds) and not for too long; a forged or expired one raises its
        :class:`RemoteError` before anything is classified. Then, in this order: ALREADY_IN (its
        init key is in the roster), REJOINING / STALE (the identity is a member: a strictly newer
        request means it lost its state, an older or equal one is a replay; an init key of a
        departed member is STALE too), RETURNING / STALE (the returning list), INVITED (``invite_key``
        live, not expired at ``now``, and ``proof`` valid: a bad proof raises
        :class:`~groupchat.core.errors.InvalidInviteError`), OPEN, NEEDS_APPROVAL. An offered invite
        that is not usable leaves the reason in ``invite_problem``.
        """
        self._check_request(request, now, 0.0)
        scheme = self._scheme
        if scheme.has_init_key(request.init_key):
            return Classification(Admissibility.ALREADY_IN, leaf=self._leaf_of_init(request.init_key))
        leaf = scheme.leaf_of_identity(request.identity_key)
        if leaf is not None:
            current = scheme.member(leaf)
            assert current is not None
            newer = request.not_after > current.not_after
            return Classification(Admissibility.REJOINING if newer else Admissibility.STALE, leaf=leaf)
        state = self._admission
        if state.init_key_used(self.suite, request.init_key):
            return Classification(Admissibility.STALE)
        after = state.returning_after(request.identity_key)
        if after is not None:
            return Classification(
                Admissibility.RETURNING if request.not_after > after else Admissibility.STALE
            )
        problem = ""
        if invite_key is not None:
            invite = state.invite(invite_key)
            if invite is None:
                problem = "the invite is not live (never committed, revoked or used up)"
            elif invite.expired(now):
                problem = f"the invite expired at {_utc(invite.not_after)}"
            else:
                verify_proof(invite_key, self.group_id, request, proof or b"", self.suite)
                return Classification(Admissibility.INVITED, invite=invite)
        if state.open:
            return Classification(Admissibility.OPEN, invite_problem=problem)
        return Classification(Admissibility.NEEDS_APPROVAL, invite_problem=problem)

    def _leaf_of_init(self, init_key: bytes) -> int | None:
        return next((leaf for leaf, r in self._scheme.members() if r.init_key == init_key), None)

    def _admission_after(
        self, ops: Sequence[Operation], changes: Sequence[AdmissionChange], committer: bytes
    ) -> AdmissionOutcome:
        """The admission state a commit with ``ops`` and ``changes`` leads to; raise if inconsistent."""
        state = self._admission
        if not changes and not state.returning and not any(op.type == _REMOVE for op in ops):
            return AdmissionOutcome(state)  # the hot path: no extension to read or write
        scheme = self._scheme
        added = {op.leaf: op.request for op in ops if op.request is not None}
        removed = {
            op.leaf: req for op in ops if op.type == _REMOVE and (req := scheme.member(op.leaf)) is not None
        }
        return apply_changes(
            state,
            changes,
            added=added,
            removed=removed,
            committer=committer,
            group_id=self.group_id,
            suite=self.suite,
        )

    def _own_prune(self, departing: Iterable[JoinRequest]) -> int | None:
        """Our commit's prune of the used init keys, or ``None``: judged by our wall clock, it drops
        the requests that every member whose clock is within ``clock_skew`` of ours refuses anyway
        (expired more than ``clock_skew`` ago), and is written only when it drops one."""
        before = max(0, int(self.config.wall_clock() - self.config.clock_skew))
        used = self._admission.used_init_keys
        expired = any(e.not_after < before for e in used) or any(r.not_after < before for r in departing)
        return before if expired else None

    def _extensions_after(self, outcome: AdmissionOutcome) -> bytes:
        """The next epoch's GroupContext extensions: ours, with the admission state ``outcome`` leads to."""
        if outcome.state is self._admission:
            return self._ctx.extensions
        return with_admission(self._ctx.extensions, outcome.state)

    def _check_request(self, req: JoinRequest, now: float, skew: float) -> None:
        """A join request is for us, signed by its identity, and valid at ``now`` (give or take ``skew``)."""
        if req.group_id != self.group_id:
            raise WrongGroupError(f"join request from {req.display_name!r} is for another group")
        req.verify(self.suite)
        who = f"join request from {req.display_name!r} ({req.fingerprint})"
        if now > req.not_after + skew:
            raise ExpiredJoinRequestError(
                f"{who} expired {_ago(now - req.not_after)} ago (not after {_utc(req.not_after)}); "
                "ask them for a new one"
            )
        if req.not_after - now > MAX_JOIN_REQUEST_LIFETIME + skew:
            raise ExpiredJoinRequestError(
                f"{who} claims to stay valid until {_utc(req.not_after)}, longer than the "
                f"{MAX_JOIN_REQUEST_LIFETIME // 86400} days allowed; ask them for a new one"
            )

    def _check_adds(
        self, requests: Sequence[JoinRequest], skew: float = 0.0, removed: AbstractSet[int] = frozenset()
    ) -> None:
        """Every member runs these checks on every Add: a signed request, for us, unexpired, new.

        ``skew`` is 0 for the committer (strict) and ``config.clock_skew`` for receivers, so
        members with slightly different clocks never disagree about a commit. An identity may be
        added while it is a member only if the same commit removes its leaf (``removed``): a member
        who lost its state, replaced in one step.
        """
        seen_identities: set[bytes] = set()
        seen_init: set[bytes] = set()
        now = self.config.wall_clock()
        for req in requests:
            self._check_request(req, now, skew)
            leaf = self._scheme.leaf_of_identity(req.identity_key)
            if leaf in removed:
                leaf = None
            if leaf is not None or req.identity_key in seen_identities:
                where = f"at leaf {leaf}" if leaf is not None else "twice in this commit"
                raise DuplicateKeyError(
                    f"{req.display_name!r} ({req.fingerprint}) is already a member {where}"
                )
            if self._scheme.has_init_key(req.init_key) or req.init_key in seen_init:
                raise DuplicateKeyError(f"join request from {req.display_name!r} reuses an init key")
            if self._admission.init_key_used(self.suite, req.init_key):
                raise DuplicateKeyError(
                    f"join request from {req.display_name!r} ({req.fingerprint}) reuses the init key of a "
                    "member who already joined and left: an old request replayed; ask them for a new one"
                )
            seen_identities.add(req.identity_key)
            seen_init.add(req.init_key)

    def _check_operations(self, sender: int, ops: Sequence[Operation]) -> None:
        """Every rule a received commit must meet before anything is derived from it."""
        check_operation_order(ops)
        self._scheme.check_commit(sender, ops)
        removed = {op.leaf for op in ops if op.type == _REMOVE}
        adds = [op.request for op in ops if op.request is not None]
        self._check_adds(adds, self.config.clock_skew, removed)

    def _verify_member(self, leaf: int, request: JoinRequest) -> None:
        """Backstop: check a leaf's join request signature if we have not yet (then never again).

        Every leaf is already verified when we rely on it (Group.join checks the whole tree,
        _check_adds every Add), so this is a no-op, except for a joiner that deferred its roster
        check (:mod:`.roster`): the sender of what it reads meanwhile is verified here, before
        anything of theirs is used.
        """
        if self._scheme.is_verified(leaf):
            return
        signer = self._roster_signer
        if signer is not None and self._unchecked.get(leaf) == request:
            # Listed by the welcome of a join that deferred its roster check: a forgery is the
            # welcome signer's, and refuses this input like the whole check would.
            verify_listed_members(self.suite, self.group_id, [(leaf, request)], signer)
        else:
            request.verify(self.suite)
        self._scheme.mark_verified(leaf)


def signed_by(
    leaf: int,
    name: str,
    outside: tuple[type[RemoteError], ...] = (),
    identity_key: bytes | None = None,
) -> AbstractContextManager[None]:
    """Name the signer on every refusal inside: the material's signature by ``leaf`` was checked.

    ``identity_key`` (the signer's) lets the error show its fingerprint. ``outside`` lists
    refusals about parts the signature does not cover (a commit's confirmation tag): anyone on
    the path could have altered those, so they name no one.
    """
    return _SignedBy(leaf, name, outside, identity_key)


class _SignedBy(AbstractContextManager[None]):
    """:func:`signed_by`'s context: a plain class, not a generator (it wraps every commit applied)."""

    __slots__ = ("identity_key", "leaf", "name", "outside")

    def __init__(
        self, leaf: int, name: str, outside: tuple[type[RemoteError], ...], identity_key: bytes | None
    ) -> None:
        self.leaf, self.name, self.outside, self.identity_key = leaf, name, outside, identity_key

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(exc, RemoteError) and not isinstance(exc, self.outside):
            exc.signed_by(self.leaf, self.name, self.identity_key)
        # None: the exception, if any, goes on as it came


def verify_listed_members(
    suite: CipherSuite,
    group_id: bytes,
    leaves: Iterable[tuple[int, JoinRequest]],
    signer: tuple[int, JoinRequest],
) -> None:
    """Every other leaf of a welcome whose signer (leaf, request) checked: a forgery is the
    signer's, so the ForgedMemberError of the first one that fails names the signer."""
    with signed_by(signer[0], signer[1].display_name, identity_key=signer[1].identity_key):
        for leaf, request in leaves:
            verify_listed_member(suite, group_id, leaf, request, signer)


def verify_listed_member(
    suite: CipherSuite,
    group_id: bytes,
    leaf: int,
    request: JoinRequest,
    signer: tuple[int, JoinRequest] | None,
) -> None:
    """A joiner's check of one leaf of the welcome's tree: signed by its identity, for this group."""
    problem = None
    if request.group_id != group_id or request.cipher_suite != suite.id:
        problem = "with a join request for another group or cipher suite"
    else:
        try:
            request.verify(suite)
        except (SignatureError, InvalidPublicKeyError):
            problem = "but that join request's signature does not verify: they never asked to join"
    if problem is not None:  # the message is built only on failure: this runs n times per join
        by = "" if signer is None else f" (the tree was sent by {signer[1].display_name!r}, leaf {signer[0]})"
        raise ForgedMemberError(
            f"welcome lists {request.display_name!r} ({request.fingerprint}) at leaf {leaf}, {problem}{by}; "
            "refusing the welcome",
            leaf,
        )


def _utc(seconds: int) -> str:
    """A Unix time as an ISO-8601 UTC string, for error messages (any uint64 is accepted)."""
    try:
        return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return f"Unix time {seconds}"


def _ago(seconds: float) -> str:
    """A positive duration in words: '3 min', '2 h', '5 days'."""
    if seconds < 120:
        return f"{int(seconds)} s"
    if seconds < 7200:
        return f"{int(seconds // 60)} min"
    if seconds < 172800:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} days"
