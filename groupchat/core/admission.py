"""The agreed admission state (who may come in) and the commit changes that move it.

Every member holds the same :class:`AdmissionState`: it rides in the GroupContext extension
:data:`ADMISSION_EXTENSION` (absent while it is the default: invite-only, no invites, nobody
returning), and the init keys of departed members in :data:`USED_INIT_KEYS_EXTENSION` (absent
while none), so it is bound into the key schedule and a Welcome carries it. Only a signed commit
changes it, through its :class:`AdmissionChange` entries, applied by :func:`apply_changes` the
same way by every member (docs/protocol.md "Admission"). The session's admission policy reads it
through ``Group.admission`` and ``Group.classify_request``.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Final

from .codec import Reader, Writer, opaque
from .errors import (
    AdmissionChangeError,
    ConfigError,
    DuplicateKeyError,
    InvalidInviteError,
    InvalidValueError,
    UsageError,
)
from .identity import JoinRequest
from .invite import verify_proof
from .suite import CipherSuite

__all__ = [
    "ADMISSION_EXTENSION",
    "DEFAULT_ADMISSION",
    "MAX_CHANGES",
    "MAX_INVITES",
    "MAX_LABEL",
    "MAX_RETURNING",
    "MAX_USED_INIT_KEYS",
    "USED_INIT_KEYS_EXTENSION",
    "Admissibility",
    "AdmissionChange",
    "AdmissionOutcome",
    "AdmissionState",
    "Admit",
    "ChangeType",
    "Classification",
    "Invite",
    "NewInvite",
    "RemovalCode",
    "RemovalReason",
    "Returning",
    "UsedInitKey",
    "apply_changes",
    "init_key_ref",
    "used_after",
]

ADMISSION_EXTENSION: Final = 0xF0C6  # GroupContext extension (RFC 9420 §13 private-use range)
MAX_INVITES: Final = 64
MAX_RETURNING: Final = 256
# The init keys of departed members (docs/protocol.md §4.5): every member refuses an Add reusing
# one. 24 bytes an entry (a 16-byte reference and the request's not_after), at most 256: 6 KiB.
USED_INIT_KEYS_EXTENSION: Final = 0xF0C7
MAX_USED_INIT_KEYS: Final = 256
_INIT_KEY_REF: Final = 16
_INIT_KEY_REF_LABEL: Final = b"UsedInitKey"
MAX_LABEL: Final = 64  # bytes of UTF-8
MAX_CHANGES: Final = 1 << 16  # entries of one commit (at most one per leaf for admits and reasons)
MAX_CHANGES_BODY: Final = 1 << 20
_MAX_STATE: Final = 1 << 16
_KEY: Final = 32
_U16_MAX: Final = 0xFFFF
_U32_MAX: Final = 0xFFFFFFFF


class RemovalCode(IntEnum):
    """Why a member was removed, as the signed commit says (every member shows the same reason)."""

    LEFT = 1
    KICKED = 2  # by the committer
    OFFLINE = 3  # silent for ``seconds``: may come back without a new invite (the returning list)
    REJOINING = 4  # it lost its state and asked again: its old leaf goes (returning list, as OFFLINE)
    UNRESPONSIVE = 5  # it stalled a ring run for ``seconds`` (a restart)


# Removed for these, a member is listed as returning: its next, newer request needs no invite. A
# rejoining member is re-added in the same commit (a tree) or, removed by a ring restart, which
# may only remove, by the add path once the ring is done.
_COMING_BACK: Final = frozenset({RemovalCode.OFFLINE, RemovalCode.REJOINING})


@dataclass(frozen=True, slots=True)
class RemovalReason:
    """``code`` and, for OFFLINE and UNRESPONSIVE, how many ``seconds`` (0 for the others)."""

    code: RemovalCode
    seconds: int = 0

    def __post_init__(self) -> None:
        if not _reason_ok(self.code, self.seconds):  # a caller's mistake (decoding checks first)
            raise ConfigError(
                f"removal reason {self.code.name.lower()} with {self.seconds} seconds: only offline "
                f"and unresponsive carry 0..{_U32_MAX} seconds, the others 0"
            )


def _reason_ok(code: RemovalCode, seconds: int) -> bool:
    timed = code in (RemovalCode.OFFLINE, RemovalCode.UNRESPONSIVE)
    return 0 <= seconds <= _U32_MAX and (timed or seconds == 0)


@dataclass(frozen=True, slots=True)
class Invite:
    """A live invite: its public key, uses left (>= 1), expiry (Unix seconds, 0 = none), inviter, label."""

    invite_key: bytes
    uses_left: int
    not_after: int
    inviter: bytes  # the identity key of the member who committed it
    label: str = ""

    def expired(self, now: float) -> bool:
        return self.not_after != 0 and now > self.not_after

    def write(self, w: Writer) -> None:
        w.opaque(self.invite_key).u16(self.uses_left).u64(self.not_after).opaque(self.inviter)
        w.opaque(self.label.encode())

    @classmethod
    def read(cls, r: Reader) -> Invite:
        key = r.opaque_exact("invite_key", _KEY)
        uses = r.u16("uses_left")
        if uses == 0:
            raise InvalidValueError("a live invite with no uses left")
        not_after = r.u64("not_after")
        inviter = r.opaque_exact("inviter", _KEY)
        return cls(key, uses, not_after, inviter, _read_label(r))


@dataclass(frozen=True, slots=True)
class Returning:
    """A member removed for being offline: it may come back with a request newer than ``not_after``."""

    identity_key: bytes
    not_after: int  # the not_after of the join request of the removed leaf


@dataclass(frozen=True, slots=True)
class UsedInitKey:
    """A departed member's init key (its :func:`init_key_ref`) and its join request's not_after."""

    ref: bytes
    not_after: int


def init_key_ref(suite: CipherSuite, init_key: bytes) -> bytes:
    """The 16 bytes the agreed state keeps of a departed member's init key (a labelled hash)."""
    return suite.ref_hash(suite.label_prefix + _INIT_KEY_REF_LABEL, init_key)[:_INIT_KEY_REF]


