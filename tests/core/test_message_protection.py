"""PrivateMessage protection: round trips, tampering, padding and wrong-epoch rejection."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from groupchat.core.codec import Reader, Writer, encode_varint, opaque
from groupchat.core.errors import (
    DecryptionError,
    FieldTooLargeError,
    GroupChatError,
    InvalidValueError,
    ReplayError,
    SignatureError,
    UnknownVersionError,
    UsageError,
)
from groupchat.core.key_schedule import GroupContext, expand_with_label_short
from groupchat.core.message_protection import (
    ContentType,
    DecryptedContent,
    FramedContent,
    PrivateMessage,
    WireFormat,
    open_private_message,
    protect_application,
    protect_private_message,
    read_application_data,
    sign_framed_content,
    verify_framed_content,
)
from groupchat.core.secret_tree import RatchetKind, SecretTree
from groupchat.core.suite import GROUPCHAT_PREFIX, MLS_PREFIX, CipherSuite

GROUP_ID = b"group-1"
EPOCH = 7
ENC_SECRET = bytes([1]) * 32
SD_SECRET = bytes([2]) * 32
SIGNER = Ed25519PrivateKey.from_private_bytes(bytes([3]) * 32)
SIGNER_PUB = SIGNER.public_key().public_bytes_raw()
CONTEXT = GroupContext(1, GROUP_ID, EPOCH, bytes(32), bytes(32)).encode()
SENDER = 1
LEAVES = 4


def det_rand(n: int) -> bytes:
    return bytes(range(1, n + 1))


def app_content(data: bytes, aad: bytes = b"") -> FramedContent:
    return FramedContent(GROUP_ID, EPOCH, SENDER, aad, ContentType.APPLICATION, opaque(data))


def send(
    suite: CipherSuite,
    sender_tree: SecretTree,
    data: bytes,
    padding_block: int = 32,
    rand: Callable[[int], bytes] = os.urandom,
) -> bytes:
    content = app_content(data)
    sig = sign_framed_content(suite, SIGNER, WireFormat.PRIVATE_MESSAGE, content, CONTEXT)
    return protect_application(
        suite,
        content=content,
        signature=sig,
        secret_tree=sender_tree,
        sender_data_secret=SD_SECRET,
        padding_block=padding_block,
        rand=rand,
    )


def receive(
    suite: CipherSuite, tree: SecretTree, data: bytes, sd_secret: bytes = SD_SECRET
) -> DecryptedContent[bytes]:
    """The full receive pipeline: parse, open, verify the signature, then commit the key."""
    msg = PrivateMessage.decode(data)
    opened, lookup = open_private_message(
        suite, msg, sender_data_secret=sd_secret, secret_tree=tree, body_reader=read_application_data
    )
    verify_framed_content(
        suite, SIGNER_PUB, WireFormat.PRIVATE_MESSAGE, opened.content, CONTEXT, opened.signature
    )
    tree.commit(lookup)
    return opened


@pytest.fixture(params=[(1, MLS_PREFIX), (3, MLS_PREFIX), (1, GROUPCHAT_PREFIX), (3, GROUPCHAT_PREFIX)])
def suite(request: pytest.FixtureRequest) -> CipherSuite:
    suite_id, prefix = request.param
    return CipherSuite(suite_id, prefix)


def test_round_trip(suite: CipherSuite) -> None:
    sender, receiver = SecretTree(suite, ENC_SECRET, LEAVES), SecretTree(suite, ENC_SECRET, LEAVES)
    for text in (b"", b"hello", b"x" * 1000):
        wire = send(suite, sender, text)
        opened = receive(suite, receiver, wire)
        assert opened.parsed == text
        assert opened.content == app_content(text)
        assert opened.confirmation_tag is None
        with pytest.raises(ReplayError):
            receive(suite, receiver, wire)


def test_padding_to_block(suite: CipherSuite) -> None:
    lengths = set()
    for text in (b"a", b"ab", b"abcdef"):
        wire = send(suite, SecretTree(suite, ENC_SECRET, LEAVES), text, padding_block=64)
        msg = PrivateMessage.decode(wire)
        assert (len(msg.ciphertext) - 16) % 64 == 0
        lengths.add(len(wire))
    assert len(lengths) == 1  # padding hides these small length differences


def test_out_of_order_delivery(suite: CipherSuite) -> None:
    sender, receiver = SecretTree(suite, ENC_SECRET, LEAVES), SecretTree(suite, ENC_SECRET, LEAVES)
    wires = [send(suite, sender, b"m%d" % i) for i in range(5)]
    for i in (4, 1, 0, 3, 2):
        assert receive(suite, receiver, wires[i]).parsed == b"m%d" % i


def test_commit_round_trip_carries_confirmation_tag(suite: CipherSuite) -> None:
    body = b"\x00\x01commit-body"
    content = FramedContent(GROUP_ID, EPOCH, SENDER, b"ad", ContentType.COMMIT, body)
    sig = sign_framed_content(suite, SIGNER, WireFormat.PRIVATE_MESSAGE, content, CONTEXT)
    tree = SecretTree(suite, ENC_SECRET, LEAVES)
    wire = protect_private_message(
        suite,
        content=content,
        signature=sig,
        confirmation_tag=bytes([9]) * 32,
        secret_tree=tree,
        sender_data_secret=SD_SECRET,
        rand=det_rand,
    )
    receiver = SecretTree(suite, ENC_SECRET, LEAVES)
    opened, lookup = open_private_message(
        suite,
        PrivateMessage.decode(wire),
        sender_data_secret=SD_SECRET,
        secret_tree=receiver,
        body_reader=lambda r: r.fixed(len(body), "commit"),
    )
    assert lookup.kind == RatchetKind.HANDSHAKE
    assert opened.content == content and opened.confirmation_tag == bytes([9]) * 32
    verify_framed_content(
        suite, SIGNER_PUB, WireFormat.PRIVATE_MESSAGE, opened.content, CONTEXT, opened.signature
    )
    with pytest.raises(UsageError):  # commits need a tag
        protect_private_message(
            suite, content=content, signature=sig, secret_tree=tree, sender_data_secret=SD_SECRET
        )


def test_every_byte_flip_rejected_and_state_untouched(suite: CipherSuite) -> None:
    sender, receiver = SecretTree(suite, ENC_SECRET, LEAVES), SecretTree(suite, ENC_SECRET, LEAVES)
    wire = send(suite, sender, b"attack at dawn", padding_block=16)
    for i in range(len(wire)):
        for mask in (0x01, 0x80):
            bad = bytearray(wire)
            bad[i] ^= mask
            with pytest.raises(GroupChatError):
                receive(suite, receiver, bytes(bad))
    assert receive(suite, receiver, wire).parsed == b"attack at dawn"  # generation 0 still unused
    for cut in range(len(wire)):
        with pytest.raises(GroupChatError):
            receive(suite, receiver, wire[:cut])
    with pytest.raises(GroupChatError):
        receive(suite, receiver, wire + b"\x00")


def test_forged_signature_leaves_state_untouched(suite: CipherSuite) -> None:
    impostor = Ed25519PrivateKey.from_private_bytes(bytes([4]) * 32)
    content = app_content(b"hi")
    sig = sign_framed_content(suite, impostor, WireFormat.PRIVATE_MESSAGE, content, CONTEXT)
    sender = SecretTree(suite, ENC_SECRET, LEAVES)
    wire = protect_application(
        suite, content=content, signature=sig, secret_tree=sender, sender_data_secret=SD_SECRET
    )
    receiver = SecretTree(suite, ENC_SECRET, LEAVES)
    with pytest.raises(SignatureError):
        receive(suite, receiver, wire)
    assert receiver.lookup(SENDER, RatchetKind.APPLICATION, 0).generation == 0


def _seal_raw(suite: CipherSuite, plaintext: bytes) -> bytes:
    """Build a PrivateMessage around an arbitrary plaintext, straight from RFC 9420 §6.3."""
    gen, key, nonce = SecretTree(suite, ENC_SECRET, LEAVES).next_send(SENDER, RatchetKind.APPLICATION)
    guard = b"\x00\x00\x00\x00"  # XOR with zero leaves the nonce as derived
    aad = Writer().opaque(GROUP_ID).u64(EPOCH).u8(ContentType.APPLICATION).opaque(b"").bytes()
    ciphertext = suite.seal(key, nonce, aad, plaintext)
    sample = ciphertext[:32]
    sd_key = expand_with_label_short(suite, SD_SECRET, b"key", sample, suite.key_len)
    sd_nonce = expand_with_label_short(suite, SD_SECRET, b"nonce", sample, suite.nonce_len)
    sd_aad = Writer().opaque(GROUP_ID).u64(EPOCH).u8(ContentType.APPLICATION).bytes()
    esd = suite.seal(sd_key, sd_nonce, sd_aad, SENDER.to_bytes(4, "big") + gen.to_bytes(4, "big") + guard)
    return PrivateMessage(GROUP_ID, EPOCH, ContentType.APPLICATION, b"", esd, ciphertext).encode()


def test_raw_seal_matches_reference(suite: CipherSuite) -> None:
    content = app_content(b"ok")
    sig = sign_framed_content(suite, SIGNER, WireFormat.PRIVATE_MESSAGE, content, CONTEXT)
    wire = _seal_raw(suite, opaque(b"ok") + opaque(sig) + bytes(5))
    assert receive(suite, SecretTree(suite, ENC_SECRET, LEAVES), wire).parsed == b"ok"


def test_non_zero_padding_rejected(suite: CipherSuite) -> None:
    content = app_content(b"ok")
    sig = sign_framed_content(suite, SIGNER, WireFormat.PRIVATE_MESSAGE, content, CONTEXT)
    wire = _seal_raw(suite, opaque(b"ok") + opaque(sig) + b"\x00\x00\x01\x00")
    receiver = SecretTree(suite, ENC_SECRET, LEAVES)
    with pytest.raises(InvalidValueError, match="padding"):
        receive(suite, receiver, wire)
    assert receiver.lookup(SENDER, RatchetKind.APPLICATION, 0).generation == 0


def test_wrong_epoch_secrets_rejected(suite: CipherSuite) -> None:
    wire = send(suite, SecretTree(suite, ENC_SECRET, LEAVES), b"secret")
    receiver = SecretTree(suite, ENC_SECRET, LEAVES)
    with pytest.raises(DecryptionError):
        receive(suite, receiver, wire, sd_secret=bytes(32))  # another epoch's sender-data secret
    other_epoch_tree = SecretTree(suite, bytes(32), LEAVES)
    with pytest.raises(DecryptionError):
        receive(suite, other_epoch_tree, wire)  # right sender data, another epoch's secret tree
    assert other_epoch_tree.lookup(SENDER, RatchetKind.APPLICATION, 0).generation == 0
    assert receive(suite, receiver, wire).parsed == b"secret"


def test_header_is_readable_before_decryption(suite: CipherSuite) -> None:
    wire = send(suite, SecretTree(suite, ENC_SECRET, LEAVES), b"x")
    msg = PrivateMessage.decode(wire)
    assert (msg.group_id, msg.epoch, msg.content_type) == (GROUP_ID, EPOCH, ContentType.APPLICATION)


def test_decode_rejects_wrong_version_and_wire_format(suite: CipherSuite) -> None:
    wire = send(suite, SecretTree(suite, ENC_SECRET, LEAVES), b"x")
    with pytest.raises(UnknownVersionError):
        PrivateMessage.decode(b"\x00\x02" + wire[2:])
    with pytest.raises(InvalidValueError, match="wire format"):
        PrivateMessage.decode(wire[:2] + b"\x00\x01" + wire[4:])
    header = 4 + 1 + len(GROUP_ID) + 8
    with pytest.raises(InvalidValueError, match="content type"):
        PrivateMessage.decode(wire[:header] + b"\x04" + wire[header + 1 :])


def test_reuse_guard_comes_from_rand(suite: CipherSuite) -> None:
    a = send(suite, SecretTree(suite, ENC_SECRET, LEAVES), b"x", rand=det_rand)
    b = send(suite, SecretTree(suite, ENC_SECRET, LEAVES), b"x", rand=det_rand)
    c = send(suite, SecretTree(suite, ENC_SECRET, LEAVES), b"x")
    assert a == b and a != c


def test_protect_application_rejects_other_content(suite: CipherSuite) -> None:
    content = FramedContent(GROUP_ID, EPOCH, SENDER, b"", ContentType.PROPOSAL, b"p")
    with pytest.raises(UsageError):
        protect_application(
            suite,
            content=content,
            signature=bytes(64),
            secret_tree=SecretTree(suite, ENC_SECRET, LEAVES),
            sender_data_secret=SD_SECRET,
        )


def test_application_data_limit() -> None:
    assert read_application_data(Reader(opaque(bytes(10)), "t")) == bytes(10)
    with pytest.raises(FieldTooLargeError):
        read_application_data(Reader(encode_varint((1 << 20) + 1), "t"))
