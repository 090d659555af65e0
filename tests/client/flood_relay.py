"""A hostile relay in its own process for ``test_hostile_flood.py``: it speaks the relay protocol
on 127.0.0.1 (port 0), announces absurd limits, echoes what its one member publishes (so it can
create its group), and on ``go`` (stdin) floods it with junk. Run in another process so that none
of its work runs on (or competes for the GIL with) the event loop the test measures.

Protocol, one line each way: it prints ``ready PORT``; ``go`` starts the flood (answers ``sent``
when all is sent); ``quit`` or end of input stops it.
"""

from __future__ import annotations

import asyncio
import os
import sys

from websockets.asyncio.server import ServerConnection, serve

from groupchat.client.room_payload import JoinAsk, PayloadKind, RoomPayload
from groupchat.client.session.settings import group_id_for_room
from groupchat.core.group import GroupConfig
from groupchat.core.identity import Identity, JoinRequest
from groupchat.relay_protocol import (
    ENVELOPE_VERSION,
    Ack,
    Deliver,
    Join,
    Joined,
    Presence,
    PresenceEvent,
    Publish,
    SendTo,
    ServerHello,
    ServerLimits,
    decode_client,
    encode,
)

ROOM = "r"
U32 = (1 << 32) - 1
ABSURD = ServerLimits(U32, U32, 65535, U32, U32, U32, U32, (1 << 64) - 1, U32, U32)
PRESENCE_IDS = 10_000
JOIN_REQUESTS = 300
JUNK_PAYLOADS = 2_000
JUNK_FRAMES = 500
LAST = b"last"  # the flood's final presence id


def fake(n: int) -> bytes:
    return b"%032x" % (n + 1)


def junk_payloads() -> list[bytes]:
    """Room payloads: signed join requests of made-up identities, unknown kinds, undecodable core."""
    suite = GroupConfig().suite()
    gid = group_id_for_room(ROOM)
    out = [
        RoomPayload(
            PayloadKind.JOIN_REQUEST,
            JoinAsk(JoinRequest.create(suite, Identity.generate(), gid, f"fake{k}").request.encoded).encode(),
        ).encode()
        for k in range(JOIN_REQUESTS)
    ]
    out += [bytes([0xEE]) + os.urandom(64) for _ in range(JUNK_PAYLOADS)]
    out += [RoomPayload(PayloadKind.CORE, os.urandom(2000)).encode() for _ in range(JUNK_PAYLOADS)]
    return out


async def main() -> None:
    payloads = junk_payloads()
    go = asyncio.Event()
    sent = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(encode(ServerHello(ENVELOPE_VERSION, ABSURD, "flood")))
        join = decode_client(await ws.recv())  # type: ignore[arg-type]
        assert isinstance(join, Join)
        room, me = join.room, join.member
        await ws.send(encode(Joined(join.req_id, room, 0, (me,))))
        seq = 0

        async def flood() -> None:
            nonlocal seq
            await go.wait()
            for n in range(PRESENCE_IDS):
                await ws.send(encode(Presence(room, fake(n), PresenceEvent.JOINED)))
            for data in payloads:
                seq += 1
                await ws.send(encode(Deliver(seq, room, fake(seq % 97), None, data)))
            for _ in range(JUNK_FRAMES):
                await ws.send(os.urandom(200))  # undecodable frames
            await ws.send(encode(Presence(room, LAST, PresenceEvent.JOINED)))
            sent.set()

        flooder = asyncio.create_task(flood())
        try:
            async for raw in ws:
                frame = decode_client(raw)  # type: ignore[arg-type]
                if isinstance(frame, Publish | SendTo):
                    seq += 1
                    to = frame.to if isinstance(frame, SendTo) else None
                    await ws.send(encode(Ack(frame.req_id, seq)))
                    await ws.send(encode(Deliver(seq, room, me, to, frame.payload)))
        finally:
            flooder.cancel()

    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=None) as server:
        print(f"ready {next(iter(server.sockets)).getsockname()[1]}", flush=True)
        while line := (await asyncio.to_thread(sys.stdin.readline)).strip():
            if line == "quit":
                break
            if line == "go":
                go.set()
                await sent.wait()
                print("sent", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
