"""The store's key on disk (``store.key``, beside the identity, mode 0600), optionally under a passphrase.

Two formats, told apart by the first line:

* ``groupchat-store-key-v1``: the 32-byte key in hex. Anyone who reads the file reads the store.
* ``groupchat-store-key-v2``: the key sealed with AES-256-GCM under a key derived from a passphrase
  with scrypt (RFC 7914; the parameters and the salt are on the second line and bound as associated
  data, so they cannot be lowered unnoticed). A copy of the disk without the passphrase opens
  nothing; a wrong passphrase is refused, never taken for a corrupt store.

The passphrase protects the store (history and group state) only: the identity file next to it is
not covered (docs/protocol.md §12.3). Setting, changing or removing it rewrites the file atomically
around the same key, so the store itself is untouched.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..core.errors import UsageError
from . import wording_store as words
from .identity_store import IdentityFileError, check_private_mode, write_private_file

__all__ = [
    "PASSPHRASE_ENV",
    "PLAIN_MAGIC",
    "SEALED_MAGIC",
    "Passphrase",
    "StoreError",
    "StoreKeyFile",
    "ask_passphrase",
    "load_or_create_store_key",
    "read_key_file",
    "write_key_file",
]

PLAIN_MAGIC: Final = "groupchat-store-key-v1"
SEALED_MAGIC: Final = "groupchat-store-key-v2"
_SCRYPT_N: Final = 2**15  # about 32 MiB and 0.1 s per try: slow for a guesser, quick for a start
_SCRYPT_R: Final = 8
_SCRYPT_P: Final = 1
_MAX_SCRYPT_MEMORY: Final = 2**27  # 128·r·N bytes: a file asking for more than 128 MiB is refused
_MAX_SCRYPT_R: Final = 32  # a small N with a huge r stays in memory but costs seconds per try
_NONCE: Final = 12
PASSPHRASE_ENV: Final = "GROUPCHAT_STORE_PASSPHRASE"
"""Where a script (no terminal to ask on) gives the passphrase."""

Passphrase = Callable[[], str]
"""Asked for the passphrase only when the key file is sealed (a prompt, or an environment variable)."""


class StoreError(UsageError):
    """The local store cannot be used as it is (wrong key, corrupt row, bad permissions, damaged file)."""


@dataclass(frozen=True, slots=True)
class StoreKeyFile:
    """A parsed key file: the plain key, or the sealed one with its scrypt parameters."""

    key: bytes | None  # None: sealed (open with :meth:`unseal`)
    params: str = ""  # the sealed form's second line
    sealed: bytes = b""

    def unseal(self, path: Path, passphrase: str) -> bytes:
        """The key, or :class:`StoreError` if the passphrase is wrong (or the file was changed)."""
        if self.key is not None:
            return self.key
        kek = _derive(path, self.params, passphrase)
        try:
            key = AESGCM(kek).decrypt(self.sealed[:_NONCE], self.sealed[_NONCE:], _aad(self.params))
        except (InvalidTag, ValueError):
            raise StoreError(
                f"wrong passphrase for the store key {path} (or the file was altered)"
            ) from None
        if len(key) != 32:
            raise StoreError(f"store key file {path} is corrupt: the key is not 32 bytes")
        return key


def _aad(params: str) -> bytes:
    return f"{SEALED_MAGIC}\n{params}".encode("ascii")


def _parse_params(path: Path, params: str) -> tuple[int, int, int, bytes]:
    fields = dict(part.split("=", 1) for part in params.split()[1:] if "=" in part)
    try:
        if not params.startswith("scrypt ") or set(fields) != {"n", "r", "p", "salt"}:
            raise ValueError
        n, r, p = int(fields["n"]), int(fields["r"]), int(fields["p"])
        salt = bytes.fromhex(fields["salt"])
    except ValueError:
        raise StoreError(f"store key file {path} is corrupt: its scrypt parameters are malformed") from None
    power_of_two = n >= 2 and n & (n - 1) == 0
    memory_ok = 1 <= r <= _MAX_SCRYPT_R and 128 * r * n <= _MAX_SCRYPT_MEMORY
    if not (power_of_two and memory_ok and 1 <= p <= 4 and len(salt) >= 16):
        raise StoreError(f"store key file {path} asks for scrypt parameters out of range ({params})")
    return n, r, p, salt


def _derive(path: Path, params: str, passphrase: str) -> bytes:
    n, r, p, salt = _parse_params(path, params)
    try:
        return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))
    except MemoryError:
        raise StoreError(f"store key file {path} asks for more memory than there is ({params})") from None


def read_key_file(path: Path, data: bytes) -> StoreKeyFile:
    """Parse a key file's bytes (either format); :class:`StoreError` if it is neither."""
    lines = data.decode("ascii", errors="replace").splitlines()
    what = f"store key file {path}"
    if lines and lines[0] == PLAIN_MAGIC and len(lines) == 2:
        try:
            key = bytes.fromhex(lines[1])
        except ValueError:
            raise StoreError(f"{what} is corrupt: the key is not hex") from None
        if len(key) != 32:
            raise StoreError(f"{what} is corrupt: the key is not 32 bytes")
        return StoreKeyFile(key)
    if lines and lines[0] == SEALED_MAGIC and len(lines) == 3:
        _parse_params(path, lines[1])
        try:
            sealed = bytes.fromhex(lines[2])
        except ValueError:
            raise StoreError(f"{what} is corrupt: the sealed key is not hex") from None
        if len(sealed) != _NONCE + 32 + 16:
            raise StoreError(f"{what} is corrupt: the sealed key has the wrong length")
        return StoreKeyFile(None, lines[1], sealed)
    raise StoreError(f"{what} is not a groupchat store key (expected {PLAIN_MAGIC!r} or {SEALED_MAGIC!r})")


