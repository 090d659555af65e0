"""Under a flood of junk from its relay, a real ChatSession's event loop (the TUI's) never stalls
for more than 50 ms, its bounds hold, and the session stays usable (issue 13 item 6).

The relay (``flood_relay.py``, in its own process) announces absurd limits, lets our member create
its group, then sends 10,000 fake presence ids, 300 signed join requests of made-up identities,
4,000 undecodable room payloads and 500 undecodable frames. As in ``test_session_loop_lag.py``,
the loop's worst CPU time per iteration is asserted (it does not depend on how busy the test
machine is); the wall-clock lag of a 5 ms ticker is printed.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from pathlib import Path

from flood_relay import LAST, PRESENCE_IDS, ROOM, U32
from session_harness import start_peer, wait_until
from test_session_loop_lag import BUDGET, Crowd, MeasuringLoop

from groupchat.client.session.bounds import MAX_PENDING_JOINERS, MAX_PRESENT

RELAY = Path(__file__).with_name("flood_relay.py")


async def _scenario(loop: MeasuringLoop) -> tuple[float, float]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(RELAY),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=RELAY.parent,
    )
    relay = Crowd(proc)  # the same line protocol over stdin and stdout
    try:
        ready = await relay.line(timeout=120)
        assert ready.startswith("ready "), ready
        me = start_peer(int(ready.split()[1]), ROOM, "alice")
        try:
            await wait_until(lambda: me.ready, 20, "our group")
            machine = me.session._machine
            worst_lag = 0.0
            stop = asyncio.Event()

            async def ticker() -> None:
                nonlocal worst_lag
                while not stop.is_set():
                    start = time.perf_counter()
                    await asyncio.sleep(0.005)
                    worst_lag = max(worst_lag, time.perf_counter() - start - 0.005)

            # A full collection scans the whole heap, this process's imports and test harness
            # included (12 ms here before the flood): freeze what exists now, as an application
            # can at startup, so what is measured is what the flood costs.
            gc.collect()
            gc.freeze()
            await asyncio.sleep(0)  # the collection's own loop iteration is not measured
            loop.measuring = True
            tick = asyncio.create_task(ticker())
            try:
                assert await relay.ask("go") == "sent"
                # Frames are handled in order, and the last presence id comes after all the rest
                # (the set is full: it takes the place of the oldest made-up id).
                last = PRESENCE_IDS + 1 - (MAX_PRESENT - 1)
                await wait_until(lambda: machine._present.ignored >= last, 120, "the flood")
                me.session.send_text("still here")  # and the session still works
                await wait_until(lambda: bool(me.confirmed()), 20, "our message's echo")
            finally:
                stop.set()
                await tick
                loop.measuring = False
                gc.unfreeze()
            assert LAST in machine._present and len(machine._present) == MAX_PRESENT
            assert len(machine._duties.adds) == MAX_PENDING_JOINERS
            assert me.ready
            assert machine._link is not None and machine._link.max_payload < U32  # clamped
            return loop.worst_cpu, worst_lag
        finally:
            await me.stop()
    finally:
        await relay.stop()


def test_a_flood_of_junk_never_stalls_the_event_loop() -> None:
    loop = MeasuringLoop()
    try:
        worst_cpu, worst_lag = loop.run_until_complete(_scenario(loop))
    finally:
        loop.close()
    print(
        f"\nflood: worst loop iteration {worst_cpu * 1000:.1f} ms CPU; ticker lag {worst_lag * 1000:.1f} ms"
    )
    assert worst_cpu < BUDGET, f"one event-loop iteration took {worst_cpu * 1000:.1f} ms of CPU"
