"""The relay's injected clock and the token bucket that reads it: time moves only when told."""

from __future__ import annotations

import asyncio

import pytest

from server.clock import ManualClock, MonotonicClock
from server.ratelimit import TokenBucket


async def test_manual_clock_wakes_sleepers_in_deadline_order_only_when_passed() -> None:
    clock = ManualClock(100.0)
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(f"{name}@{clock.now():g}")

    tasks = [asyncio.create_task(sleeper("late", 5)), asyncio.create_task(sleeper("early", 2))]
    await asyncio.sleep(0)  # both are now asleep
    await clock.advance(1.9)
    assert woke == [] and clock.now() == pytest.approx(101.9)
    await clock.advance(0.1)
    assert woke == ["early@102"]
    await clock.advance(10)
    assert woke == ["early@102", "late@112"]
    await asyncio.gather(*tasks)
    with pytest.raises(ValueError, match="never goes back"):
        await clock.advance(-1)


async def test_monotonic_clock_is_the_real_one() -> None:
    clock = MonotonicClock()
    t0 = clock.now()
    await clock.sleep(0)
    assert clock.now() >= t0


def test_token_bucket_refills_with_the_callers_time() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(0.4)  # 0.8 of a token
    assert bucket.take(0.5)  # 1.0 token
    assert not bucket.take(0.5)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]  # capped at the burst
