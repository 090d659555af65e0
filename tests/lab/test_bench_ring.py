"""Smoke test of the ring rekey bench: it runs, and prints positive floor ratios and exact byte counts.

Timings are not asserted (the machine is shared and noisy); only that every ratio is a finite
positive number, that the byte columns are the exact message sizes, and that ``--json`` agrees.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from groupchat.core.schemes.ring import message_size
from groupchat.lab.bench.ring import main


def _rows(text: str, section: str) -> list[list[str]]:
    body = text.split(section, 1)[1].split("\n\n", 1)[0]
    return [line.replace("|", " ").split() for line in body.splitlines() if re.match(r"\s+\d+\s", line)]


def test_ring_bench_smoke(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_json = tmp_path / "ring.json"
    assert main(["--sizes", "3,5", "--repeat", "2", "--json", str(out_json)]) == 0
    text = capsys.readouterr().out

    times = _rows(text, "Ring rekey, one member")
    assert [int(r[0]) for r in times] == [3, 5]
    for r in times:
        for cell in r[1:]:
            value = float(cell.rstrip("x"))
            assert math.isfinite(value) and value > 0, cell

    per_member = sum(message_size(len(b"bench-ring"), 32, r) for r in (1, 2, 3))  # one per round
    sizes = _rows(text, "Ring rekey bytes")
    assert [[int(x) for x in r] for r in sizes] == [
        [n, per_member, n * per_member, n * n * per_member] for n in (3, 5)
    ]

    data = json.loads(out_json.read_text())
    assert [s["n"] for s in data["sizes"]] == [3, 5]
    assert all(len(v["ns"]) == 2 for v in data["samples"].values())


def test_ring_bench_rejects_bad_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--sizes", "1"])
    assert info.value.code == 2
    assert "at least 2" in capsys.readouterr().err