@dataclass(frozen=True, slots=True)
class AdmissionState:
    """What every member agrees on about admission (see the module doc); immutable."""

    open: bool = False
    invites: tuple[Invite, ...] = ()  # in the order they were committed
    returning: tuple[Returning, ...] = ()  # oldest first; bounded by MAX_RETURNING
    # Init keys of members who left, oldest first; bounded by MAX_USED_INIT_KEYS. Carried in its
    # own extension (USED_INIT_KEYS_EXTENSION), not in the body of encode().
    used_init_keys: tuple[UsedInitKey, ...] = ()

    @property
    def is_default(self) -> bool:
        return self.policy_is_default and not self.used_init_keys

    @property
    def policy_is_default(self) -> bool:
        """Whether the part in ADMISSION_EXTENSION is the default (then that extension is absent)."""
        return not (self.open or self.invites or self.returning)

    def init_key_used(self, suite: CipherSuite, init_key: bytes) -> bool:
        """Whether ``init_key`` is one a departed member joined with (so its request is used)."""
        if not self.used_init_keys:
            return False
        ref = init_key_ref(suite, init_key)
        return any(e.ref == ref for e in self.used_init_keys)

    def invite(self, invite_key: bytes) -> Invite | None:
        return next((i for i in self.invites if i.invite_key == invite_key), None)

    def returning_after(self, identity_key: bytes) -> int | None:
        """The not_after a returning identity's new request must exceed, ``None`` if not listed."""
        return next((e.not_after for e in self.returning if e.identity_key == identity_key), None)

    def encode(self) -> bytes:
        """ADMISSION_EXTENSION's body: ``uint8 open || Invite invites<V> || Returning returning<V>``."""
        invites, returning = Writer(), Writer()
        for inv in self.invites:
            inv.write(invites)
        for e in self.returning:
            returning.opaque(e.identity_key).u64(e.not_after)
        return Writer().u8(int(self.open)).opaque(invites.bytes()).opaque(returning.bytes()).bytes()

    @classmethod
    def decode(cls, data: bytes) -> AdmissionState:
        """Read the extension body, enforcing every bound and its canonical form."""
        r = Reader(data, "admission extension")
        flag = r.u8("open")
        if flag > 1:
            raise InvalidValueError(f"admission extension: open flag is {flag}, not 0/1")
        invites = tuple(r.vector("invites", _MAX_STATE, Invite.read, MAX_INVITES))
        returning = tuple(
            r.vector(
                "returning",
                _MAX_STATE,
                lambda s: Returning(s.opaque_exact("identity_key", _KEY), s.u64("not_after")),
                MAX_RETURNING,
            )
        )
        r.end()
        if len({i.invite_key for i in invites}) != len(invites):
            raise DuplicateKeyError("admission extension lists an invite key twice")
        if len({e.identity_key for e in returning}) != len(returning):
            raise DuplicateKeyError("admission extension lists a returning member twice")
        state = cls(bool(flag), invites, returning)
        if state.policy_is_default:
            raise InvalidValueError("admission extension holds the default state, which is encoded as none")
        return state

    def encode_used_init_keys(self) -> bytes:
        """USED_INIT_KEYS_EXTENSION's body: ``UsedInitKey entries<V>``, each ``ref[16] || uint64``."""
        entries = self.used_init_keys
        if any(not 0 <= e.not_after < 1 << 64 for e in entries):
            raise ConfigError("a used init key's not_after does not fit in a uint64 field")
        return opaque(b"".join([e.ref + e.not_after.to_bytes(8, "big") for e in entries]))

    @staticmethod
    def decode_used_init_keys(data: bytes) -> tuple[UsedInitKey, ...]:
        """Read USED_INIT_KEYS_EXTENSION's body: at most MAX_USED_INIT_KEYS, none twice, not empty."""
        entries = _used_init_keys_direct(data)
        if entries is None:
            entries = _used_init_keys_general(data)
        if not entries:
            raise InvalidValueError("used init keys extension is empty (no entries is encoded as none)")
        if len({e.ref for e in entries}) != len(entries):
            raise DuplicateKeyError("used init keys extension lists an init key twice")
        return entries


