"""docs/lab.md and ``make lab-docs`` (groupchat/lab/sim/figures.py) agree: every table the
generator writes has its markers on the page, the pictures the page and the README show are in
the repository, and the generator's tables are what a small run measures (real groups, counted)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from groupchat.lab.sim.compare import compare
from groupchat.lab.sim.figures import join_point, render_tables, replace_section, taint_point

ROOT = Path(__file__).resolve().parents[2]


def test_the_page_has_every_section_and_the_pictures_exist() -> None:
    page = (ROOT / "docs" / "lab.md").read_text()
    for name in ("compare", "join", "taint"):
        assert f"<!-- lab-docs: {name} -->" in page, name
        body = page.split(f"<!-- lab-docs: {name} -->", 1)[1].split("<!-- /lab-docs -->", 1)[0]
        assert body.strip().startswith("|"), f"the {name} table is empty: run make lab-docs"
    shown = re.findall(r"!\[[^]]*\]\(([^)]+\.svg)\)", page)
    assert shown, "docs/lab.md shows no picture"
    for image in shown:
        assert (ROOT / "docs" / image).is_file(), image
    readme = (ROOT / "README.md").read_text()
    assert "(docs/lab/compare.svg)" in readme and (ROOT / "docs/lab/compare.svg").is_file()
    assert "lab-docs:" in (ROOT / "Makefile").read_text()


def test_a_small_run_fills_the_tables_with_what_it_measured() -> None:
    points = compare([4, 8], schemes=("tree", "pairwise"))
    joins = [join_point(4), join_point(8)]
    taints = [taint_point(0, n=8), taint_point(2, n=8)]
    tables = render_tables(points, joins, taints)
    # The join's Welcome grows with the group; the joiner checks every leaf's request (n + 2).
    assert joins[1].welcome_bytes > joins[0].welcome_bytes and joins[1].joiner.verify == 8 + 2
    # Each tainted leaf is one more HPKE seal for the committer, and a longer commit.
    assert (taints[0].committer.hpke_seal, taints[1].committer.hpke_seal) == (0, 2)
    assert taints[1].commit_bytes > taints[0].commit_bytes
    assert "| 8 |" in tables["join"] and "| 2 | " in tables["taint"]
    assert "| pairwise | 8 |" in tables["compare"]
    doc = "intro\n<!-- lab-docs: join -->\nold\n<!-- /lab-docs -->\nrest\n"
    assert replace_section(doc, "join", tables["join"]) == (
        f"intro\n<!-- lab-docs: join -->\n{tables['join']}\n<!-- /lab-docs -->\nrest\n"
    )
    with pytest.raises(ValueError, match="no <!-- lab-docs: taint --> section"):
        replace_section(doc, "taint", tables["taint"])
