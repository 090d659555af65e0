"""Smaller refusals of the core that no other test reaches, each with its exact error class.

Local mistakes (``LocalError``: ``ConfigError``, ``UsageError``) and a peer's bad bytes
(``RemoteError``) are kept apart: a bad group id passed to ``Group.create`` is the caller's
mistake, like the same id passed to ``JoinRequest.create``. Also: the representations of objects
holding secrets never show them (they end up in logs and tracebacks). One test drives the
internals the way test_holes does (``as_leaf``): an insider encrypting under a blank leaf's keys.
"""

from __future__ import annotations

import dataclasses

import pytest
from group_harness import Harness, fingerprint, snapshot
from rejections import assert_rejected, finish, rebuild

from groupchat.core.codec import Reader, Writer, opaque
from groupchat.core.errors import (
    ConfigError,
    ExpiredJoinRequestError,
    GroupChatError,
    InvalidValueError,
    LocalError,
    ReplayError,
    UnknownMemberError,
    UsageError,
)
from groupchat.core.events import MessageEchoed, MessageReceived
from groupchat.core.group import Group, GroupConfig
from groupchat.core.identity import MAX_GROUP_ID, Identity, JoinRequest
from groupchat.core.key_schedule import GroupContext
from groupchat.core.message_protection import (
    ContentType,
    FramedContent,
    PrivateMessage,
    WireFormat,
    protect_application,
    sign_framed_content,
)
from groupchat.core.suite import GROUPCHAT_PREFIX, CipherSuite
from groupchat.core.welcome import MAX_GROUP_INFO, GroupInfo, GroupSecrets, decode_extensions

SUITE = GroupConfig().suite()


def exactly(error: type[GroupChatError], call: object, match: str = "") -> GroupChatError:
    assert callable(call)
    with pytest.raises(GroupChatError) as info:
        call()
    assert type(info.value) is error and match in str(info.value), repr(info.value)
    return info.value


# --- local mistakes -----------------------------------------------------------------------------


@pytest.mark.parametrize("group_id", [b"", bytes(MAX_GROUP_ID + 1)], ids=["empty", "too-long"])
def test_group_create_with_a_bad_group_id_is_a_config_error(group_id: bytes) -> None:
    err = exactly(ConfigError, lambda: Group.create(Identity.generate(), group_id, "me"), "group id")
    assert isinstance(err, LocalError)
    exactly(ConfigError, lambda: JoinRequest.create(SUITE, Identity.generate(), group_id, "me"), "group id")
    assert Group.create(Identity.generate(), bytes(MAX_GROUP_ID), "me").group_id == bytes(MAX_GROUP_ID)


@pytest.mark.parametrize("now", [-1.0, float(2**64)], ids=["before-1970", "beyond-uint64"])
def test_join_request_with_an_implausible_wall_clock(now: float) -> None:
    exactly(
        ConfigError,
        lambda: JoinRequest.create(SUITE, Identity.generate(), b"g", "me", wall_clock=lambda: now),
        "not a plausible Unix time",
    )


def test_unsupported_cipher_suite_is_a_config_error() -> None:
    exactly(ConfigError, lambda: GroupConfig(suite_id=2), "unsupported cipher suite 2")


def test_identity_seed_round_trip_and_length() -> None:
    ident = Identity.generate()
    again = Identity.from_private_bytes(ident.private_bytes())
    assert again.public_key == ident.public_key and again.fingerprint == ident.fingerprint
    for bad in (b"", bytes(31), bytes(33)):
        exactly(ConfigError, lambda bad=bad: Identity.from_private_bytes(bad), "32-byte seed")


NOW = 1_800_000_000


def request_until(h: Harness, not_after: int) -> JoinRequest:
    """A join request really signed by its (fresh) identity, valid until ``not_after``."""
    ident = Identity.generate()
    init_key = SUITE.derive_key_pair(bytes(32))[1]
    tbs = JoinRequest.tbs(SUITE.id, h.group_id, ident.public_key, b"late", init_key, not_after)
    signature = SUITE.sign_with_label(ident.signing_key, b"JoinRequestTBS", tbs)
    return JoinRequest.decode(Writer().raw(tbs).opaque(signature).bytes())


@pytest.mark.parametrize(
    ("ago", "words"),
    [(30, "30 s ago"), (600, "10 min ago"), (3 * 3600, "3 h ago"), (5 * 86400, "5 days ago")],
)
def test_expired_request_says_how_long_ago_in_words(ago: int, words: str) -> None:
    h = Harness(GroupConfig(wall_clock=lambda: float(NOW)))
    g = h.members["m0"]
    before = fingerprint(g)
    err = exactly(ExpiredJoinRequestError, lambda: g.commit(add=[request_until(h, NOW - ago)]), words)
    assert "'late'" in str(err) and "ask them for a new one" in str(err)
    assert fingerprint(g) == before


