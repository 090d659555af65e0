"""One member's group state as bytes, to store and resume at the same epoch (docs/protocol.md §12).

:func:`encode_state` writes everything a member needs to go on exactly where it stood: the
GroupContext (with the agreed admission state and used init keys), the epoch secrets it still
uses, the interim transcript hash, the secret tree's ratchets (their next generations: a
resumed member never reuses a key or nonce), the previous epoch's retained keys with their age,
the echo and replay bookkeeping, the scheme's own state (``encode_state`` of the scheme), and
our commit awaiting its echo, if any. :func:`decode_state` reads it back completely, checks it,
and builds the group.

A member is stored in phase MEMBER or COMMITTING with its outbox drained: a ring run in progress
(or a ring joiner's first run) cannot be resumed and is refused with :class:`UsageError`. The
epoch secrets from which every message key of the epoch derives (``joiner``, ``welcome``,
``epoch`` and ``encryption`` secrets) are not stored: nothing uses them once the epoch is
entered, and without them a stolen store does not reveal the keys of messages already read. The
bytes are not encrypted here: the store that keeps them must be.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
from typing import Final, TypeVar

from ..admission import AdmissionOutcome, Admit, ChangeType, NewInvite, apply_changes
from ..codec import Reader, Writer
from ..commit import CommitMessage, OpType
from ..errors import ConfigError, GroupChatError, InvalidValueError, UnknownVersionError, UsageError
from ..events import Member
from ..identity import Identity, JoinRequest
from ..key_schedule import EpochSecrets, GroupContext, verify_confirmation_tag
from ..message_protection import WireFormat, verify_framed_content
from ..schemes.base import KeyAgreementScheme
from ..schemes.registry import scheme_class
from ..secret_tree import SecretTree
from ..suite import CipherSuite
from .machine import Phase
from .state import _MAX_UNECHOED, _RECENT_COMMITS, EpochKeys, EpochState, GroupConfig, Intent, PendingCommit
from .wire import admission_of, scheme_of

__all__ = ["STATE_VERSION", "STATE_WIRE_FORMAT", "decode_state", "encode_state"]

STATE_VERSION: Final = 2
"""Version of the stored-state format written; 1 (without the completed ring) is still read, any
other is refused, never guessed at."""
STATE_WIRE_FORMAT: Final = 0xF010
"""The tag after the version: stored group state (never sent; distinct from every wire format)."""

_CHECKSUM_LABEL: Final = b"groupchat v1 stored group state"
_MAX_STATE: Final = 1 << 30
_MAX_REQUEST: Final = 4096
# The secrets stored, in order; the four that derive every message key are left out (module doc).
_STORED: Final = (
    "sender_data_secret",
    "exporter_secret",
    "epoch_authenticator",
    "external_secret",
    "confirmation_key",
    "membership_key",
    "resumption_psk",
    "init_secret",
)
_ERASED: Final = ("joiner_secret", "welcome_secret", "epoch_secret", "encryption_secret")
# Our pending commit's new epoch: no message key of it is used yet, so its encryption_secret is
# stored (its secret tree is built from it on the echo); its Welcome is already sealed.
_PENDING: Final = (*_STORED, "encryption_secret")

G = TypeVar("G", bound=EpochState)


def _refusal(state: EpochState) -> str | None:
    """Why ``state`` cannot be stored now, or ``None`` if it can."""
    phase = state.phase
    if phase is Phase.REMOVED:
        return "we are no longer a member of this group: there is nothing to store"
    if phase is Phase.JOINING:
        return (
            f"we are still agreeing our first epoch ({state.epoch + 1}) of this ring group: a run in "
            "progress cannot be resumed; store the state once it is entered"
        )
    if phase is Phase.CHECKING:
        return (
            "we just joined and are still verifying the join requests of the members our welcome "
            "lists: store the state once Group.roster_verified() is done"
        )
    if phase in (Phase.AGREEING, Phase.CONFIRMING):
        return (
            f"the ring is agreeing epoch {state.epoch + 1}: a run in progress cannot be stored or "
            "resumed; store the state once that epoch is entered"
        )
    if state._outbox or state._rebuild is not None:
        return "data_to_send() has messages to send first: send them, then store the state"
    return None


def encode_state(state: EpochState) -> bytes:
    """Encode ``state`` (a ``Group``) for storage; raise :class:`UsageError` if it cannot be now.

    Store the result after every call that changed the group and *before* sending what it
    produced: an encrypted message whose state was not stored first could be encrypted again,
    with the same key and nonce, after a crash.
    """
    why = _refusal(state)
    if why is not None:
        raise UsageError(f"cannot store the group state now: {why}")
    state._expire_previous_epoch()
    config = state.config
    w = Writer().opaque(config.label_prefix).opaque(state._ctx_bytes)
    for name in _STORED:
        w.opaque(getattr(state._secrets, name))
    w.opaque(state._interim).opaque(state._keys.secret_tree.encode_state())
    prev = state._previous
    if prev is None:
        w.optional(None)
    else:
        age = max(0, round((config.clock() - state._epoch_started) * 1000))
        w.optional(_encode_keys(prev, min(age, (1 << 64) - 1)))
    w.vector([Writer().opaque(d).bytes() for d in state._recent_commits])
    w.vector([Writer().opaque(d).u64(e).bytes() for d, e in state._unechoed_digests().items()])
    w.opaque(state._scheme.encode_state())
    pending = state._pending
    w.optional(None if pending is None else Writer().opaque(_encode_pending(state, pending)).bytes())
    # Version 2: the ring that made this epoch, so a late restart of it stays a named fork
    # (LateRestartError) after a restart; one of an older epoch can no longer be told apart.
    done = state._completed_ring
    if done is not None and done[0] + 1 != state.epoch:
        done = None
    w.optional(None if done is None else Writer().u64(done[0]).opaque(done[1]).bytes())
    body = Writer().u16(STATE_VERSION).u16(STATE_WIRE_FORMAT).opaque(w.bytes()).bytes()
    return body + state.suite.hash(_CHECKSUM_LABEL + body)


def _encode_pending(state: EpochState, pending: PendingCommit) -> bytes:
    """Our commit awaiting its echo: its bytes, its Welcome, whether the caller asked for our
    update, and (one-round schemes) the epoch it creates; the rest follows from the commit."""
    w = Writer().opaque(pending.message)
    w.optional(None if pending.welcome is None else Writer().opaque(pending.welcome).bytes())
    w.u8(pending.intent.update).opaque(state._scheme.encode_change(pending.change))
    if pending.change.commit_secret is None:  # multi-round: the epoch comes from the run
        return w.optional(None).bytes()
    epoch = Writer().opaque(pending.group_context.encode())
    for name in _PENDING:
        epoch.opaque(getattr(pending.secrets, name))
    return w.optional(epoch.opaque(pending.interim).bytes()).bytes()


def _encode_keys(keys: EpochKeys, age_ms: int) -> bytes:
    overrides = [
        Writer().u32(leaf).optional(None if r is None else Writer().opaque(r.encoded).bytes()).bytes()
        for leaf, r in sorted(keys.overrides.items())
    ]
    removed = [Writer().u32(leaf).opaque(r.encoded).bytes() for leaf, r in sorted(keys.removed.items())]
    return (
        Writer()
        .opaque(keys.group_context)
        .opaque(keys.sender_data_secret)
        .opaque(keys.secret_tree.encode_state())
        .vector(overrides)
        .vector(removed)
        .u64(age_ms)
        .bytes()
    )


def decode_state(cls: type[G], data: bytes, identity: Identity, config: GroupConfig) -> G:
    """Read a stored state completely and build the group of ``cls`` from it.

    Raises a :class:`~groupchat.core.errors.DecodeError` subclass on anything truncated, trailing,
    malformed or corrupted (a checksum covers every byte), :class:`ConfigError` if ``config`` uses
    another suite or label prefix than the state, :class:`UsageError` if the state is another
    identity's. Nothing is created unless everything checks.
    """
    head = Reader(data, "stored group state")
    version = head.u16("version")
    if version not in (1, STATE_VERSION):
        raise UnknownVersionError(
            f"stored group state has version {version}; this build reads {STATE_VERSION}"
        )
    tag = head.u16("tag")
    if tag != STATE_WIRE_FORMAT:
        raise InvalidValueError(f"stored group state has tag {tag:#06x}, not {STATE_WIRE_FORMAT:#06x}")
    suite = config.suite()
    body = head.opaque("body", _MAX_STATE)
    checksum = head.fixed(suite.hash_len, "checksum")
    head.end()
    if suite.hash(_CHECKSUM_LABEL + data[: -suite.hash_len]) != checksum:
        raise InvalidValueError("stored group state is corrupted: its checksum does not match")
    r = Reader(body, "stored group state")
    prefix = r.opaque("label prefix", 255)
    ctx = GroupContext.decode(r.opaque("group context", 1 << 20))
    if ctx.cipher_suite != config.suite_id or prefix != config.label_prefix:
        raise ConfigError(
            f"stored group state uses cipher suite {ctx.cipher_suite} and label prefix {prefix!r}; "
            f"the config says {config.suite_id} and {config.label_prefix!r}"
        )
    nh = suite.hash_len
    stored = {name: r.opaque_exact(name, nh) for name in _STORED}
    secrets = EpochSecrets(**stored, **dict.fromkeys(_ERASED, b""))
    interim = r.opaque("interim transcript hash", nh)
    if len(interim) not in (0, nh):
        raise InvalidValueError(f"stored interim transcript hash is {len(interim)} bytes")
    limits = {"max_forward": config.max_forward, "max_skipped": config.max_skipped}
    tree = _read_tree(r.opaque("secret tree", _MAX_STATE), suite, limits)
    prev = r.optional("previous epoch", lambda rr: _read_keys(rr, suite, ctx, limits))
    recent = r.vector(
        "recent commits", 64 * _RECENT_COMMITS, lambda rr: rr.opaque_exact("digest", nh), _RECENT_COMMITS
    )
    unechoed = r.vector("unechoed", 48 * _MAX_UNECHOED, _unechoed_item(ctx, nh), _MAX_UNECHOED)
    scheme_data = r.opaque("scheme state", _MAX_STATE)
    pending_data = r.optional("pending commit", lambda rr: rr.opaque("pending commit", _MAX_STATE))
    completed = None
    if version >= 2:
        completed = r.optional(
            "completed ring", lambda rr: (rr.u64("completed ring epoch"), rr.opaque("ring context", 1 << 20))
        )
    r.end()
    if completed is not None and completed[0] + 1 != ctx.epoch:
        raise InvalidValueError(
            f"stored completed ring is for epoch {completed[0]}, not the one before {ctx.epoch}"
        )
    if len({d for d, _ in unechoed}) != len(unechoed):
        raise InvalidValueError("stored unechoed messages list a digest twice")
    scheme = scheme_class(scheme_of(ctx)).decode_state(
        suite, scheme_data, identity=identity, rand=config.rand, clock=config.clock
    )
    if scheme.public_hash != ctx.tree_hash:
        raise InvalidValueError("stored scheme state does not match the GroupContext's tree hash")
    if tree.leaf_count != scheme.capacity:
        raise InvalidValueError(
            f"stored secret tree has {tree.leaf_count} leaves; the roster has {scheme.capacity} slots"
        )
    pending = None
    if pending_data is not None:
        pending = _read_pending(pending_data, suite, ctx, interim, secrets, scheme, identity)
    group = cls(
        config=config, identity=identity, scheme=scheme, group_context=ctx, secrets=secrets, interim=interim
    )
    group._pending = pending
    group._keys = EpochKeys(ctx.epoch, group._ctx_bytes, tree, secrets.sender_data_secret)
    if prev is not None:
        group._previous, age = prev
        group._epoch_started = config.clock() - age / 1000
    group._recent_commits = deque(recent, maxlen=_RECENT_COMMITS)
    group._unechoed = {(digest,): epoch for digest, epoch in unechoed}
    group._unechoed_hashed = len(unechoed)
    group._completed_ring = completed
    return group


def _read_pending(
    data: bytes,
    suite: CipherSuite,
    ctx: GroupContext,
    interim: bytes,
    secrets: EpochSecrets,
    scheme: KeyAgreementScheme,
    identity: Identity,
) -> PendingCommit:
    """Our stored commit in flight, rebuilt from its bytes: it must be ours, signed on the stored
    epoch, and (one-round) confirm the stored new epoch."""
    nh = suite.hash_len
    r = Reader(data, "stored pending commit")
    message = r.opaque("commit", _MAX_STATE)
    welcome = r.optional("welcome", lambda rr: rr.opaque("welcome", _MAX_STATE))
    asked = r.u8("update asked")
    change_data = r.opaque("scheme change", _MAX_STATE)

    def epoch(rr: Reader) -> tuple[GroupContext, EpochSecrets, bytes]:
        new = GroupContext.decode(rr.opaque("new group context", 1 << 20))
        values = {name: rr.opaque_exact(name, nh) for name in _PENDING}
        return (
            new,
            EpochSecrets(**values, **dict.fromkeys(set(_ERASED) - set(_PENDING), b"")),
            rr.opaque_exact("new interim", nh),
        )

    next_epoch = r.optional("new epoch", epoch)
    r.end()
    if asked > 1:
        raise InvalidValueError(f"stored pending commit's update flag is {asked}")
    msg = CommitMessage.decode(message)
    content, ops = msg.content, msg.commit.operations
    me = scheme.my_leaf
    if content.group_id != ctx.group_id or content.epoch != ctx.epoch or content.sender != me:
        raise InvalidValueError("stored pending commit is not ours on the stored epoch")
    try:
        verify_framed_content(
            suite, identity.public_key, WireFormat.PUBLIC_MESSAGE, content, ctx.encode(), msg.signature
        )
    except GroupChatError as exc:
        raise InvalidValueError(f"stored pending commit is not signed by us: {exc}") from exc
    change = scheme.decode_change(change_data, ops)
    if (next_epoch is None) != (change.commit_secret is None):
        raise InvalidValueError("stored pending commit's new epoch does not fit the group's scheme")
    if next_epoch is None:
        new_ctx, new_secrets, new_interim = ctx, secrets, interim
    else:
        new_ctx, new_secrets, new_interim = next_epoch
        if new_ctx.epoch != ctx.epoch + 1 or new_ctx.tree_hash != change.public_hash:
            raise InvalidValueError("stored pending commit's new epoch is not the one it creates")
        try:
            verify_confirmation_tag(
                suite, new_secrets.confirmation_key, new_ctx.confirmed_transcript_hash, msg.confirmation_tag
            )
        except GroupChatError as exc:
            raise InvalidValueError(f"stored pending commit's new epoch does not confirm: {exc}") from exc
    removed = {
        op.leaf: req for op in ops if op.type == OpType.REMOVE and (req := scheme.member(op.leaf)) is not None
    }
    added = {op.leaf: op.request for op in ops if op.request is not None}
    changes = msg.commit.changes
    state = admission_of(ctx)
    if not changes and not state.returning and not any(op.type == OpType.REMOVE for op in ops):
        outcome = AdmissionOutcome(state)  # as Admission._admission_after's hot path
    else:
        try:
            outcome = apply_changes(
                state,
                changes,
                added=added,
                removed=removed,
                committer=identity.public_key,
                group_id=ctx.group_id,
                suite=suite,
            )
        except GroupChatError as exc:
            raise InvalidValueError(f"stored pending commit's admission changes do not apply: {exc}") from exc
    intent = Intent(
        tuple(added.values()),
        tuple(req.identity_key for req in removed.values()),
        bool(asked),
        content.authenticated_data,
        tuple(Admit(added[c.leaf], c.invite_key, c.proof) for c in changes if c.type == ChangeType.ADMIT),
        tuple(
            (removed[c.leaf].identity_key, c.reason)
            for c in changes
            if c.type == ChangeType.REASON and c.reason is not None
        ),
        tuple(
            NewInvite(c.invite_key, c.uses, c.not_after, c.label)
            for c in changes
            if c.type == ChangeType.INVITE
        ),
        tuple(c.invite_key for c in changes if c.type == ChangeType.REVOKE),
    )
    members = tuple(Member(leaf, req.display_name, req.identity_key) for leaf, req in removed.items())
    return PendingCommit(
        message,
        change,
        new_ctx,
        new_secrets,
        new_interim,
        welcome,
        tuple(added.items()),
        members,
        any(op.type == OpType.UPDATE for op in ops),
        intent,
        outcome,
    )


def _read_tree(data: bytes, suite: CipherSuite, limits: dict[str, int]) -> SecretTree:
    r = Reader(data, "stored secret tree")
    tree = SecretTree.read_state(r, suite, **limits)
    r.end()
    return tree


def _request(r: Reader) -> JoinRequest:
    return JoinRequest.decode(r.opaque("join request", _MAX_REQUEST))


def _read_keys(
    r: Reader, suite: CipherSuite, ctx: GroupContext, limits: dict[str, int]
) -> tuple[EpochKeys, int]:
    """The retained previous epoch's keys (of epoch ``ctx.epoch - 1``, same group) and their age."""
    ctx_bytes = r.opaque("previous group context", 1 << 20)
    prev = GroupContext.decode(ctx_bytes)
    if prev.group_id != ctx.group_id or prev.epoch + 1 != ctx.epoch or prev.cipher_suite != ctx.cipher_suite:
        raise InvalidValueError("stored previous epoch is not the epoch before the stored one")
    sender_data = r.opaque_exact("previous sender data secret", suite.hash_len)
    tree = _read_tree(r.opaque("previous secret tree", _MAX_STATE), suite, limits)

    def override(rr: Reader) -> tuple[int, JoinRequest | None]:
        return rr.u32("leaf"), rr.optional("member", _request)

    def removed(rr: Reader) -> tuple[int, JoinRequest]:
        return rr.u32("leaf"), _request(rr)

    overrides = r.vector("overrides", _MAX_STATE, override, 1 << 16)
    gone = r.vector("removed", _MAX_STATE, removed, 1 << 16)
    age = r.u64("age")
    for items in (overrides, gone):
        leaves = [leaf for leaf, _ in items]
        if leaves != sorted(set(leaves)):
            raise InvalidValueError("stored previous epoch's leaves are not distinct and ascending")
    keys = EpochKeys(prev.epoch, ctx_bytes, tree, sender_data, dict(overrides), dict(gone))
    return keys, age


def _unechoed_item(ctx: GroupContext, nh: int) -> Callable[[Reader], tuple[bytes, int]]:
    def item(r: Reader) -> tuple[bytes, int]:
        digest, epoch = r.opaque_exact("digest", nh), r.u64("epoch")
        if epoch > ctx.epoch:
            raise InvalidValueError(f"stored unechoed message of epoch {epoch}, after the stored epoch")
        return digest, epoch

    return item


# Every field of EpochSecrets is either stored or erased (a new field must be decided on).
assert {f.name for f in dataclasses.fields(EpochSecrets)} == set(_STORED) | set(_ERASED)
