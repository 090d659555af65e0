"""Locate and load the RFC 9420 interop vectors in ``../shared/vectors/mls`` beside the repo root.

If the directory is missing the vector tests are skipped locally but fail loudly when the ``CI``
environment variable is set, so a broken checkout can never pass CI silently.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

VECTOR_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "mls"


def load(name: str) -> list[dict[str, Any]]:
    """Return the entries of one vector file, or skip/fail as described above."""
    path = VECTOR_DIR / name
    if not path.is_file():
        msg = f"MLS test vector {path} is missing"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    data: list[dict[str, Any]] = json.loads(path.read_text())
    return data


def h(value: str) -> bytes:
    """Decode a lowercase hex string from a vector."""
    return bytes.fromhex(value)