_U64: Final = struct.Struct(">Q")
_USED_ENTRY: Final = _INIT_KEY_REF + 8  # ref[16] || uint64 not_after


def _used_init_keys_direct(data: bytes) -> tuple[UsedInitKey, ...] | None:
    """The used init keys read straight from the bytes when the vector has a minimal 1- or 2-byte
    length, fills the data exactly with whole entries, and holds at most MAX_USED_INIT_KEYS;
    ``None`` for anything else, which the general reader then reads (and names what is wrong)."""
    if type(data) is not bytes or not data:
        return None
    first = data[0]
    if first < 0x40:
        start, size = 1, first
    elif first < 0x80 and len(data) > 1 and ((first & 0x3F) << 8 | data[1]) >= 0x40:
        start, size = 2, (first & 0x3F) << 8 | data[1]
    else:
        return None
    if start + size != len(data) or size % _USED_ENTRY or size // _USED_ENTRY > MAX_USED_INIT_KEYS:
        return None
    return tuple(_used_entry(data[i : i + _USED_ENTRY]) for i in range(start, len(data), _USED_ENTRY))


@functools.lru_cache(maxsize=4 * MAX_USED_INIT_KEYS)
def _used_entry(raw: bytes) -> UsedInitKey:
    """One encoded ``ref[16] || uint64 not_after`` entry, parsed: every epoch's extension lists
    the same departed init keys again, and an entry is public and immutable."""
    return UsedInitKey(raw[:_INIT_KEY_REF], _U64.unpack_from(raw, _INIT_KEY_REF)[0])


def _used_init_keys_general(data: bytes) -> tuple[UsedInitKey, ...]:
    """The Reader-based read of :meth:`AdmissionState.decode_used_init_keys` (every shape, every error)."""
    r = Reader(data, "used init keys extension")
    entries = tuple(
        r.vector(
            "used init keys",
            _MAX_STATE,
            lambda s: UsedInitKey(s.fixed(_INIT_KEY_REF, "init key ref"), s.u64("not_after")),
            MAX_USED_INIT_KEYS,
        )
    )
    r.end()
    return entries


DEFAULT_ADMISSION: Final = AdmissionState()


