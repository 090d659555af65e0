"""The epoch state one member holds, and what it keeps of the previous epoch.

:class:`EpochState` is the base of ``Group``: the GroupContext, epoch secrets and transcript of the
current epoch, the retained previous epoch's keys (until ``previous_epoch_ttl``), the recent
commits and unechoed messages (echo and replay bookkeeping), the agreed admission state (with
the init keys of departed members, docs/protocol.md §4.5), the outbox, and the data of the
current :class:`~.machine.Phase` (our pending commit, the running agreement, the joiner flag).
It enters an epoch (:meth:`EpochState._enter_epoch`) and forgets everything when we are removed
(:meth:`EpochState._removed`).
"""

from __future__ import annotations

import enum
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Final

from ..admission import AdmissionOutcome, AdmissionState, Admit, NewInvite, RemovalReason
from ..config import DEFAULT_ROUND_TIMEOUT, check_group_config
from ..errors import (
    EpochError,
    UnknownMemberError,
)
from ..events import (
    Member,
    RemovedFromGroup,
)
from ..identity import Identity, JoinRequest
from ..key_schedule import (
    EpochSecrets,
    GroupContext,
)
from ..message_protection import (
    FramedContent,
)
from ..outbox import Outbound
from ..schemes.base import KeyAgreementScheme, OwnChange
from ..secret_tree import SecretTree
from ..suite import GROUPCHAT_PREFIX, CipherSuite, KeyedHmac
from .machine import MEMBER_INPUTS, Input, Phase, check, phase_of
from .wire import admission_of

# Placeholder left behind when a removed member deletes its epoch secrets (never used: every
# operation first checks that we are still a member).
_ERASED_SECRETS: Final = EpochSecrets(*(b"" for _ in fields(EpochSecrets)))
_RECENT_COMMITS: Final = 16
_MAX_UNECHOED: Final = 1024
_MAX_UNHASHED: Final = 4096  # longer sent messages are remembered by digest: memory stays small


class GroupState(enum.Enum):
    """The coarse public view of :class:`~groupchat.core.epoch.machine.Phase`: removed or not."""

    MEMBER = "member"
    REMOVED = "removed"


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """Tunables and injected effects. Every member of a group must use the same suite and prefix."""

    suite_id: int = 1
    label_prefix: bytes = GROUPCHAT_PREFIX
    max_forward: int = 1000  # how far a ratchet generation may jump ahead (RFC 9420 §15.3)
    max_skipped: int = 256  # skipped message keys kept per sender for out-of-order delivery
    padding_block: int = 32  # pad application plaintexts to hide exact lengths
    previous_epoch_ttl: float = 30.0  # seconds the previous epoch's keys stay for in-flight messages
    # Join-request expiry is judged on the wall clock. The committer is strict; a receiver accepts
    # a request up to `clock_skew` seconds past its expiry (by the receiver's clock), so members
    # whose clocks differ by less than that, plus the relay's delivery delay, never disagree on
    # a commit (a disagreement would fork the group).
    clock_skew: float = 300.0
    clock: Callable[[], float] = time.monotonic  # monotonic: TTLs only
    wall_clock: Callable[[], float] = time.time  # Unix seconds: join-request expiry only
    rand: Callable[[int], bytes] = os.urandom
    # A multi-round (ring) scheme's deadline per round: our local patience before we retry the
    # attempt without those it waits for (the tree ignores it). Members need not agree on it.
    ring_round_timeout: float = DEFAULT_ROUND_TIMEOUT

    def __post_init__(self) -> None:
        check_group_config(self)  # an invalid config cannot exist (ConfigError)

    def suite(self) -> CipherSuite:
        return CipherSuite(self.suite_id, self.label_prefix)


@dataclass(slots=True)
class EpochKeys:
    """What decrypting and authenticating one epoch's messages needs."""

    epoch: int
    group_context: bytes
    secret_tree: SecretTree
    sender_data_secret: bytes = field(repr=False)
    # Members whose leaf changed when this epoch ended (only kept for the retained epoch).
    overrides: dict[int, JoinRequest | None] = field(default_factory=dict)
    # Members the commit ending this epoch removed, by leaf: their late messages are refused.
    removed: dict[int, JoinRequest] = field(default_factory=dict)
    # The sender-data secret's HMAC, keyed once for every message of the epoch (issue 16); kept
    # and dropped with the secret itself.
    sender_data_mac: KeyedHmac = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.sender_data_mac = KeyedHmac(self.sender_data_secret)


