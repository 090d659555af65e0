"""The long-term Ed25519 identity on disk: one 0600 file, written atomically, refused if others can read it.

The file holds the 32-byte private seed, so anyone who can read it can impersonate us in every
group. We therefore create it owner-only, and refuse to use an existing file whose mode lets the
group or others read or write it (as OpenSSH does for private keys) instead of silently fixing it:
a wider mode means the key may already have leaked, and the user should know.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path
from typing import Final

from ..core.errors import UsageError
from ..core.identity import Identity

__all__ = ["IdentityFileError", "check_private_mode", "load_or_create_identity", "write_private_file"]

_MAGIC: Final = "groupchat-identity-v1"  # first line; the version marker for the format
_CHECK_MODES: Final = os.name == "posix"  # POSIX permission bits; Windows uses ACLs instead


class IdentityFileError(UsageError):
    """The identity file cannot be used as it is (wrong permissions, unreadable, malformed)."""


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600, creating parent directories 0700.

    A temporary file in the same directory is created owner-only (never briefly world-readable),
    synced, then renamed over ``path``, so a crash leaves either the old file or the new one.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


_IDENTITY_ADVICE: Final = "otherwise delete it to make a new identity (your contacts will see a key change)"


def check_private_mode(path: Path, what: str, otherwise: str = _IDENTITY_ADVICE) -> None:
    """Raise :class:`IdentityFileError` if ``path`` is not a regular file readable by its owner only;
    ``otherwise`` says what to do if it may have leaked (the identity's advice by default)."""
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise IdentityFileError(f"{what} {path} is not a regular file")
    if _CHECK_MODES and st.st_mode & 0o077:
        raise IdentityFileError(
            f"{what} {path} has mode {stat.S_IMODE(st.st_mode):04o}: other users may have read it. "
            f"If you are sure it has not leaked, run `chmod 600 {path}`; {otherwise}."
        )


def _encode(identity: Identity) -> bytes:
    return f"{_MAGIC}\n{identity.private_bytes().hex()}\n".encode()


def _decode(path: Path, data: bytes) -> Identity:
    lines = data.decode("ascii", errors="replace").splitlines()
    if len(lines) != 2 or lines[0] != _MAGIC:
        raise IdentityFileError(f"identity file {path} is not a groupchat identity (expected {_MAGIC!r})")
    try:
        seed = bytes.fromhex(lines[1])
    except ValueError:
        raise IdentityFileError(f"identity file {path} is corrupt: the key is not hex") from None
    if len(seed) != 32:
        raise IdentityFileError(f"identity file {path} is corrupt: the key is not 32 bytes")
    return Identity.from_private_bytes(seed)


def load_or_create_identity(path: Path) -> Identity:
    """Load the identity at ``path``, or create a fresh one there (mode 0600) if there is none."""
    try:
        check_private_mode(path, "identity file")
    except FileNotFoundError:
        identity = Identity.generate()
        write_private_file(path, _encode(identity))
        return identity
    except PermissionError as e:
        raise IdentityFileError(f"cannot read identity file {path}: {e.strerror}") from None
    try:
        data = path.read_bytes()
    except OSError as e:
        raise IdentityFileError(f"cannot read identity file {path}: {e.strerror}") from None
    return _decode(path, data)