def _read_label(r: Reader) -> str:
    raw = r.opaque("invite label", MAX_LABEL)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidValueError("invite label is not valid UTF-8") from None


# --- what a caller asks a commit to do ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewInvite:
    """An invite for :meth:`Group.commit`: its public key, how many joins it admits, expiry, label."""

    public_key: bytes
    uses: int = 1
    not_after: int = 0  # Unix seconds, 0 = never expires
    label: str = ""


@dataclass(frozen=True, slots=True)
class Admit:
    """An Add for :meth:`Group.commit` that uses an invite: the joiner's request and its proof."""

    request: JoinRequest
    invite_key: bytes
    proof: bytes


# --- the commit's changes on the wire -------------------------------------------------------------


class ChangeType(IntEnum):
    INVITE = 1
    REVOKE = 2
    ADMIT = 3
    REASON = 4
    PRUNE = 5  # the committer judged the used init keys of requests expired before ``not_after``


@dataclass(frozen=True, slots=True)
class AdmissionChange:
    """One entry of a commit's trailing ``AdmissionChange changes<V>`` (docs/protocol.md §4.2).

    ``invite``: invite_key, uses, not_after, label (inviter = the committer). ``revoke``:
    invite_key. ``admit``: leaf (an Add of this commit), invite_key, proof. ``reason``: leaf (a
    Remove of this commit) and reason. ``prune``: not_after (``uint64 before``: the used init keys
    whose request's not_after is earlier go, by the committer's clock).
    """

    type: ChangeType
    leaf: int = 0
    invite_key: bytes = b""
    uses: int = 0
    not_after: int = 0
    label: str = ""
    proof: bytes = field(default=b"", repr=False)
    reason: RemovalReason | None = None

    def write(self, w: Writer) -> None:
        w.u8(self.type)
        if self.type == ChangeType.INVITE:
            w.opaque(self.invite_key).u16(self.uses).u64(self.not_after).opaque(self.label.encode())
        elif self.type == ChangeType.REVOKE:
            w.opaque(self.invite_key)
        elif self.type == ChangeType.ADMIT:
            w.u32(self.leaf).opaque(self.invite_key).opaque(self.proof)
        elif self.type == ChangeType.PRUNE:
            w.u64(self.not_after)
        else:
            assert self.reason is not None
            w.u32(self.leaf).u8(self.reason.code).u32(self.reason.seconds)

    @classmethod
    def read(cls, r: Reader) -> AdmissionChange:
        raw = r.u8("admission change type")
        try:
            kind = ChangeType(raw)
        except ValueError:
            raise InvalidValueError(f"unknown admission change type {raw}") from None
        if kind == ChangeType.INVITE:
            key, uses, not_after = r.opaque_exact("invite_key", _KEY), r.u16("uses"), r.u64("not_after")
            if uses == 0:
                raise InvalidValueError("an invite with no uses")
            return cls(kind, invite_key=key, uses=uses, not_after=not_after, label=_read_label(r))
        if kind == ChangeType.REVOKE:
            return cls(kind, invite_key=r.opaque_exact("invite_key", _KEY))
        if kind == ChangeType.PRUNE:
            return cls(kind, not_after=r.u64("before"))
        leaf = r.u32("leaf")
        if kind == ChangeType.ADMIT:
            return cls(kind, leaf, r.opaque_exact("invite_key", _KEY), proof=r.opaque_exact("proof", 64))
        raw_code = r.u8("removal reason")
        try:
            code = RemovalCode(raw_code)
        except ValueError:
            raise InvalidValueError(f"unknown removal reason {raw_code}") from None
        seconds = r.u32("seconds")
        if not _reason_ok(code, seconds):
            raise InvalidValueError(f"removal reason {code.name.lower()} with {seconds} seconds")
        return cls(kind, leaf, reason=RemovalReason(code, seconds))


def encode_changes(w: Writer, changes: Sequence[AdmissionChange]) -> None:
    """Append the trailing vector, only when there are changes (so old commits stay byte-identical)."""
    if changes:
        body = Writer()
        for c in changes:
            c.write(body)
        data = body.bytes()
        if len(changes) > MAX_CHANGES or len(data) > MAX_CHANGES_BODY:
            # Never build what every receiver would refuse.
            raise UsageError(
                f"this commit would carry {len(changes)} admission changes in {len(data)} bytes, more than "
                f"a receiver reads ({MAX_CHANGES}, {MAX_CHANGES_BODY} bytes): split it into several commits"
            )
        w.opaque(data)