def test_a_request_valid_until_the_end_of_uint64_is_refused_and_named_plainly() -> None:
    """No calendar date exists for 2^64 - 1 seconds: the message falls back to the Unix time."""
    h = Harness(GroupConfig(wall_clock=lambda: float(NOW)))
    g = h.members["m0"]
    last = 2**64 - 1
    err = exactly(
        ExpiredJoinRequestError, lambda: g.commit(add=[request_until(h, last)]), f"Unix time {last}"
    )
    assert "days allowed" in str(err)
    assert not g.has_pending_commit


def test_a_second_commit_while_one_is_pending() -> None:
    h = Harness()
    h.add("m0", 2)
    g = h.members["m1"]
    first = g.commit(update=True)
    before = fingerprint(g)
    exactly(UsageError, lambda: g.commit(update=True), "already waiting for the relay's echo")
    exactly(UsageError, lambda: g.commit(remove=[h.leaf("m2")]), "already waiting")
    assert fingerprint(g) == before
    finish(h, "m1", first, ["m0", "m1", "m2"])


def test_asking_for_a_leaf_that_holds_no_member() -> None:
    h = Harness()
    h.add("m0", 2)  # capacity 4, leaf 3 blank
    g = h.members["m0"]
    assert g.member(2).display_name == "m2"
    for leaf in (3, 4, -1):
        exactly(UnknownMemberError, lambda leaf=leaf: g.member(leaf), f"leaf {leaf} holds no member")


def test_unechoed_messages_are_remembered_up_to_a_bound() -> None:
    """A sender remembers its last 1024 unechoed messages (memory stays bounded if the relay never
    echoes); an echo older than that is refused as a replay of our own generation, not misread."""
    h = Harness()
    h.add("m0", 1)
    g = h.members["m0"]
    sent = [g.encrypt(b"%d" % i) for i in range(1024 + 1)]
    assert isinstance(g.receive(sent[1]), MessageEchoed)  # the oldest still remembered
    assert isinstance(g.receive(sent[-1]), MessageEchoed)
    before = fingerprint(g)
    exactly(ReplayError, lambda: g.receive(sent[0]), "generation 0 of leaf 0 was already used")
    assert fingerprint(g) == before
    ev = h.members["m1"].receive(sent[0])  # everyone else reads it normally
    assert isinstance(ev, MessageReceived) and ev.plaintext == b"0"


# --- a peer's bad bytes ---------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x01", b"\x00\x01\x00"], ids=len)
def test_message_too_short_for_a_header(data: bytes) -> None:
    h = Harness()
    h.add("m0", 1)
    assert_rejected(h, ["m0", "m1"], data, InvalidValueError)
    exactly(InvalidValueError, lambda: h.members["m1"].receive(data), "too short to have a header")


@pytest.mark.parametrize("content_type", [ContentType.PROPOSAL, ContentType.COMMIT])
def test_handshake_content_in_a_private_message(content_type: ContentType) -> None:
    """Commits travel as signed public messages that every member (and the relay) can order;
    a private message claiming handshake content is refused before any key is used."""
    h = Harness()
    h.add("m0", 2)
    real = h.members["m1"].encrypt(b"hi")
    crafted = dataclasses.replace(PrivateMessage.decode(real), content_type=content_type).encode()
    assert_rejected(h, ["m0", "m2"], crafted, InvalidValueError)
    exactly(InvalidValueError, lambda: h.members["m2"].receive(crafted), "must be sent as public commits")
    ev = h.members["m2"].receive(real)  # control: the genuine message still opens
    assert isinstance(ev, MessageReceived) and ev.plaintext == b"hi"


def test_commit_with_no_operations() -> None:
    h = Harness()
    h.add("m0", 2)
    commit = h.members["m1"].commit(update=True)
    crafted = rebuild(h, "m1", commit, ops=[])
    assert_rejected(h, ["m0", "m2"], crafted, InvalidValueError)
    exactly(InvalidValueError, lambda: h.members["m0"].receive(crafted), "commit has no operations")
    finish(h, "m1", commit, ["m0", "m2"])


