"""Every refusal in :meth:`Group.join`, in the order join() checks them, each with its exact error.

The welcomes are forged the way a malicious adder (a real member) would: the joiner's own init
key opens the genuine welcome, one field of the GroupSecrets, the GroupInfo or its public tree is
changed, the GroupInfo is re-signed with the adder's real identity key and everything is sealed
again. So each forged welcome differs from the genuine one only where the test says, and passes
every check before the one under test. A control test shows that the re-sealed welcome with no
change is accepted, so the refusals are about the change and nothing else.

"State unchanged" for a joiner means: the ``PendingJoin`` is not used up, and the genuine welcome
still joins afterwards (checked by the fixture after every test) and reads the group.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from group_harness import welcome_for
from test_tree_decoding import legacy_encoding

from groupchat.core.codec import Writer
from groupchat.core.errors import (
    ConfirmationError,
    CounterLimitError,
    DecryptionError,
    ForgedMemberError,
    GroupChatError,
    InconsistentPathError,
    InvalidWelcomeError,
    ProtocolError,
    SignatureError,
    TaintRuleError,
    TruncatedError,
    UnknownMemberError,
    UsageError,
    WrongGroupError,
)
from groupchat.core.events import EpochChanged, MessageReceived
from groupchat.core.group import Group, GroupConfig
from groupchat.core.identity import Identity, JoinRequest, PendingJoin
from groupchat.core.key_schedule import welcome_secret
from groupchat.core.schemes.tree.ratchet_tree import RatchetTree
from groupchat.core.welcome import (
    SECRETS_EXTENSION,
    GroupInfo,
    GroupSecrets,
    WelcomeMessage,
    decode_extensions,
    decrypt_group_info,
    encode_extensions,
    open_group_secrets,
    open_public_state,
    seal_welcome,
    secrets_commitment,
)

NOW = 1_800_000_000.0
CONFIG = GroupConfig(wall_clock=lambda: NOW)
SUITE = CONFIG.suite()
GID = b"join-rejections"
LAST_EPOCH = 2**64 - 1


def request(name: str, identity: Identity | None = None, group_id: bytes = GID) -> PendingJoin:
    return JoinRequest.create(
        SUITE, identity or Identity.generate(), group_id, name, wall_clock=CONFIG.wall_clock
    )


@dataclass
class Scene:
    """m0 created the group, m0 added m1, then m1 (the adder) added the joiner at leaf 2.

    Leaf 3 of the capacity-4 tree is blank. ``welcome`` is the genuine welcome for ``joiner``.
    """

    ids: dict[str, Identity]
    members: dict[str, Group]
    joiner: PendingJoin
    welcome: bytes

    @classmethod
    def build(cls) -> Scene:
        ids = {name: Identity.generate() for name in ("m0", "m1", "joiner")}
        m0 = Group.create(ids["m0"], GID, "m0", CONFIG)
        pj1 = request("m1", ids["m1"])
        ev = m0.receive(m0.commit(add=[pj1.request]))
        assert isinstance(ev, EpochChanged)
        members = {"m0": m0, "m1": Group.join(pj1, welcome_for(m0, pj1), CONFIG)}
        joiner = request("joiner", ids["joiner"])
        commit = members["m1"].commit(add=[joiner.request])
        events = {name: g.receive(commit) for name, g in members.items()}
        assert all(isinstance(ev, EpochChanged) for ev in events.values())
        welcome = welcome_for(members["m1"], joiner)
        return cls(ids, members, joiner, welcome)

    def open(self) -> tuple[GroupInfo, GroupSecrets]:
        """What the joiner's init key reveals of the genuine welcome."""
        msg = WelcomeMessage.decode(self.welcome)
        gs = open_group_secrets(SUITE, msg.welcome, self.joiner.request.ref(SUITE), self.joiner.init_private)
        return decrypt_group_info(SUITE, msg.welcome, welcome_secret(SUITE, gs.joiner_secret)), gs

    def state(self) -> bytes:
        """The genuine welcome's public tree, as encoded beside its GroupInfo."""
        _, gs = self.open()
        msg = WelcomeMessage.decode(self.welcome)
        return open_public_state(SUITE, msg, welcome_secret(SUITE, gs.joiner_secret))

    def tree(self) -> RatchetTree:
        return RatchetTree.decode(SUITE, self.state())

    def forge(
        self,
        *,
        info: GroupInfo | None = None,
        secrets: GroupSecrets | None = None,
        tree: RatchetTree | None = None,
        state: bytes | None = None,
        signer: Identity | None = None,
        to: PendingJoin | None = None,
    ) -> bytes:
        """The welcome with ``info``/``secrets`` swapped in, ``tree`` (if given) carried with a
        matching tree hash (or ``state`` carried as the tree, the signed hash kept), re-signed by
        the adder m1 (or ``signer``) and sealed to ``to``."""
        real_info, real_secrets = self.open()
        info = info or real_info
        secrets = secrets or real_secrets
        if tree is not None:
            ctx = dataclasses.replace(info.group_context, tree_hash=tree.tree_hash)
            info = dataclasses.replace(info, group_context=ctx)
            state = tree.encode()
        to = to or self.joiner
        info = committing(info, to, secrets)
        signed = info.sign(SUITE, (signer or self.ids["m1"]).signing_key)
        return seal_welcome(
            SUITE,
            signed.encode(),
            welcome_secret(SUITE, secrets.joiner_secret),
            [(to.request.ref(SUITE), to.request.init_key, secrets)],
            self.state() if state is None else state,
        ).encode()

    def with_info(self, **changes: object) -> bytes:
        info, _ = self.open()
        return self.forge(info=dataclasses.replace(info, **changes))  # type: ignore[arg-type]

    def with_context(self, **changes: object) -> bytes:
        info, _ = self.open()
        ctx = dataclasses.replace(info.group_context, **changes)  # type: ignore[arg-type]
        return self.forge(info=dataclasses.replace(info, group_context=ctx))

    def refused(self, welcome: bytes, error: type[GroupChatError], match: str = "") -> GroupChatError:
        """The joiner refuses ``welcome`` with exactly ``error`` and its request stays usable (the
        fixture then checks that the genuine welcome still joins)."""
        with pytest.raises(GroupChatError) as info:
            Group.join(self.joiner, welcome, CONFIG)
        assert type(info.value) is error, repr(info.value)
        assert match in str(info.value), str(info.value)
        assert not self.joiner.used
        return info.value

    def joins(self, welcome: bytes | None = None) -> Group:
        group = Group.join(self.joiner, welcome or self.welcome, CONFIG)
        assert self.joiner.used
        assert group.epoch_authenticator == self.members["m0"].epoch_authenticator
        ev = group.receive(self.members["m0"].encrypt(b"welcome in"))
        assert isinstance(ev, MessageReceived) and ev.plaintext == b"welcome in"
        return group