def read_changes(r: Reader) -> tuple[AdmissionChange, ...]:
    changes = r.vector("admission changes", MAX_CHANGES_BODY, AdmissionChange.read, MAX_CHANGES)
    if not changes:
        raise InvalidValueError("commit carries an empty admission change list (it is encoded as none)")
    return tuple(changes)


# --- applying a commit's changes --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdmissionOutcome:
    """The state after a commit and what its changes meant, for the events."""

    state: AdmissionState
    reasons: Mapping[bytes, RemovalReason] = field(default_factory=dict)  # by removed identity key
    admitted: Mapping[bytes, bytes] = field(default_factory=dict)  # added identity key -> invite key
    created: tuple[Invite, ...] = ()
    revoked: tuple[bytes, ...] = ()


def apply_changes(
    state: AdmissionState,
    changes: Sequence[AdmissionChange],
    *,
    added: Mapping[int, JoinRequest],
    removed: Mapping[int, JoinRequest],
    committer: bytes,
    group_id: bytes,
    suite: CipherSuite,
) -> AdmissionOutcome:
    """The admission state after a commit with these Adds and Removes (by leaf); raise, pure.

    Order: revokes, admits (one use each, dropped at 0), new invites, then the returning list:
    removed-offline (and rejoining) members join its end, added identities leave it, the oldest fall off past
    :data:`MAX_RETURNING`; last the used init keys (:func:`used_after`). Invite and request expiry
    are not checked here: they are the committer's decision (docs/protocol.md §4.5).
    """
    if not changes and not state.returning and not removed:
        return AdmissionOutcome(state)  # the hot path: nothing to read, nothing changes
    live = {i.invite_key: i for i in state.invites}
    uses = {k: i.uses_left for k, i in live.items()}
    revoked: list[bytes] = []  # at most MAX_INVITES: each must be live
    created: list[Invite] = []
    created_keys: set[bytes] = set()
    reasons: dict[bytes, RemovalReason] = {}
    admitted: dict[bytes, bytes] = {}
    admit_leaves: set[int] = set()
    reason_leaves: set[int] = set()
    prune: int | None = None
    for c in changes:  # revokes first, wherever they stand: a revoked invite admits no one
        if c.type == ChangeType.REVOKE:
            if c.invite_key not in live or c.invite_key in revoked:
                raise InvalidInviteError(
                    "commit revokes an invite that is not live (unknown, used up or revoked twice)"
                )
            revoked.append(c.invite_key)
    for c in changes:
        if c.type == ChangeType.REVOKE:
            continue
        if c.type == ChangeType.INVITE:
            if c.invite_key in live or c.invite_key in created_keys:
                raise AdmissionChangeError(
                    "commit creates an invite whose key is already live or listed twice"
                )
            if len(created) >= MAX_INVITES:  # refused at once: no work grows past the bound
                raise AdmissionChangeError(f"commit creates more than {MAX_INVITES} invites")
            created_keys.add(c.invite_key)
            created.append(Invite(c.invite_key, c.uses, c.not_after, committer, c.label))
        elif c.type == ChangeType.ADMIT:
            request = added.get(c.leaf)
            if request is None or c.leaf in admit_leaves:
                raise AdmissionChangeError(
                    f"commit's admit names leaf {c.leaf}, which is not an Add of this commit (or twice)"
                )
            admit_leaves.add(c.leaf)
            if c.invite_key not in live or c.invite_key in revoked:
                raise InvalidInviteError(
                    f"commit admits {request.display_name!r} with an invite that is not live"
                )
            if uses[c.invite_key] == 0:
                raise InvalidInviteError(
                    f"commit admits {request.display_name!r} with an invite that is used up"
                )
            verify_proof(c.invite_key, group_id, request, c.proof, suite)
            uses[c.invite_key] -= 1
            admitted[request.identity_key] = c.invite_key
        elif c.type == ChangeType.PRUNE:
            if prune is not None:
                raise AdmissionChangeError("commit prunes the used init keys twice")
            prune = c.not_after
        else:
            gone = removed.get(c.leaf)
            if gone is None or c.leaf in reason_leaves:
                raise AdmissionChangeError(
                    f"commit gives a reason for leaf {c.leaf}, which it does not remove (or twice)"
                )
            reason_leaves.add(c.leaf)
            assert c.reason is not None
            reasons[gone.identity_key] = c.reason
    kept = [
        inv
        if uses[inv.invite_key] == inv.uses_left
        else Invite(inv.invite_key, uses[inv.invite_key], inv.not_after, inv.inviter, inv.label)
        for inv in state.invites
        if inv.invite_key not in revoked and uses[inv.invite_key] > 0
    ]
    invites = (*kept, *created)
    if len(invites) > MAX_INVITES:
        raise AdmissionChangeError(f"commit would leave {len(invites)} live invites, more than {MAX_INVITES}")
    back: dict[bytes, int] = {e.identity_key: e.not_after for e in state.returning}
    for request in removed.values():
        reason = reasons.get(request.identity_key)
        if reason is not None and reason.code in _COMING_BACK:
            back.pop(request.identity_key, None)  # re-listed at the end: the newest entry
            back[request.identity_key] = request.not_after
    for request in added.values():
        back.pop(request.identity_key, None)
    returning = tuple(Returning(k, v) for k, v in back.items())[-MAX_RETURNING:]
    used = used_after(state.used_init_keys, [removed[leaf] for leaf in sorted(removed)], prune, suite)
    new = AdmissionState(state.open, invites, returning, used)
    return AdmissionOutcome(new, reasons, admitted, tuple(created), tuple(revoked))


