"""Compatibility alias: the ratchet tree moved to :mod:`groupchat.core.schemes.tree.ratchet_tree`.

Kept so that code written against the old path (tests on other branches) still imports; new code
imports from :mod:`groupchat.core.schemes.tree`. Remove once nothing imports it.
"""

from __future__ import annotations

from .schemes.tree.ratchet_tree import (
    MAX_CAPACITY,
    PathSecrets,
    RatchetTree,
    TreeChanges,
    lowest_common_ancestor,
)

__all__ = ["MAX_CAPACITY", "PathSecrets", "RatchetTree", "TreeChanges", "lowest_common_ancestor"]
