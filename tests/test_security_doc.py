"""docs/security.md names a test for every threat: each one must exist (a renamed or deleted test
would leave a row claiming a proof that is gone)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "security.md"


def _references() -> set[tuple[str, str | None]]:
    refs: set[tuple[str, str | None]] = set()
    current: str | None = None
    for code in re.findall(r"`([^`]+)`", DOC.read_text()):
        if code.startswith("tests/"):
            current, _, name = code.partition("::")
            refs.add((current, name or None))
        elif code.startswith("test_adv") and "::" in code:
            file, _, name = code.partition("::")
            current = f"tests/adversarial/{file}"
            refs.add((current, name))
        elif code.startswith("::") and current is not None:
            refs.add((current, code[2:]))
    return refs


def test_every_test_the_security_table_names_exists() -> None:
    refs = _references()
    assert len(refs) > 40  # the table is there, and read
    missing = []
    for file, name in sorted(refs, key=lambda r: (r[0], r[1] or "")):
        path = ROOT / file
        if not path.exists():
            missing.append(file)
        elif name is not None and not re.search(
            rf"^(async )?def {re.escape(name)}\b|^{re.escape(name)} = ", path.read_text(), re.M
        ):
            missing.append(f"{file}::{name}")
    assert missing == []
