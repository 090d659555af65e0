"""sanitise(): nothing a relay or peer writes can reach a terminal as an escape, a bidi trick or a
second line (issue 13 item 7)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groupchat.core.errors import InvalidValueError
from groupchat.core.identity import validate_display_name
from groupchat.core.text import UNSAFE_CATEGORIES, sanitise

# What a hostile relay sends: clear screen, OSC title set (BEL and ST ends), C1 CSI and OSC, DCS,
# bidi overrides/isolates/marks, the Arabic letter mark, zero-width and BOM, line separators.
HOSTILE = [
    "\x1b[2J",
    "\x1b[H\x1b[31;1m",
    "\x1b]0;pwned\x07",
    "\x1b]2;pwned\x1b\\",
    "\x9b2J",
    "\x9d0;pwned\x9c",
    "\x1bP+q\x1b\\",
    "\x1bc",
    "\u202e",
    "\u202a\u202b\u202c\u202d",
    "\u2066\u2067\u2068\u2069",
    "\u200e\u200f\u061c",
    "\u200b\ufeff\u00ad",
    "\r\n\u2028\u2029\x85",
    "\x00\x07\x08\x7f",
]


def _unsafe(text: str) -> list[str]:
    return [c for c in text if unicodedata.category(c) in UNSAFE_CATEGORIES]


@pytest.mark.parametrize("attack", HOSTILE)
def test_each_hostile_sequence_is_removed_and_the_words_stay(attack: str) -> None:
    out = sanitise(f"room full{attack} try later")
    assert _unsafe(out) == []
    assert out.startswith("room full") and out.endswith("try later")
    assert "2J" not in out and "pwned" not in out  # no residue of the sequence either


def test_a_newline_cannot_start_a_forged_line() -> None:
    assert sanitise("hi\n◆ bob was removed by alice") == "hi ◆ bob was removed by alice"
    assert sanitise("a\r\n\tb") == "a b"
    assert sanitise("trace\n  line\x1b[2J", multiline=True) == "trace\n  line"


_any_text = st.text(
    st.one_of(
        st.characters(codec="utf-8"),
        st.characters(categories=["Cc", "Cf", "Zl", "Zp"]),
        st.sampled_from(["\x1b", "[", "]", "\x07", "\\", "\x9b", "\x9c", "\x9d", "2", "J", ";"]),
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(_any_text, st.booleans())
def test_output_has_no_unsafe_character_and_is_idempotent(text: str, multiline: bool) -> None:
    out = sanitise(text, multiline=multiline)
    assert [c for c in _unsafe(out) if not (multiline and c == "\n")] == []
    assert "\x1b" not in out
    assert sanitise(out, multiline=multiline) == out


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(exclude_categories=["Cc", "Cf", "Cs", "Zl", "Zp"])))
def test_printable_text_is_unchanged(text: str) -> None:
    assert sanitise(text) == text


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=20))
def test_a_valid_display_name_is_already_sanitised(name: str) -> None:
    """The core refuses exactly what sanitise() strips, so names show as they were signed."""
    try:
        valid = validate_display_name(name)
    except InvalidValueError:
        return
    assert sanitise(valid) == valid


def test_the_core_refuses_a_name_that_sanitise_would_change() -> None:
    for bad in ("bob\u202e", "bo\u200bb", "\x1b[2Jbob", "bob\u2028"):
        assert sanitise(bad) != bad
        with pytest.raises(InvalidValueError):
            validate_display_name(bad)
