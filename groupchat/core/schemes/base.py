"""The key-agreement interface: THE description of what a scheme owns and what the epoch machine asks.

(``schemes/__init__.py`` and docs/protocol.md §9 point here; keep this the only copy.)

The *epoch machine* (:class:`~groupchat.core.group.Group` over :mod:`groupchat.core.epoch`) owns
GroupContext, key schedule, transcript hashes, confirmation tag, epoch authenticator, message
protection, echo and replay bookkeeping, previous-epoch retention, removed-sender refusal and the
join-request checks (signature, expiry, used init keys). A :class:`KeyAgreementScheme` owns the rest:

* the **roster representation** (which leaf holds which verified join request) and its public
  hash, which goes where ``tree_hash`` sits in the GroupContext, and the public state a Welcome
  carries (:meth:`~KeyAgreementScheme.encode_public` / :meth:`~KeyAgreementScheme.from_public`);
* what **Add, Remove and Update** do to it, including the taint rules, and which operations a
  commit must carry (the placement of adds, the re-keys);
* how the members agree on **commit_secret**, the only scheme output the key schedule takes.
  The scheme never sees ``init_secret`` and the epoch machine never sees a path secret; the epoch
  machine combines the two (RFC 9420 §8).

A group is founded with :meth:`~KeyAgreementScheme.found` (epoch 0's secret); the scheme is named
by ``schemes.registry`` and recorded in the GroupContext extensions. One epoch change::

    committer:  update = scheme.plan_update(has_changes, update)       # a rule may force our Update
                change = scheme.build_commit(EpochInput(group_id, epoch), removes=, adds=, update=, rand=)
                ...sign, key schedule, confirmation tag, Welcome...; on the relay's echo:
                scheme.apply_own(change)
    receiver:   scheme.check_commit(sender, ops)                    # pure: every structural and taint rule
                staged = scheme.stage_commit(EpochInput(...), sender, ops)   # provisional, revertible
                ...key schedule, confirmation tag...; then exactly one of:
                scheme.confirm(staged)  |  scheme.rollback(staged)
    joiner:     scheme = Scheme.from_public(suite, public_state, identity=, rand=, clock=)
                scheme.take_seat(request, adder, leaf_secret, init_private)  # one-round only
    removed:    scheme.forget_secrets()

**One-round schemes** (the tree, ``multi_round = False``) yield ``commit_secret`` from
``build_commit``/``stage_commit``; the commit carries the confirmation tag and the Welcome carries
the new epoch.

**Multi-round schemes** (the ring, ``multi_round = True``) yield ``None`` there: the commit carries
only the roster change, and once it wins its epoch the epoch machine runs the scheme::

    step = scheme.start(group_id, epoch + 1, context)   # context = Hash(GroupContext || commits)
    step = scheme.handshake(data)             # every handshake message in the relay's order, own echoes too
    step = scheme.send_confirmation(tag)      # once step.secret came: the new epoch's confirmation tag
    scheme.missing()                          # who we still wait for (RekeyProgress)
    timeout = scheme.overdue()                # on the session's timer (Group.tick): None or who is missing
    scheme.propose_retry()                    # then our first message of the next attempt (None: none left)
    scheme.is_own_proposal(data) / scheme.adopt_proposal()   # the retry's place in the order
    scheme.last_transcript                    # folded into the confirmed transcript hash
    scheme.timeout                            # seconds per round

Each call returns a :class:`RunStep`: messages to send, then at most one of ``secret`` (the run
agreed ``commit_secret``: derive the epoch and hand its confirmation tag back),
``confirmed`` (every member confirmed the same tag: enter the epoch, at the same point of the
relay's order for everyone) and ``failure`` (a signed message showed the attempt can never
complete; its deadline proposes the next). Its Welcome carries the epoch *before* the commit, and
the joiner takes part in the run. The epoch machine asks only ``multi_round``, never which scheme
it holds. Every method that takes remote input raises a
:class:`~groupchat.core.errors.GroupChatError` subclass and changes nothing on refusal
(``stage_commit`` included: it reverts its own partial work before raising).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from ..commit import Operation
from ..errors import UsageError
from ..events import Member, RekeyFailed
from ..identity import Identity, JoinRequest
from ..suite import CipherSuite
from .ring_errors import RingTimeoutError

__all__ = ["SCHEME_IDS", "EpochInput", "KeyAgreementScheme", "OwnChange", "RunStep", "StagedChange"]

SCHEME_IDS: dict[str, int] = {"tree": 1, "ring": 2}
"""Wire identifiers of the schemes, as recorded in the GroupContext extensions."""


@dataclass(frozen=True, slots=True)
class RunStep:
    """One step of a multi-round run (see the module docstring): what to send, then what happened."""

    outbound: tuple[bytes, ...] = ()
    secret: bytes | None = field(default=None, repr=False)
    confirmed: bool = False
    failure: RekeyFailed | None = None
    retried_by: Member | None = None  # a later attempt came in force at this member's message
    early: bool = False  # ... before our deadline for the attempt it replaced


@dataclass(frozen=True, slots=True)
class EpochInput:
    """The public facts of the epoch a commit is built on, which a scheme binds into what it sends."""

    group_id: bytes
    epoch: int


@dataclass(slots=True)
class OwnChange:
    """Our own commit's effect on the scheme, built but not applied until the relay echoes it.

    ``commit_secret`` is ``None`` for a multi-round scheme. ``public_state`` (the encoded roster
    or tree of the new epoch, for the Welcome, in pieces whose concatenation it is: the Welcome
    copies them once) is only computed when the commit adds someone.
    ``joiner_secrets`` maps each added leaf to the secret its Welcome carries (``None`` if the
    scheme gives joiners none).
    """

    operations: tuple[Operation, ...]
    public_hash: bytes
    commit_secret: bytes | None = field(repr=False)
    public_state: tuple[bytes, ...] | None = field(default=None, repr=False)
    joiner_secrets: dict[int, bytes | None] = field(default_factory=dict, repr=False)
    state: object = field(default=None, repr=False)  # the scheme's own replay data


@dataclass(slots=True)
class StagedChange:
    """A received commit provisionally applied to the scheme: confirm or roll back exactly once."""

    public_hash: bytes
    commit_secret: bytes | None = field(repr=False)
    state: object = field(default=None, repr=False)


class KeyAgreementScheme(ABC):
    """One member's view of the roster and key-agreement state of one group (see the module doc)."""

    name: ClassVar[str]
    suite: CipherSuite

    # --- the roster ----------------------------------------------------------------------------

    @property
    @abstractmethod
    def my_leaf(self) -> int:
        """Our own position in the roster."""

    @property
    @abstractmethod
    def capacity(self) -> int:
        """Number of leaf slots (the width of the epoch's secret tree); every member's leaf is below it."""

    @abstractmethod
    def members(self) -> Iterator[tuple[int, JoinRequest]]:
        """Every member as ``(leaf, join request)``, in leaf order."""

    @abstractmethod
    def member(self, leaf: int) -> JoinRequest | None:
        """The join request of the member at ``leaf``, ``None`` if it holds none."""

    @property
    @abstractmethod
    def member_count(self) -> int: ...

    @abstractmethod
    def leaf_of_identity(self, identity_key: bytes) -> int | None:
        """The leaf of the member with this identity key."""

    @abstractmethod
    def has_init_key(self, init_key: bytes) -> bool:
        """True if a current member's join request carries this init key."""

    @abstractmethod
    def is_verified(self, leaf: int) -> bool: ...

    @abstractmethod
    def mark_verified(self, leaf: int) -> None:
        """Record that ``leaf``'s join request signature was checked (checked once, then trusted)."""

    @property
    @abstractmethod
    def public_hash(self) -> bytes:
        """Hash of the public scheme state: the GroupContext's ``tree_hash`` field."""

    @abstractmethod
    def encode_public(self) -> bytes:
        """The public scheme state, as a joiner's Welcome carries it."""

    @property
    def holds_init_key(self) -> bool:
        """True while we keep our join request's init private key for this scheme's sake."""
        return False

    # --- commits -------------------------------------------------------------------------------

    @abstractmethod
    def plan_update(self, has_changes: bool, update: bool) -> bool:
        """Whether our next commit must carry our own Update (the caller asked, or a rule requires it)."""

    @abstractmethod
    def build_commit(
        self,
        ctx: EpochInput,
        *,
        removes: Sequence[int],
        adds: Sequence[JoinRequest],
        update: bool,
        rand: Callable[[int], bytes],
    ) -> OwnChange:
        """Our commit's operations, in :data:`~groupchat.core.commit.OPERATION_ORDER`; state unchanged.

        ``removes`` hold members other than us and ``adds`` passed the epoch machine's checks.
        """

    @abstractmethod
    def apply_own(self, change: OwnChange) -> None:
        """Apply our commit once the relay's echo says it won its epoch."""

    @abstractmethod
    def check_commit(self, sender: int, ops: Sequence[Operation]) -> None:
        """Check a received commit's operations against every scheme rule; never changes state."""

    @abstractmethod
    def stage_commit(self, ctx: EpochInput, sender: int, ops: Sequence[Operation]) -> StagedChange:
        """Apply a checked commit provisionally and derive what the epoch machine needs."""

    @abstractmethod
    def confirm(self, staged: StagedChange) -> None:
        """Make a staged commit final (its confirmation tag verified)."""

    @abstractmethod
    def rollback(self, staged: StagedChange) -> None:
        """Undo a staged commit exactly."""

    @classmethod
    @abstractmethod
    def found(
        cls,
        suite: CipherSuite,
        request: JoinRequest,
        *,
        identity: Identity,
        group_id: bytes,
        rand: Callable[[int], bytes],
        clock: Callable[[], float],
    ) -> tuple[KeyAgreementScheme, bytes]:
        """A new group's scheme with ``request`` alone at leaf 0, and epoch 0's ``commit_secret``."""

    @classmethod
    @abstractmethod
    def from_public(
        cls,
        suite: CipherSuite,
        public_state: bytes,
        *,
        identity: Identity,
        rand: Callable[[int], bytes],
        clock: Callable[[], float],
    ) -> KeyAgreementScheme:
        """A joiner's scheme from the public state its Welcome carries (:meth:`encode_public`)."""

    @abstractmethod
    def encode_state(self) -> bytes:
        """Our whole scheme state at the current epoch, secrets included, for storage
        (docs/protocol.md §12); raise :class:`UsageError` if a run in progress makes it unresumable."""

    @classmethod
    @abstractmethod
    def decode_state(
        cls,
        suite: CipherSuite,
        data: bytes,
        *,
        identity: Identity,
        rand: Callable[[int], bytes],
        clock: Callable[[], float],
    ) -> KeyAgreementScheme:
        """The scheme :meth:`encode_state` stored, checked against itself and ``identity``; raise a
        :class:`~groupchat.core.errors.DecodeError` subclass on anything malformed."""

    @abstractmethod
    def encode_change(self, change: OwnChange) -> bytes:
        """What applying our built commit on its echo needs (:meth:`apply_own`), for storage with
        the commit that carries ``change.operations``."""

    @abstractmethod
    def decode_change(self, data: bytes, operations: Sequence[Operation]) -> OwnChange:
        """The :class:`OwnChange` :meth:`encode_change` stored for the commit carrying
        ``operations``, checked against the current state; raise a DecodeError subclass if not."""

    @abstractmethod
    def forget_secrets(self) -> None:
        """Drop every secret (we were removed); the public roster stays readable."""

    # --- one-round joiners -------------------------------------------------------------------

    def take_seat(self, request: JoinRequest, adder: int, leaf_secret: bytes, init_private: bytes) -> None:
        """A one-round joiner: find our leaf in the Welcome's public state and key it with its secret."""
        raise UsageError(f"the {self.name} scheme has no seat to take from a Welcome")

    # --- multi-round schemes -------------------------------------------------------------------

    multi_round: ClassVar[bool] = False
    """True if ``commit_secret`` takes rounds of handshake messages after the commit wins its epoch."""

    last_transcript: bytes = b""
    """Hash of every handshake message of the last completed run (folded into the transcript)."""

    @property
    def timeout(self) -> float:
        """Seconds each round may take."""
        return 0.0

    def set_round_timeout(self, seconds: float) -> None:  # noqa: B027 (a one-round scheme has no rounds)
        """Set the seconds each round may take (``GroupConfig.ring_round_timeout``, a local choice)."""

    def start(self, group_id: bytes, epoch: int, context: bytes) -> RunStep:
        """Start the run creating ``epoch`` over the current roster."""
        raise UsageError(f"the {self.name} scheme agrees its secret in the commit, without a run")

    def handshake(self, data: bytes) -> RunStep:
        """Take one handshake message of a multi-round agreement."""
        raise UsageError(f"the {self.name} scheme has no handshake messages")

    def send_confirmation(self, value: bytes) -> RunStep:
        """Confirm the epoch derived from the run's secret (its confirmation tag), signed."""
        raise UsageError(f"the {self.name} scheme confirms its epochs in the commit")

    def missing(self) -> tuple[Member, ...]:
        """The members whose message of the running round we still need."""
        return ()

    @property
    def keyed(self) -> bool:
        """Whether the attempt in force derived its secret (it is confirming the epoch)."""
        return False

    def overdue(self) -> RingTimeoutError | None:
        """The running attempt's timeout (naming who is missing) once its deadline passed (injected clock)."""
        return None

    def propose_retry(self) -> bytes | None:
        """Our first message of the next attempt (fresh keys; ``None`` if no attempt number is left);
        the running one stays in force."""
        raise UsageError(f"the {self.name} scheme has no run to retry")

    def is_own_proposal(self, data: bytes) -> bool:
        """Whether ``data`` is our proposal of the next attempt (its echo puts that attempt in force)."""
        return False

    def adopt_proposal(self) -> None:  # noqa: B027 (a one-round scheme proposes nothing)
        """The relay's echo of our proposal: from here on in the order, its attempt is in force."""
