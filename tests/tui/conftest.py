"""Fixtures for the TUI tests: a real relay on 127.0.0.1 port 0 and ChatApps with real sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from server.config import Limits, RelayConfig
from server.relay import Relay


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    """An in-process relay on a free loopback port, stopped after the test."""
    relay = Relay(RelayConfig(host="127.0.0.1", port=0, redis_url=None, limits=Limits()))
    await relay.start()
    try:
        yield relay
    finally:
        await relay.stop()