@pytest.mark.parametrize("size", [1, 20, 31])
def test_group_context_with_a_confirmed_hash_of_the_wrong_size(size: int) -> None:
    """Empty at epoch 0, a SHA-256 hash after: any other size in a (signed) GroupInfo is refused."""
    ctx = GroupContext(SUITE.id, b"g", 1, bytes(32), bytes(size))
    exactly(InvalidValueError, lambda: GroupContext.read(Reader(ctx.encode())), "empty or 32 bytes")
    for ok in (b"", bytes(32)):
        assert GroupContext.read(Reader(GroupContext(SUITE.id, b"g", 1, bytes(32), ok).encode())).epoch == 1


def as_leaf(h: Harness, insider: str, leaf: int, text: bytes) -> bytes:
    """An application message an insider builds for ``leaf``'s ratchet: every member of an epoch
    holds the secret-tree root, so it can derive any leaf's keys. Built on a copy of the insider
    (its real ratchets are not touched); signed with the insider's own identity key."""
    g = snapshot(h.members[insider])
    content = FramedContent(g.group_id, g.epoch, leaf, b"", ContentType.APPLICATION, opaque(text))
    signature = sign_framed_content(
        h.suite, g._identity.signing_key, WireFormat.PRIVATE_MESSAGE, content, g._ctx_bytes
    )
    return protect_application(
        h.suite,
        content=content,
        signature=signature,
        secret_tree=g._keys.secret_tree,
        sender_data_secret=g._keys.sender_data_secret,
    )


@pytest.mark.parametrize("leaf", [3, 5, 7], ids=["vacated", "blank", "last-blank"])
def test_message_from_a_leaf_that_holds_no_member(leaf: int) -> None:
    h = Harness()
    h.add("m0", 4)  # m0..m4, capacity 8
    h.remove("m1", "m3")  # leaf 3 vacated (its keys are of no member now)
    ghost = as_leaf(h, "m2", leaf, b"boo")
    assert_rejected(h, ["m0", "m1", "m4"], ghost, UnknownMemberError)
    exactly(UnknownMemberError, lambda: h.members["m0"].receive(ghost), f"leaf {leaf}, which holds no member")
    # Control: the same construction at the insider's own leaf opens (on a copy of a receiver).
    own = as_leaf(h, "m2", h.leaf("m2"), b"me")
    ev = snapshot(h.members["m0"]).receive(own)
    assert isinstance(ev, MessageReceived) and ev.sender.display_name == "m2" and ev.plaintext == b"me"
    h.assert_consistent(["m0", "m2"])


@pytest.mark.parametrize("flag", [2, 0xFF])
def test_optional_presence_flag_above_one(flag: int) -> None:
    exactly(InvalidValueError, lambda: Reader(bytes([flag, 0])).optional("x", lambda r: r.u8("x")), "not 0/1")


def test_join_request_for_another_cipher_suite_does_not_verify() -> None:
    pj = JoinRequest.create(SUITE, Identity.generate(), b"g", "me")
    pj.request.verify(SUITE)
    other = CipherSuite(3, GROUPCHAT_PREFIX)
    exactly(InvalidValueError, lambda: pj.request.verify(other), "group uses 3")


def test_group_info_larger_than_the_limit() -> None:
    exactly(InvalidValueError, lambda: GroupInfo.decode(bytes(MAX_GROUP_INFO + 1)), "more than")


def test_too_many_extensions() -> None:
    body = b"".join(Writer().u16(t).opaque(b"").bytes() for t in range(65))
    assert len(decode_extensions(body[: 64 * 3])) == 64
    exactly(InvalidValueError, lambda: decode_extensions(body), "more than 64 extensions")


@pytest.mark.parametrize("usage", [0, 4, 0xFF])
def test_unknown_resumption_psk_usage(usage: int) -> None:
    psk = b"\x02" + bytes([usage]) + Writer().opaque(b"g").u64(1).opaque(b"").bytes()
    exactly(
        InvalidValueError, lambda: GroupSecrets.decode(GroupSecrets(bytes(32), None, [psk]).encode()), "usage"
    )


# --- representations hold no secrets -------------------------------------------------------------


def test_reprs_do_not_show_secrets() -> None:
    h = Harness()
    h.add("m0", 1)
    g = h.members["m1"]
    ident = Identity.generate()
    pj = JoinRequest.create(SUITE, ident, b"g", "joiner")
    secrets = [ident.private_bytes(), pj.init_private]
    texts = [repr(ident), repr(pj), repr(g), repr(SUITE)]
    for text in texts:
        for secret in secrets:
            assert secret.hex() not in text and repr(secret) not in text and str(secret) not in text
    assert repr(g) == f"Group(epoch={g.epoch}, leaf=1, members=2)"
    assert repr(pj) == f"PendingJoin('joiner', {ident.fingerprint})"
    assert repr(ident) == f"Identity({ident.fingerprint})"
