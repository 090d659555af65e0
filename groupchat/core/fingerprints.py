"""The one fingerprint of an identity key (re-exported by :mod:`groupchat.core.identity`).

A module of its own, below :mod:`groupchat.core.errors`, so that an error naming the member who
signed refused material can show that member's fingerprint without an import cycle.
"""

from __future__ import annotations

import hashlib

__all__ = ["fingerprint"]


def fingerprint(identity_key: bytes) -> str:
    """Human-comparable fingerprint: 8 groups of 4 hex digits of SHA-256(identity key)."""
    digest = hashlib.sha256(b"groupchat fingerprint\x00" + identity_key).hexdigest()[:32]
    return " ".join(digest[i : i + 4] for i in range(0, 32, 4))
