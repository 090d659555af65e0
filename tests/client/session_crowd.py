"""A relay and N-1 chat sessions in their own process, driven over stdin/stdout by
``test_session_loop_lag.py`` so that none of their work runs in (or competes for the GIL with)
the process whose event loop is measured.

Protocol, one line each way: the process prints ``ready PORT`` once the group is formed and every
member has committed its first update; then ``state`` answers a JSON object
``{"epochs": {name: epoch}, "codes": {name: code}, "texts": {name: [texts]}}``, ``rekey`` makes one
member commit an update (answers ``ok``), and ``quit`` or end of input stops everything.
"""

from __future__ import annotations

import asyncio
import json
import sys

from session_harness import Peer, agree, running_relay, start_peer, stop_all, wait_until


async def main(n: int) -> None:
    async with running_relay() as relay:
        first = start_peer(relay.port, "big", "m00", add_timeout=1.0)
        peers: list[Peer] = [first]
        try:
            await wait_until(lambda: first.ready, 10, "the first member")
            peers.extend(start_peer(relay.port, "big", f"m{i:02d}", add_timeout=1.0) for i in range(1, n))
            await wait_until(
                lambda: (
                    agree(*peers)
                    and len(first.session.roster()) == n
                    and all(p.session._machine.want_update is None for p in peers)
                ),
                120,
                f"{n} members and their first updates",
            )
            print(f"ready {relay.port}", flush=True)
            while line := (await asyncio.to_thread(sys.stdin.readline)).strip():
                if line == "quit":
                    break
                if line == "rekey":
                    peers[5 % n].session.request_rekey()
                    print("ok", flush=True)
                elif line == "state":
                    state = {
                        "epochs": {p.name: p.epoch for p in peers},
                        "codes": {p.name: p.session.status.epoch_code for p in peers},
                        "texts": {p.name: p.texts() for p in peers},
                    }
                    print(json.dumps(state), flush=True)
        finally:
            await stop_all(*peers)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
