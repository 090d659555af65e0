"""Building our commit: operations, signature, key schedule, Welcome, and what a lost race leaves.

:meth:`Building.commit` asks the scheme for the operations, seals the commit (one-round: with its
confirmation tag and the Welcome of the next epoch; multi-round: the Welcome of the current one)
and keeps it pending until the relay's echo (:meth:`Building._apply_own`). If another commit wins
the epoch, :meth:`Building._rebuild_intent` keeps what is left to redo.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..commit import Commit, CommitMessage
from ..errors import (
    EpochLimitError,
    UnknownMemberError,
    UsageError,
)
from ..events import (
    EpochChanged,
    Event,
)
from ..identity import JoinRequest
from ..key_schedule import (
    EpochSecrets,
    GroupContext,
    confirmation_tag,
    confirmed_transcript_hash,
    derive_epoch_secrets,
    interim_transcript_hash,
    welcome_secret,
)
from ..message_protection import (
    MAX_AUTHENTICATED_DATA,
    ContentType,
    FramedContent,
    WireFormat,
    confirmed_transcript_input,
    sign_framed_content,
)
from ..outbox import ROOM, Joiner, Outbound, OutboundKind
from ..schemes.base import EpochInput, OwnChange
from ..welcome import (
    GroupInfo,
    GroupSecrets,
    encode_extensions,
    seal_welcome,
)
from .agreement import Agreement
from .machine import Input
from .state import Intent, PendingCommit, PendingEpoch
from .wire import (
    LAST_EPOCH,
    RING_COMMIT_EXTENSION,
    RING_INTERIM_EXTENSION,
    RING_ROSTER_EXTENSION,
    TREE_EXTENSION,
)


class Building(Agreement):
    """Our own commit, from the caller's request to its echo."""

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
        self._require(Input.COMMIT_REMOVALS)  # a member with no commit in flight
        if len(authenticated_data) > MAX_AUTHENTICATED_DATA:
            raise UsageError(f"authenticated data is longer than {MAX_AUTHENTICATED_DATA} bytes")
        requests = [JoinRequest.decode(r) if isinstance(r, bytes) else r for r in add]
        removes = list(dict.fromkeys(remove))
        if requests or update or not removes:
            self._require(Input.COMMIT)  # while an agreement runs, only removals (a restart)
        if self._ring is not None:
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
        intent = Intent(
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
        self._pending = PendingCommit(
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
            return self._seal_multi_round_commit(change, commit, authenticated_data)
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

    def _seal_multi_round_commit(
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

    def _queue_commit(self, data: bytes) -> None:
        self._outbox.append(Outbound(ROOM, data, OutboundKind.COMMIT))

    def _leaf_of(self, identity_key: bytes) -> int | None:
        return self._scheme.leaf_of_identity(identity_key)

    def _rebuild_intent(self, lost: PendingCommit) -> Intent | None:
        """What of our lost commit is still to do on the new epoch (``None``: nothing)."""
        intent = lost.intent
        adds = tuple(r for r in intent.adds if self._leaf_of(r.identity_key) is None)
        removes = tuple(k for k in intent.removes if self._leaf_of(k) is not None)
        rest = Intent(adds, removes, intent.update, intent.authenticated_data)
        return None if rest.empty else rest

    # --- the echo and the next epoch ------------------------------------------------------------

    def _apply_own(self, pending: PendingCommit, digest: bytes) -> Event:
        overrides = {leaf: self._scheme.member(leaf) for leaf in pending.added}
        overrides.update({m.leaf: self._scheme.member(m.leaf) for m in pending.removed})
        self._scheme.apply_own(pending.change)
        self._pending = None
        if pending.change.commit_secret is None:  # ring: the epoch changes when the ring is done
            self._queue_welcome(pending)
            content = CommitMessage.decode(pending.message).content
            me = self.member(self.my_leaf)
            ring = PendingEpoch(
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
            return self._begin_agreement(ring)
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
        )

    def _queue_welcome(self, pending: PendingCommit) -> None:
        if pending.welcome is not None:
            # Only now, with the epoch won, is the Welcome safe to release (RFC 9420 §14).
            for _, request in pending.joiners:
                self._outbox.append(Outbound(Joiner.of(request), pending.welcome, OutboundKind.WELCOME))

    def _next_epoch(
        self, content: FramedContent, signature: bytes, public_hash: bytes, commit_secret: bytes
    ) -> tuple[GroupContext, EpochSecrets, bytes]:
        """RFC 9420 §8.2/§12.4: confirmed transcript hash, next GroupContext, key schedule."""
        if self.epoch >= LAST_EPOCH:
            raise EpochLimitError(
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
