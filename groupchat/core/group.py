"""The sans-I/O group state machine: bytes in, events and bytes out.

A :class:`Group` is one member's view of one group at one epoch. It never does I/O and never
reads a clock or a random source it was not given (see :class:`GroupConfig`).

* :meth:`Group.create` starts a one-member group; :meth:`Group.join` enters from a Welcome.
* :meth:`Group.commit` builds a commit (adds, removes, self-update) and returns its bytes. The
  commit is *pending* until the relay echoes it back: the relay's total order decides which of
  two concurrent commits wins an epoch (RFC 9420 §14), and only the winner's Welcome is sent.
* :meth:`Group.encrypt` protects an application message for the current epoch.
* :meth:`Group.receive` takes any message from the relay and returns an event, or raises a
  :class:`~groupchat.core.errors.GroupChatError` subclass and leaves the state exactly as it was.

Processing a commit costs O(log n) X25519 operations whatever the number of operations in it
(see :mod:`groupchat.core.schemes.tree.ratchet_tree`), plus one signature check per commit and one per join
request it adds. Joining verifies every member's join request once (n signature checks, RFC 9420
§12.4.3.1), so a member never relies on a leaf it has not verified.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Final

from .codec import Reader, Writer, opaque
from .commit import Commit, CommitMessage, Operation, OpType, check_operation_order
from .config import check_group_config
from .errors import (
    ConfigError,
    ConfirmationError,
    CounterLimitError,
    DuplicateKeyError,
    EpochError,
    ExpiredJoinRequestError,
    ForgedMemberError,
    InvalidCommitError,
    InvalidPublicKeyError,
    InvalidValueError,
    RemovedSenderError,
    ReplayError,
    SignatureError,
    UnknownMemberError,
    UnknownVersionError,
    UsageError,
    WrongGroupError,
    WrongSchemeError,
)
from .events import (
    EpochChanged,
    Event,
    Member,
    MessageEchoed,
    MessageReceived,
    RekeyProgress,
    RemovedFromGroup,
)
from .identity import MAX_GROUP_ID, MAX_JOIN_REQUEST_LIFETIME, Identity, JoinRequest, PendingJoin
from .key_schedule import (
    EpochSecrets,
    GroupContext,
    confirmation_tag,
    confirmed_transcript_hash,
    derive_epoch_secrets,
    epoch_secrets_from_joiner,
    exporter,
    interim_transcript_hash,
    verify_confirmation_tag,
    welcome_secret,
)
from .message_protection import (
    MAX_APPLICATION_DATA,
    MAX_AUTHENTICATED_DATA,
    ContentType,
    FramedContent,
    PrivateMessage,
    WireFormat,
    confirmed_transcript_input,
    open_private_message,
    protect_application,
    read_application_data,
    sign_framed_content,
    verify_framed_content,
)
from .outbox import ROOM, Joiner, Outbound, OutboundKind
from .schemes.base import SCHEME_IDS, EpochInput, KeyAgreementScheme, OwnChange
from .schemes.ring_errors import AttemptFailedError, WrongAttemptError
from .schemes.ring_message import RING_WIRE_FORMAT
from .schemes.ring_scheme import RingScheme
from .schemes.tree import PathSecrets, RatchetTree, TreeScheme
from .secret_tree import SecretTree
from .suite import GROUPCHAT_PREFIX, CipherSuite
from .version import PROTOCOL_VERSION
from .welcome import (
    GroupInfo,
    GroupSecrets,
    Welcome,
    decode_extensions,
    decrypt_group_info,
    encode_extensions,
    open_group_secrets,
    seal_welcome,
)

__all__ = [
    "RING_CONFIRM_WIRE_FORMAT",
    "SCHEME_EXTENSION",
    "TREE_EXTENSION",
    "Group",
    "GroupConfig",
    "GroupState",
]

# GroupInfo extension carrying our public tree (RFC 9420 §13 private-use range).
TREE_EXTENSION: Final = 0xF0C1
# GroupContext extension naming a scheme other than the tree (uint16, SCHEME_IDS): bound into
# every epoch. Tree groups carry no extension, so their GroupContexts are unchanged.
SCHEME_EXTENSION: Final = 0xF0C2
# A ring Welcome's GroupInfo (for the epoch *before* the commit that adds the joiner): the
# roster of that epoch, the commit itself, and that epoch's interim transcript hash.
RING_ROSTER_EXTENSION: Final = 0xF0C3
RING_COMMIT_EXTENSION: Final = 0xF0C4
RING_INTERIM_EXTENSION: Final = 0xF0C5
# The ring committer's confirmation: uint16 version || uint16 0xF002 || V(group_id) || uint64
# epoch || V(confirmation_tag). A MAC under the new epoch's confirmation key: only a member of
# that epoch can make it, so it needs no signature.
RING_CONFIRM_WIRE_FORMAT: Final = 0xF002
# A restart commit (remove only, while a ring runs) is signed over the GroupContext and this label
# with the digest of the commit whose ring it restarts (docs/protocol.md §8.3).
_RESTART_LABEL: Final = b"groupchat v1 ring restart"
_RECENT_COMMITS: Final = 16
_MAX_UNECHOED: Final = 1024
# GroupContext.epoch is a uint64: a group at this epoch can never commit again (epoch + 1 would
# not encode), so no commit may be built or applied from it and no welcome may start there.
_LAST_EPOCH: Final = (1 << 64) - 1


# Placeholder left behind when a removed member deletes its epoch secrets (never used: every
# operation first checks that we are still a member).
_ERASED_SECRETS: Final = EpochSecrets(*(b"" for _ in fields(EpochSecrets)))


class GroupState(enum.Enum):
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

    def __post_init__(self) -> None:
        check_group_config(self)  # an invalid config cannot exist (ConfigError)

    def suite(self) -> CipherSuite:
        return CipherSuite(self.suite_id, self.label_prefix)


@dataclass(slots=True)
class _EpochKeys:
    """What decrypting and authenticating one epoch's messages needs."""

    epoch: int
    group_context: bytes
    secret_tree: SecretTree
    sender_data_secret: bytes = field(repr=False)
    # Members whose leaf changed when this epoch ended (only kept for the retained epoch).
    overrides: dict[int, JoinRequest | None] = field(default_factory=dict)
    # Members the commit ending this epoch removed, by leaf: their late messages are refused.
    removed: dict[int, JoinRequest] = field(default_factory=dict)


@dataclass(slots=True)
class _PendingCommit:
    message: bytes
    change: OwnChange
    group_context: GroupContext
    secrets: EpochSecrets
    interim: bytes
    welcome: bytes | None
    joiners: tuple[tuple[int, JoinRequest], ...]
    removed: tuple[Member, ...]
    updated: bool
    intent: _Intent

    @property
    def added(self) -> tuple[int, ...]:
        return tuple(leaf for leaf, _ in self.joiners)


@dataclass(slots=True)
class _RingEpoch:
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
    superseded: bool = False
    tags: list[bytes] = field(default_factory=list)  # confirmations received before we finished
    done: tuple[GroupContext, EpochSecrets, bytes] | None = None  # ctx, secrets, confirmed
    # Restart commits that removed members the ring waited for (docs/protocol.md §8.3), in order:
    # (content, signature) for the transcript; their digests; the last one binds the next restart.
    restarts: tuple[tuple[FramedContent, bytes], ...] = ()
    digests: frozenset[bytes] = frozenset()

    @property
    def latest(self) -> bytes:
        """Digest of the commit whose ring is running: the one a restart continues."""
        return self.restart_digest or self.digest

    restart_digest: bytes = b""
    done_at: float = 0.0  # when our run completed (we then wait for the committer's confirmation)
    confirmed_by_us: bool = False  # we sent the confirmation ourselves (the committer's never came)


