"""Joining from a Welcome (RFC 9420 §12.4.3.1): everything is checked before a Group exists.

A one-round scheme's Welcome carries the new epoch; a multi-round scheme's carries the epoch
before the commit that adds us, and we take part in the run creating our first epoch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import fields
from typing import Self

from ..commit import CommitMessage, OpType
from ..errors import (
    CounterLimitError,
    InvalidWelcomeError,
    UnknownMemberError,
    UsageError,
    WrongGroupError,
)
from ..identity import JoinRequest, PendingJoin
from ..key_schedule import (
    EpochSecrets,
    epoch_secrets_from_joiner,
    interim_transcript_hash,
    verify_confirmation_tag,
    welcome_secret,
)
from ..message_protection import (
    WireFormat,
    verify_framed_content,
)
from ..schemes.base import EpochInput, KeyAgreementScheme
from ..schemes.registry import scheme_class
from ..suite import CipherSuite
from ..welcome import (
    SECRETS_EXTENSION,
    GroupInfo,
    GroupSecrets,
    WelcomeMessage,
    committed_secrets,
    decode_extensions,
    decrypt_group_info,
    open_group_secrets,
    open_public_state,
)
from .admission import signed_by, verify_listed_member, verify_listed_members
from .roster import RosterChecking
from .state import GroupConfig, PendingEpoch
from .wire import (
    LAST_EPOCH,
    RING_COMMIT_EXTENSION,
    RING_INTERIM_EXTENSION,
    admission_of,
    scheme_of,
)


class Joining(RosterChecking):
    """Entering a group from a Welcome."""

    @classmethod
    def join(
        cls,
        pending: PendingJoin,
        welcome: bytes,
        config: GroupConfig | None = None,
        *,
        verify_roster: bool = True,
    ) -> Self:
        """Enter a group from a Welcome sealed to our join request's init key.

        Everything the welcome says is checked before a Group exists (RFC 9420 §12.4.3.1),
        including every member's join request signature. With ``verify_roster=False`` (a tree
        group) those n signatures are left to :meth:`roster_check`: the group reads at once and
        sends once they are verified (:mod:`.roster`). ``pending`` is consumed only on success:
        a rejected welcome leaves it usable for the genuine one. While our leaf is tainted by our
        adder, :meth:`data_to_send` carries our first Update (the taint rule's way out).
        """
        if pending.used:
            raise UsageError("this join request was already used to join; make a new one")
        config = config or GroupConfig()
        suite = config.suite()
        msg = WelcomeMessage.decode(welcome)
        ref = pending.request.ref(suite)
        gs = open_group_secrets(suite, msg.welcome, ref, pending.init_private)
        secret = welcome_secret(suite, gs.joiner_secret)
        info = decrypt_group_info(suite, msg.welcome, secret)
        ctx = info.group_context
        if ctx.cipher_suite != suite.id or ctx.group_id != pending.request.group_id:
            raise WrongGroupError("welcome is for another group or cipher suite than we asked to join")
        admission_of(ctx)  # the agreed admission state decodes within its bounds (signed with the info)
        if ctx.epoch >= LAST_EPOCH:
            raise CounterLimitError(
                f"welcome puts the group at epoch {ctx.epoch}, the last a uint64 holds: no commit could "
                "follow it; refusing the welcome"
            )
        scheme_type = scheme_class(scheme_of(ctx))
        # The tree (or roster) beside the GroupInfo: trusted only once it hashes to ctx.tree_hash.
        state = open_public_state(suite, msg, secret)
        if scheme_type.multi_round:
            return cls._join_multi_round(pending, info, gs, config, scheme_type, state)
        scheme = scheme_type.from_public(
            suite, state, identity=pending.identity, rand=config.rand, clock=config.clock
        )
        if scheme.public_hash != ctx.tree_hash:
            raise InvalidWelcomeError("welcome's public tree does not match the tree hash it was signed with")
        # The signer, and (unless deferred) the whole roster, before anything is used.
        signer = _verify_roster(suite, info, scheme, every=verify_roster)
        # The sealed GroupSecrets are the signer's once they match its signed commitment: a leaf
        # secret that does not fit the signed tree, or a joiner secret that does not give the
        # signed confirmation tag, then names the signer.
        path_secret = _opened_secret(suite, info, signer, ref, gs)
        with signed_by(info.signer, signer.display_name, identity_key=signer.identity_key):
            scheme.take_seat(pending.request, info.signer, path_secret, pending.init_private)
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
        if not verify_roster:
            group._unchecked = {leaf: r for leaf, r in scheme.members() if not scheme.is_verified(leaf)}
            group._roster_signer = (info.signer, signer)
        pending.used = True  # only now: a rejected welcome must not burn the request
        return group

    @classmethod
    def _join_multi_round(
        cls,
        pending: PendingJoin,
        info: GroupInfo,
        gs: GroupSecrets,
        config: GroupConfig,
        scheme_type: type[KeyAgreementScheme],
        roster: bytes,
    ) -> Self:
        """Enter a ring group: the Welcome carries the epoch *before* the commit that adds us.

        We check that epoch's roster (every join request, the signer a member), the commit (signed
        by the Welcome's signer on that epoch, adding us, passing every check a member runs on
        it), then take part in the ring that creates the new epoch like every member; its round 1
        is in :meth:`data_to_send`. The sealed init_secret of the previous epoch is all we get:
        the new epoch also needs our own ephemeral, so a stolen init key alone does not reveal it.
        Everything is checked before ``pending`` is consumed; a refusal after the signer's
        signature checked names the signer.
        """
        suite, ctx = config.suite(), info.group_context
        ext = dict(decode_extensions(info.extensions))
        if not {RING_COMMIT_EXTENSION, RING_INTERIM_EXTENSION} <= set(ext):
            raise InvalidWelcomeError("ring welcome lacks its commit or transcript extension")
        scheme = scheme_type.from_public(
            suite, roster, identity=pending.identity, rand=config.rand, clock=config.clock
        )
        if scheme.public_hash != ctx.tree_hash:
            raise InvalidWelcomeError(
                "ring welcome's roster does not match the roster hash it was signed with"
            )
        signer = _verify_roster(suite, info, scheme)
        init_secret = _opened_secret(suite, info, signer, pending.request.ref(suite), gs)
        with signed_by(info.signer, signer.display_name, identity_key=signer.identity_key):
            data = ext[RING_COMMIT_EXTENSION]
            msg = CommitMessage.decode(data)
            content = msg.content
            if (
                content.group_id != ctx.group_id
                or content.epoch != ctx.epoch
                or content.sender != info.signer
            ):
                raise InvalidWelcomeError(
                    "ring welcome's commit is not the signer's commit on the welcome's epoch"
                )
            verify_framed_content(
                suite, signer.identity_key, WireFormat.PUBLIC_MESSAGE, content, ctx.encode(), msg.signature
            )
            ops = msg.commit.operations
            added = [op for op in ops if op.request is not None]
            for op in added:
                assert op.request is not None
                verify_listed_member(suite, ctx.group_id, op.leaf, op.request, (info.signer, signer))
            if not any(op.request == pending.request for op in added):
                raise InvalidWelcomeError("ring welcome's commit does not add our join request")
            # Only init_secret of this epoch is ours; the rest stays unknown (we never read epoch n).
            secrets = EpochSecrets(*(b"" for _ in fields(EpochSecrets)))
            secrets = dataclasses.replace(
                secrets, init_secret=init_secret, encryption_secret=bytes(32), sender_data_secret=bytes(32)
            )
            before = {leaf: req for leaf, req in scheme.members()}
            # The checks every member runs on this commit, on the roster before it (order, scheme
            # rules, every Add signed, unexpired and new), so that we decide about it alike.
            checker = cls(
                config=config,
                identity=pending.identity,
                scheme=scheme,
                group_context=ctx,
                secrets=secrets,
                interim=ext[RING_INTERIM_EXTENSION],
            )
            checker._check_operations(content.sender, ops)
            admission = checker._admission_after(ops, msg.commit.changes, signer.identity_key)
            scheme.confirm(scheme.stage_commit(EpochInput(ctx.group_id, ctx.epoch), content.sender, ops))
            group = cls(
                config=config,
                identity=pending.identity,
                scheme=scheme,
                group_context=ctx,
                secrets=secrets,
                interim=ext[RING_INTERIM_EXTENSION],
            )
            overrides = {op.leaf: before.get(op.leaf) for op in ops if op.type in (OpType.ADD, OpType.REMOVE)}
            members = group._member
            ring = PendingEpoch(
                data,
                content,
                msg.signature,
                members(content.sender, signer),
                tuple(members(op.leaf, op.request) for op in added if op.request is not None),
                tuple(
                    members(op.leaf, r) for op in ops if op.type == OpType.REMOVE and (r := before[op.leaf])
                ),
                any(op.type == OpType.UPDATE for op in ops),
                overrides,
                suite.hash(data),
                own=False,
                admission=admission,
            )
            group._joining = True
            try:
                group._begin_agreement(ring)
            except UsageError as exc:
                # Every input of the run (roster, epoch, context) is the welcome's: remote input.
                raise InvalidWelcomeError(f"ring welcome's roster cannot start a ring: {exc}") from exc
        pending.used = True  # only now: a rejected welcome must not burn the request
        return group


def _opened_secret(
    suite: CipherSuite, info: GroupInfo, signer: JoinRequest, ref: bytes, gs: GroupSecrets
) -> bytes:
    """The secret sealed to us, once it is what the (verified) GroupInfo's signer committed to.

    Anyone who knows the new epoch's joiner secret (a member) can seal other GroupSecrets under
    the same signed GroupInfo: those are refused naming no one. What matches the commitment is
    the signer's, so every refusal about it, here and later, names the signer.
    """
    data = dict(decode_extensions(info.extensions)).get(SECRETS_EXTENSION)
    verdict = None if data is None else committed_secrets(suite, data, ref, gs)
    if verdict is False:
        raise InvalidWelcomeError(
            "the secrets sealed to us are not the ones the welcome's signer committed to: someone "
            "who could read the welcome (a member) sealed others; refusing the welcome"
        )
    with signed_by(info.signer, signer.display_name, identity_key=signer.identity_key):
        if verdict is None:
            raise InvalidWelcomeError("welcome's GroupInfo commits to no secrets for us")
        if gs.path_secret is None:
            raise InvalidWelcomeError("welcome carries no leaf secret for us")
        if gs.psks:
            raise InvalidWelcomeError("welcome asks for pre-shared keys, which groupchat does not use")
    return gs.path_secret


def _verify_roster(
    suite: CipherSuite, info: GroupInfo, scheme: KeyAgreementScheme, *, every: bool = True
) -> JoinRequest:
    """The Welcome's signer is a member whose signature checks, then (``every``) every other leaf.

    Once we know who built this roster we check every other leaf: a malicious adder controls the
    whole welcome and could list a ghost (someone's identity key with a made-up signature) under a
    tree hash that matches. After this every leaf is verified; later leaves come only through
    Adds, verified by ``Admission._check_adds``. Returns the signer's join request.
    """
    group_id = info.group_context.group_id
    signer = scheme.member(info.signer)
    if signer is None:
        raise UnknownMemberError(f"welcome is signed by leaf {info.signer}, which holds no member")
    verify_listed_member(suite, group_id, info.signer, signer, None)
    info.verify(suite, signer.identity_key)
    scheme.mark_verified(info.signer)
    if not every:
        return signer
    others = [(leaf, request) for leaf, request in scheme.members() if leaf != info.signer]
    verify_listed_members(suite, group_id, others, (info.signer, signer))
    for leaf, _ in others:
        scheme.mark_verified(leaf)
    return signer