def committing(info: GroupInfo, to: PendingJoin, secrets: GroupSecrets) -> GroupInfo:
    """``info`` committing to the ``secrets`` sealed to ``to`` (SECRETS_EXTENSION), as the signer's
    Group.commit does; extensions that do not decode (a test's malformed list) are left as they are."""
    try:
        kept = [(t, d) for t, d in decode_extensions(info.extensions) if t != SECRETS_EXTENSION]
    except GroupChatError:
        return info
    committed = secrets_commitment(SUITE, [(to.request.ref(SUITE), secrets)])
    return dataclasses.replace(info, extensions=encode_extensions([*kept, (SECRETS_EXTENSION, committed)]))


@pytest.fixture
def s() -> Iterator[Scene]:
    """The scene; after the test, unless it joined already, the genuine welcome must still join:
    no refusal used up the request or left anything behind."""
    scene = Scene.build()
    yield scene
    if not scene.joiner.used:
        scene.joins()


def fresh_key() -> bytes:
    return X25519PrivateKey.generate().public_key().public_bytes_raw()


# --- the forging itself ---------------------------------------------------------------------------


def test_control_the_resealed_welcome_without_changes_is_accepted(s: Scene) -> None:
    info, _ = s.open()
    assert info.signer == s.members["m1"].my_leaf == 1
    group = s.joins(s.forge())
    assert group.my_leaf == 2 and group.tainted_by(2) == 1


def test_control_the_decoded_tree_re_encodes_to_the_same_tree(s: Scene) -> None:
    tree = s.tree()
    assert tree.tree_hash == s.members["m0"].tree_hash
    s.joins(s.forge(tree=tree))


# --- each check of Group.join, top to bottom ------------------------------------------------------


def test_a_used_pending_join_is_refused_before_anything_else(s: Scene) -> None:
    s.joins()
    for welcome in (s.welcome, s.forge(), b"not even a welcome"):
        with pytest.raises(GroupChatError) as info:
            Group.join(s.joiner, welcome, CONFIG)
        assert type(info.value) is UsageError and "already used" in str(info.value)