@dataclass(frozen=True, slots=True)
class _Intent:
    """What the caller asked a commit to do, kept to rebuild it if another commit wins the epoch.

    Removes are held by identity key: a leaf may change hands between epochs.
    """

    adds: tuple[JoinRequest, ...]
    removes: tuple[bytes, ...]
    update: bool
    authenticated_data: bytes

    @property
    def empty(self) -> bool:
        return not (self.adds or self.removes or self.update)


class Group:
    """One member's state of one group. Use :meth:`create` or :meth:`join` to make one."""

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
        self._ctx = group_context
        self._ctx_bytes = group_context.encode()
        self._secrets = secrets
        self._interim = interim
        self._keys = self._epoch_keys(secrets)
        self._previous: _EpochKeys | None = None
        self._epoch_started = config.clock()
        self._pending: _PendingCommit | None = None
        self._recent_commits: deque[bytes] = deque(maxlen=_RECENT_COMMITS)
        self._unechoed: dict[bytes, int] = {}  # digest of a sent message -> its epoch
        # Init keys of members who left since we joined -> their request's not_after. Current
        # members' init keys are in the roster; together they are every init key we saw used.
        self._used_init_keys: dict[bytes, int] = {}
        # The outbox (see data_to_send): ready items, and a lost commit's intent to rebuild.
        self._outbox: list[Outbound] = []
        self._rebuild: _Intent | None = None
        self._ring: _RingEpoch | None = None  # a ring epoch being agreed
        # A ring joiner holds only the init_secret of the epoch its Welcome carries (§8.4): that
        # epoch's message keys are not ours, so until the ring creating our first epoch is done
        # nothing can be sent, read or exported at it.
        self._joining = False
        self.state = GroupState.MEMBER

    # --- construction ------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        identity: Identity,
        group_id: bytes,
        display_name: str,
        config: GroupConfig | None = None,
        *,
        scheme: str = "tree",
    ) -> Group:
        """Start a group with ourselves as the only member, at epoch 0.

        ``scheme`` (``"tree"`` or ``"ring"``) is fixed for the group's life: a non-default one is
        recorded in the GroupContext extensions, so it is bound into every epoch.
        """
        config = config or GroupConfig()
        suite = config.suite()
        if scheme not in SCHEME_IDS:
            raise UsageError(f"unknown key-agreement scheme {scheme!r}; use one of {sorted(SCHEME_IDS)}")
        if not 0 < len(group_id) <= MAX_GROUP_ID:
            raise ConfigError(f"group id must be 1..{MAX_GROUP_ID} bytes")
        pending = JoinRequest.create(
            suite, identity, group_id, display_name, config.rand, wall_clock=config.wall_clock
        )
        agreement: KeyAgreementScheme
        if scheme == "ring":
            ring = RingScheme(
                suite, {0: pending.request}, identity=identity, rand=config.rand, clock=config.clock
            )
            ring.mark_verified(0)
            _, commit_secret = ring.start(group_id, 0, b"")  # alone: no message, done at once
            assert commit_secret is not None
            agreement, extensions = ring, _scheme_extension("ring")
        else:
            tree = TreeScheme.create(suite, pending.request, config.rand)
            agreement, extensions, commit_secret = tree, b"", tree.commit_secret
        ctx = GroupContext(suite.id, group_id, 0, agreement.public_hash, b"", extensions)
        # RFC 9420 §11: epoch 0 starts from a fresh random init secret.
        secrets = derive_epoch_secrets(suite, config.rand(32), commit_secret, ctx.encode())
        return cls(
            config=config,
            identity=identity,
            scheme=agreement,
            group_context=ctx,
            secrets=secrets,
            interim=b"",
        )

    @classmethod
    def join(cls, pending: PendingJoin, welcome: bytes, config: GroupConfig | None = None) -> Group:
        """Enter a group from a Welcome sealed to our join request's init key.

        Everything the welcome says is checked before a Group exists (RFC 9420 §12.4.3.1),
        including every member's join request signature. ``pending`` is consumed only on success:
        a rejected welcome leaves it usable for the genuine one. While our leaf is tainted by our
        adder, :meth:`data_to_send` carries our first Update (the taint rule's way out).
        """
        if pending.used:
            raise UsageError("this join request was already used to join; make a new one")
        config = config or GroupConfig()
        suite = config.suite()
        msg = Welcome.decode_message(welcome)
        gs = open_group_secrets(suite, msg, pending.request.ref(suite), pending.init_private)
        if gs.path_secret is None:
            raise InvalidValueError("welcome carries no leaf secret for us")
        if gs.psks:
            raise InvalidValueError("welcome asks for pre-shared keys, which groupchat does not use")
        info = decrypt_group_info(suite, msg, welcome_secret(suite, gs.joiner_secret))
        ctx = info.group_context
        if ctx.cipher_suite != suite.id or ctx.group_id != pending.request.group_id:
            raise WrongGroupError("welcome is for another group or cipher suite than we asked to join")
        if ctx.epoch >= _LAST_EPOCH:
            raise CounterLimitError(
                f"welcome puts the group at epoch {ctx.epoch}, the last a uint64 holds: no commit could "
                "follow it; refusing the welcome"
            )
        if _scheme_of(ctx) == "ring":
            return cls._join_ring(pending, info, gs.path_secret, config)
        trees = [data for ext, data in decode_extensions(info.extensions) if ext == TREE_EXTENSION]
        if len(trees) != 1:
            raise InvalidValueError("welcome's GroupInfo must carry exactly one public tree")
        scheme = TreeScheme.decode(suite, trees[0])
        if scheme.public_hash != ctx.tree_hash:
            raise InvalidValueError("welcome's public tree does not match the tree hash it was signed with")
        signer = scheme.member(info.signer)
        if signer is None:
            raise UnknownMemberError(f"welcome is signed by leaf {info.signer}, which holds no member")
        _verify_listed_member(suite, ctx.group_id, info.signer, signer, None)
        info.verify(suite, signer.identity_key)
        # Now that we know who built this roster, check every other leaf: a malicious adder
        # controls the whole welcome and could list a ghost (someone's identity key with a
        # made-up signature) under a tree hash that matches. After this loop every leaf is
        # verified; later leaves come only through Adds, verified by _check_adds.
        for leaf, request in scheme.members():
            if leaf != info.signer:
                _verify_listed_member(suite, ctx.group_id, leaf, request, (info.signer, signer))
            scheme.mark_verified(leaf)
        scheme.take_seat(pending.request, info.signer, gs.path_secret, pending.init_private)
        secrets = epoch_secrets_from_joiner(suite, gs.joiner_secret, ctx.encode())
        verify_confirmation_tag(
            suite, secrets.confirmation_key, ctx.confirmed_transcript_hash, info.confirmation_tag
        )
        interim = interim_transcript_hash(suite, ctx.confirmed_transcript_hash, info.confirmation_tag)
        group = cls(
            config=config,
            identity=pending.identity,
            scheme=scheme,
            group_context=ctx,
            secrets=secrets,
            interim=interim,
        )
        pending.used = True  # only now: a rejected welcome must not burn the request
        return group

    @classmethod
    def _join_ring(
        cls, pending: PendingJoin, info: GroupInfo, init_secret: bytes, config: GroupConfig
    ) -> Group:
        """Enter a ring group: the Welcome carries the epoch *before* the commit that adds us.

        We check that epoch's roster (every join request, the signer a member), the commit (signed
        by the Welcome's signer on that epoch, adding us), then take part in the ring that creates
        the new epoch like every member; its round 1 is in :meth:`data_to_send`. ``init_secret``
        of the previous epoch (sealed to our init key) is all we get: the new epoch also needs our
        own ephemeral, so a stolen init key alone does not reveal it.
        """
        suite, ctx = config.suite(), info.group_context
        ext = dict(decode_extensions(info.extensions))
        if not {RING_ROSTER_EXTENSION, RING_COMMIT_EXTENSION, RING_INTERIM_EXTENSION} <= set(ext):
            raise InvalidValueError("ring welcome lacks its roster, commit or transcript extension")
        scheme = RingScheme(
            suite,
            RingScheme.decode_roster(ext[RING_ROSTER_EXTENSION]),
            identity=pending.identity,
            rand=config.rand,
            clock=config.clock,
        )
        if scheme.public_hash != ctx.tree_hash:
            raise InvalidValueError("ring welcome's roster does not match the roster hash it was signed with")
        signer = scheme.member(info.signer)
        if signer is None:
            raise UnknownMemberError(f"welcome is signed by leaf {info.signer}, which holds no member")
        _verify_listed_member(suite, ctx.group_id, info.signer, signer, None)
        info.verify(suite, signer.identity_key)
        for leaf, request in scheme.members():
            if leaf != info.signer:
                _verify_listed_member(suite, ctx.group_id, leaf, request, (info.signer, signer))
            scheme.mark_verified(leaf)
        data = ext[RING_COMMIT_EXTENSION]
        msg = CommitMessage.decode(data)
        content = msg.content
        if content.group_id != ctx.group_id or content.epoch != ctx.epoch or content.sender != info.signer:
            raise InvalidValueError("ring welcome's commit is not the signer's commit on the welcome's epoch")
        ctx_bytes = ctx.encode()
        verify_framed_content(
            suite, signer.identity_key, WireFormat.PUBLIC_MESSAGE, content, ctx_bytes, msg.signature
        )
        ops = msg.commit.operations
        check_operation_order(ops)
        scheme.check_commit(content.sender, ops)
        added = [op for op in ops if op.request is not None]
        for op in added:
            assert op.request is not None
            _verify_listed_member(suite, ctx.group_id, op.leaf, op.request, (info.signer, signer))
        if not any(op.request == pending.request for op in added):
            raise InvalidValueError("ring welcome's commit does not add our join request")
        before = {leaf: req for leaf, req in scheme.members()}
        scheme.confirm(scheme.stage_commit(EpochInput(ctx.group_id, ctx.epoch), content.sender, ops))
        # Only init_secret of this epoch is ours; the rest stays unknown (we never read epoch n).
        secrets = EpochSecrets(*(b"" for _ in fields(EpochSecrets)))
        secrets = dataclasses.replace(
            secrets, init_secret=init_secret, encryption_secret=bytes(32), sender_data_secret=bytes(32)
        )
        group = cls(
            config=config,
            identity=pending.identity,
            scheme=scheme,
            group_context=ctx,
            secrets=secrets,
            interim=ext[RING_INTERIM_EXTENSION],
        )
        pending.used = True
        overrides = {op.leaf: before.get(op.leaf) for op in ops if op.type in (OpType.ADD, OpType.REMOVE)}
        members = group._member
        ring = _RingEpoch(
            data,
            content,
            msg.signature,
            members(content.sender, signer),
            tuple(members(op.leaf, op.request) for op in added if op.request is not None),
            tuple(members(op.leaf, r) for op in ops if op.type == OpType.REMOVE and (r := before[op.leaf])),
            any(op.type == OpType.UPDATE for op in ops),
            overrides,
            suite.hash(data),
            own=False,
        )
        group._joining = True
        group._begin_ring(ring)
        return group

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

    @property
    def scheme(self) -> str:
        """The key-agreement scheme this group was created with (``"tree"`` or ``"ring"``)."""
        return self._scheme.name

    @property
    def tree_hash(self) -> bytes:
        return self._ctx.tree_hash

    @property
    def epoch_authenticator(self) -> bytes:
        """RFC 9420 §8.7: equal for all members iff they share the epoch; compare out of band."""
        self._require_member()
        self._require_epoch_keys("compare epoch authenticators")
        return self._secrets.epoch_authenticator

    @property
    def joining(self) -> bool:
        """True for a ring joiner until the ring creating its first epoch is done (§8.4): the
        current epoch is the one before it joined, whose keys it does not hold."""
        return self._joining

    def has_init_key(self, init_key: bytes) -> bool:
        """Whether a current member joined with this init key (its join request is in the roster)."""
        return self._scheme.has_init_key(init_key)

    def _require_epoch_keys(self, what: str) -> None:
        if self._joining:
            raise UsageError(
                f"cannot {what} yet: we joined a ring group and are still agreeing our first epoch "
                f"({self.epoch + 1}) with the others; wait for its EpochChanged"
            )

    @property
    def has_pending_commit(self) -> bool:
        return self._pending is not None

    @property
    def holds_init_key(self) -> bool:
        """True until our own first Update is applied (we may still receive a sealed re-key)."""
        return self._scheme.holds_init_key

    def tainted_by(self, leaf: int) -> int | None:
        """Public taint record: the leaf that chose ``leaf``'s current secret, ``None`` if its owner did."""
        return self._tree_scheme().tainted_by(leaf)

    def taint_record(self) -> dict[int, int]:
        """The whole public taint record ``{tainted leaf: chooser leaf}`` of the current epoch."""
        return self._tree_scheme().taint_record()

    def leaf_public_key(self, leaf: int) -> bytes | None:
        """Current public key of ``leaf`` (a member's or a vacated slot's), ``None`` if blank."""
        return self._tree_scheme().leaf_public_key(leaf)

    def members(self) -> list[Member]:
        return [self._member(leaf, req) for leaf, req in self._scheme.members()]

    def member(self, leaf: int) -> Member:
        req = self._scheme.member(leaf)
        if req is None:
            raise UnknownMemberError(f"leaf {leaf} holds no member")
        return self._member(leaf, req)

    def _tree_scheme(self) -> TreeScheme:
        scheme = self._scheme
        if not isinstance(scheme, TreeScheme):
            raise UsageError(f"this group uses the {scheme.name} scheme, which has no ratchet tree")
        return scheme

    # White-box access for tests that inspect the tree (the keeper adversary, golden vectors).
    @property
    def _tree(self) -> RatchetTree:
        return self._tree_scheme().tree

    @property
    def _path(self) -> PathSecrets:
        return self._tree_scheme().path

    def export_secret(self, label: bytes, context: bytes, length: int) -> bytes:
        """MLS-Exporter (RFC 9420 §8.5) for the current epoch."""
        self._require_member()
        self._require_epoch_keys("export a secret")
        if not 0 < length <= 255 * self.suite.hash_len:  # HKDF-Expand's output limit (RFC 5869)
            raise UsageError(f"an exported secret must be 1..{255 * self.suite.hash_len} bytes, not {length}")
        return exporter(self.suite, self._secrets.exporter_secret, label, context, length)

    # --- sending -----------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes, authenticated_data: bytes = b"") -> bytes:
        """Sign and encrypt an application message for the current epoch."""
        self._require_member()
        self._require_epoch_keys("send a message")
        self._expire_previous_epoch()
        if len(plaintext) > MAX_APPLICATION_DATA:
            # Receivers refuse longer application data (read_application_data): never send it.
            raise UsageError(f"message of {len(plaintext)} bytes is longer than {MAX_APPLICATION_DATA}")
        content = FramedContent(
            self.group_id,
            self.epoch,
            self.my_leaf,
            authenticated_data,
            ContentType.APPLICATION,
            opaque(plaintext),
        )
        signature = sign_framed_content(
            self.suite, self._identity.signing_key, WireFormat.PRIVATE_MESSAGE, content, self._ctx_bytes
        )
        tree = self._keys.secret_tree
        data = protect_application(
            self.suite,
            content=content,
            signature=signature,
            secret_tree=tree,
            sender_data_secret=self._keys.sender_data_secret,
            padding_block=self.config.padding_block,
            rand=self.config.rand,
        )
        self._note_sent(data)
        return data

    def commit(
        self,
        *,
        add: Iterable[JoinRequest | bytes] = (),
        remove: Iterable[int] = (),
        update: bool = False,
        authenticated_data: bytes = b"",
    ) -> bytes:
        """Build a commit and return its bytes; it takes effect when the relay echoes it to :meth:`receive`.

        The scheme decides the operations (for the tree: removes, the re-keys the taint rules
        require, adds into the leftmost free leaves, then our update, in
        :data:`~groupchat.core.commit.OPERATION_ORDER`). A commit with nothing else in it is a
        self-update; while our own leaf is tainted every commit includes our update. The caller
        sends the returned bytes itself (it asked for them); everything the protocol sends on its
        own, including the Welcome this commit releases, comes out of :meth:`data_to_send`. An
        explicit commit replaces a rebuild of a lost commit that was not drained yet.
        """
        self._require_member()
        if self._pending is not None:
            raise UsageError("a commit is already waiting for the relay's echo")
        if len(authenticated_data) > MAX_AUTHENTICATED_DATA:
            raise UsageError(f"authenticated data is longer than {MAX_AUTHENTICATED_DATA} bytes")
        requests = [JoinRequest.decode(r) if isinstance(r, bytes) else r for r in add]
        removes = list(dict.fromkeys(remove))
        if self._ring is not None:
            if requests or update or not removes:
                raise UsageError(
                    f"the ring is still agreeing epoch {self.epoch + 1}: only removals can restart it "
                    "(to drop members it waits for); commit anything else once it is done"
                )
            return self._commit_restart(removes, authenticated_data)
        scheme = self._scheme
        removed_requests: list[JoinRequest] = []
        for leaf in removes:
            if leaf == self.my_leaf:
                raise UsageError("a member cannot remove itself; ask another member to commit the remove")
            gone = scheme.member(leaf)
            if gone is None:
                raise UnknownMemberError(f"cannot remove leaf {leaf}: it holds no member")
            removed_requests.append(gone)
        self._check_adds(requests)
        # What the caller asked for, to rebuild it on the next epoch if another commit wins.
        intent = _Intent(
            tuple(requests),
            tuple(r.identity_key for r in removed_requests),
            update or not (requests or removes),
            authenticated_data,
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
        message, ctx, secrets, interim, welcome = self._seal_commit(change, authenticated_data)
        joiners = tuple((op.leaf, op.request) for op in change.operations if op.request is not None)
        self._pending = _PendingCommit(
            message, change, ctx, secrets, interim, welcome, joiners, removed, update, intent
        )
        self._rebuild = None
        return message

    def _seal_commit(
        self, change: OwnChange, authenticated_data: bytes
    ) -> tuple[bytes, GroupContext, EpochSecrets, bytes, bytes | None]:
        """Sign our commit, run the key schedule for the epoch it creates, and build its Welcome."""
        suite = self.suite
        commit = Commit(change.operations)
        if change.commit_secret is None:
            return self._seal_ring_commit(change, commit, authenticated_data)
        content = FramedContent(
            self.group_id, self.epoch, self.my_leaf, authenticated_data, ContentType.COMMIT, commit.encode()
        )
        signature = sign_framed_content(
            suite, self._identity.signing_key, WireFormat.PUBLIC_MESSAGE, content, self._ctx_bytes
        )
        assert change.commit_secret is not None  # a one-round scheme
        ctx, secrets, confirmed = self._next_epoch(
            content, signature, change.public_hash, change.commit_secret
        )
        tag = confirmation_tag(suite, secrets.confirmation_key, confirmed)
        message = CommitMessage(content, commit, signature, tag).encode()
        welcome = None
        joiners = [op for op in change.operations if op.request is not None]
        if joiners:
            assert change.public_state is not None
            info = GroupInfo(
                ctx, encode_extensions([(TREE_EXTENSION, change.public_state)]), tag, self.my_leaf, b""
            ).sign(suite, self._identity.signing_key)
            welcome = seal_welcome(
                suite,
                info.encode(),
                secrets.welcome_secret,
                [
                    (
                        op.request.ref(suite),
                        op.request.init_key,
                        GroupSecrets(secrets.joiner_secret, change.joiner_secrets[op.leaf], []),
                    )
                    for op in joiners
                    if op.request is not None
                ],
            ).encode_message()
        return message, ctx, secrets, interim_transcript_hash(suite, confirmed, tag), welcome

    def _seal_ring_commit(
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
            extensions = encode_extensions(
                [
                    (RING_ROSTER_EXTENSION, change.public_state),
                    (RING_COMMIT_EXTENSION, message),
                    (RING_INTERIM_EXTENSION, self._interim),
                ]
            )
            info = GroupInfo(self._ctx, extensions, bytes(32), self.my_leaf, b"").sign(
                suite, self._identity.signing_key
            )
            # The joiner gets this epoch's init_secret; joiner_secret only protects the GroupInfo.
            joiner_secret = self.config.rand(32)
            welcome = seal_welcome(
                suite,
                info.encode(),
                welcome_secret(suite, joiner_secret),
                [
                    (r.ref(suite), r.init_key, GroupSecrets(joiner_secret, self._secrets.init_secret, []))
                    for r in joiners
                ],
            ).encode_message()
        return message, self._ctx, self._secrets, self._interim, welcome

    def _restart_context(self, ring: _RingEpoch) -> bytes:
        """What a restart commit is signed over: this epoch's context and the commit whose ring it
        restarts, so that a commit built before that ring (a lost race) is never taken for one."""
        return Writer().raw(self._ctx_bytes).opaque(_RESTART_LABEL).opaque(ring.latest).bytes()

    def _commit_restart(self, removes: list[int], authenticated_data: bytes) -> bytes:
        """A commit on this epoch, while its ring runs, that removes members and restarts the ring."""
        ring = self._ring
        assert ring is not None
        scheme = self._ring_scheme()
        for leaf in removes:
            if leaf == self.my_leaf:
                raise UsageError("a member cannot remove itself; ask another member to commit the remove")
            if scheme.member(leaf) is None:
                raise UnknownMemberError(f"cannot remove leaf {leaf}: it holds no member")
        removed = tuple(self.member(leaf) for leaf in removes)
        epoch_input, rand = EpochInput(self.group_id, self.epoch), self.config.rand
        change = scheme.build_commit(epoch_input, removes=removes, adds=[], update=False, rand=rand)
        commit = Commit(change.operations)
        content = FramedContent(
            self.group_id, self.epoch, self.my_leaf, authenticated_data, ContentType.COMMIT, commit.encode()
        )
        context = self._restart_context(ring)
        signing_key = self._identity.signing_key
        signature = sign_framed_content(self.suite, signing_key, WireFormat.PUBLIC_MESSAGE, content, context)
        message = CommitMessage(content, commit, signature, bytes(32)).encode()
        intent = _Intent((), tuple(m.identity_key for m in removed), False, authenticated_data)
        self._pending = _PendingCommit(
            message, change, self._ctx, self._secrets, self._interim, None, (), removed, False, intent
        )
        return message

    def _receive_restart(self, data: bytes, digest: bytes, msg: CommitMessage) -> Event:
        """A commit on our epoch while its ring runs: a restart that removes members (§8.3), or a
        commit that lost the race to the ring's own."""
        ring = self._ring
        assert ring is not None
        if digest == ring.digest or digest in ring.digests:
            # A ring joiner reads the room from the commit that added it: it already started the ring.
            raise ReplayError("this commit was already applied: it started the ring that is running")
        if ring.done is not None:
            # The run completed (every round-2 message came through, at the same point of the order
            # for every member; the committer already entered the epoch there): too late to change
            # the roster of this epoch, only the confirmation is missing.
            raise EpochError(
                f"commit on epoch {self.epoch} arrived after the ring agreed epoch {self.epoch + 1} "
                "(another commit already won this epoch)"
            )
        scheme = self._ring_scheme()
        pending = self._pending
        if pending is not None and pending.message == data:
            removed = {m.leaf: m for m in pending.removed}
            overrides = {leaf: self._override_of(ring, leaf) for leaf in removed}
            scheme.apply_own(pending.change)
            self._pending = None
            me = self.member(self.my_leaf)
            return self._restart_ring(ring, data, msg, me, removed, overrides, own=True)
        content = msg.content
        request = scheme.member(content.sender)
        stale = EpochError(
            f"commit on epoch {self.epoch} arrived while the ring agrees epoch {self.epoch + 1} "
            "(another commit already won this epoch)"
        )
        if request is None:
            raise stale
        self._verify_member(content.sender, request)
        try:
            verify_framed_content(
                self.suite,
                request.identity_key,
                WireFormat.PUBLIC_MESSAGE,
                content,
                self._restart_context(ring),
                msg.signature,
            )
        except SignatureError:
            raise stale from None  # not signed as a restart of this ring: built before it
        if content.sender == self.my_leaf:
            raise InvalidCommitError("restart is signed by our own leaf but is not the one we have pending")
        ops = msg.commit.operations
        if any(op.type != OpType.REMOVE for op in ops):
            raise InvalidCommitError("a commit that restarts a running ring may only remove members")
        self._check_operations(content.sender, ops)
        committer = self._member(content.sender, request)
        removed = {op.leaf: self.member(op.leaf) for op in ops}
        if self.my_leaf in removed:
            return self._removed(committer)
        overrides = {leaf: self._override_of(ring, leaf) for leaf in removed}
        scheme.confirm(scheme.stage_commit(EpochInput(self.group_id, self.epoch), content.sender, ops))
        lost = self._pending
        self._pending = None
        superseded = lost is not None
        return self._restart_ring(ring, data, msg, committer, removed, overrides, own=False, lost=superseded)

    def _override_of(self, ring: _RingEpoch, leaf: int) -> JoinRequest | None:
        """Who held ``leaf`` at this epoch (before the ring's commit), for late messages of it."""
        if leaf in ring.overrides:
            return ring.overrides[leaf]
        return self._scheme.member(leaf)

    def _restart_ring(
        self,
        ring: _RingEpoch,
        data: bytes,
        msg: CommitMessage,
        committer: Member,
        removed: dict[int, Member],
        overrides: dict[int, JoinRequest | None],
        *,
        own: bool,
        lost: bool = False,
    ) -> Event:
        """The ring restarts over the roster without the removed: new run, bound to every commit so
        far; the last restarter confirms the epoch (the ring's committer may be among the removed)."""
        joined = {m.leaf for m in ring.added}
        restarted = dataclasses.replace(
            ring,
            data=ring.data + data,
            committer=committer,
            added=tuple(m for m in ring.added if m.leaf not in removed),
            removed=ring.removed + tuple(m for leaf, m in removed.items() if leaf not in joined),
            overrides={**overrides, **ring.overrides},
            own=own,
            superseded=ring.superseded or lost,
            tags=[],
            restarts=(*ring.restarts, (msg.content, msg.signature)),
            digests=ring.digests | {self.suite.hash(data)},
            restart_digest=self.suite.hash(data),
        )
        return self._begin_ring(restarted)

    def discard_pending_commit(self) -> None:
        """Forget a pending commit (for example when the relay rejected it)."""
        self._pending = None

    # --- the outbox ------------------------------------------------------------------------------

    def data_to_send(self) -> list[Outbound]:
        """Everything the protocol requires us to send now, in order; call after every call into the group.

        * the Welcome of our commit, once its echo says it won the epoch, to each joiner;
        * our lost commit rebuilt on the new epoch (adds not yet in, removes not yet done, our
          update), once someone else's commit won the epoch ours was built on; nothing if the
          winner already did all of it;
        * our first Update while our leaf is still tainted by our adder and we have no commit in
          flight (right after :meth:`join`): until it is applied, whoever added us could read on
          after being removed.

        Commits are built here, lazily, so that a caller which never drains sees no pending commit
        it did not ask for. May raise the errors of :meth:`commit` (a rebuilt add whose join request
        expired in the meantime, say); the rebuild is then dropped, and the next call is clean.
        """
        if self.state is GroupState.MEMBER and self._pending is None and self._ring is None:
            intent, self._rebuild = self._rebuild, None
            if intent is not None:
                self._queue_commit(
                    self.commit(
                        add=intent.adds,
                        remove=[leaf for key in intent.removes if (leaf := self._leaf_of(key)) is not None],
                        update=intent.update,
                        authenticated_data=intent.authenticated_data,
                    )
                )
            elif self._scheme.plan_update(True, False):
                self._queue_commit(self.commit(update=True))
        out, self._outbox = self._outbox, []
        return out

    def _queue_commit(self, data: bytes) -> None:
        self._outbox.append(Outbound(ROOM, data, OutboundKind.COMMIT))

    def _leaf_of(self, identity_key: bytes) -> int | None:
        return self._scheme.leaf_of_identity(identity_key)

    def _rebuild_intent(self, lost: _PendingCommit) -> _Intent | None:
        """What of our lost commit is still to do on the new epoch (``None``: nothing)."""
        intent = lost.intent
        adds = tuple(r for r in intent.adds if self._leaf_of(r.identity_key) is None)
        removes = tuple(k for k in intent.removes if self._leaf_of(k) is not None)
        rest = _Intent(adds, removes, intent.update, intent.authenticated_data)
        return None if rest.empty else rest

    # --- receiving ---------------------------------------------------------------------------

    def receive(self, data: bytes) -> Event:
        """Process one message from the relay; raise and change nothing if it is not acceptable."""
        self._require_member()
        self._expire_previous_epoch()
        if len(data) < 4:
            raise InvalidValueError(f"message of {len(data)} bytes is too short to have a header")
        wire_format = int.from_bytes(data[2:4], "big")
        if wire_format == WireFormat.PUBLIC_MESSAGE:
            return self._receive_commit(data)
        if wire_format == WireFormat.PRIVATE_MESSAGE:
            return self._receive_private(data)
        if wire_format in (RING_WIRE_FORMAT, RING_CONFIRM_WIRE_FORMAT):
            return self._receive_handshake(wire_format, data)
        if wire_format == WireFormat.WELCOME:
            raise UsageError("a welcome is processed with Group.join, not by an existing member")
        raise InvalidValueError(f"unknown wire format {wire_format}")

    def _receive_private(self, data: bytes) -> Event:
        # Our own messages come back from the relay; our key for them is already deleted, so
        # we recognise the exact bytes we sent instead of decrypting them.
        digest = self.suite.hash(data)
        epoch = self._unechoed.pop(digest, None)
        if epoch is not None:
            return MessageEchoed(epoch, digest)
        msg = PrivateMessage.decode(data)
        if msg.group_id != self.group_id:
            raise WrongGroupError("message belongs to another group")
        if msg.content_type != ContentType.APPLICATION:
            raise InvalidValueError("handshake messages must be sent as public commits")
        keys = self._keys_for_epoch(msg.epoch)
        opened, lookup = open_private_message(
            self.suite,
            msg,
            sender_data_secret=keys.sender_data_secret,
            secret_tree=keys.secret_tree,
            body_reader=read_application_data,
        )
        sender = opened.content.sender
        gone = keys.removed.get(sender)
        request = gone or (
            keys.overrides[sender] if sender in keys.overrides else self._scheme.member(sender)
        )
        if request is None:
            raise UnknownMemberError(f"message claims to come from leaf {sender}, which holds no member")
        self._verify_member(sender, request)
        verify_framed_content(
            self.suite,
            request.identity_key,
            WireFormat.PRIVATE_MESSAGE,
            opened.content,
            keys.group_context,
            opened.signature,
        )
        if gone is not None:
            # Checked after the signature, so the error names the real sender. The relay ordered
            # this after the commit that removed them: it must not read as normal chat.
            raise RemovedSenderError(
                f"{gone.display_name!r} ({gone.fingerprint}) sent this message in epoch {msg.epoch} "
                f"after their removal (the commit that started epoch {msg.epoch + 1} removed them); "
                "it is refused",
                sender,
                gone.display_name,
            )
        keys.secret_tree.commit(lookup)
        return MessageReceived(
            Member(sender, request.display_name, request.identity_key),
            opened.parsed,
            msg.epoch,
            lookup.generation,
            msg.authenticated_data,
        )

    def _receive_commit(self, data: bytes) -> Event:
        digest = self.suite.hash(data)
        if digest in self._recent_commits:
            raise ReplayError("this commit was already applied")
        msg = CommitMessage.decode(data)
        content = msg.content
        if content.group_id != self.group_id:
            raise WrongGroupError("commit belongs to another group")
        if content.epoch != self.epoch:
            when = "an earlier" if content.epoch < self.epoch else "a later"
            raise EpochError(
                f"commit was built on {when} epoch ({content.epoch}) than ours ({self.epoch}); "
                + ("another commit won that epoch" if content.epoch < self.epoch else "we missed a commit")
            )
        if self.epoch >= _LAST_EPOCH:
            raise CounterLimitError(
                f"commit for epoch {self.epoch}, the last a uint64 holds: no epoch can follow it"
            )
        if self._ring is not None:
            return self._receive_restart(data, digest, msg)
        pending = self._pending
        if pending is not None and pending.message == data:
            return self._apply_own(pending, digest)

        scheme = self._scheme
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
        ops = msg.commit.operations
        self._check_operations(sender, ops)
        removed = tuple(self.member(op.leaf) for op in ops if op.type == OpType.REMOVE)
        if any(m.leaf == self.my_leaf for m in removed):
            return self._removed(committer)

        overrides = {
            op.leaf: scheme.member(op.leaf) for op in ops if op.type in (OpType.ADD, OpType.REMOVE)
        }
        staged = scheme.stage_commit(EpochInput(self.group_id, self.epoch), sender, ops)
        if staged.commit_secret is None:  # ring: the roster changes now, the epoch when it is done
            scheme.confirm(staged)
            lost = self._pending
            self._pending = None
            if lost is not None:
                self._rebuild = self._rebuild_intent(lost)
            ring = _RingEpoch(
                data,
                content,
                msg.signature,
                committer,
                tuple(self.member(op.leaf) for op in ops if op.type == OpType.ADD),
                removed,
                any(op.type == OpType.UPDATE for op in ops),
                overrides,
                digest,
                own=False,
                superseded=lost is not None,
            )
            return self._begin_ring(ring)
        try:
            assert staged.commit_secret is not None  # a one-round scheme
            ctx, secrets, confirmed = self._next_epoch(
                content, msg.signature, staged.public_hash, staged.commit_secret
            )
            verify_confirmation_tag(self.suite, secrets.confirmation_key, confirmed, msg.confirmation_tag)
        except BaseException:
            scheme.rollback(staged)
            raise
        scheme.confirm(staged)
        lost = self._pending
        self._pending = None
        added = tuple(self.member(op.leaf) for op in ops if op.type == OpType.ADD)
        updated = any(op.type == OpType.UPDATE for op in ops)
        interim = interim_transcript_hash(self.suite, confirmed, msg.confirmation_tag)
        self._enter_epoch(ctx, secrets, interim, overrides, digest)
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
        )

    # --- the ring's epoch change ------------------------------------------------------------------

    def poll(self) -> None:
        """Check the running key agreement's deadline (injected clock); call on the session's timer.

        On a timeout it raises :class:`~groupchat.core.schemes.ring_errors.RingTimeoutError` naming
        the members whose message is missing, once per attempt, and has queued in
        :meth:`data_to_send` our proposal of the next attempt (fresh ephemerals). That attempt is in
        force from the first of its messages in the relay's order; until then late messages of the
        running one still count. The retry completes once the missing members are back.
        """
        self._require_member()
        self._expire_previous_epoch()
        scheme = self._scheme
        if self._ring is None or not isinstance(scheme, RingScheme):
            return
        ring = self._ring
        if ring.done is not None:
            # Our run is done; the committer's confirmation has not come. Past the deadline any
            # member who completed confirms (the tag needs the epoch's secret, so only a member can
            # make one, and it still shows that sender and receiver agree); the epoch is entered
            # where the first confirmation is ordered, ours included (§8.3).
            overdue = self.config.clock() - ring.done_at >= scheme.timeout
            if not ring.own and not ring.confirmed_by_us and overdue:
                ctx, secrets, confirmed = ring.done
                tag = confirmation_tag(self.suite, secrets.confirmation_key, confirmed)
                self._queue_handshake([_encode_confirmation(self.group_id, ctx.epoch, tag)])
                ring.confirmed_by_us = True
            return
        timeout = scheme.overdue()
        if timeout is not None:
            # Propose the next attempt; it is in force from where the relay orders its first
            # message (docs/protocol.md §8.3), so the late messages of this one may still finish it.
            self._queue_handshake([scheme.propose_retry()])
            raise timeout

    def _ring_scheme(self) -> RingScheme:
        scheme = self._scheme
        if not isinstance(scheme, RingScheme):
            raise WrongSchemeError(
                f"ring handshake message for a group that agrees its keys with the {scheme.name} scheme"
            )
        return scheme

    def _queue_handshake(self, messages: Iterable[bytes]) -> None:
        for m in messages:
            self._outbox.append(Outbound(ROOM, m, OutboundKind.HANDSHAKE))
            self._note_sent(m)  # its echo is recognised by its bytes, even after the run is done

    def _begin_ring(self, ring: _RingEpoch) -> Event:
        """A ring commit won its epoch: start the run over the new roster (all members, fresh keys)."""
        scheme = self._ring_scheme()
        self._ring = ring
        # Binds the run to the state it continues, so it cannot be replayed into a fork.
        context = self.suite.hash(self._ctx_bytes + ring.data)
        out, secret = scheme.start(self.group_id, self.epoch + 1, context)
        self._queue_handshake(out)
        if secret is not None:
            return self._ring_finished(secret)
        return RekeyProgress(self.epoch + 1, scheme.missing())

    def _receive_handshake(self, wire_format: int, data: bytes) -> Event:
        scheme = self._ring_scheme()
        ring = self._ring
        digest = self.suite.hash(data)
        sent_in = self._unechoed.pop(digest, None)
        if sent_in is not None:
            if ring is not None and ring.done is not None and wire_format == RING_CONFIRM_WIRE_FORMAT:
                return self._enter_ring_epoch(ring, [_decode_confirmation(data)[2]])  # ours, first
            if ring is None or wire_format != RING_WIRE_FORMAT:
                return MessageEchoed(sent_in, digest)
            # Our own round message counts where the relay ordered it (§8.3).
            if scheme.is_own_proposal(data):
                scheme.adopt_proposal()  # our retry's place in the order: its attempt is in force
            try:
                out, secret = scheme.handshake(data)
            except (WrongAttemptError, AttemptFailedError, EpochError, ReplayError):
                return MessageEchoed(sent_in, digest)  # of an attempt no longer in force
            self._queue_handshake(out)
            if secret is None:
                return RekeyProgress(self.epoch + 1, scheme.missing())
            return self._ring_finished(secret)
        if wire_format == RING_CONFIRM_WIRE_FORMAT:
            group_id, epoch, tag = _decode_confirmation(data)
            if group_id != self.group_id:
                raise WrongGroupError("ring confirmation belongs to another group")
            if ring is None or epoch != self.epoch + 1:
                raise EpochError(f"ring confirmation for epoch {epoch}, but no ring is agreeing it here")
            if ring.done is None:
                ring.tags.append(tag)  # checked once our run is done
                return RekeyProgress(epoch, scheme.missing())
            return self._enter_ring_epoch(ring, [tag])
        if ring is None:
            raise EpochError(f"ring message, but no ring rekey is running (we are at epoch {self.epoch})")
        out, secret = scheme.handshake(data)
        self._queue_handshake(out)
        if secret is None:
            return RekeyProgress(self.epoch + 1, scheme.missing())
        return self._ring_finished(secret)

    def _ring_finished(self, commit_secret: bytes) -> Event:
        """Our run is done: the new epoch's GroupContext and secrets; the committer confirms them."""
        ring = self._ring
        assert ring is not None and isinstance(self._scheme, RingScheme)
        if self.epoch >= _LAST_EPOCH:
            raise CounterLimitError(f"the group is at epoch {self.epoch}, the last a uint64 holds")
        # The ring's transcript (every signed round message) joins the commit in the transcript.
        confirmed = confirmed_transcript_hash(
            self.suite,
            self._interim,
            confirmed_transcript_input(WireFormat.PUBLIC_MESSAGE, ring.content, ring.signature)
            + b"".join(
                confirmed_transcript_input(WireFormat.PUBLIC_MESSAGE, content, signature)
                for content, signature in ring.restarts
            )
            + opaque(self._scheme.last_transcript),
        )
        ctx = GroupContext(
            self.suite.id,
            self.group_id,
            self.epoch + 1,
            self._scheme.public_hash,
            confirmed,
            self._ctx.extensions,
        )
        secrets = derive_epoch_secrets(self.suite, self._secrets.init_secret, commit_secret, ctx.encode())
        ring.done = (ctx, secrets, confirmed)
        ring.done_at = self.config.clock()
        if ring.own:
            tag = confirmation_tag(self.suite, secrets.confirmation_key, confirmed)
            message = _encode_confirmation(self.group_id, ctx.epoch, tag)
            self._queue_handshake([message])
            return self._enter_ring_epoch(ring, [tag])
        if ring.tags:
            return self._enter_ring_epoch(ring, ring.tags)
        return RekeyProgress(ctx.epoch, ())

    def _enter_ring_epoch(self, ring: _RingEpoch, tags: Sequence[bytes]) -> Event:
        assert ring.done is not None
        ctx, secrets, confirmed = ring.done
        tag = next(
            (t for t in tags if _tag_ok(self.suite, secrets.confirmation_key, confirmed, t)), None
        )
        if tag is None:
            ring.tags.clear()
            raise ConfirmationError(
                f"ring confirmation for epoch {ctx.epoch} does not match the secret we agreed: our view "
                "of the ring differs from the committer's"
            )
        self._ring = None
        # A restart of ours that came too late (after the run completed) is moot now.
        superseded = ring.superseded or (self._pending is not None and not ring.own)
        self._pending = None
        interim = interim_transcript_hash(self.suite, confirmed, tag)
        self._enter_epoch(ctx, secrets, interim, ring.overrides, ring.digest)
        return EpochChanged(
            ctx.epoch,
            ring.committer,
            ring.added,
            ring.removed,
            ring.updated,
            secrets.epoch_authenticator,
            own=ring.own,
            superseded_own_commit=superseded,
        )

    # --- commit helpers ------------------------------------------------------------------------

    def _apply_own(self, pending: _PendingCommit, digest: bytes) -> Event:
        overrides = {leaf: self._scheme.member(leaf) for leaf in pending.added}
        overrides.update({m.leaf: self._scheme.member(m.leaf) for m in pending.removed})
        self._scheme.apply_own(pending.change)
        self._pending = None
        if pending.change.commit_secret is None:  # ring: the epoch changes when the ring is done
            self._queue_welcome(pending)
            content = CommitMessage.decode(pending.message).content
            me = self.member(self.my_leaf)
            ring = _RingEpoch(
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
            )
            return self._begin_ring(ring)
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
            welcome=pending.welcome,
        )

    def _queue_welcome(self, pending: _PendingCommit) -> None:
        if pending.welcome is not None:
            # Only now, with the epoch won, is the Welcome safe to release (RFC 9420 §14).
            for _, request in pending.joiners:
                self._outbox.append(Outbound(Joiner.of(request), pending.welcome, OutboundKind.WELCOME))

    def _next_epoch(
        self, content: FramedContent, signature: bytes, public_hash: bytes, commit_secret: bytes
    ) -> tuple[GroupContext, EpochSecrets, bytes]:
        """RFC 9420 §8.2/§12.4: confirmed transcript hash, next GroupContext, key schedule."""
        if self.epoch >= _LAST_EPOCH:
            raise CounterLimitError(
                f"the group is at epoch {self.epoch}, the last a uint64 holds: no further commit is "
                "possible; start a new group"
            )
        confirmed = confirmed_transcript_hash(
            self.suite,
            self._interim,
            confirmed_transcript_input(WireFormat.PUBLIC_MESSAGE, content, signature),
        )
        ctx = GroupContext(self.suite.id, self.group_id, self.epoch + 1, public_hash, confirmed)
        secrets = derive_epoch_secrets(self.suite, self._secrets.init_secret, commit_secret, ctx.encode())
        return ctx, secrets, confirmed

    def _enter_epoch(
        self,
        ctx: GroupContext,
        secrets: EpochSecrets,
        interim: bytes,
        overrides: dict[int, JoinRequest | None],
        digest: bytes,
    ) -> None:
        previous = self._keys
        previous.overrides = overrides
        # Removals, recorded explicitly: the leaves whose member this commit took away (a leaf is
        # never both emptied and refilled by one commit).
        scheme = self._scheme
        previous.removed = {
            leaf: req for leaf, req in overrides.items() if req is not None and scheme.member(leaf) is None
        }
        self._remember_init_keys(previous.removed.values())
        # A ring joiner's placeholder keys for the epoch before it joined are never kept.
        self._previous = None if self._joining else previous
        self._joining = False
        self._ctx, self._ctx_bytes = ctx, ctx.encode()
        self._secrets, self._interim = secrets, interim
        self._keys = self._epoch_keys(secrets)
        self._epoch_started = self.config.clock()
        self._recent_commits.append(digest)

    def _epoch_keys(self, secrets: EpochSecrets) -> _EpochKeys:
        tree = SecretTree(
            self.suite,
            secrets.encryption_secret,
            self._scheme.capacity,
            max_forward=self.config.max_forward,
            max_skipped=self.config.max_skipped,
        )
        return _EpochKeys(self._ctx.epoch, self._ctx_bytes, tree, secrets.sender_data_secret)

    def _expire_previous_epoch(self) -> None:
        """Delete the previous epoch's keys once their TTL has passed (forward secrecy)."""
        if (
            self._previous is not None
            and self.config.clock() - self._epoch_started > self.config.previous_epoch_ttl
        ):
            self._previous = None

    def _keys_for_epoch(self, epoch: int) -> _EpochKeys:
        if self._joining and epoch <= self.epoch:
            raise EpochError(
                f"message is for epoch {epoch}, before we joined (our first epoch will be {self.epoch + 1})"
            )
        if epoch == self.epoch:
            return self._keys
        prev = self._previous
        if prev is not None and epoch == prev.epoch:
            return prev
        raise EpochError(f"message is for epoch {epoch}; we hold keys for epoch {self.epoch} only")

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

    def _remember_init_keys(self, departed: Iterable[JoinRequest]) -> None:
        """Keep departed members' init keys so that their old requests cannot be re-added.

        An entry is dropped once its request is expired even by a receiver's tolerant clock:
        that request is then refused by the expiry check alone, so forgetting it changes nothing.
        (Another request carrying the same init key would have to be signed by its owner, or be a
        copycat whose welcome nobody can open; see docs/protocol.md.)
        """
        for req in departed:
            self._used_init_keys[req.init_key] = req.not_after
        horizon = self.config.wall_clock() - self.config.clock_skew
        expired = [key for key, not_after in self._used_init_keys.items() if not_after < horizon]
        for key in expired:
            del self._used_init_keys[key]

    def _removed(self, by: Member) -> RemovedFromGroup:
        epoch = self.epoch + 1
        # Forget every secret: a removed member must not read the group any more, and a later
        # compromise of this device must not reveal the last epoch either.
        self._scheme.forget_secrets()
        self._previous = None
        self._pending = None
        self._rebuild = None
        self._secrets = _ERASED_SECRETS
        self._keys = _EpochKeys(self.epoch, self._ctx_bytes, SecretTree(self.suite, bytes(32), 1), b"")
        self._unechoed.clear()
        self.state = GroupState.REMOVED
        return RemovedFromGroup(epoch, by)

    # --- misc helpers ----------------------------------------------------------------------------

    def _verify_member(self, leaf: int, request: JoinRequest) -> None:
        """Backstop: check a leaf's join request signature if we have not yet (then never again).

        Every leaf is already verified when we rely on it (Group.join checks the whole tree,
        _check_adds every Add), so this is a no-op; it is the one lazy check left, and it is safe
        because it only ever runs before we act on the leaf.
        """
        if not self._scheme.is_verified(leaf):
            request.verify(self.suite)
            self._scheme.mark_verified(leaf)

    def _member(self, leaf: int, req: JoinRequest) -> Member:
        return Member(leaf, req.display_name, req.identity_key)

    def _note_sent(self, data: bytes) -> None:
        self._unechoed[self.suite.hash(data)] = self.epoch
        if len(self._unechoed) > _MAX_UNECHOED:
            del self._unechoed[next(iter(self._unechoed))]

    def _require_member(self) -> None:
        if self.state is not GroupState.MEMBER:
            raise UsageError("we are no longer a member of this group")

    def __repr__(self) -> str:
        return f"Group(epoch={self.epoch}, leaf={self.my_leaf}, members={self._scheme.member_count})"


