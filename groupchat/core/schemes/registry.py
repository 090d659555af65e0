"""The schemes a group can be created with, by name: the one place that lists the implementations."""

from __future__ import annotations

from typing import Final

from ..errors import UsageError
from .base import SCHEME_IDS, KeyAgreementScheme
from .ring_scheme import RingScheme
from .tree import TreeScheme

__all__ = ["DEFAULT_SCHEME", "SCHEMES", "scheme_class"]

DEFAULT_SCHEME: Final = "tree"
"""The scheme of a group whose GroupContext names none (its GroupContexts carry no extension)."""

SCHEMES: Final[dict[str, type[KeyAgreementScheme]]] = {"tree": TreeScheme, "ring": RingScheme}
assert set(SCHEMES) == set(SCHEME_IDS)


def scheme_class(name: str) -> type[KeyAgreementScheme]:
    """The implementation of the scheme called ``name``."""
    if name not in SCHEMES:
        raise UsageError(f"unknown key-agreement scheme {name!r}; use one of {sorted(SCHEME_IDS)}")
    return SCHEMES[name]