def _encode(key: bytes, passphrase: str | None) -> bytes:
    if passphrase is None:
        return f"{PLAIN_MAGIC}\n{key.hex()}\n".encode()
    params = f"scrypt n={_SCRYPT_N} r={_SCRYPT_R} p={_SCRYPT_P} salt={secrets.token_bytes(16).hex()}"
    kek = _derive(Path(), params, passphrase)
    nonce = secrets.token_bytes(_NONCE)
    sealed = nonce + AESGCM(kek).encrypt(nonce, key, _aad(params))
    return f"{SEALED_MAGIC}\n{params}\n{sealed.hex()}\n".encode()


def write_key_file(path: Path, key: bytes, passphrase: str | None) -> None:
    """Replace ``path`` atomically by ``key``, sealed under ``passphrase`` (``None``: plain)."""
    if passphrase == "":
        raise StoreError("the passphrase is empty: give one, or remove the passphrase instead")
    write_private_file(path, _encode(key, passphrase))


def _create(path: Path, passphrase: str | None) -> None:
    """Create ``path`` with a fresh key, mode 0600, atomically: a complete file or none, and never
    over a key another process created meanwhile (``link`` fails if the name exists)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_encode(secrets.token_bytes(32), passphrase))
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _read(path: Path) -> StoreKeyFile:
    try:
        check_private_mode(path, "store key file", words.STORE_KEY_LEAKED)
        return read_key_file(path, path.read_bytes())
    except IdentityFileError as exc:
        raise StoreError(str(exc)) from None
    except IsADirectoryError:
        raise StoreError(f"store key file {path} is not a regular file") from None
    except PermissionError as exc:
        raise StoreError(f"cannot read store key file {path}: {exc.strerror}") from None


def load_or_create_store_key(
    path: Path, *, create: bool = True, passphrase: Passphrase | None = None
) -> bytes:
    """The 32-byte store key at ``path``, created (mode 0600) if there is none and ``create``;
    refused if its mode is wider. ``passphrase`` is asked only if the file is sealed (and then
    it is required). A new key is plain: ``groupchat store passphrase`` seals it."""
    try:
        found = _read(path)
    except FileNotFoundError:
        if not create:
            raise StoreError(
                f"store key file {path} is missing: the store cannot be read without it"
            ) from None
        _create(path, None)
        found = _read(path)
    except OSError as exc:
        raise StoreError(f"cannot read store key file {path}: {exc.strerror}") from None
    if found.key is not None:
        return found.key
    if passphrase is None:
        raise StoreError(
            f"the store key {path} is protected by a passphrase: run in a terminal to be asked for "
            f"it, or set {PASSPHRASE_ENV}"
        )
    return found.unseal(path, passphrase())


def ask_passphrase(env: Mapping[str, str] = os.environ, prompt: str = "store passphrase: ") -> Passphrase:
    """The usual source of the passphrase: ``$GROUPCHAT_STORE_PASSPHRASE`` if set, else a prompt on
    the terminal (never echoed), else a :class:`StoreError` saying how to give it."""

    def ask() -> str:
        if PASSPHRASE_ENV in env:
            return env[PASSPHRASE_ENV]
        if not sys.stdin.isatty():
            raise StoreError(
                "the store key is protected by a passphrase and there is no terminal to ask on: "
                f"set {PASSPHRASE_ENV}"
            )
        try:
            return getpass.getpass(prompt)
        except (EOFError, KeyboardInterrupt):
            raise StoreError("no passphrase given: the store stays closed") from None

    return ask
