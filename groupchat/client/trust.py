"""Trust on first use, by identity key: each key we met, the names it used, and whether we verified it.

A key is a person (or a device); a name is only what that key calls itself. So a new key under a
name we know is a new member, never "bob's key changed": the session shows it with a fingerprint
suffix (:mod:`.names`) and warns that it looks like someone we met, and "verified" stays with the
key that the user compared (Signal-Android #7072: verified status that must never move to another
key). A known key under a new name is noted. Safety numbers are computed from both identity keys so
that two people can compare them out of band.

On disk (``groupchat-trust-v2``)::

    {"format": "groupchat-trust-v2", "keys": {"<key hex>": {"names": ["bob"], "verified": false}}}

A ``groupchat-trust-v1`` file (name -> pinned key) is read and rewritten as v2 at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from ..core.errors import UsageError
from .identity_store import write_private_file
from .names import skeletons
from .notices import TrustState

__all__ = ["Sighting", "TrustStore", "TrustStoreError", "safety_number"]

_FORMAT: Final = "groupchat-trust-v2"
_FORMAT_V1: Final = "groupchat-trust-v1"
_MAX_NAMES: Final = 8  # names remembered per key, the latest last
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
class _Known:
    names: list[str] = field(default_factory=list)
    verified: bool = False


@dataclass(frozen=True, slots=True)
class Sighting:
    """What :meth:`TrustStore.observe` learnt: a key never met before, or a known key's new name."""

    new_key: bool
    earlier_names: tuple[str, ...] = ()  # a known key under a new name: the names it used before


class TrustStore:
    """Identity keys we met, by key; ``path=None`` keeps them in memory only (bots, tests).

    Every change is written at once (atomically, mode 0600), so a crash never loses a key.
    """

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._keys: dict[bytes, _Known] = {}
        self._by_skeleton: dict[str, set[bytes]] = {}
        self._version = 0
        self._marks = 0  # grows at every change of a verified mark
        if path is not None:
            self._load(path)

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def version(self) -> int:
        """Grows at every change of the keys or names held (labels depend on them)."""
        return self._version

    @property
    def marks(self) -> int:
        """Grows at every change of a verified mark (what :meth:`state` says of any key)."""
        return self._marks

    def state(self, identity_key: bytes) -> TrustState:
        """Whether the user verified ``identity_key``."""
        known = self._keys.get(identity_key)
        return TrustState.VERIFIED if known is not None and known.verified else TrustState.UNVERIFIED

    def names(self, identity_key: bytes) -> tuple[str, ...]:
        """The names ``identity_key`` used, oldest first (empty: never met)."""
        known = self._keys.get(identity_key)
        return tuple(known.names) if known is not None else ()

    def keys_like(self, name: str) -> Collection[bytes]:
        """The keys that used a name that looks like ``name`` (see :func:`.names.skeletons`)."""
        return set().union(*(self._by_skeleton.get(s, ()) for s in skeletons(name)))

    def observe(self, name: str, identity_key: bytes) -> Sighting:
        """Record that ``identity_key`` calls itself ``name``."""
        known = self._keys.get(identity_key)
        if known is None:
            self._remember(identity_key, name, verified=False)
            self._save()
            return Sighting(new_key=True)
        if name in known.names:
            return Sighting(new_key=False)
        earlier = tuple(known.names)
        self._remember(identity_key, name, verified=known.verified)
        self._save()
        return Sighting(new_key=False, earlier_names=earlier)

    def trust(self, identity_key: bytes, name: str) -> None:
        """The user compared the safety number: ``identity_key`` (calling itself ``name``) is verified."""
        known = self._keys.get(identity_key)
        # Decided before _remember, which changes ``known`` in place (it once hid every change, so
        # a mark given to a key already met was never written and was lost at the next start).
        changed = known is None or not known.verified or name not in known.names
        self._remember(identity_key, name, verified=True)
        if changed:
            self._save()

    def untrust(self, identity_key: bytes) -> bool:
        """``/untrust``: ``identity_key`` is no longer verified; False if it was not (nothing changes)."""
        known = self._keys.get(identity_key)
        if known is None or not known.verified:
            return False
        known.verified = False
        self._marks += 1
        self._save()
        return True

    def _remember(self, key: bytes, name: str, *, verified: bool) -> None:
        known = self._keys.setdefault(key, _Known())
        if known.verified != verified:
            self._marks += 1
        known.verified = verified
        if name in known.names:
            return
        known.names.append(name)
        dropped, known.names[:] = known.names[:-_MAX_NAMES], known.names[-_MAX_NAMES:]
        self._version += 1
        for skel in skeletons(name):
            self._by_skeleton.setdefault(skel, set()).add(key)
        kept = set().union(*(skeletons(n) for n in known.names))
        for skel in set().union(*(skeletons(n) for n in dropped)) - kept:
            self._by_skeleton[skel].discard(key)

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
        if isinstance(doc, dict) and doc.get("format") == _FORMAT_V1 and isinstance(doc.get("peers"), dict):
            self._load_v1(path, doc["peers"])
            self._save()  # migrated: from now on the file is v2
            return
        keys = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT or not isinstance(keys, dict):
            raise TrustStoreError(f"trust store {path} is not a groupchat trust store ({_FORMAT})")
        for key_hex, entry in keys.items():
            try:
                key = bytes.fromhex(key_hex)
                names, verified = entry["names"], entry["verified"]
            except (TypeError, KeyError, ValueError):
                raise TrustStoreError(f"trust store {path}: the entry for {key_hex!r} is malformed") from None
            if (
                len(key) != _KEY_LEN
                or not isinstance(verified, bool)
                or not isinstance(names, list)
                or not names
                or not all(isinstance(n, str) for n in names)
            ):
                raise TrustStoreError(f"trust store {path}: the entry for {key_hex!r} is malformed")
            for name in names:
                self._remember(key, name, verified=verified)

    def _load_v1(self, path: Path, peers: dict[object, object]) -> None:
        """A v1 file pinned one key per name; each pin becomes its key's entry (same verified mark)."""
        for name, entry in peers.items():
            try:
                if not isinstance(entry, dict) or not isinstance(name, str):
                    raise TypeError(name)
                key = bytes.fromhex(entry["key"])
                verified = entry["verified"]
            except (TypeError, KeyError, ValueError):
                raise TrustStoreError(f"trust store {path}: the entry for {name!r} is malformed") from None
            if len(key) != _KEY_LEN or not isinstance(verified, bool):
                raise TrustStoreError(f"trust store {path}: the entry for {name!r} is malformed")
            known = self._keys.get(key)
            self._remember(key, name, verified=verified or (known is not None and known.verified))

    def _save(self) -> None:
        if self._path is None:
            return
        keys = {k.hex(): {"names": e.names, "verified": e.verified} for k, e in sorted(self._keys.items())}
        data = json.dumps({"format": _FORMAT, "keys": keys}, indent=1, ensure_ascii=False)
        write_private_file(self._path, (data + "\n").encode())
