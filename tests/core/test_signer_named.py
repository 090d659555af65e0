"""Every refusal of material whose signature checked names its signer: leaf, name, fingerprint.

Each test mounts the attack with a real member's keys: an inconsistent path in a signed commit, a
Welcome whose signer seals a leaf secret that does not fit the tree it signed, a re-key sealed to
the wrong key, a crafted ring Welcome. The refusing member's error names the attacker
(``signer``, ``signer_name``, ``signer_key``, ``signer_fingerprint``) and its state is unchanged;
material no signature covers (GroupSecrets re-sealed by another member who knows the joiner
secret) names no one.
"""

from __future__ import annotations

import os

import pytest
from group_harness import Harness, fingerprint, welcome_for
from ring_room import GROUP_ID, Room, grown

from groupchat.core.commit import Commit, CommitMessage, Operation, OpType, SealedSecret
from groupchat.core.epoch.wire import RING_COMMIT_EXTENSION
from groupchat.core.errors import (
    DuplicateKeyError,
    GroupChatError,
    InconsistentPathError,
    InvalidWelcomeError,
    RemoteError,
    TaintRuleError,
)
from groupchat.core.events import EpochChanged
from groupchat.core.group import Group
from groupchat.core.identity import PendingJoin
from groupchat.core.identity import fingerprint as fingerprint_of
from groupchat.core.key_schedule import welcome_secret
from groupchat.core.message_protection import FramedContent, WireFormat, sign_framed_content
from groupchat.core.schemes.base import EpochInput, OwnChange
from groupchat.core.schemes.ring_errors import WrongAttemptError
from groupchat.core.schemes.tree import TreeScheme, ratchet_tree
from groupchat.core.welcome import (
    GroupInfo,
    GroupSecrets,
    WelcomeMessage,
    decode_extensions,
    decrypt_group_info,
    encode_extensions,
    open_group_secrets,
    open_public_state,
    seal_welcome,
)


def assert_names(exc: GroupChatError, attacker: Group) -> None:
    """``exc`` names ``attacker`` as the signer: leaf, display name, identity key, fingerprint."""
    assert isinstance(exc, RemoteError), repr(exc)
    me = attacker.members()[[m.leaf for m in attacker.members()].index(attacker.my_leaf)]
    assert exc.signer == attacker.my_leaf
    assert exc.signer_name == me.display_name
    assert exc.signer_key == attacker._identity.public_key
    assert exc.signer_fingerprint == fingerprint_of(attacker._identity.public_key) == me.fingerprint


def refused(group: Group, data: bytes, error: type[GroupChatError]) -> GroupChatError:
    """``group`` refuses ``data`` with exactly ``error`` and changes nothing."""
    before = fingerprint(group)
    with pytest.raises(GroupChatError) as info:
        group.receive(data)
    assert type(info.value) is error, repr(info.value)
    assert fingerprint(group) == before
    return info.value


# --- an inconsistent path -----------------------------------------------------------------------


