"""Trust on first use: each display name's pinned identity key, and whether the user verified it.

The first key seen for a name is pinned. A different key later is KEY_CHANGED: the pinned key stays
(the new one is persisted only when the user runs ``/trust`` on it), and any earlier "verified"
mark is dropped at once and for good, because verification belongs to a key, never to a name
(Signal-Android #7072: verified status that survived a key change). Safety numbers are computed
from both identity keys so that two people can compare them out of band.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ..core.errors import UsageError
from .identity_store import write_private_file
from .notices import TrustState

__all__ = ["TrustStore", "TrustStoreError", "safety_number"]

_FORMAT: Final = "groupchat-trust-v1"
_SAFETY_LABEL: Final = b"groupchat safety number v1\x00"
_KEY_LEN: Final = 32  # Ed25519 public key


class TrustStoreError(UsageError):
    """The trust store file cannot be used (malformed, or others may have changed it)."""


def safety_number(my_identity_key: bytes, their_identity_key: bytes) -> str:
    """60 digits in 12 groups of 5, the same on both sides: SHA-512 over the labelled, sorted keys.

    Each group is 5 digest bytes reduced mod 10^5 (as Signal does); a 40-bit value leaves a bias
    below 10^-7 per group. Sorting makes the number independent of who computes it.
    """
    for key in (my_identity_key, their_identity_key):
        if len(key) != _KEY_LEN:
            raise UsageError(f"an identity key is {_KEY_LEN} bytes, got {len(key)}")
    low, high = sorted((my_identity_key, their_identity_key))
    digest = hashlib.sha512(_SAFETY_LABEL + low + high).digest()
    groups = (int.from_bytes(digest[i * 5 : i * 5 + 5], "big") % 100_000 for i in range(12))
    return " ".join(f"{g:05d}" for g in groups)


@dataclass(slots=True)
class _Pin:
    key: bytes
    verified: bool


class TrustStore:
    """Pinned identity keys by display name; ``path=None`` keeps them in memory only (bots, tests).

    Every change is written at once (atomically, mode 0600), so a crash never loses a pin.
    """

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._pins: dict[str, _Pin] = {}
        if path is not None:
            self._load(path)

    @property
    def path(self) -> Path | None:
        return self._path

    def state(self, name: str, identity_key: bytes) -> TrustState:
        """The trust state of ``identity_key`` for ``name``, without pinning anything."""
        pin = self._pins.get(name)
        if pin is None:
            return TrustState.UNVERIFIED
        if pin.key != identity_key:
            return TrustState.KEY_CHANGED
        return TrustState.VERIFIED if pin.verified else TrustState.UNVERIFIED

    def observe(self, name: str, identity_key: bytes) -> TrustState:
        """Record that ``name`` presented ``identity_key``: pin it if the name is new.

        A key that differs from the pin returns KEY_CHANGED and drops the pin's verified mark.
        """
        pin = self._pins.get(name)
        if pin is None:
            self._pins[name] = _Pin(identity_key, verified=False)
            self._save()
            return TrustState.UNVERIFIED
        if pin.key != identity_key and pin.verified:
            pin.verified = False  # someone claimed this name with another key: re-verify both ways
            self._save()
        return self.state(name, identity_key)

    def trust(self, name: str, identity_key: bytes) -> None:
        """The user compared the safety number: pin ``identity_key`` for ``name`` as verified."""
        self._pins[name] = _Pin(identity_key, verified=True)
        self._save()

    def pinned_key(self, name: str) -> bytes | None:
        """The key pinned for ``name``, if any."""
        pin = self._pins.get(name)
        return pin.key if pin else None

    def _load(self, path: Path) -> None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return
        if os.name == "posix" and st.st_mode & 0o022:
            raise TrustStoreError(
                f"trust store {path} has mode {stat.S_IMODE(st.st_mode):04o}: other users could change "
                f"whom you trust. Check it, then run `chmod 600 {path}`."
            )
        try:
            doc = json.loads(path.read_bytes())
        except (OSError, ValueError) as e:
            raise TrustStoreError(f"cannot read trust store {path}: {e}") from None
        peers = doc.get("peers") if isinstance(doc, dict) else None
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT or not isinstance(peers, dict):
            raise TrustStoreError(f"trust store {path} is not a groupchat trust store ({_FORMAT})")
        for name, entry in peers.items():
            try:
                key = bytes.fromhex(entry["key"])
                verified = entry["verified"]
            except (TypeError, KeyError, ValueError):
                raise TrustStoreError(f"trust store {path}: the entry for {name!r} is malformed") from None
            if len(key) != _KEY_LEN or not isinstance(verified, bool):
                raise TrustStoreError(f"trust store {path}: the entry for {name!r} is malformed")
            self._pins[name] = _Pin(key, verified)

    def _save(self) -> None:
        if self._path is None:
            return
        peers = {n: {"key": p.key.hex(), "verified": p.verified} for n, p in sorted(self._pins.items())}
        data = json.dumps({"format": _FORMAT, "peers": peers}, indent=1, ensure_ascii=False)
        write_private_file(self._path, (data + "\n").encode())
