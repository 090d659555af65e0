"""The sans-I/O group: bytes in, events and bytes out. :class:`Group` is the public facade.

A :class:`Group` is one member's view of one group at one epoch. It never does I/O and never
reads a clock or a random source it was not given (see :class:`GroupConfig`).

* :meth:`Group.create` starts a one-member group; :meth:`Group.join` enters from a Welcome.
* :meth:`Group.commit` builds a commit (adds, removes, self-update) and returns its bytes. The
  commit is *pending* until the relay echoes it back: the relay's total order decides which of
  two concurrent commits wins an epoch (RFC 9420 §14), and only the winner's Welcome is sent.
* :meth:`Group.encrypt` protects an application message for the current epoch.
* :meth:`Group.receive` takes any message from the relay and returns an event, or raises a
  :class:`~groupchat.core.errors.GroupChatError` subclass and leaves the state exactly as it was.
* :meth:`Group.tick` checks a multi-round agreement's deadline and returns what happened.
* :attr:`Group.admission` is the admission state every member agrees on (invites, open flag,
  returning members; ``core/admission.py``), changed only by signed commits, and
  :meth:`Group.classify_request` says how a verified join request may come in (docs/protocol.md §4.5).

The epoch machine behind it is :mod:`groupchat.core.epoch`: its phases, inputs and transitions in
:mod:`~groupchat.core.epoch.machine`, and one module per job (epoch state, admission, message
protection, multi-round agreement, building our commit, processing a commit, joining); see
docs/protocol.md §10. Every call that can change the phase is checked against the machine's
transition table here.

Processing a commit costs O(log n) X25519 operations whatever the number of operations in it
(see :mod:`groupchat.core.schemes.tree.ratchet_tree`), plus one signature check per commit and one per join
request it adds. Joining verifies every member's join request once (n signature checks, RFC 9420
§12.4.3.1), so a member never relies on a leaf it has not verified.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from .admission import AdmissionState, Admit, NewInvite, RemovalReason
from .epoch.joining import Joining
from .epoch.machine import Input, Phase, check_transition
from .epoch.persist import decode_state, encode_state
from .epoch.protection import Protection
from .epoch.state import GroupConfig, GroupState
from .epoch.wire import (
    SCHEME_EXTENSION,
    scheme_extension,
    with_admission,
)
from .errors import ConfigError, InvalidValueError, RemoteError, UsageError
from .events import Event, Member, RekeyTimedOut
from .identity import MAX_GROUP_ID, Identity, JoinRequest
from .key_schedule import GroupContext, derive_epoch_secrets, exporter
from .outbox import Outbound
from .peek import MessageKind, peek
from .schemes.registry import DEFAULT_SCHEME, scheme_class
from .schemes.tree import PathSecrets, RatchetTree, TreeScheme

__all__ = [
    "SCHEME_EXTENSION",
    "Group",
    "GroupConfig",
    "GroupState",
]

# Which input of the epoch machine a message is, by the kind its public header claims (peek.py).
_KIND_INPUTS: Final = {
    MessageKind.COMMIT: Input.RECEIVE_COMMIT,
    MessageKind.APPLICATION: Input.RECEIVE_MESSAGE,
    MessageKind.ROUND: Input.RECEIVE_HANDSHAKE,
    MessageKind.WELCOME: Input.RECEIVE_WELCOME,
}


class Group(Joining, Protection):
    """One member's state of one group. Use :meth:`create` or :meth:`join` to make one.

    The work is done by the epoch machine's modules (the bases); this class is the public API:
    it routes each input, guards it and checks the phase it leads to against the table.
    """

    # --- construction ------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        identity: Identity,
        group_id: bytes,
        display_name: str,
        config: GroupConfig | None = None,
        *,
        scheme: str = DEFAULT_SCHEME,
        open_room: bool = False,
    ) -> Group:
        """Start a group with ourselves as the only member, at epoch 0.

        ``scheme`` (``"tree"`` or ``"ring"``) is fixed for the group's life: a non-default one is
        recorded in the GroupContext extensions, so it is bound into every epoch. ``open_room``
        (fixed too) makes :meth:`classify_request` call any valid request OPEN; the default is
        invite-only (see :attr:`admission`).
        """
        config = config or GroupConfig()
        suite = config.suite()
        scheme_type = scheme_class(scheme)
        if not 0 < len(group_id) <= MAX_GROUP_ID:
            raise ConfigError(f"group id must be 1..{MAX_GROUP_ID} bytes")
        pending = JoinRequest.create(
            suite, identity, group_id, display_name, config.rand, wall_clock=config.wall_clock
        )
        agreement, commit_secret = scheme_type.found(
            suite, pending.request, identity=identity, group_id=group_id, rand=config.rand, clock=config.clock
        )
        extensions = b"" if scheme == DEFAULT_SCHEME else scheme_extension(scheme)
        if open_room:
            extensions = with_admission(extensions, AdmissionState(open=True))
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
    def restore(cls, data: bytes, identity: Identity, config: GroupConfig | None = None) -> Group:
        """The group :meth:`export_state` stored, at the same epoch and ratchet positions.

        Raises a :class:`~groupchat.core.errors.DecodeError` subclass on truncated, trailing,
        malformed or corrupted bytes, :class:`ConfigError` for a config of another suite or label
        prefix, :class:`UsageError` for another identity's state; nothing is created then.
        """
        return decode_state(cls, data, identity, config or GroupConfig())

    def export_state(self) -> bytes:
        """Our whole state at this epoch, secrets included, to store (encrypted) and :meth:`restore`.

        Not while a ring run is in progress, nor before :meth:`data_to_send` was drained:
        :class:`UsageError` says why (a commit awaiting its echo is stored). Store it before
        sending what the last call produced, so that a restored member never reuses a key or
        nonce and recognises its own commit (docs/protocol.md §12).
        """
        return encode_state(self)

    # --- read-only view --------------------------------------------------------------------

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
        self._require(Input.EXPORT, "compare epoch authenticators")
        return self._secrets.epoch_authenticator

    @property
    def joining(self) -> bool:
        """True for a ring joiner until the ring creating its first epoch is done (§8.4): the
        current epoch is the one before it joined, whose keys it does not hold."""
        return self._joining

    def has_init_key(self, init_key: bytes) -> bool:
        """Whether a current member joined with this init key (its join request is in the roster)."""
        return self._scheme.has_init_key(init_key)

    @property
    def has_pending_commit(self) -> bool:
        return self._pending is not None

    @property
    def pending_commit(self) -> tuple[bytes, bool] | None:
        """Our commit awaiting the relay's echo: the bytes sent and whether it updates our own
        path; ``None`` if there is none (a restored member needs it to tell an echo from a loss)."""
        pending = self._pending
        return None if pending is None else (pending.message, pending.updated)

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
        self._require(Input.EXPORT)
        if not 0 < length <= 255 * self.suite.hash_len:  # HKDF-Expand's output limit (RFC 5869)
            raise UsageError(f"an exported secret must be 1..{255 * self.suite.hash_len} bytes, not {length}")
        return exporter(self.suite, self._secrets.exporter_secret, label, context, length)

    def __repr__(self) -> str:
        return f"Group(epoch={self.epoch}, leaf={self.my_leaf}, members={self._scheme.member_count})"

    # --- inputs ----------------------------------------------------------------------------------

    def commit(
        self,
        *,
        add: Iterable[JoinRequest | bytes | Admit] = (),
        remove: Iterable[int] = (),
        update: bool = False,
        authenticated_data: bytes = b"",
        reasons: Mapping[int, RemovalReason] | None = None,
        invite: Iterable[NewInvite] = (),
        revoke: Iterable[bytes] = (),
    ) -> bytes:
        """Build a commit and return its bytes; it takes effect when the relay echoes it to :meth:`receive`.

        ``add`` takes join requests (approved by us) or :class:`~groupchat.core.admission.Admit`
        (using an invite); ``reasons`` maps removed leaves to their reason; ``invite`` and
        ``revoke`` change the live invites. See :meth:`groupchat.core.epoch.building.Building.commit`.
        """
        add, remove, invite, revoke = list(add), list(remove), list(invite), list(revoke)
        inp = Input.COMMIT if add or update or not remove or invite or revoke else Input.COMMIT_REMOVALS
        before = self.phase
        data = super().commit(
            add=add,
            remove=remove,
            update=update,
            authenticated_data=authenticated_data,
            reasons=reasons,
            invite=invite,
            revoke=revoke,
        )
        check_transition(before, inp, self.phase)
        return data

    def receive(self, data: bytes) -> Event:
        """Process one message from the relay; raise and change nothing if it is not acceptable."""
        self._require(Input.RECEIVE_MESSAGE)  # allowed in every phase but REMOVED
        self._expire_previous_epoch()
        claim = peek(data)
        if claim.kind is MessageKind.WELCOME:
            # From the relay, a Welcome here is a peer's mix-up (or a bit flipped into the wire
            # format), not our caller's: refused as bad input, like any other undecodable message.
            refusal = InvalidValueError(
                "a Welcome came where a commit or an application message belongs (a Welcome is "
                "opened with Group.join by its joiner)"
            )
            refusal.epoch = claim.epoch
            raise refusal
        inp = _KIND_INPUTS[claim.kind]
        if inp is not Input.RECEIVE_MESSAGE:  # that one was checked just above
            self._require(inp)
        before = self.phase
        try:
            if inp is Input.RECEIVE_COMMIT:
                event = self._receive_commit(data)
            elif inp is Input.RECEIVE_MESSAGE:
                event = self._receive_private(data)
            else:
                event = self._receive_handshake(data)
        except RemoteError as exc:
            if exc.epoch is None:
                exc.epoch = claim.epoch  # so no caller re-reads the header to word the refusal
            self._name_signer_key(exc)
            raise
        check_transition(before, inp, self.phase)
        return event

    def _name_signer_key(self, exc: RemoteError) -> None:
        """Add the identity key of a named signer that its raiser did not give: nothing changed on
        refusal, so the member at that leaf (under that name) is still the one who signed."""
        if exc.signer is not None and exc.signer_key is None:
            request = self._scheme.member(exc.signer)
            if request is not None and request.display_name == exc.signer_name:
                exc.signed_by(exc.signer, exc.signer_name, request.identity_key)

    def tick(self) -> RekeyTimedOut | None:
        """Check the running agreement's deadline (injected clock); call on the session's timer.

        Returns :class:`~groupchat.core.events.RekeyTimedOut` (once per attempt) when a round timed
        out: our proposal of the next attempt is then in :meth:`data_to_send` (none when no attempt
        number is left: ``retry`` is then false, and a restart commit is the way on). ``None``
        otherwise. Never raises for the state of the run: a timeout is an outcome.
        """
        self._require(Input.POLL)
        before = self.phase
        event = self._tick()
        check_transition(before, Input.POLL, self.phase)
        return event

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
        before = self.phase
        if before is Phase.MEMBER:
            intent, self._rebuild = self._rebuild, None
            if intent is not None:
                admits = {a.request.identity_key: a for a in intent.admits}
                leaves = {key: leaf for key in intent.removes if (leaf := self._leaf_of(key)) is not None}
                self._queue_commit(
                    self.commit(
                        add=[admits.get(r.identity_key, r) for r in intent.adds],
                        remove=list(leaves.values()),
                        update=intent.update,
                        authenticated_data=intent.authenticated_data,
                        reasons={leaves[key]: reason for key, reason in intent.reasons if key in leaves},
                        invite=intent.invites,
                        revoke=intent.revokes,
                    )
                )
            elif self._scheme.plan_update(True, False):
                self._queue_commit(self.commit(update=True))
        check_transition(before, Input.DATA_TO_SEND, self.phase)
        out, self._outbox = self._outbox, []
        return out

    def discard_pending_commit(self) -> None:
        """Forget a pending commit (for example when the relay rejected it)."""
        before = self.phase
        self._pending = None
        check_transition(before, Input.DISCARD, self.phase)