def test_an_inconsistent_path_names_the_committer_at_the_member_below_the_bad_node(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """m1 (leaf 1) updates with a made-up secret at its parent node (0-1) instead of the one its
    new leaf key and m0's give, and builds the rest of its path, the tree hash and the confirmation
    tag consistently from it. m0, the only member below that node, derives the node itself and
    refuses, naming m1; m2..m4 take the node's key as sent and accept (inherent to a DH tree,
    docs/protocol.md §7)."""
    attacker = h.members["m1"]
    real = ratchet_tree.node_secret
    calls: list[bytes] = []

    def first_made_up(*args: object) -> bytes:
        calls.append(b"")
        return os.urandom(32) if len(calls) == 1 else real(*args)  # type: ignore[arg-type]

    with monkeypatch.context() as m:
        m.setattr(ratchet_tree, "node_secret", first_made_up)
        commit = attacker.commit(update=True)
    assert len(calls) == 3  # nodes 0-1, 0-3 and the root: only the first is made up
    exc = refused(h.members["m0"], commit, InconsistentPathError)
    assert_names(exc, attacker)
    assert "node 1 " in str(exc)  # node 1 is the parent of leaves 0 and 1
    events = {name: h.members[name].receive(commit) for name in ("m1", "m2", "m3", "m4")}
    assert all(isinstance(ev, EpochChanged) for ev in events.values())
    assert len({h.members[n].epoch_authenticator for n in events}) == 1


# --- a Welcome whose signer seals a wrong leaf secret ----------------------------------------------


def lying_adder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every commit built while this holds seals a random leaf secret to each joiner, not the one
    its (signed) tree's leaf key comes from."""
    real = TreeScheme.build_commit

    def build(self: TreeScheme, ctx: EpochInput, **kwargs: object) -> OwnChange:
        change = real(self, ctx, **kwargs)  # type: ignore[arg-type]
        change.joiner_secrets = {leaf: os.urandom(32) for leaf in change.joiner_secrets}
        return change

    monkeypatch.setattr(TreeScheme, "build_commit", build)


def opened(welcome: bytes, pj: PendingJoin, h: Harness) -> tuple[GroupInfo, GroupSecrets]:
    msg = WelcomeMessage.decode(welcome).welcome
    gs = open_group_secrets(h.suite, msg, pj.request.ref(h.suite), pj.init_private)
    return decrypt_group_info(h.suite, msg, welcome_secret(h.suite, gs.joiner_secret)), gs


def tree_of(welcome: bytes, pj: PendingJoin, h: Harness) -> bytes:
    """The public state beside the welcome's GroupInfo."""
    msg = WelcomeMessage.decode(welcome)
    gs = open_group_secrets(h.suite, msg.welcome, pj.request.ref(h.suite), pj.init_private)
    return open_public_state(h.suite, msg, welcome_secret(h.suite, gs.joiner_secret))


def test_a_wrong_leaf_secret_in_a_welcome_names_its_signer(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness()
    h.add("m0", 2)
    attacker, pj = h.members["m1"], h.join_request("joiner")
    with monkeypatch.context() as m:
        lying_adder(m)
        commit = attacker.commit(add=[pj.request])
    assert all(isinstance(ev, EpochChanged) for ev in h.deliver(commit).values())
    welcome = welcome_for(attacker, pj)
    with pytest.raises(InconsistentPathError, match="does not match our leaf secret") as info:
        Group.join(pj, welcome, h.config)
    assert_names(info.value, attacker)
    assert not pj.used


def test_secrets_resealed_by_another_member_name_no_one_and_the_genuine_welcome_joins() -> None:
    """m0 knows the new epoch's joiner secret, so it can seal other GroupSecrets under m1's signed
    GroupInfo (with the relay's help to deliver them). That is not m1's doing: the joiner refuses it
    naming no one, because it does not match what m1 committed to; m1's own Welcome then joins."""
    h = Harness()
    h.add("m0", 2)
    pj = h.join_request("joiner")
    commit = h.members["m1"].commit(add=[pj.request])
    assert all(isinstance(ev, EpochChanged) for ev in h.deliver(commit).values())
    genuine = welcome_for(h.members["m1"], pj)
    info, _ = opened(genuine, pj, h)
    joiner_secret = h.members["m0"]._secrets.joiner_secret  # m0 is a member of the new epoch
    forged_secrets = GroupSecrets(joiner_secret, os.urandom(32), [])
    forged = seal_welcome(
        h.suite,
        info.encode(),
        welcome_secret(h.suite, joiner_secret),
        [(pj.request.ref(h.suite), pj.request.init_key, forged_secrets)],
        tree_of(genuine, pj, h),
    ).encode()
    with pytest.raises(InvalidWelcomeError, match="not the ones the welcome's signer committed to") as exc:
        Group.join(pj, forged, h.config)
    assert (exc.value.signer, exc.value.signer_name, exc.value.signer_key) == (None, "", None)
    assert exc.value.signer_fingerprint == ""
    assert not pj.used
    group = Group.join(pj, genuine, h.config)
    assert group.epoch_authenticator == h.members["m0"].epoch_authenticator


# --- a re-key sealed to the wrong key ----------------------------------------------------------------


def test_a_rekey_sealed_to_the_wrong_key_names_the_committer(monkeypatch: pytest.MonkeyPatch) -> None:
    """m1 adds J; m2 removes m1 before J updates, so it must re-key J's leaf sealed to J's init
    key; it seals to another key. Only J can tell, and J's refusal names m2."""
    h = Harness()
    h.add("m0", 3)
    for name in ("m1", "m2", "m3"):
        h.update(name)
    h.commit("m1", add=["J"])
    attacker = h.members["m2"]
    other = h.join_request("other")
    real = TreeScheme._seal_rekey

    def to_another_key(
        self: TreeScheme, ctx: EpochInput, member: object, leaf: int, secret: bytes
    ) -> SealedSecret:
        return real(self, ctx, other.request, leaf, secret)

    with monkeypatch.context() as m:
        m.setattr(TreeScheme, "_seal_rekey", to_another_key)
        commit = attacker.commit(remove=[h.leaf("m1")])
    exc = refused(h.members["J"], commit, TaintRuleError)
    assert_names(exc, attacker)
    assert "not sealed to our init key" in str(exc)


# --- a crafted ring Welcome ---------------------------------------------------------------------------


def doubled(welcome: bytes, pj: PendingJoin, attacker: Group) -> bytes:
    """The attacker's genuine ring Welcome with its commit adding ``pj`` a second time (at the next
    free leaf), the commit and the GroupInfo re-signed with the attacker's own key: every signature
    checks, every added request is validly signed, but one identity would sit at two leaves."""
    suite = attacker.suite
    whole = WelcomeMessage.decode(welcome)
    msg = whole.welcome
    gs = open_group_secrets(suite, msg, pj.request.ref(suite), pj.init_private)
    info = decrypt_group_info(suite, msg, welcome_secret(suite, gs.joiner_secret))
    ext = decode_extensions(info.extensions)
    old = CommitMessage.decode(dict(ext)[RING_COMMIT_EXTENSION])
    (add,) = [op for op in old.commit.operations if op.type == OpType.ADD]
    body = Commit(
        (*old.commit.operations, Operation(OpType.ADD, add.leaf + 1, (), pj.request)), old.commit.changes
    )
    c = old.content
    content = FramedContent(
        c.group_id, c.epoch, c.sender, c.authenticated_data, c.content_type, body.encode()
    )
    key = attacker._identity.signing_key
    ctx = info.group_context.encode()
    signature = sign_framed_content(suite, key, WireFormat.PUBLIC_MESSAGE, content, ctx)
    commit = CommitMessage(content, body, signature, old.confirmation_tag).encode()
    extensions = encode_extensions([(t, commit if t == RING_COMMIT_EXTENSION else d) for t, d in ext])
    signed = GroupInfo(info.group_context, extensions, info.confirmation_tag, info.signer).sign(suite, key)
    sealed = [(pj.request.ref(suite), pj.request.init_key, gs)]  # the commitment to gs still holds
    secret = welcome_secret(suite, gs.joiner_secret)
    roster = open_public_state(suite, whole, secret)
    return seal_welcome(suite, signed.encode(), secret, sealed, roster).encode()


def test_a_crafted_ring_welcome_is_refused_naming_its_signer_and_the_genuine_one_then_joins() -> None:
    """Before the fix the crafted Welcome passed Group.join's checks, used up the request, then the
    ring refused its roster with a UsageError, and the genuine Welcome was refused "already used"."""
    room: Room = grown(2)
    attacker = room.members["m1"]
    pj = room.request("joiner")
    outcome: list[GroupChatError] = []
    since = 0

    def join(welcome: bytes) -> Group:
        with pytest.raises(GroupChatError) as info:
            Group.join(pj, doubled(welcome, pj, attacker), room.config)
        outcome.append(info.value)
        assert not pj.used  # nothing changed: the request is still ours to use
        room.cursor["joiner"] = since
        return Group.join(pj, welcome, room.config)

    commit = attacker.commit(add=[pj.request])
    since = len(room.log) + 1
    room.relay.expect("joiner", pj.request.identity_key, join)
    room.send("m1", commit)
    room.pump()
    (exc,) = outcome
    assert type(exc) is DuplicateKeyError, repr(exc)
    assert "twice in this commit" in str(exc)
    assert_names(exc, attacker)
    assert pj.used
    room.assert_agreement()
    assert room.members["joiner"].group_id == GROUP_ID and not room.members["joiner"].joining


# --- a ring message: the facade adds the signer's key -------------------------------------------------


def test_a_refused_signed_ring_message_carries_its_signers_key() -> None:
    """The ring names the member whose signed message it refuses by leaf and name; Group.receive
    adds the identity key from the (unchanged) roster. m2 sends its round 2 of attempt 0 after
    the retry (attempt 1) was ordered: m1 refuses it as stale, naming m2."""
    room = grown(3)
    room.commit("m0", update=True)
    m1, m2 = room.members["m1"], room.members["m2"]
    while room.cursor["m2"] < len(room.log):  # m2 takes the commit, sends its round 1, goes silent
        m2.receive(room.log[room.cursor["m2"]])
        room.cursor["m2"] += 1
        room.drain("m2")
    room.offline.add("m2")
    room.pump()
    room.clock.now += 31
    assert room.members["m0"].tick() is not None
    room.drain("m0")  # m0's retry is ordered first
    room.pump()
    caught: list[GroupChatError] = []
    receive = m1.receive

    def recording(data: bytes) -> object:
        try:
            return receive(data)
        except GroupChatError as exc:
            caught.append(exc)
            raise

    m1.receive = recording  # type: ignore[method-assign]
    room.offline.clear()
    room.pump()  # m2's stale round 2 of attempt 0 reaches m1, then m2 switches and completes
    room.assert_agreement()
    stale = [e for e in caught if isinstance(e, WrongAttemptError)]
    assert stale, caught
    assert_names(stale[0], m2)
