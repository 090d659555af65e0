"""Display names: what a peer may put on our terminal next to its messages.

A display name is shown in every member's terminal, so it must not carry anything a terminal
acts on (ESC/CSI/OSC sequences such as colours, cursor moves, title changes or OSC 8 hyperlinks,
BEL, C1 controls) nor anything that makes it look like another text (bidi overrides, zero-width
characters). ``validate_display_name`` refuses every such character with a message saying why;
the wire format adds NFC (one byte string per name) and UTF-8. Checked at every entry point:
the function itself, our own ``JoinRequest.create``/``Group.create`` (a local ``ConfigError``),
``JoinRequest.decode`` (a remote ``InvalidValueError``) and a member-signed commit carrying such a
request (refused by every receiver, state unchanged).
"""

from __future__ import annotations

import unicodedata

import pytest
from group_harness import Harness
from rejections import assert_rejected, finish, rebuild

from groupchat.core.codec import Writer
from groupchat.core.commit import CommitMessage, Operation, OpType
from groupchat.core.errors import ConfigError, FieldTooLargeError, GroupChatError, InvalidValueError
from groupchat.core.group import Group, GroupConfig
from groupchat.core.identity import MAX_DISPLAY_NAME, Identity, JoinRequest, validate_display_name

SUITE = GroupConfig().suite()
GID = b"harness-room"  # the Harness's group id

CONTROL = "display name must not contain control or formatting characters"
EMPTY = "display name must not be empty"

TERMINAL_AND_INVISIBLE = {
    "csi-colour": "al\x1b[31mice",
    "csi-cursor-up": "bob\x1b[2A\x1b[2K",
    "osc-title": "\x1b]0;owned\x07eve",
    "osc8-hyperlink": "\x1b]8;;https://evil.example\x1b\\bank\x1b]8;;\x1b\\",
    "bare-esc": "a\x1bb",
    "bel": "ding\x07",
    "nul": "a\x00b",
    "tab": "a\tb",
    "newline": "alice\nbob: hi",
    "carriage-return": "alice\rmallory",
    "del": "a\x7fb",
    "c1-first-u0080": "a\x80b",
    "c1-nel-u0085": "a\x85b",
    "c1-csi-u009b": "a\x9b31mb",
    "c1-osc-u009d": "a\x9d0;x\x9c",
    "c1-last-u009f": "a\x9fb",
    "bidi-rlo-u202e": "alice\u202egnp.exe",
    "bidi-lro-u202d": "a\u202db",
    "bidi-rle-u202b": "a\u202bb",
    "bidi-pdf-u202c": "a\u202cb",
    "bidi-rli-u2067": "a\u2067b",
    "bidi-pdi-u2069": "a\u2069b",
    "bidi-rlm-u200f": "a\u200fb",
    "arabic-letter-mark": "a\u061cb",
    "zero-width-joiner": "al\u200dice",
    "zero-width-non-joiner": "al\u200cice",
    "zero-width-space": "al\u200bice",
    "word-joiner": "al\u2060ice",
    "byte-order-mark": "\ufeffalice",
    "soft-hyphen": "al\u00adice",
    "tag-characters": "alice\U000e0041",
    "line-separator": "a\u2028b",
    "paragraph-separator": "a\u2029b",
}


def wire_request(name: bytes, identity: Identity | None = None) -> bytes:
    """The bytes of a join request carrying ``name`` exactly, really signed by its identity."""
    identity = identity or Identity.generate()
    init_key = SUITE.derive_key_pair(b"\x01" * 32)[1]
    tbs = JoinRequest.tbs(SUITE.id, GID, identity.public_key, name, init_key, 4_000_000_000)
    return (
        Writer().raw(tbs).opaque(SUITE.sign_with_label(identity.signing_key, b"JoinRequestTBS", tbs)).bytes()
    )


def refused(name: str, match: str) -> None:
    with pytest.raises(GroupChatError) as info:
        validate_display_name(name)
    assert type(info.value) is InvalidValueError and match in str(info.value), repr(info.value)


# --- validate_display_name ----------------------------------------------------------------------


@pytest.mark.parametrize("name", TERMINAL_AND_INVISIBLE.values(), ids=TERMINAL_AND_INVISIBLE.keys())
def test_terminal_controls_and_invisible_characters_are_refused(name: str) -> None:
    refused(name, CONTROL)


@pytest.mark.parametrize("code", range(0x80, 0xA0), ids=lambda c: f"U+{c:04X}")
def test_every_c1_control_is_refused(code: int) -> None:
    refused(f"a{chr(code)}b", CONTROL)


@pytest.mark.parametrize("code", [*range(0x20), 0x7F], ids=lambda c: f"U+{c:04X}")
def test_every_c0_control_is_refused(code: int) -> None:
    refused(f"a{chr(code)}b", CONTROL)


@pytest.mark.parametrize("name", ["", " ", "   ", "\u00a0", "\u3000", "\u2003\u2009"])
def test_empty_or_blank_names_are_refused(name: str) -> None:
    refused(name, EMPTY)


def test_lone_surrogate_is_refused_with_a_typed_error() -> None:
    """A str decoded with surrogateescape (argv bytes that are not UTF-8) has no UTF-8 form: it
    used to escape as a bare UnicodeEncodeError; now it is refused like any other bad name."""
    refused("caf\udce9", "lone surrogate")
    with pytest.raises(ConfigError, match="lone surrogate"):
        JoinRequest.create(SUITE, Identity.generate(), GID, "caf\udce9")