@dataclass(slots=True)
class PendingCommit:
    """Our commit, built and sealed, until the relay's echo says whether it won its epoch."""

    message: bytes
    change: OwnChange
    group_context: GroupContext
    secrets: EpochSecrets
    interim: bytes
    welcome: bytes | None
    joiners: tuple[tuple[int, JoinRequest], ...]
    removed: tuple[Member, ...]
    updated: bool
    intent: Intent
    admission: AdmissionOutcome  # the admission state this commit leads to, and what it changed

    @property
    def added(self) -> tuple[int, ...]:
        return tuple(leaf for leaf, _ in self.joiners)


@dataclass(frozen=True, slots=True)
class Intent:
    """What the caller asked a commit to do, kept to rebuild it if another commit wins the epoch.

    Removes are held by identity key: a leaf may change hands between epochs.
    """

    adds: tuple[JoinRequest, ...]
    removes: tuple[bytes, ...]
    update: bool
    authenticated_data: bytes
    admits: tuple[Admit, ...] = ()  # the adds that use an invite
    reasons: tuple[tuple[bytes, RemovalReason], ...] = ()  # by removed identity key
    invites: tuple[NewInvite, ...] = ()
    revokes: tuple[bytes, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.adds or self.removes or self.update or self.invites or self.revokes)


@dataclass(slots=True)
class PendingEpoch:
    """A ring commit that won its epoch, while the ring agrees the new epoch's commit_secret."""

    data: bytes
    content: FramedContent
    signature: bytes
    committer: Member
    added: tuple[Member, ...]
    removed: tuple[Member, ...]
    updated: bool
    overrides: dict[int, JoinRequest | None]
    digest: bytes
    own: bool
    admission: AdmissionOutcome
    superseded: bool = False
    # The epoch the run's secret gives (ctx, secrets, confirmed transcript hash, our tag), while
    # round 3 confirms it; entered only once every member confirmed the same tag.
    done: tuple[GroupContext, EpochSecrets, bytes, bytes] | None = None
    # Restart commits that removed members the ring waited for (docs/protocol.md §8.3), in order:
    # (content, signature) for the transcript; their digests; the last one binds the next restart.
    restarts: tuple[tuple[FramedContent, bytes], ...] = ()
    digests: frozenset[bytes] = frozenset()

    @property
    def latest(self) -> bytes:
        """Digest of the commit whose ring is running: the one a restart continues."""
        return self.restart_digest or self.digest

    restart_digest: bytes = b""
    dropped: tuple[Member, ...] = ()  # joiners of the ring's commit that a restart removed


