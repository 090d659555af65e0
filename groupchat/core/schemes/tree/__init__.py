"""The tree scheme: the TGDH/ART ratchet tree (:mod:`.ratchet_tree`), the taint rules (:mod:`.taint`)
and :class:`.scheme.TreeScheme`, which puts them behind the key-agreement interface."""

from __future__ import annotations

from .ratchet_tree import MAX_CAPACITY, PathSecrets, RatchetTree, TreeChanges, lowest_common_ancestor
from .scheme import TreeScheme

__all__ = [
    "MAX_CAPACITY",
    "PathSecrets",
    "RatchetTree",
    "TreeChanges",
    "TreeScheme",
    "lowest_common_ancestor",
]
