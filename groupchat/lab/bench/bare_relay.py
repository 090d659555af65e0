"""The baseline for ``groupchat bench relay``: a bare websockets broadcast server.

One room, no envelope, no order, no log, no limits: every message goes to every connection with
``websockets.broadcast``, compression off. Run as ``python -m groupchat.lab.bench.bare_relay PORT``;
it prints ``listening port=N`` once it accepts connections.
"""

from __future__ import annotations

import asyncio
import sys

from websockets.asyncio.server import ServerConnection, broadcast, serve

CLIENTS: set[ServerConnection] = set()


async def handler(ws: ServerConnection) -> None:
    CLIENTS.add(ws)
    try:
        async for msg in ws:
            broadcast(CLIENTS, msg)
    finally:
        CLIENTS.discard(ws)


async def run(port: int) -> None:
    async with serve(handler, "127.0.0.1", port, compression=None, max_size=2**20) as server:
        print(f"listening port={server.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Future()  # until the bench terminates us


if __name__ == "__main__":
    asyncio.run(run(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
