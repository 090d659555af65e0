"""Fixtures of the attack tests: a hostile room (hostile_relay.py) on one ManualClock.

The sans-I/O room of the client tests (tests/client/session_room.py) is reused, not copied."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "client"))

from groupchat.lab.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