class EpochState:
    """The state of one member at one epoch; ``Group`` is this plus the modules that act on it.

    The underscored attributes (``_ctx``, ``_ctx_bytes``, ``_secrets``, ``_interim``, ``_keys``,
    ``_previous``, ``_recent_commits``, ``_admission``, ``_pending``, ``_ring``, ``_identity``)
    stay readable on ``Group`` as inspection hooks for the tests and the lab; only the epoch
    machine's modules change them.
    """

    def __init__(
        self,
        *,
        config: GroupConfig,
        identity: Identity,
        scheme: KeyAgreementScheme,
        group_context: GroupContext,
        secrets: EpochSecrets,
        interim: bytes,
    ) -> None:
        self.config = config
        self.suite = scheme.suite
        self._identity = identity
        self._scheme = scheme
        scheme.set_round_timeout(config.ring_round_timeout)
        self._ctx = group_context
        self._ctx_bytes = group_context.encode()
        self._admission: AdmissionState = admission_of(group_context)
        self._secrets = secrets
        self._interim = interim
        self._keys = self._epoch_keys(secrets)
        self._previous: EpochKeys | None = None
        self._epoch_started = config.clock()
        self._pending: PendingCommit | None = None
        self._recent_commits: deque[bytes] = deque(maxlen=_RECENT_COMMITS)
        # Our sent messages awaiting their echo -> epoch, oldest first, under one bound: a short
        # application message by its exact bytes, hashed only when its echo comes (MessageEchoed
        # names the digest) or the state is stored (issue 16); anything else (a long message, a
        # ring round, a restored entry) as ``(digest,)``, which no message's bytes can equal.
        self._unechoed: dict[bytes | tuple[bytes], int] = {}
        self._unechoed_hashed = 0  # how many of those keys are digests
        # The outbox (see data_to_send): ready items, and a lost commit's intent to rebuild.
        self._outbox: list[Outbound] = []
        self._rebuild: Intent | None = None
        self._ring: PendingEpoch | None = None  # a multi-round epoch being agreed
        # The epoch before ours and the restart context of the ring that created ours: a restart
        # of that ring arriving now is a fork to report (LateRestartError), not a lost race.
        self._completed_ring: tuple[int, bytes] | None = None
        # A ring joiner holds only the init_secret of the epoch its Welcome carries (§8.4): that
        # epoch's message keys are not ours, so until the ring creating our first epoch is done
        # nothing can be sent, read or exported at it.
        self._joining = False
        # A joiner that deferred its roster check (Group.join(..., verify_roster=False)): the
        # leaves whose join requests are not yet verified, and the welcome's signer to name if
        # one fails. Until the check is done we read, but send and commit nothing (CHECKING).
        self._unchecked: dict[int, JoinRequest] = {}
        self._roster_signer: tuple[int, JoinRequest] | None = None
        self.state = GroupState.MEMBER

    # --- read-only view --------------------------------------------------------------------

    @property
    def group_id(self) -> bytes:
        return self._ctx.group_id

    @property
    def epoch(self) -> int:
        return self._ctx.epoch

    @property
    def my_leaf(self) -> int:
        return self._scheme.my_leaf

    def member(self, leaf: int) -> Member:
        req = self._scheme.member(leaf)
        if req is None:
            raise UnknownMemberError(f"leaf {leaf} holds no member")
        return self._member(leaf, req)

    def join_request(self, leaf: int) -> JoinRequest | None:
        """The signed request ``leaf``'s member came in with (public: the roster holds it), or
        ``None`` for a vacant leaf. A rejoin's request must be newer (``not_after``) than it."""
        return self._scheme.member(leaf)

    def _enter_epoch(
        self,
        ctx: GroupContext,
        secrets: EpochSecrets,
        interim: bytes,
        overrides: dict[int, JoinRequest | None],
        digest: bytes,
        admission: AdmissionState | None = None,
        ctx_bytes: bytes | None = None,
    ) -> None:
        """Enter the epoch of ``ctx``. ``admission`` is the state the commit's admission outcome
        computed, whose encoding ``ctx.extensions`` carries (``_extensions_after``): kept as is
        rather than decoded back from our own bytes (tests check it equals the decoded one).
        ``ctx_bytes``, when given, is ``ctx.encode()`` as the key schedule already computed it."""
        previous = self._keys
        previous.overrides = overrides
        # Removals, recorded explicitly: the leaves whose member this commit took away (a leaf is
        # never both emptied and refilled by one commit).
        scheme = self._scheme
        previous.removed = {
            leaf: req for leaf, req in overrides.items() if req is not None and scheme.member(leaf) is None
        }
        # A ring joiner's placeholder keys for the epoch before it joined are never kept.
        self._previous = None if self._joining else previous
        self._joining = False
        if admission is not None:
            self._admission = admission
        elif ctx.extensions != self._ctx.extensions:  # same extensions: same admission state
            self._admission = admission_of(ctx)
        self._ctx, self._ctx_bytes = ctx, ctx.encode() if ctx_bytes is None else ctx_bytes
        self._secrets, self._interim = secrets, interim
        self._keys = self._epoch_keys(secrets)
        self._epoch_started = self.config.clock()
        self._recent_commits.append(digest)

    def _epoch_keys(self, secrets: EpochSecrets) -> EpochKeys:
        tree = SecretTree(
            self.suite,
            secrets.encryption_secret,
            self._scheme.capacity,
            max_forward=self.config.max_forward,
            max_skipped=self.config.max_skipped,
        )
        return EpochKeys(self._ctx.epoch, self._ctx_bytes, tree, secrets.sender_data_secret)

    def _expire_previous_epoch(self) -> None:
        """Delete the previous epoch's keys once their TTL has passed (forward secrecy)."""
        if (
            self._previous is not None
            and self.config.clock() - self._epoch_started > self.config.previous_epoch_ttl
        ):
            self._previous = None

    def _keys_for_epoch(self, epoch: int) -> EpochKeys:
        if self._joining and epoch <= self.epoch:
            raise EpochError(
                f"message is for epoch {epoch}, before we joined (our first epoch will be {self.epoch + 1})",
                epoch,
                self.epoch,
            )
        if epoch == self.epoch:
            return self._keys
        prev = self._previous
        if prev is not None and epoch == prev.epoch:
            return prev
        raise EpochError(
            f"message is for epoch {epoch}; we hold keys for epoch {self.epoch} only", epoch, self.epoch
        )

    def _removed(self, by: Member, reason: RemovalReason | None = None) -> RemovedFromGroup:
        epoch = self.epoch + 1
        # Forget every secret: a removed member must not read the group any more, and a later
        # compromise of this device must not reveal the last epoch either.
        self._scheme.forget_secrets()
        self._previous = None
        self._pending = None
        self._rebuild = None
        self._secrets = _ERASED_SECRETS
        self._keys = EpochKeys(self.epoch, self._ctx_bytes, SecretTree(self.suite, bytes(32), 1), b"")
        self._unechoed.clear()
        self._unechoed_hashed = 0
        self.state = GroupState.REMOVED
        return RemovedFromGroup(epoch, by, reason)

    # --- helpers -----------------------------------------------------------------------------------

    def _member(self, leaf: int, req: JoinRequest) -> Member:
        return Member(leaf, req.display_name, req.identity_key)

    def _note_sent(self, data: bytes) -> None:
        key = (self.suite.hash(data),)
        self._unechoed_hashed += key not in self._unechoed
        self._unechoed[key] = self.epoch
        self._bound_unechoed()

    def _note_sent_message(self, data: bytes) -> None:
        """:meth:`_note_sent` of an application message: a short one is kept by its bytes."""
        if len(data) > _MAX_UNHASHED:
            self._note_sent(data)
            return
        self._unechoed[data] = self.epoch
        self._bound_unechoed()

    def _pop_unechoed_digest(self, digest: bytes) -> int | None:
        """The epoch of our message with this digest if it awaited its echo (no longer after)."""
        epoch = self._unechoed.pop((digest,), None)
        self._unechoed_hashed -= epoch is not None
        return epoch

    def _bound_unechoed(self) -> None:
        """Past the bound, forget the oldest unechoed message, whichever way it is kept."""
        if len(self._unechoed) > _MAX_UNECHOED:
            oldest = next(iter(self._unechoed))
            del self._unechoed[oldest]
            self._unechoed_hashed -= isinstance(oldest, tuple)

    def _unechoed_digests(self) -> dict[bytes, int]:
        """Every unechoed message by digest, oldest to forget first: what is stored."""
        hash_ = self.suite.hash
        return {(k[0] if isinstance(k, tuple) else hash_(k)): e for k, e in self._unechoed.items()}

    # --- the phase (groupchat.core.epoch.machine) -----------------------------------------------

    @property
    def phase(self) -> Phase:
        """Where we stand (see :class:`~groupchat.core.epoch.machine.Phase`), derived from what we hold."""
        ring = self._ring
        return phase_of(
            removed=self.state is GroupState.REMOVED,
            joining=self._joining,
            agreeing=ring is not None,
            agreed=ring is not None and ring.done is not None,
            in_flight=self._pending is not None,
            checking=bool(self._unchecked),
        )

    def _require(self, inp: Input, action: str = "") -> None:
        """The machine's guard for ``inp`` in our phase: raise its UsageError if it is refused."""
        phase = self.phase  # derived by phase_of, never re-derived here: the phases may grow
        if phase is Phase.MEMBER and inp in MEMBER_INPUTS:
            return  # what check() allows in the MEMBER phase, without its walk
        check(phase, inp, epoch=self.epoch, in_flight=self._pending is not None, action=action)
