"""Snapshot of the main screen: the SVG export of a fixed conversation, compared byte for byte.

The clock and the cursor blink are frozen and the session side is a fixed list of notices
(:mod:`tui_scene`), so the picture depends only on the app and on Textual (pinned: snapshots change
between Textual releases). After an intended change, regenerate and review the SVGs::

    GROUPCHAT_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest -q tests/tui/test_tui_snapshot.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tui_scene import screenshot

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("GROUPCHAT_UPDATE_SNAPSHOTS") == "1"


@pytest.mark.parametrize(
    ("name", "size", "tree"),
    [("main_screen", (100, 28), False), ("main_screen_tree", (120, 30), True)],
)
async def test_main_screen_snapshot(name: str, size: tuple[int, int], tree: bool, tmp_path: Path) -> None:
    svg = await screenshot(size, tree=tree)
    expected = SNAPSHOTS / f"{name}.svg"
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        expected.write_text(svg)
    assert expected.exists(), f"no snapshot {expected}: run with GROUPCHAT_UPDATE_SNAPSHOTS=1"
    if svg != expected.read_text():
        actual = tmp_path / f"{name}.svg"
        actual.write_text(svg)
        pytest.fail(
            f"the screen differs from {expected}; this run's picture is {actual}. If the change is "
            "intended, regenerate with GROUPCHAT_UPDATE_SNAPSHOTS=1 and review the SVG."
        )
