"""Compatibility alias: the taint rules moved to :mod:`groupchat.core.schemes.tree.taint`.

Kept so that code written against the old path still imports; remove once nothing imports it.
"""

from __future__ import annotations

from .schemes.tree.taint import add_targets, check_commit, required_rekeys

__all__ = ["add_targets", "check_commit", "required_rekeys"]
