"""Fixtures shared by the core tests (helpers live in ``group_harness.py``, ``rejections.py``,
and ``ring_room.py``; the keeper adversary is ``groupchat/lab/keeper.py``; no test module imports another)."""

from __future__ import annotations

import pytest
from group_harness import Harness


@pytest.fixture
def h() -> Harness:
    """Five members, m0..m4 at leaves 0..4; capacity 8 (leaves 5..7 never used)."""
    harness = Harness()
    harness.add("m0", 4)
    return harness