def test_welcome_not_addressed_to_us(s: Scene) -> None:
    other = request("other")
    with pytest.raises(GroupChatError) as info:
        Group.join(other, s.welcome, CONFIG)
    assert type(info.value) is ProtocolError and "not addressed to us" in str(info.value)
    assert not other.used
    # A forged welcome sealed only to someone else is not for us either.
    s.refused(s.forge(to=other), ProtocolError, "not addressed to us")
    # Named by our ref but sealed to another init key: the HPKE open fails.
    group_info, gs = s.open()
    sealed = seal_welcome(
        SUITE,
        group_info.encode(),
        welcome_secret(SUITE, gs.joiner_secret),
        [(s.joiner.request.ref(SUITE), other.request.init_key, gs)],
        s.state(),
    ).encode()
    s.refused(sealed, DecryptionError)


def test_welcome_without_a_leaf_secret(s: Scene) -> None:
    _, gs = s.open()
    forged = s.forge(secrets=dataclasses.replace(gs, path_secret=None))
    s.refused(forged, InvalidWelcomeError, "no leaf secret")


def test_welcome_asking_for_pre_shared_keys(s: Scene) -> None:
    _, gs = s.open()
    external_psk = b"\x01" + Writer().opaque(b"psk-id").opaque(bytes(32)).bytes()
    forged = s.forge(secrets=dataclasses.replace(gs, psks=[external_psk]))
    s.refused(forged, InvalidWelcomeError, "pre-shared keys")


def test_welcome_for_another_group(s: Scene) -> None:
    s.refused(s.with_context(group_id=b"another-room"), WrongGroupError, "another group")


def test_welcome_for_another_cipher_suite(s: Scene) -> None:
    s.refused(s.with_context(cipher_suite=SUITE.id + 1), WrongGroupError, "cipher suite")


def test_join_request_for_another_group_does_not_join_this_one(s: Scene) -> None:
    """Our request names another group; a welcome (sealed to it) into this group is refused."""
    elsewhere = request("joiner", s.ids["joiner"], group_id=b"elsewhere")
    with pytest.raises(GroupChatError) as info:
        Group.join(elsewhere, s.forge(to=elsewhere), CONFIG)
    assert type(info.value) is WrongGroupError and not elsewhere.used


def test_welcome_at_the_last_epoch(s: Scene) -> None:
    err = s.refused(s.with_context(epoch=LAST_EPOCH), CounterLimitError, str(LAST_EPOCH))
    assert "no commit could follow" in str(err)


def test_welcome_without_a_public_tree(s: Scene) -> None:
    """An older groupchat's welcome (the tree inside the GroupInfo, nothing beside it) is refused
    saying so; a tree that does not decode, or an empty one, is refused as malformed."""
    older = WelcomeMessage.decode(s.welcome).welcome.encode_message()  # or one the relay cut short
    s.refused(older, InvalidWelcomeError, "no tree beside its GroupInfo")
    s.refused(s.forge(state=b""), InvalidWelcomeError, "compact encoding")
    s.refused(s.forge(state=s.state()[:-1]), TruncatedError, "public tree: truncated")
    # The legacy encoding is read from stored states only: the same tree in it is refused too.
    s.refused(s.forge(state=legacy_encoding(s.tree())), InvalidWelcomeError, "compact encoding")


def test_welcome_whose_tree_the_relay_changed(s: Scene) -> None:
    """The tree travels encrypted under keys of its own from the welcome secret: one flipped bit,
    or the encrypted GroupInfo put in its place, fails the AEAD before anything is parsed."""
    msg = WelcomeMessage.decode(s.welcome)
    flipped = bytes([msg.encrypted_state[0] ^ 1]) + msg.encrypted_state[1:]
    s.refused(dataclasses.replace(msg, encrypted_state=flipped).encode(), DecryptionError, "public state")
    spliced = dataclasses.replace(msg, encrypted_state=msg.welcome.encrypted_group_info)
    s.refused(spliced.encode(), DecryptionError, "public state")


def test_welcome_whose_tree_does_not_match_the_signed_tree_hash(s: Scene) -> None:
    info, _ = s.open()
    flipped = bytes([info.group_context.tree_hash[0] ^ 1]) + info.group_context.tree_hash[1:]
    s.refused(s.with_context(tree_hash=flipped), InvalidWelcomeError, "does not match the tree hash")
    # The signed hash kept, the tree changed at one leaf (our slot vacated): also refused.
    # Only the hash is signed, not the tree's bytes: a member of the new epoch (who knows the welcome
    # secret) can encrypt another tree beside the signed GroupInfo, and the hash refuses it.
    other = s.tree()
    other.set_leaf(2, fresh_key(), None, 1)
    s.refused(s.forge(state=other.encode()), InvalidWelcomeError, "does not match the tree hash")


@pytest.mark.parametrize("signer", [3, 4, 2**32 - 1], ids=["blank-leaf", "beyond-capacity", "uint32-max"])
def test_welcome_signed_by_a_leaf_that_holds_no_member(s: Scene, signer: int) -> None:
    s.refused(s.with_info(signer=signer), UnknownMemberError, f"leaf {signer}, which holds no member")


