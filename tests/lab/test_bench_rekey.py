"""Smoke test of ``groupchat bench rekey``: it runs, and prints parseable, positive floor ratios.

Timings are not asserted (the machine is shared and noisy); only that every ratio the report
prints against its floor is a finite positive number, and that ``--json`` holds the same data.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from groupchat.lab.bench.rekey import main
from groupchat.lab.bench.targets import TARGETS

_OPS = ("update", "remove", "add")


def _rows(text: str, section: str) -> list[list[str]]:
    """Whitespace-split data rows (those starting with a size) of one report section."""
    body = text.split(section, 1)[1].split("\n\n", 1)[0]
    return [line.replace("|", " ").split() for line in body.splitlines() if re.match(r"\s+\d+\s", line)]


def _positive(x: str) -> float:
    value = float(x.rstrip("x"))
    assert math.isfinite(value) and value > 0, x
    return value


def test_rekey_smoke(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_json = tmp_path / "rekey.json"
    rc = main(["--sizes", "8,16", "--repeat", "2", "--messages", "3", "--json", str(out_json)])
    assert rc == 0
    text = capsys.readouterr().out

    for name in ("X25519 exchange", "Ed25519 sign", "Ed25519 verify"):
        line = next(line for line in text.splitlines() if line.strip().startswith(name))
        _positive(line.split()[-1])

    rekey = _rows(text, "Rekey commits")
    assert [(int(r[0]), r[1]) for r in rekey] == [(n, op) for n in (8, 16) for op in _OPS]
    for r in rekey:
        # create xfl | worst xfl | typical L xfl | own | bytes xfl
        values = [_positive(x) for x in r[2:]]  # each is checked finite and > 0
        assert len(values) == 10
        levels, size = values[5], values[8]
        assert levels == 1 and size == int(size)

    welcome = _rows(text, "Welcome (one joiner)")
    assert [int(r[0]) for r in welcome] == [8, 16]
    for r in welcome:
        for x in r[1:]:
            _positive(x)

    messages = _rows(text, "Application messages")
    assert [int(r[0]) for r in messages] == [8, 16]
    for r in messages:
        for x in r[1:]:
            _positive(x)

    joiner = _rows(text, "Joiner: first read")
    assert [int(r[0]) for r in joiner] == [8, 16]
    for r in joiner:
        assert len(r) == 8
        for x in r[1:]:  # d; read ms, floor, x floor; send ms, floor, x floor
            _positive(x)
        assert float(r[2]) < float(r[5])  # reading comes before sending: the check is after it

    assert "not measured" in text  # n = 1024 targets are reported as not measured, not failed

    doc = json.loads(out_json.read_text())
    assert [s["n"] for s in doc["sizes"]] == [8, 16]
    for s in doc["sizes"]:
        for op in _OPS:
            o = s["ops"][op]
            assert len(o["raw"]["create_ns"]) == 2
            assert o["create_x_floor"] > 0
            assert o["process"]["worst"]["levels"] == s["d"]
            assert o["process"]["worst"]["x_floor"] > 0
    assert [j["n"] for j in doc["joiner"]] == [8, 16]
    assert all(j["x_floor"] > 0 and j["floor_us"] > 0 for j in doc["joiner"])


def test_rejects_tiny_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--sizes", "4"])


def test_taint_rekey_section(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """n = 128 runs the removals that must re-key k = 1, 4, 16 leaves, in both variants."""
    out_json = tmp_path / "taint.json"
    rc = main(["--sizes", "128", "--repeat", "1", "--messages", "1", "--json", str(out_json)])
    assert rc == 0
    text = capsys.readouterr().out
    rows = _rows(text, "Taint re-keys")
    assert [(int(r[0]), r[1], int(r[2])) for r in rows] == [
        (128, v, k) for k in (1, 4, 16) for v in ("vacated", "sealed")
    ]
    for r in rows:
        values = [_positive(x) for x in r[3:]]  # create xfl | worst xfl | typical L xfl | own | bytes
        assert len(values) == 9
    doc = json.loads(out_json.read_text())
    (size,) = doc["sizes"]
    assert sorted(size["taint"]) == sorted(f"{v}:{k}" for v in ("vacated", "sealed") for k in (1, 4, 16))
    for t in size["taint"].values():
        assert len(t["raw"]["create_ns"]) == 1
        # 1 remove + k re-keys: the commit grows with k (bytes are exact, not timings).
        assert t["commit_bytes"] > 32 * (t["k"] + 1) * size["d"]


def test_scheme_ring_delegates_to_the_ring_bench(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--scheme", "ring", "--sizes", "8", "--repeat", "2"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("groupchat bench rekey --scheme ring")
    assert [int(r[0]) for r in _rows(text, "Ring rekey, one member")] == [8]
    assert "Tree rekey" not in text and "Tree beside ring" not in text


def test_scheme_both_prints_the_ring_beside_the_tree(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--scheme", "both", "--sizes", "8,16", "--repeat", "2", "--messages", "2"]) == 0
    text = capsys.readouterr().out
    rows = _rows(text, "Tree beside ring")
    assert [int(r[0]) for r in rows] == [8, 16]
    for r in rows:
        # tree commit µs, worst receive µs, commit bytes, ring µs per member, ring bytes sent, delivered
        values = [_positive(x) for x in r[1:]]
        assert len(values) == 6
        assert values[5] == int(r[0]) * int(r[0]) * values[4]  # the relay delivers n x 2n messages


def test_scheme_flag_is_in_rekeys_own_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "--scheme {tree,ring,both}" in capsys.readouterr().out


def test_rekey_report_prints_its_targets_from_the_code_met_or_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 16: every target of ``targets.TARGETS`` that the rekey bench measures is printed beside
    its figure (from the code, never citing a file outside the repository), marked met / NOT met,
    or "not measured" when its size was not run; no "Information only" beside a verdict."""
    assert main(["--sizes", "8", "--repeat", "1", "--messages", "2"]) == 0
    text = capsys.readouterr().out
    assert "performance.md" not in text and "Information only" not in text
    body = text.split("Targets (issue 16)", 1)[1]
    assert "the exit status does not depend on them" in body
    rows = [line for line in body.splitlines() if line.startswith("  ") and "≤" in line]
    printed = {re.split(r"\s{2,}", row.strip())[0].split(" (")[0] for row in rows}
    assert printed == {t.what for t in TARGETS if t.bench == "rekey" and not t.key.startswith("rekey.large")}
    for row in rows:
        assert re.search(r"  (met|NOT met|not measured) ", row + " "), row
    messages = [row for row in rows if row.lstrip().startswith("message ")]
    assert len(messages) == 2
    assert all(re.search(r"\d+\.\d\dx +≤ 1\.[35]x +(met|NOT met) ", r) for r in messages), messages
    n1024 = [row for row in rows if row not in messages]
    assert n1024 and all("not measured" in row for row in n1024)  # n = 1024 was not run
    assert all("(n = 8)" in row for row in messages)  # judged at the largest size run, and said so
    assert "need 1024 in --sizes" in body
    joiner = [row for row in rows if "time to first" in row]
    assert len(joiner) == 2 and all("not measured" in row for row in joiner)  # judged at n = 1024
