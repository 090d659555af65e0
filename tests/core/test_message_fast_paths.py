"""The per-message fast paths read exactly what the general code reads (issue 16: message speed).

``PrivateMessage.decode`` reads the common shape straight from the bytes and hands anything else
to the general Reader-based decoder; ``decrypt_content`` reads an application message's data and
signature directly; ``peek`` reads a short header's epoch directly. Here every shape around the
fast paths' limits, and many seeded mutations of real messages, must give the same message, or the
same error, as the general code alone.
"""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from groupchat.core import message_protection as mp
from groupchat.core.codec import Reader, opaque
from groupchat.core.errors import GroupChatError, InvalidValueError
from groupchat.core.key_schedule import GroupContext
from groupchat.core.message_protection import (
    ContentType,
    FramedContent,
    PrivateMessage,
    WireFormat,
    _decode_common,
    _decode_general,
    open_private_message,
    protect_application,
    read_application_data,
    sign_framed_content,
    verify_framed_content,
)
from groupchat.core.peek import peek as mp_peek
from groupchat.core.secret_tree import SecretTree
from groupchat.core.suite import CipherSuite


@pytest.fixture(params=[1, 3])
def suite(request: pytest.FixtureRequest) -> CipherSuite:
    return CipherSuite(request.param)


_SIGNER = Ed25519PrivateKey.from_private_bytes(bytes([9]) * 32)
_SD = bytes([2]) * 32
_ENC = bytes([1]) * 32


def _wire(suite: CipherSuite, group_id: bytes, ad: bytes, size: int) -> bytes:
    content = FramedContent(group_id, 7, 1, ad, ContentType.APPLICATION, opaque(bytes(size)))
    context = GroupContext(suite.id, group_id, 7, bytes(32), bytes(32)).encode()
    sig = sign_framed_content(suite, _SIGNER, WireFormat.PRIVATE_MESSAGE, content, context)
    tree = SecretTree(suite, _ENC, 4)
    return protect_application(
        suite, content=content, signature=sig, secret_tree=tree, sender_data_secret=_SD
    )


def _outcome(decode: object, data: bytes) -> object:
    try:
        return decode(data)  # type: ignore[operator]
    except GroupChatError as exc:
        return (type(exc), str(exc))


_SHAPES = [
    (gid, ad, size)
    for gid in (b"g", bytes(63), bytes(64), bytes(255))
    for ad in (b"", bytes(63), bytes(64))
    for size in (0, 30, 16_000, 17_000)
]


@pytest.mark.parametrize(("group_id", "ad", "size"), _SHAPES)
def test_every_shape_decodes_as_the_general_decoder_does(
    suite: CipherSuite, group_id: bytes, ad: bytes, size: int
) -> None:
    data = _wire(suite, group_id, ad, size)
    msg = PrivateMessage.decode(data)
    assert msg == _decode_general(data) and msg.encode() == data
    small = len(group_id) < 64 and len(ad) < 64 and len(msg.ciphertext) < 1 << 14
    assert (_decode_common(data) is not None) == small  # the fast path takes the common shape only


def test_mutated_messages_decode_or_fail_as_the_general_decoder_does(suite: CipherSuite) -> None:
    rng = random.Random(16)
    seeds = [_wire(suite, b"room", b"", 100), _wire(suite, bytes(63), bytes(5), 300)]
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        action = rng.randrange(4)
        if action == 0:  # flip a header byte (lengths, epoch, content type, version)
            data[rng.randrange(min(len(data), 90))] ^= 1 << rng.randrange(8)
        elif action == 1:
            del data[rng.randrange(len(data)) :]
        elif action == 2:
            data += bytes(rng.randrange(1, 4))
        else:
            data[rng.randrange(len(data))] = rng.choice((0, 0x3F, 0x40, 0x7F, 0x80, 0xC0, 0xFF))
        raw = bytes(data)
        assert _outcome(PrivateMessage.decode, raw) == _outcome(_decode_general, raw), raw.hex()


