"""Admission checks: who may enter the group and whose signed material we rely on.

Every Add's join request (signed, for this group, unexpired, not valid too long, identity and init
key new, init key never used by a departed member), the structural and scheme rules of a received
commit (:meth:`Admission._check_operations`), the once-per-leaf signature backstop, and a joiner's
check of every leaf of a Welcome (:func:`verify_listed_member`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from ..commit import Operation, check_operation_order
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
from ..suite import CipherSuite
from .state import EpochState


class Admission(EpochState):
    """The checks every member runs before it relies on a join request or a commit's operations."""

    def _check_adds(self, requests: Sequence[JoinRequest], skew: float = 0.0) -> None:
        """Every member runs these checks on every Add: a signed request, for us, unexpired, new.

        ``skew`` is 0 for the committer (strict) and ``config.clock_skew`` for receivers, so
        members with slightly different clocks never disagree about a commit.
        """
        seen_identities: set[bytes] = set()
        seen_init: set[bytes] = set()
        now = self.config.wall_clock()
        for req in requests:
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
            leaf = self._scheme.leaf_of_identity(req.identity_key)
            if leaf is not None or req.identity_key in seen_identities:
                where = f"at leaf {leaf}" if leaf is not None else "twice in this commit"
                raise DuplicateKeyError(
                    f"{req.display_name!r} ({req.fingerprint}) is already a member {where}"
                )
            if self._scheme.has_init_key(req.init_key) or req.init_key in seen_init:
                raise DuplicateKeyError(f"join request from {req.display_name!r} reuses an init key")
            if req.init_key in self._used_init_keys:
                raise DuplicateKeyError(
                    f"{who} reuses the init key of a member who already joined and left: an old "
                    "request replayed; ask them for a new one"
                )
            seen_identities.add(req.identity_key)
            seen_init.add(req.init_key)

    def _check_operations(self, sender: int, ops: Sequence[Operation]) -> None:
        """Every rule a received commit must meet before anything is derived from it."""
        check_operation_order(ops)
        self._scheme.check_commit(sender, ops)
        self._check_adds([op.request for op in ops if op.request is not None], self.config.clock_skew)

    def _verify_member(self, leaf: int, request: JoinRequest) -> None:
        """Backstop: check a leaf's join request signature if we have not yet (then never again).

        Every leaf is already verified when we rely on it (Group.join checks the whole tree,
        _check_adds every Add), so this is a no-op; it is the one lazy check left, and it is safe
        because it only ever runs before we act on the leaf.
        """
        if not self._scheme.is_verified(leaf):
            request.verify(self.suite)
            self._scheme.mark_verified(leaf)


@contextmanager
def signed_by(leaf: int, name: str, outside: tuple[type[RemoteError], ...] = ()) -> Iterator[None]:
    """Name the signer on every refusal inside: the material's signature by ``leaf`` was checked.

    ``outside`` lists refusals about parts the signature does not cover (a commit's confirmation
    tag): anyone on the path could have altered those, so they name no one.
    """
    try:
        yield
    except RemoteError as exc:
        if not isinstance(exc, outside):
            exc.signed_by(leaf, name)
        raise


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