def test_length_is_counted_in_utf8_bytes_after_nfc() -> None:
    assert validate_display_name("a" * MAX_DISPLAY_NAME) == "a" * MAX_DISPLAY_NAME
    refused("a" * (MAX_DISPLAY_NAME + 1), f"longer than {MAX_DISPLAY_NAME} bytes")
    refused("é" * (MAX_DISPLAY_NAME // 2 + 1), "longer than")  # 33 characters, 66 bytes
    refused("😀" * (MAX_DISPLAY_NAME // 4 + 1), "longer than")
    # 96 bytes as typed (NFD), 64 bytes once composed: accepted, and returned composed.
    decomposed = "e\u0301" * (MAX_DISPLAY_NAME // 2)
    assert len(decomposed.encode()) > MAX_DISPLAY_NAME
    assert validate_display_name(decomposed) == "é" * (MAX_DISPLAY_NAME // 2)


@pytest.mark.parametrize("name", ["alice", "Zoë", "עברית", "名前", "😀", "o'neil-2", " spaced "])
def test_ordinary_names_are_accepted_unchanged(name: str) -> None:
    assert validate_display_name(name) == name


# --- our own name: a local mistake ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["al\x1b[31mice", "a\u202eb", "", "x" * 65], ids=["esc", "rlo", "empty", "long"]
)
def test_our_own_bad_name_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="display name"):
        JoinRequest.create(SUITE, Identity.generate(), GID, name)
    with pytest.raises(ConfigError, match="display name"):
        Group.create(Identity.generate(), GID, name)


# --- a peer's name on the wire: a remote error -------------------------------------------------------


def test_control_a_clean_wire_request_decodes() -> None:
    assert JoinRequest.decode(wire_request(b"alice")).display_name == "alice"


@pytest.mark.parametrize("name", ["al\x1b[31mice", "a\x9bb", "alice\u202egnp", "al\u200dice", "a\x07"])
def test_wire_request_with_terminal_controls_is_refused(name: str) -> None:
    with pytest.raises(GroupChatError) as info:
        JoinRequest.decode(wire_request(name.encode()))
    assert type(info.value) is InvalidValueError and CONTROL in str(info.value)


def test_wire_request_not_in_nfc_is_refused() -> None:
    nfd = unicodedata.normalize("NFD", "Zoë").encode()
    assert nfd != "Zoë".encode()
    with pytest.raises(GroupChatError) as info:
        JoinRequest.decode(wire_request(nfd))
    assert type(info.value) is InvalidValueError and "not in NFC normal form" in str(info.value)


@pytest.mark.parametrize("raw", [b"\xff", b"caf\xe9", b"\xed\xa0\x80", b"a\xc0\xafb"], ids=str)
def test_wire_request_not_utf8_is_refused(raw: bytes) -> None:
    with pytest.raises(GroupChatError) as info:
        JoinRequest.decode(wire_request(raw))
    assert type(info.value) is InvalidValueError and "not valid UTF-8" in str(info.value)


@pytest.mark.parametrize(
    ("raw", "error", "match"),
    [
        (b"", InvalidValueError, "fewer than the minimum of 1"),
        (b"  ", InvalidValueError, EMPTY),
        (b"a" * (MAX_DISPLAY_NAME + 1), FieldTooLargeError, f"more than the limit of {MAX_DISPLAY_NAME}"),
    ],
    ids=["empty", "blank", "too-long"],
)
def test_wire_request_empty_blank_or_too_long_is_refused(
    raw: bytes, error: type[GroupChatError], match: str
) -> None:
    with pytest.raises(GroupChatError) as info:
        JoinRequest.decode(wire_request(raw))
    assert type(info.value) is error and match in str(info.value), repr(info.value)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"al\x1b]8;;https://x\x1b\\ice", CONTROL),
        (unicodedata.normalize("NFD", "Zoë").encode(), "not in NFC normal form"),
    ],
    ids=["osc8", "nfd"],
)
def test_member_signed_commit_adding_a_bad_name_is_refused(raw: bytes, match: str) -> None:
    """A real member adds a (really signed) request whose name a terminal would act on: every
    receiver refuses the whole commit, unchanged, and the genuine add still goes through."""
    h = Harness()
    h.add("m0", 3)
    joiner = h.join_request("joiner")
    commit = h.members["m1"].commit(add=[joiner.request])
    ops = list(CommitMessage.decode(commit).commit.operations)
    add = ops[0]
    assert add.type is OpType.ADD and add.request is not None
    good = add.request
    bad_bytes = wire_request(raw)
    # A JoinRequest carrying the bad bytes verbatim (decode would refuse to build it).
    bad = JoinRequest(
        good.cipher_suite,
        good.group_id,
        good.identity_key,
        "x",
        good.init_key,
        good.not_after,
        good.signature,
        bad_bytes,
    )
    crafted = rebuild(h, "m1", commit, ops=[Operation(OpType.ADD, add.leaf, add.path, bad), *ops[1:]])
    assert_rejected(h, ["m0", "m2", "m3"], crafted, InvalidValueError)
    with pytest.raises(InvalidValueError, match=match):
        h.members["m0"].receive(crafted)
    finish(h, "m1", commit, ["m0"], (joiner,))