def test_welcome_with_a_bad_group_info_signature(s: Scene) -> None:
    stranger = Identity.generate()
    info, _ = s.open()
    s.refused(s.forge(signer=stranger), SignatureError)
    # Claimed signer m0 (leaf 0), really signed by m1; and claimed signer the joiner itself.
    s.refused(s.forge(info=dataclasses.replace(info, signer=0)), SignatureError, "leaf 0")
    s.refused(s.forge(info=dataclasses.replace(info, signer=2)), SignatureError, "leaf 2")
    # A signature that is not even well formed for the claimed key.
    _, gs = s.open()
    garbled = dataclasses.replace(info.sign(SUITE, s.ids["m1"].signing_key), signature=os.urandom(64))
    sealed = seal_welcome(
        SUITE,
        garbled.encode(),
        welcome_secret(SUITE, gs.joiner_secret),
        [(s.joiner.request.ref(SUITE), s.joiner.request.init_key, gs)],
        s.state(),
    ).encode()
    s.refused(sealed, SignatureError)


def test_welcome_with_a_forged_leaf(s: Scene) -> None:
    """The adder lists m0's identity with a join request m0 never signed (the adder signed it)."""
    tree = s.tree()
    m0 = tree.member(0)
    assert m0 is not None
    init = fresh_key()
    tbs = JoinRequest.tbs(SUITE.id, GID, m0.identity_key, b"m0", init, m0.not_after)
    sig = SUITE.sign_with_label(s.ids["m1"].signing_key, b"JoinRequestTBS", tbs)
    forged = JoinRequest.decode(Writer().raw(tbs).opaque(sig).bytes())
    tree.set_leaf(0, fresh_key(), forged, tree.tainted_by(0))
    err = s.refused(s.forge(tree=tree), ForgedMemberError, "leaf 0")
    assert isinstance(err, ForgedMemberError) and err.leaf == 0
    assert "never asked to join" in str(err) and "'m1', leaf 1" in str(err)


def test_welcome_whose_tree_does_not_hold_our_request(s: Scene) -> None:
    """Our leaf holds someone else (validly signed): the adder swapped us out."""
    tree = s.tree()
    someone = request("someone").request
    tree.set_leaf(2, fresh_key(), someone, 1)
    s.refused(s.forge(tree=tree), InvalidWelcomeError, "does not contain our join request")
    # Our identity with another request of ours (another init key) is not our request either.
    tree = s.tree()
    tree.set_leaf(2, tree.leaf_key(2) or b"", request("joiner", s.ids["joiner"]).request, 1)
    s.refused(s.forge(tree=tree), InvalidWelcomeError, "does not contain our join request")


@pytest.mark.parametrize("chooser", [None, 0], ids=["untainted", "tainted-by-another-member"])
def test_welcome_with_the_wrong_taint_on_our_leaf(s: Scene, chooser: int | None) -> None:
    """Our leaf must be tainted by the adder who signed the welcome, or nobody re-keys it when
    the adder leaves."""
    tree = s.tree()
    key = tree.leaf_key(2)
    assert key is not None and tree.tainted_by(2) == 1
    tree.set_leaf(2, key, s.joiner.request, chooser)
    err = s.refused(s.forge(tree=tree), TaintRuleError, f"tainted by {chooser}")
    assert "leaf 1" in str(err)


def test_welcome_whose_leaf_key_does_not_match_our_leaf_secret(s: Scene) -> None:
    _, gs = s.open()
    forged = s.forge(secrets=dataclasses.replace(gs, path_secret=os.urandom(32)))
    s.refused(forged, InconsistentPathError, "does not match our leaf secret")
    # The other way round: the right secret, a different key at our leaf in the tree.
    tree = s.tree()
    tree.set_leaf(2, fresh_key(), s.joiner.request, 1)
    s.refused(s.forge(tree=tree), InconsistentPathError, "does not match our leaf secret")


def test_welcome_with_a_bad_confirmation_tag(s: Scene) -> None:
    info, _ = s.open()
    flipped = bytes([info.confirmation_tag[0] ^ 1]) + info.confirmation_tag[1:]
    s.refused(s.with_info(confirmation_tag=flipped), ConfirmationError, "confirmation tag")


def test_welcome_with_another_joiner_secret(s: Scene) -> None:
    """A different joiner secret gives other epoch secrets: the confirmation tag catches it."""
    _, gs = s.open()
    forged = s.forge(secrets=dataclasses.replace(gs, joiner_secret=os.urandom(32)))
    s.refused(forged, ConfirmationError)
