"""Honest errors: local mistakes and remote bad input are two branches under GroupChatError.

Checks the hierarchy itself, that objects refuse to be built invalid (relay frames, GroupConfig
through ``check_group_config``), that the relay codec raises nothing but GroupChatError, and the
one-of-each helpers that moved into ``suite``/``identity`` (HKDF, X25519 mapping, epoch code).
"""

from __future__ import annotations

import dataclasses
import hmac
import pathlib
import re

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from groupchat.core import errors
from groupchat.core.codec import MAX_VARINT, encode_varint
from groupchat.core.config import check_group_config
from groupchat.core.errors import (
    ConfigError,
    DecodeError,
    GroupChatError,
    InvalidPublicKeyError,
    InvalidValueError,
    LocalError,
    RemoteError,
    UsageError,
)
from groupchat.core.group import GroupConfig
from groupchat.core.identity import Identity, JoinRequest, epoch_code, fingerprint
from groupchat.core.suite import CipherSuite, expand_block, x25519_exchange
from groupchat.relay_protocol import (
    Ack,
    Deliver,
    Error,
    Hello,
    Join,
    Joined,
    Leave,
    Presence,
    PresenceEvent,
    Publish,
    SendTo,
    ServerHello,
    ServerLimits,
    decode,
    deliver_prefix,
    deliver_rest,
    encode,
)

# --- the hierarchy -------------------------------------------------------------------------------

LOCAL = {"UsageError", "ConfigError", "EpochLimitError", "InvalidInviteCodeError", "HoldMessagesError"}


def test_every_error_is_either_local_or_remote() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, GroupChatError)
        if name in {"GroupChatError", "LocalError", "RemoteError"}:
            continue
        local, remote = issubclass(cls, LocalError), issubclass(cls, RemoteError)
        assert local != remote, name
        assert local == (name in LOCAL), name


def test_docstring_tree_names_every_class() -> None:
    doc = errors.__doc__ or ""
    assert set(re.findall(r"[├└]── (\w+)", doc)) | {"GroupChatError"} == set(errors.__all__)


def test_every_error_is_raised_somewhere() -> None:
    """No class of the tree is dead weight: each is raised (or subclassed by one that is) in the code."""
    root = pathlib.Path(errors.__file__).parent.parent
    source = "\n".join(p.read_text() for p in root.rglob("*.py") if p.name != "errors.py")
    for name in errors.__all__:
        cls = getattr(errors, name)
        raised = re.search(rf"\b{name}\(", source) is not None
        subclassed = any(issubclass(getattr(errors, o), cls) and o != name for o in errors.__all__)
        assert raised or subclassed or name in {"GroupChatError", "LocalError", "RemoteError"}, name


def test_relay_errors_are_not_core_exceptions() -> None:
    assert not hasattr(errors, "RelayError")  # the relay's answers are claims the session shows


def test_epoch_error_carries_both_epochs_and_keeps_its_message() -> None:
    text = "message is for epoch 3; we hold keys for epoch 5 only"
    exc = errors.EpochError(text, 3, 5)
    assert (exc.epoch, exc.current, str(exc)) == (3, 5, text)
    assert errors.EpochError("no epochs known").epoch is None


def test_remote_errors_can_name_their_signer_once() -> None:
    exc = errors.InvalidCommitError("bad").signed_by(2, "bob")
    assert (exc.signer, exc.signer_name) == (2, "bob")
    assert exc.signed_by(4, "mallory").signer == 2  # the first (innermost) attribution stands
    assert errors.ReplayError("x").signer is None


def test_config_error_is_a_value_error_and_invalid_value_stays_a_decode_error() -> None:
    assert issubclass(ConfigError, ValueError)
    assert issubclass(InvalidValueError, DecodeError) and issubclass(DecodeError, RemoteError)


# --- local mistakes raise local errors -------------------------------------------------------------


def test_local_construction_mistakes_are_config_errors() -> None:
    suite = CipherSuite()
    with pytest.raises(ConfigError, match="unsupported cipher suite 2"):
        CipherSuite(2)
    with pytest.raises(ConfigError, match="group id"):
        JoinRequest.create(suite, Identity.generate(), b"", "alice")
    with pytest.raises(ConfigError, match="control or formatting"):
        JoinRequest.create(suite, Identity.generate(), b"g", "al\x1b[2Jice")
    with pytest.raises(ConfigError, match="32-byte seed"):
        Identity.from_private_bytes(b"short")
    with pytest.raises(ConfigError):
        encode_varint(MAX_VARINT + 1)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"suite_id": 7}, "cipher suite"),
        ({"label_prefix": b""}, "label_prefix"),
        ({"max_forward": -1}, "max_forward"),
        ({"max_skipped": 1.5}, "max_skipped"),
        ({"padding_block": True}, "padding_block"),
        ({"previous_epoch_ttl": -1.0}, "previous_epoch_ttl"),
        ({"previous_epoch_ttl": float("inf")}, "previous_epoch_ttl"),
        ({"rand": None}, "callables"),
        ({"wall_clock": 3}, "callables"),
        ({"clock_skew": -1}, "clock_skew"),
    ],
)
def test_check_group_config_names_the_bad_field(change: dict[str, object], field: str) -> None:
    check_group_config(GroupConfig())  # the defaults are valid
    with pytest.raises(ConfigError, match=field):  # refused when built: an invalid config cannot exist
        dataclasses.replace(GroupConfig(), **change)  # type: ignore[arg-type]