def used_after(
    used: Sequence[UsedInitKey], departed: Sequence[JoinRequest], prune: int | None, suite: CipherSuite
) -> tuple[UsedInitKey, ...]:
    """The used init keys after a commit: ``departed`` (its removed members, by leaf) join the end,
    then a ``prune`` (the committer's signed judgement: requests expired before it) drops entries
    and must drop one, then the oldest fall off past :data:`MAX_USED_INIT_KEYS`; raise, pure.

    No receiver reads its own clock here, so every member computes the same list.
    """
    if not departed and prune is None:
        return tuple(used)
    kept = {e.ref: e for e in used}  # the entries kept as they are (immutable)
    for request in departed:
        ref = init_key_ref(suite, request.init_key)
        kept.pop(ref, None)  # re-listed at the end: the newest entry
        kept[ref] = UsedInitKey(ref, request.not_after)
    if prune is not None:
        live = {ref: e for ref, e in kept.items() if e.not_after >= prune}
        if len(live) == len(kept):
            raise AdmissionChangeError(
                f"commit prunes the used init keys of join requests expired before Unix time {prune}, "
                "but lists none (a prune that drops nothing is not canonical)"
            )
        kept = live
    return tuple(kept.values())[-MAX_USED_INIT_KEYS:]


# --- how a join request may come in ----------------------------------------------------------------


class Admissibility(Enum):
    """What the agreed state says of a verified join request (``Group.classify_request``)."""

    INVITED = "invited"  # a live, unexpired invite with a valid proof
    REJOINING = "rejoining"  # a current member's identity with a newer request: it lost its state
    STALE = "stale"  # an old or equal request of a member or returning identity: a replay
    RETURNING = "returning"  # removed for being offline, asking again with a newer request
    OPEN = "open"  # the room admits anyone
    ALREADY_IN = "already_in"  # its init key is in the roster: this very request was applied
    NEEDS_APPROVAL = "needs_approval"  # none of the above: a member must approve it


@dataclass(frozen=True, slots=True)
class Classification:
    """``admissibility`` and its details: the invite used, the member's current leaf, a problem."""

    admissibility: Admissibility
    invite: Invite | None = None  # INVITED: the live invite
    leaf: int | None = None  # REJOINING/STALE/ALREADY_IN: the identity's current leaf
    invite_problem: str = ""  # why an offered invite was not usable (revoked, used up, expired)
