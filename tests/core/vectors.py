"""Load the RFC 9420 interop vectors vendored in ``tests/core/vectors/`` (see its README.md).

The files live in the repository, so the vector tests never skip: a missing file is a failure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTOR_DIR = Path(__file__).resolve().parent / "vectors"


def load(name: str) -> list[dict[str, Any]]:
    """Return the entries of one vendored vector file."""
    data: list[dict[str, Any]] = json.loads((VECTOR_DIR / name).read_text())
    return data


def h(value: str) -> bytes:
    """Decode a lowercase hex string from a vector."""
    return bytes.fromhex(value)