# --- relay frames validate when built; the codec raises only GroupChatError ---------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: Join(2**32, b"r", b"m"),
        lambda: Join(1, b"", b"m"),
        lambda: Join(1, b"r" * 65, b"m"),
        lambda: Join(1, b"r", b"m", -1),
        lambda: Join(1, "room", b"m"),  # type: ignore[arg-type]
        lambda: Leave(True, b"r"),
        lambda: Publish(1, b"r", "text"),  # type: ignore[arg-type]
        lambda: SendTo(1, b"r", b"", b"x"),
        lambda: Ack(1, 2**64),
        lambda: Deliver(-1, b"r", b"s", None, b""),
        lambda: Joined(1, b"r", 0, (b"",)),
        lambda: Joined(1, b"r", 0, [b"a"]),  # type: ignore[arg-type]
        lambda: Presence(b"r", b"m", 1),  # type: ignore[arg-type]
        lambda: Error("code", "reason", 0, b"r" * 65),
        lambda: Hello(b"agent"),  # type: ignore[arg-type]
        lambda: ServerLimits(*([1] * 2), 2**16, *([1] * 7)),
        lambda: ServerHello(256, ServerLimits(*([1] * 10))),
    ],
)
def test_invalid_frames_cannot_be_built(build: object) -> None:
    with pytest.raises(ConfigError):
        build()  # type: ignore[operator]


def test_encode_refuses_a_non_frame_with_a_usage_error() -> None:
    with pytest.raises(UsageError, match="not a relay frame"):
        encode(b"bytes")  # type: ignore[arg-type]


def test_deliver_helpers_validate_too() -> None:
    with pytest.raises(ConfigError):
        deliver_prefix(2**64)
    with pytest.raises(ConfigError):
        deliver_rest(b"", b"s", None, b"")


_any = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 2**65), st.binary(max_size=70), st.text(max_size=5),
    st.sampled_from(PresenceEvent),
)
_FRAMES = [Join, Leave, Publish, SendTo, Ack, Deliver, Presence, Error]


@given(st.sampled_from(_FRAMES).flatmap(
    lambda cls: st.tuples(st.just(cls), st.lists(_any, min_size=len(dataclasses.fields(cls)),
                                                 max_size=len(dataclasses.fields(cls))))
))
def test_building_and_encoding_anything_raises_only_groupchat_errors(case: tuple[type, list[object]]) -> None:
    """Any field values: the frame is refused with a GroupChatError, or it encodes and round-trips."""
    cls, args = case
    try:
        frame = cls(*args)
    except GroupChatError:
        return
    assert decode(encode(frame)) == frame


# --- one of each --------------------------------------------------------------------------------------


def test_hkdf_extract_is_hmac_with_the_zero_salt_default() -> None:
    ikm = b"input keying material"
    assert CipherSuite.extract(b"", ikm) == hmac.digest(bytes(32), ikm, "sha256")
    assert CipherSuite.extract(b"salt", ikm) == hmac.digest(b"salt", ikm, "sha256")


def test_one_block_expand_matches_the_generic_path() -> None:
    suite = CipherSuite()
    prk, info = bytes(range(32)), b"info"
    assert suite.expand(prk, info, 32) == expand_block(prk, info)
    two = suite.expand(prk, info, 64)  # generic HKDFExpand: T(1) is the same block
    assert two[:32] == expand_block(prk, info)


def test_x25519_low_order_key_is_invalid_public_key() -> None:
    sk = X25519PrivateKey.generate()
    with pytest.raises(InvalidPublicKeyError, match="low-order"):
        x25519_exchange(sk, bytes(32))
    with pytest.raises(InvalidPublicKeyError):
        CipherSuite.x25519(bytes(range(32)), (1).to_bytes(32, "little"))
    peer = X25519PrivateKey.generate()
    assert x25519_exchange(sk, peer.public_key().public_bytes_raw()) == peer.exchange(sk.public_key())


def test_epoch_code_format_and_stability() -> None:
    auth = bytes.fromhex("00000000000000ff") + bytes(24)
    assert epoch_code(auth) == "0000 0000 0255"
    code = epoch_code(bytes(range(32)))
    assert re.fullmatch(r"\d{4} \d{4} \d{4}", code)
    assert epoch_code(bytes(range(32))) == code != epoch_code(bytes(range(1, 33)))
    assert len(fingerprint(bytes(32)).split()) == 8  # the identity fingerprint stays beside it
    with pytest.raises(ConfigError):
        epoch_code(b"short")
