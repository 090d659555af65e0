"""The chat screen's keys as remapped by the config file's ``[keys]`` table, checked before it starts.

A binding id maps to the keys that run it (Textual's names, comma-separated: ``"ctrl+q,f10"``).
An unknown id, a key Textual has no name for, or one key left bound to two actions is refused in
one line naming it, so a typo never leaves an action without a key in silence.
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Final

from textual.binding import Binding
from textual.keys import KEY_NAME_REPLACEMENTS, Keys

from ..client.config import ConfigFileError

__all__ = ["MODIFIERS", "check_keymap", "key_names"]

MODIFIERS: Final = frozenset({"ctrl", "alt", "shift", "meta", "super", "hyper"})


def _character_name(char: str) -> str:
    """Textual's name for a printable character's key (``/`` is ``slash``)."""
    name = unicodedata.name(char).lower().replace("-", "_").replace(" ", "_")
    return KEY_NAME_REPLACEMENTS.get(name, name)


def key_names() -> frozenset[str]:
    """Every key name (without modifiers) Textual can report."""
    named = {key.value.rsplit("+", 1)[-1] for key in Keys if not key.value.startswith("<")}
    chars = {c for c in string.printable if c.isprintable() and c != " "}
    return frozenset(named | chars | {_character_name(c) for c in chars})


def _check_key(action: str, key: str, known: frozenset[str]) -> str:
    *mods, base = key.strip().lower().split("+")
    bad = [m for m in mods if m not in MODIFIERS]
    if not base or bad or base not in known:
        raise ConfigFileError(
            f"config file [keys]: {action} = {key!r} is not a key Textual knows "
            "(examples: \"ctrl+q\", \"f2\", \"alt+enter\"; modifiers: ctrl, alt, shift, meta)"
        )
    return "+".join([*mods, base])


def check_keymap(keymap: Mapping[str, str], bindings: Iterable[object]) -> dict[str, str]:
    """``keymap`` checked against ``bindings`` (the screen's, with ids) and normalised; raises
    :class:`ConfigFileError` for an unknown id, an unknown key, or a key bound to two actions."""
    defaults = {b.id: b.key for b in bindings if isinstance(b, Binding) and b.id is not None}
    unknown = sorted(set(keymap) - set(defaults))
    if unknown:
        raise ConfigFileError(
            f"config file [keys]: no key binding is called {unknown[0]!r} "
            f"(they are: {', '.join(sorted(defaults))})"
        )
    known = key_names()
    out: dict[str, str] = {}
    for action, keys in keymap.items():
        parts = [_check_key(action, k, known) for k in keys.split(",")]
        out[action] = ",".join(parts)
    holder: dict[str, str] = {}
    for action in sorted(defaults):
        for key in {*out.get(action, defaults[action]).split(",")}:
            if key in holder:
                raise ConfigFileError(
                    f"config file [keys]: {key} would run both {holder[key]} and {action}: give one of them "
                    "another key"
                )
            holder[key] = action
    return out