def _verify_listed_member(
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


def _scheme_extension(name: str) -> bytes:
    return encode_extensions([(SCHEME_EXTENSION, Writer().u16(SCHEME_IDS[name]).bytes())])


def _scheme_of(ctx: GroupContext) -> str:
    """The scheme a GroupContext names (no extension: the tree)."""
    for ext, data in decode_extensions(ctx.extensions):
        if ext == SCHEME_EXTENSION:
            names = {v: k for k, v in SCHEME_IDS.items()}
            r = Reader(data, "scheme extension")
            scheme_id = r.u16("scheme id")
            r.end()
            if scheme_id not in names:
                raise InvalidValueError(f"unknown key-agreement scheme {scheme_id} in the GroupContext")
            return names[scheme_id]
    return "tree"


def _encode_confirmation(group_id: bytes, epoch: int, tag: bytes) -> bytes:
    return (
        Writer().u16(PROTOCOL_VERSION).u16(RING_CONFIRM_WIRE_FORMAT).opaque(group_id).u64(epoch).opaque(tag).bytes()
    )


def _decode_confirmation(data: bytes) -> tuple[bytes, int, bytes]:
    r = Reader(data, "ring confirmation")
    version = r.u16("version")
    if version != PROTOCOL_VERSION:
        raise UnknownVersionError(f"ring confirmation has protocol version {version}, we speak only 1")
    r.u16("wire format")
    group_id = r.opaque("group_id", MAX_GROUP_ID, 1)
    epoch = r.u64("epoch")
    tag = r.opaque_exact("confirmation_tag", 32)
    r.end()
    return group_id, epoch, tag


def _tag_ok(suite: CipherSuite, key: bytes, confirmed: bytes, tag: bytes) -> bool:
    try:
        verify_confirmation_tag(suite, key, confirmed, tag)
    except ConfirmationError:
        return False
    return True
