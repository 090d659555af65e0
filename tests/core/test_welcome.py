"""Welcome and GroupInfo round trips with our own label prefix, and their rejections."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from groupchat.core.errors import (
    DecryptionError,
    DuplicateKeyError,
    GroupChatError,
    InvalidValueError,
    InvalidWelcomeError,
    ProtocolError,
    SignatureError,
    TrailingDataError,
    TruncatedError,
    UnknownVersionError,
)
from groupchat.core.key_schedule import (
    GroupContext,
    confirmation_tag,
    derive_epoch_secrets,
    epoch_secrets_from_joiner,
    public_state_key_nonce,
    verify_confirmation_tag,
    welcome_key_nonce,
)
from groupchat.core.suite import GROUPCHAT_PREFIX, CipherSuite
from groupchat.core.welcome import (
    GroupInfo,
    GroupSecrets,
    Welcome,
    WelcomeMessage,
    decode_extensions,
    decrypt_group_info,
    encode_extensions,
    key_package_ref,
    open_group_secrets,
    open_public_state,
    seal_welcome,
    signed_group_info,
)

SUITE = CipherSuite(3, GROUPCHAT_PREFIX)
SIGNER = Ed25519PrivateKey.from_private_bytes(bytes([7]) * 32)


def _joiner(seed: int) -> tuple[bytes, bytes, bytes]:
    """(key package ref, init private key, init public key) for a fake joiner."""
    sk, pk = SUITE.derive_key_pair(bytes([seed]) * 32)
    return key_package_ref(SUITE, b"key package %d" % seed), sk, pk


def _group_info(ctx: GroupContext, tag: bytes) -> GroupInfo:
    ext = encode_extensions([(0xF000, b"public tree bytes"), (2, b"")])
    return GroupInfo(ctx, ext, tag, 0).sign(SUITE, SIGNER)


def test_welcome_round_trip_two_joiners() -> None:
    ctx = GroupContext(SUITE.id, b"g", 3, bytes(32), bytes([5]) * 32)
    secrets = derive_epoch_secrets(SUITE, bytes(32), bytes([1]) * 32, ctx.encode())
    tag = confirmation_tag(SUITE, secrets.confirmation_key, ctx.confirmed_transcript_hash)
    info = _group_info(ctx, tag)
    joiners = [_joiner(1), _joiner(2)]
    path = bytes([9]) * 32
    message = seal_welcome(
        SUITE,
        info.encode(),
        secrets.welcome_secret,
        [
            (joiners[0][0], joiners[0][2], GroupSecrets(secrets.joiner_secret, None)),
            (joiners[1][0], joiners[1][2], GroupSecrets(secrets.joiner_secret, path)),
        ],
        b"public tree bytes",
    )
    welcome = message.welcome
    wire = message.encode()
    assert WelcomeMessage.decode(wire) == message
    assert Welcome.decode_message(welcome.encode_message()) == welcome
    assert Welcome.decode(welcome.encode()) == welcome
    for (ref, sk, _), expected_path in zip(joiners, (None, path), strict=True):
        gs = open_group_secrets(SUITE, WelcomeMessage.decode(wire).welcome, ref, sk)
        assert gs.path_secret == expected_path
        ws = epoch_secrets_from_joiner(SUITE, gs.joiner_secret, b"").welcome_secret
        gi = decrypt_group_info(SUITE, welcome, ws)
        assert gi == info
        gi.verify(SUITE, SIGNER.public_key().public_bytes_raw())
        joined = epoch_secrets_from_joiner(SUITE, gs.joiner_secret, gi.group_context.encode())
        assert joined == secrets
        verify_confirmation_tag(
            SUITE, joined.confirmation_key, ctx.confirmed_transcript_hash, gi.confirmation_tag
        )
        assert decode_extensions(gi.extensions) == [(0xF000, b"public tree bytes"), (2, b"")]
        assert open_public_state(SUITE, message, ws) == b"public tree bytes"
    # The state's key and nonce are their own: the GroupInfo's ciphertext does not open as state.
    with pytest.raises(DecryptionError, match="public state"):
        swapped = dataclasses.replace(message, encrypted_state=welcome.encrypted_group_info)
        open_public_state(SUITE, swapped, secrets.welcome_secret)
    assert public_state_key_nonce(SUITE, secrets.welcome_secret) != welcome_key_nonce(
        SUITE, secrets.welcome_secret
    )


def test_welcome_rejections() -> None:
    ref, sk, pk = _joiner(1)
    other_ref, other_sk, _ = _joiner(2)
    ctx = GroupContext(SUITE.id, b"g", 0, bytes(32), b"")
    info = _group_info(ctx, bytes(32))
    message = seal_welcome(SUITE, info.encode(), bytes(32), [(ref, pk, GroupSecrets(bytes(32), None))], b"t")
    welcome = message.welcome
    with pytest.raises(ProtocolError, match="not addressed to us"):
        open_group_secrets(SUITE, welcome, other_ref, other_sk)
    with pytest.raises(DecryptionError):
        open_group_secrets(SUITE, welcome, ref, other_sk)
    with pytest.raises(InvalidValueError):
        open_group_secrets(CipherSuite(1, GROUPCHAT_PREFIX), welcome, ref, sk)
    with pytest.raises(DecryptionError):
        decrypt_group_info(SUITE, welcome, bytes([1]) * 32)
    wire = welcome.encode_message()
    with pytest.raises(UnknownVersionError):
        Welcome.decode_message(b"\x00\x02" + wire[2:])
    with pytest.raises(InvalidValueError):
        Welcome.decode_message(wire[:2] + b"\x00\x02" + wire[4:])
    with pytest.raises(TrailingDataError):
        Welcome.decode_message(wire + b"\x00")
    whole = message.encode()
    with pytest.raises(UnknownVersionError):
        WelcomeMessage.decode(b"\x00\x02" + whole[2:])
    with pytest.raises(InvalidValueError):
        WelcomeMessage.decode(whole[:2] + b"\x00\x02" + whole[4:])
    with pytest.raises(TrailingDataError):
        WelcomeMessage.decode(whole + b"\x00")
    with pytest.raises(InvalidWelcomeError, match="no tree beside its GroupInfo"):
        WelcomeMessage.decode(wire)  # RFC 9420's Welcome alone, as an older groupchat sent it
    with pytest.raises(TruncatedError):
        WelcomeMessage.decode(whole[:-1])


def test_group_info_signature_covers_every_field() -> None:
    ctx = GroupContext(SUITE.id, b"g", 1, bytes(32), bytes(32))
    info = _group_info(ctx, bytes(32))
    pub = SIGNER.public_key().public_bytes_raw()
    info.verify(SUITE, pub)
    encoded = info.encode()
    assert GroupInfo.decode(encoded) == info
    sig_start = len(encoded) - 64
    for i in range(sig_start):
        bad = bytearray(encoded)
        bad[i] ^= 0x01
        try:
            forged = GroupInfo.decode(bytes(bad))
        except GroupChatError:  # a decode failure is an equally good rejection
            continue
        with pytest.raises(SignatureError):
            forged.verify(SUITE, pub)


@pytest.mark.parametrize("size", [0, 1, 63, 64, 16383, 16384, 300_000])
def test_signed_group_info_is_the_signed_dataclass_encoded(size: int) -> None:
    """The committer's one-copy path (signed_group_info) gives the bytes of GroupInfo.sign().encode()
    (Ed25519 is deterministic), for extension data around every varint boundary, given whole or
    in pieces; it verifies."""
    ctx = GroupContext(SUITE.id, b"g", 9, bytes(32), bytes([1]) * 32, encode_extensions([(5, b"ctx")]))
    ext = [(0xF000, bytes([3]) * size), (0xF0C8, bytes(64)), (2, b"")]
    data = signed_group_info(SUITE, SIGNER, ctx, ext, bytes([4]) * 32, 70_000)
    info = GroupInfo(ctx, encode_extensions(ext), bytes([4]) * 32, 70_000)
    assert data == info.sign(SUITE, SIGNER).encode()
    tree = ext[0][1]
    pieces = [(0xF000, (tree[:7], b"", tree[7:])), *ext[1:]]  # the data as the pieces it joins
    assert signed_group_info(SUITE, SIGNER, ctx, pieces, bytes([4]) * 32, 70_000) == data
    GroupInfo.decode(data).verify(SUITE, SIGNER.public_key().public_bytes_raw())
    with pytest.raises(DuplicateKeyError):
        signed_group_info(SUITE, SIGNER, ctx, [(1, b"a"), (1, b"b")], bytes(32), 0)


def test_extensions_reject_duplicates() -> None:
    with pytest.raises(DuplicateKeyError):
        encode_extensions([(1, b"a"), (1, b"b")])
    body = b"\x00\x01\x01a\x00\x01\x01b"
    with pytest.raises(DuplicateKeyError):
        decode_extensions(body)
    assert decode_extensions(b"") == []


def test_group_secrets_psk_ids_round_trip() -> None:
    external = b"\x01\x02id\x02no"
    resumption = b"\x02\x01\x01g" + (5).to_bytes(8, "big") + b"\x00"
    gs = GroupSecrets(bytes(32), None, [external, resumption])
    assert GroupSecrets.decode(gs.encode()) == gs
    with pytest.raises(InvalidValueError):
        GroupSecrets.decode(GroupSecrets(bytes(32), None, [b"\x03\x00"]).encode())