def test_padding_after_the_signature_must_be_zero(suite: CipherSuite) -> None:
    """The direct signature read still checks every padding byte (§6.3.1)."""
    content = FramedContent(b"room", 7, 1, b"", ContentType.APPLICATION, opaque(b"hello"))
    context = GroupContext(suite.id, b"room", 7, bytes(32), bytes(32)).encode()
    sig = sign_framed_content(suite, _SIGNER, WireFormat.PRIVATE_MESSAGE, content, context)
    data = protect_application(
        suite, content=content, signature=sig, secret_tree=SecretTree(suite, _ENC, 4), sender_data_secret=_SD
    )
    opened, _ = open_private_message(
        suite, PrivateMessage.decode(data), sender_data_secret=_SD, secret_tree=SecretTree(suite, _ENC, 4),
        body_reader=read_application_data,
    )
    assert opened.parsed == b"hello" and opened.signature == sig and opened.confirmation_tag is None
    signer = _SIGNER.public_key().public_bytes_raw()
    verify_framed_content(suite, signer, WireFormat.PRIVATE_MESSAGE, opened.content, context, sig)
    # Non-zero padding: sealed by hand under the same key (the sender would never pad so).
    tree = SecretTree(suite, _ENC, 4)
    plain = opaque(b"hello") + opaque(sig) + b"\x00\x01"
    gen, key, nonce = tree.next_send(1, mp.ratchet_kind(ContentType.APPLICATION))
    aad = mp._content_aad(b"room", 7, ContentType.APPLICATION, b"")
    ciphertext = suite.seal(key, nonce, aad, plain)
    sd_key, sd_nonce = mp._sender_data_key_nonce(suite, _SD, ciphertext)
    sender_data = (1).to_bytes(4, "big") + gen.to_bytes(4, "big") + bytes(4)  # reuse guard 0
    esd = suite.seal(sd_key, sd_nonce, mp._sender_data_aad(b"room", 7, 1), sender_data)
    bad = PrivateMessage(b"room", 7, ContentType.APPLICATION, b"", esd, ciphertext)
    with pytest.raises(InvalidValueError, match="padding"):
        open_private_message(
            suite, bad, sender_data_secret=_SD, secret_tree=SecretTree(suite, _ENC, 4),
            body_reader=read_application_data,
        )


def test_the_direct_read_of_application_data_matches_the_reader() -> None:
    """``decrypt_content``'s direct read of ``opaque application_data<V>`` gives what
    ``read_application_data`` gives, or leaves the bytes to it (non-minimal, long, cut short)."""
    rng = random.Random(7)
    cases = [opaque(bytes(n)) + b"tail" for n in (0, 1, 63, 64, 200, 16_383, 16_384)]
    cases += [b"", b"\x40", b"\x40\x05" + bytes(5), b"\x7f\xff", b"\x80\x00\x00\x05abcde", b"\xc0", b"\x05ab"]
    cases += [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 6))) for _ in range(500)]
    for plain in cases:
        fast = mp._application_data(plain)
        r = Reader(plain, "PrivateMessageContent")
        try:
            want: object = (read_application_data(r), r.position)
        except GroupChatError:
            want = None
        if fast is not None:
            assert fast == want, plain.hex()
        elif want is not None:
            assert plain[0] >= 0x80, plain.hex()  # of valid data, only 4-byte lengths go to the reader


def _reference_epoch(data: bytes) -> int | None:
    """The claimed epoch as ``peek``'s general path reads it (``None`` if the header is cut)."""
    try:
        r = Reader(data, "message header")
        r.u16("version")
        r.u16("wire_format")
        r.opaque("group_id", 255)
        return r.u64("epoch")
    except GroupChatError:
        return None


def test_peek_reads_the_epoch_as_the_general_reader_does() -> None:
    rng = random.Random(5)
    head = (1).to_bytes(2, "big") + WireFormat.PRIVATE_MESSAGE.to_bytes(2, "big")
    cases = []
    for n in (0, 1, 62, 63, 64, 65, 255):
        full = head + opaque(bytes(n)) + (7).to_bytes(8, "big") + b"rest"
        cases += [full[:cut] for cut in range(4, len(full) + 1)]
    cases += [head + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80))) for _ in range(2000)]
    for data in cases:
        assert mp_peek(data).epoch == _reference_epoch(data), data.hex()
