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
(see :mod:`groupchat.core.ratchet_tree`), plus one signature check per commit and one per join
request it adds. Joining verifies every member's join request once (n signature checks, RFC 9420
§12.4.3.1), so a member never relies on a leaf it has not verified.
"""

from __future__ import annotations

import enum
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Final

from . import taint
from . import tree_math as tm
from .codec import opaque
from .commit import REKEY_LABEL, Commit, CommitMessage, Operation, OpType, SealedSecret, rekey_context
from .config import check_group_config
from .errors import (
    ConfigError,
    CounterLimitError,
    DecryptionError,
    DuplicateKeyError,
    EpochError,
    ExpiredJoinRequestError,
    ForgedMemberError,
    InconsistentPathError,
    InvalidCommitError,
    InvalidPublicKeyError,
    InvalidValueError,
    RemovedSenderError,
    ReplayError,
    SignatureError,
    TaintRuleError,
    UnknownMemberError,
    UsageError,
    WrongGroupError,
)
from .events import EpochChanged, Event, Member, MessageEchoed, MessageReceived, RemovedFromGroup
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
from .ratchet_tree import PathSecrets, RatchetTree, TreeChanges, lowest_common_ancestor
from .secret_tree import SecretTree
from .suite import GROUPCHAT_PREFIX, CipherSuite
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

__all__ = ["TREE_EXTENSION", "Group", "GroupConfig", "GroupState"]

# GroupInfo extension carrying our public tree (RFC 9420 §13 private-use range).
TREE_EXTENSION: Final = 0xF0C1
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
    changes: TreeChanges
    path: PathSecrets
    group_context: GroupContext
    secrets: EpochSecrets
    interim: bytes
    welcome: bytes | None
    added: tuple[int, ...]
    removed: tuple[Member, ...]
    updated: bool


class Group:
    """One member's state of one group. Use :meth:`create` or :meth:`join` to make one."""

    def __init__(
        self,
        *,
        config: GroupConfig,
        identity: Identity,
        tree: RatchetTree,
        path: PathSecrets,
        group_context: GroupContext,
        secrets: EpochSecrets,
        interim: bytes,
        init_private: bytes | None = None,
    ) -> None:
        self.config = config
        self.suite = tree.suite
        self._identity = identity
        self._tree = tree
        self._path = path
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
        # members' init keys are in the tree; together they are every init key we saw used.
        self._used_init_keys: dict[bytes, int] = {}
        # A joiner keeps its join request's init key until its own first Update is applied: if
        # its adder is removed first, the remover seals our re-keyed leaf secret to it.
        self._init_private = init_private
        self.state = GroupState.MEMBER

    # --- construction ------------------------------------------------------------------------

    @classmethod
    def create(
        cls, identity: Identity, group_id: bytes, display_name: str, config: GroupConfig | None = None
    ) -> Group:
        """Start a group with ourselves as the only member, at epoch 0."""
        config = config or GroupConfig()
        suite = config.suite()
        if not 0 < len(group_id) <= MAX_GROUP_ID:
            raise ConfigError(f"group id must be 1..{MAX_GROUP_ID} bytes")
        pending = JoinRequest.create(
            suite, identity, group_id, display_name, config.rand, wall_clock=config.wall_clock
        )
        tree = RatchetTree(suite, 1)
        path = PathSecrets(0)
        tree.build_path(0, config.rand(32), pending.request, path)
        tree.mark_verified(0)
        ctx = GroupContext(suite.id, group_id, 0, tree.tree_hash, b"")
        # RFC 9420 §11: epoch 0 starts from a fresh random init secret.
        secrets = derive_epoch_secrets(suite, config.rand(32), tree.commit_secret(path), ctx.encode())
        return cls(
            config=config,
            identity=identity,
            tree=tree,
            path=path,
            group_context=ctx,
            secrets=secrets,
            interim=b"",
        )

    @classmethod
    def join(cls, pending: PendingJoin, welcome: bytes, config: GroupConfig | None = None) -> Group:
        """Enter a group from a Welcome sealed to our join request's init key.

        Everything the welcome says is checked before a Group exists (RFC 9420 §12.4.3.1),
        including every member's join request signature. ``pending`` is consumed only on success:
        a rejected welcome leaves it usable for the genuine one.
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
        trees = [data for ext, data in decode_extensions(info.extensions) if ext == TREE_EXTENSION]
        if len(trees) != 1:
            raise InvalidValueError("welcome's GroupInfo must carry exactly one public tree")
        tree = RatchetTree.decode(suite, trees[0])
        if tree.tree_hash != ctx.tree_hash:
            raise InvalidValueError("welcome's public tree does not match the tree hash it was signed with")
        signer = tree.member(info.signer)
        if signer is None:
            raise UnknownMemberError(f"welcome is signed by leaf {info.signer}, which holds no member")
        _verify_listed_member(suite, ctx.group_id, info.signer, signer, None)
        info.verify(suite, signer.identity_key)
        # Now that we know who built this tree, check every other leaf: a malicious adder
        # controls the whole welcome and could list a ghost (someone's identity key with a
        # made-up signature) under a tree hash that matches. After this loop every leaf of our
        # tree is verified; later leaves come only through Adds, verified by _check_adds.
        for leaf, request in tree.members():
            if leaf != info.signer:
                _verify_listed_member(suite, ctx.group_id, leaf, request, (info.signer, signer))
            tree.mark_verified(leaf)
        me = tree.find_member(pending.request)
        if me is None:
            raise InvalidValueError("welcome's tree does not contain our join request")
        if tree.tainted_by(me) != info.signer:
            # Otherwise the group would not re-key our leaf when our adder leaves.
            raise TaintRuleError(
                f"welcome's tree says our leaf {me} is tainted by {tree.tainted_by(me)}, "
                f"not by the adder who signed it (leaf {info.signer})"
            )
        tree.mark_verified(me)
        if tree.leaf_key(me) != suite.x25519_public(gs.path_secret):
            raise InconsistentPathError("our leaf key in the welcome does not match our leaf secret")
        path = PathSecrets(me, {2 * me: gs.path_secret})
        if tree.capacity > 1:
            path = tree.refresh_secrets(path, tm.parent(2 * me, tree.capacity))
        secrets = epoch_secrets_from_joiner(suite, gs.joiner_secret, ctx.encode())
        verify_confirmation_tag(
            suite, secrets.confirmation_key, ctx.confirmed_transcript_hash, info.confirmation_tag
        )
        interim = interim_transcript_hash(suite, ctx.confirmed_transcript_hash, info.confirmation_tag)
        group = cls(
            config=config,
            identity=pending.identity,
            tree=tree,
            path=path,
            group_context=ctx,
            secrets=secrets,
            interim=interim,
            init_private=pending.init_private,
        )
        pending.used = True  # only now: a rejected welcome must not burn the request
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
        return self._path.leaf

    @property
    def tree_hash(self) -> bytes:
        return self._ctx.tree_hash

    @property
    def epoch_authenticator(self) -> bytes:
        """RFC 9420 §8.7: equal for all members iff they share the epoch; compare out of band."""
        self._require_member()
        return self._secrets.epoch_authenticator

    @property
    def has_pending_commit(self) -> bool:
        return self._pending is not None

    @property
    def holds_init_key(self) -> bool:
        """True until our own first Update is applied (we may still receive a sealed re-key)."""
        return self._init_private is not None

    def tainted_by(self, leaf: int) -> int | None:
        """Public taint record: the leaf that chose ``leaf``'s current secret, ``None`` if its owner did."""
        return self._tree.tainted_by(leaf)

    def taint_record(self) -> dict[int, int]:
        """The whole public taint record ``{tainted leaf: chooser leaf}`` of the current epoch."""
        return self._tree.taint_record()

    def leaf_public_key(self, leaf: int) -> bytes | None:
        """Current public key of ``leaf`` (a member's or a vacated slot's), ``None`` if blank."""
        return self._tree.leaf_key(leaf)

    def members(self) -> list[Member]:
        return [self._member(leaf, req) for leaf, req in self._tree.members()]

    def member(self, leaf: int) -> Member:
        req = self._tree.member(leaf)
        if req is None:
            raise UnknownMemberError(f"leaf {leaf} holds no member")
        return self._member(leaf, req)

    def export_secret(self, label: bytes, context: bytes, length: int) -> bytes:
        """MLS-Exporter (RFC 9420 §8.5) for the current epoch."""
        self._require_member()
        if not 0 < length <= 255 * self.suite.hash_len:  # HKDF-Expand's output limit (RFC 5869)
            raise UsageError(f"an exported secret must be 1..{255 * self.suite.hash_len} bytes, not {length}")
        return exporter(self.suite, self._secrets.exporter_secret, label, context, length)

    # --- sending -----------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes, authenticated_data: bytes = b"") -> bytes:
        """Sign and encrypt an application message for the current epoch."""
        self._require_member()
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
        """Build a commit; it takes effect when the relay echoes it back to :meth:`receive`.

        Removes go first, then the re-keys the taint rules require (:mod:`groupchat.core.taint`),
        then adds (each into the leftmost free leaf), then our own update, so that our fresh path
        is the last word on every node of it. A commit with nothing else in it is a self-update;
        while our own leaf is tainted (we joined and have not updated yet) every commit includes
        our update.
        """
        self._require_member()
        if self._pending is not None:
            raise UsageError("a commit is already waiting for the relay's echo")
        if len(authenticated_data) > MAX_AUTHENTICATED_DATA:
            raise UsageError(f"authenticated data is longer than {MAX_AUTHENTICATED_DATA} bytes")
        suite, rand = self.suite, self.config.rand
        requests = [JoinRequest.decode(r) if isinstance(r, bytes) else r for r in add]
        removes = list(dict.fromkeys(remove))
        for leaf in removes:
            if leaf == self.my_leaf:
                raise UsageError("a member cannot remove itself; ask another member to commit the remove")
            if self._tree.member(leaf) is None:
                raise UnknownMemberError(f"cannot remove leaf {leaf}: it holds no member")
        self._check_adds(requests)
        me = self.my_leaf
        tree = self._tree
        update = update or not (requests or removes) or tree.tainted_by(me) is not None
        targets = taint.add_targets(tree, set(removes), len(requests))
        rekeys = taint.required_rekeys(tree, me, removes, targets, update)

        capture = PathSecrets(me, dict(self._path.secrets))
        ops: list[Operation] = []
        joiners: list[tuple[JoinRequest, int, bytes]] = []
        removed = tuple(self.member(leaf) for leaf in removes)
        tree.begin()
        try:
            for leaf in removes:
                pubs, _ = tree.build_path(leaf, rand(32), None, capture, chooser=me)
                ops.append(Operation(OpType.REMOVE, leaf, tuple(pubs)))
            for leaf in rekeys:
                # One build_path per re-keyed leaf: only the committer pays per leaf.
                member = tree.member(leaf)
                leaf_secret = rand(32)
                sealed = None if member is None else self._seal_rekey(member, leaf, leaf_secret)
                pubs, _ = tree.build_path(leaf, leaf_secret, member, capture, chooser=me)
                ops.append(Operation(OpType.REKEY, leaf, tuple(pubs), sealed=sealed))
            for req, leaf in zip(requests, targets, strict=True):
                leaf_secret = rand(32)
                pubs, _ = tree.build_path(leaf, leaf_secret, req, capture, chooser=me)
                ops.append(Operation(OpType.ADD, leaf, tuple(pubs), req))
                joiners.append((req, leaf, leaf_secret))
            if update:
                pubs, _ = tree.build_path(me, rand(32), tree.member(me), capture, chooser=None)
                ops.append(Operation(OpType.UPDATE, me, tuple(pubs)))

            content = FramedContent(
                self.group_id,
                self.epoch,
                self.my_leaf,
                authenticated_data,
                ContentType.COMMIT,
                Commit(tuple(ops)).encode(),
            )
            signature = sign_framed_content(
                suite, self._identity.signing_key, WireFormat.PUBLIC_MESSAGE, content, self._ctx_bytes
            )
            ctx, secrets, confirmed = self._next_epoch(content, signature, tree.commit_secret(capture))
            tag = confirmation_tag(suite, secrets.confirmation_key, confirmed)
            message = CommitMessage(content, Commit(tuple(ops)), signature, tag).encode()
            welcome = None
            if joiners:
                info = GroupInfo(
                    ctx, encode_extensions([(TREE_EXTENSION, tree.encode())]), tag, self.my_leaf, b""
                ).sign(suite, self._identity.signing_key)
                welcome = seal_welcome(
                    suite,
                    info.encode(),
                    secrets.welcome_secret,
                    [
                        (req.ref(suite), req.init_key, GroupSecrets(secrets.joiner_secret, leaf_secret, []))
                        for req, _, leaf_secret in joiners
                    ],
                ).encode_message()
            changes = tree.changes()
        finally:
            # The draft is replayed from `changes` once the relay confirms the commit; every
            # secret of the joiners' and removed leaves' paths dies with this frame.
            tree.rollback()
        self._pending = _PendingCommit(
            message,
            changes,
            capture,
            ctx,
            secrets,
            interim_transcript_hash(suite, confirmed, tag),
            welcome,
            tuple(leaf for _, leaf, _ in joiners),
            removed,
            update,
        )
        return message

    def _seal_rekey(self, member: JoinRequest, leaf: int, leaf_secret: bytes) -> SealedSecret:
        """Seal a re-keyed joiner's new leaf secret to its init key (HPKE base mode)."""
        kem_output, ciphertext = self.suite.encrypt_with_label(
            member.init_key, REKEY_LABEL, rekey_context(self.group_id, self.epoch, leaf), leaf_secret
        )
        return SealedSecret(kem_output, ciphertext)

    def _open_rekey(self, op: Operation) -> bytes:
        """Open the sealed secret of a re-key of our own leaf and check it matches the sent key."""
        leaf = op.leaf
        if self._init_private is None or op.sealed is None:
            raise TaintRuleError(
                f"commit re-keys our leaf {leaf}, but we have already updated and hold no init key"
            )
        try:
            secret = self.suite.decrypt_with_label(
                self._init_private,
                REKEY_LABEL,
                rekey_context(self.group_id, self.epoch, leaf),
                op.sealed.kem_output,
                op.sealed.ciphertext,
            )
        except DecryptionError as exc:
            raise TaintRuleError(
                f"re-key of our leaf {leaf} is not sealed to our init key for this group and epoch"
            ) from exc
        if len(secret) != 32 or self.suite.x25519_public(secret) != op.path[0]:
            raise TaintRuleError(f"re-key of our leaf {leaf} sealed a secret that does not match its key")
        return secret

    def discard_pending_commit(self) -> None:
        """Forget a pending commit (for example when the relay rejected it)."""
        self._pending = None

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
        request = gone or (keys.overrides[sender] if sender in keys.overrides else self._tree.member(sender))
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
        pending = self._pending
        if pending is not None and pending.message == data:
            return self._apply_own(pending, digest)

        sender = content.sender
        request = self._tree.member(sender)
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

        tree = self._tree
        overrides = {op.leaf: tree.member(op.leaf) for op in ops if op.type in (OpType.ADD, OpType.REMOVE)}
        my_secret: bytes | None = None
        for op in ops:
            if op.type == OpType.REKEY and op.leaf == self.my_leaf:
                my_secret = self._open_rekey(op)  # before the draft: a failure changes nothing
        tree.begin()
        try:
            for op in ops:
                # Every secret but the committer's own update is the committer's choice: taint.
                if op.type == OpType.UPDATE:
                    tree.write_path(op.leaf, list(op.path), request, None)
                elif op.type == OpType.REKEY:  # same member (or vacated slot), fresh secret
                    tree.write_path(op.leaf, list(op.path), tree.member(op.leaf), sender)
                else:  # add: the joiner; remove: the slot is vacated
                    tree.write_path(
                        op.leaf, list(op.path), op.request if op.type == OpType.ADD else None, sender
                    )
            me = 2 * self.my_leaf
            current = self._path
            if my_secret is not None:
                # Our own leaf was re-keyed (sealed to our init key): climb from the leaf itself.
                current = PathSecrets(self.my_leaf, {**self._path.secrets, me: my_secret})
                lowest = me
            else:
                lowest = min((lowest_common_ancestor(2 * op.leaf, me) for op in ops), key=tm.level)
            path = tree.refresh_secrets(current, lowest)
            ctx, secrets, confirmed = self._next_epoch(content, msg.signature, tree.commit_secret(path))
            verify_confirmation_tag(self.suite, secrets.confirmation_key, confirmed, msg.confirmation_tag)
        except BaseException:
            tree.rollback()
            raise
        tree.end()
        for op in ops:
            if op.type == OpType.ADD:
                tree.mark_verified(op.leaf)  # _check_operations verified its join request
        superseded = self._pending is not None
        self._pending = None
        added = tuple(self.member(op.leaf) for op in ops if op.type == OpType.ADD)
        updated = any(op.type == OpType.UPDATE for op in ops)
        interim = interim_transcript_hash(self.suite, confirmed, msg.confirmation_tag)
        self._enter_epoch(ctx, secrets, path, interim, overrides, digest)
        return EpochChanged(
            ctx.epoch,
            committer,
            added,
            removed,
            updated,
            secrets.epoch_authenticator,
            superseded_own_commit=superseded,
        )

    # --- commit helpers ------------------------------------------------------------------------

    def _apply_own(self, pending: _PendingCommit, digest: bytes) -> EpochChanged:
        overrides = {leaf: self._tree.member(leaf) for leaf in pending.changes.members}
        self._tree.apply(pending.changes)
        for leaf in pending.added:
            self._tree.mark_verified(leaf)
        self._pending = None
        if pending.updated:
            # Our own leaf is now untainted: nobody will seal a re-key to our init key again,
            # and a later copy of our state must not be able to open earlier ones.
            self._init_private = None
        self._enter_epoch(
            pending.group_context, pending.secrets, pending.path, pending.interim, overrides, digest
        )
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

    def _next_epoch(
        self, content: FramedContent, signature: bytes, commit_secret: bytes
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
        ctx = GroupContext(self.suite.id, self.group_id, self.epoch + 1, self._tree.tree_hash, confirmed)
        secrets = derive_epoch_secrets(self.suite, self._secrets.init_secret, commit_secret, ctx.encode())
        return ctx, secrets, confirmed

    def _enter_epoch(
        self,
        ctx: GroupContext,
        secrets: EpochSecrets,
        path: PathSecrets,
        interim: bytes,
        overrides: dict[int, JoinRequest | None],
        digest: bytes,
    ) -> None:
        previous = self._keys
        previous.overrides = overrides
        # Removals, recorded explicitly: the leaves whose member this commit took away (a leaf is
        # never both emptied and refilled by one commit).
        tree = self._tree
        previous.removed = {
            leaf: req for leaf, req in overrides.items() if req is not None and tree.member(leaf) is None
        }
        self._remember_init_keys(previous.removed.values())
        self._previous = previous
        self._ctx, self._ctx_bytes = ctx, ctx.encode()
        self._secrets, self._path, self._interim = secrets, path, interim
        self._keys = self._epoch_keys(secrets)
        self._epoch_started = self.config.clock()
        self._recent_commits.append(digest)

    def _epoch_keys(self, secrets: EpochSecrets) -> _EpochKeys:
        tree = SecretTree(
            self.suite,
            secrets.encryption_secret,
            self._tree.capacity,
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
            leaf = self._tree.leaf_of_identity(req.identity_key)
            if leaf is not None or req.identity_key in seen_identities:
                where = f"at leaf {leaf}" if leaf is not None else "twice in this commit"
                raise DuplicateKeyError(
                    f"{req.display_name!r} ({req.fingerprint}) is already a member {where}"
                )
            if self._tree.has_init_key(req.init_key) or req.init_key in seen_init:
                raise DuplicateKeyError(f"join request from {req.display_name!r} reuses an init key")
            if req.init_key in self._used_init_keys:
                raise DuplicateKeyError(
                    f"{who} reuses the init key of a member who already joined and left: an old "
                    "request replayed; ask them for a new one"
                )
            seen_identities.add(req.identity_key)
            seen_init.add(req.init_key)

    def _check_operations(self, sender: int, ops: Sequence[Operation]) -> None:
        leaves = [op.leaf for op in ops]
        if len(set(leaves)) != len(leaves):
            raise InvalidCommitError("commit changes the same leaf twice")
        order = [op.type for op in ops]
        if order != sorted(order, key=(OpType.REMOVE, OpType.REKEY, OpType.ADD, OpType.UPDATE).index):
            raise InvalidCommitError("commit operations must be ordered removes, re-keys, adds, then update")
        removed = {op.leaf for op in ops if op.type == OpType.REMOVE}
        targets = iter(taint.add_targets(self._tree, removed, sum(op.type == OpType.ADD for op in ops)))
        for op in ops:
            if op.type == OpType.ADD:
                expected = next(targets)
                if op.leaf != expected:
                    raise InvalidCommitError(
                        f"add must use leaf {expected} (the leftmost free), not {op.leaf}"
                    )
            if op.type == OpType.UPDATE and op.leaf != sender:
                raise InvalidCommitError("a member can only update its own leaf")
            if op.type == OpType.REMOVE:
                if op.leaf == sender:
                    raise InvalidCommitError("a committer cannot remove itself")
                if self._tree.member(op.leaf) is None:
                    raise UnknownMemberError(f"commit removes leaf {op.leaf}, which holds no member")
        self._check_adds([op.request for op in ops if op.request is not None], self.config.clock_skew)
        taint.check_commit(self._tree, sender, ops)

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
        self._path = PathSecrets(self.my_leaf)
        self._previous = None
        self._pending = None
        self._init_private = None
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
        if not self._tree.is_verified(leaf):
            request.verify(self.suite)
            self._tree.mark_verified(leaf)

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
        return f"Group(epoch={self.epoch}, leaf={self.my_leaf}, members={self._tree.member_count})"


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
