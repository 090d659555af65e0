"""A hostile relay on 127.0.0.1: real websockets, the relay protocol, and a :class:`Policy`.

One room; every frame it would send passes through :meth:`Policy.admit` first. Beyond what an
honest relay does it can ``forge(sender, payload, to)`` a Deliver as if from any member id (one
with no machine behind it included), ``announce(mid)`` fake presence, ``report_offline(mid)``
(presence says a member left while its frames still flow), send an ``error`` with any code and
reason, ``deliver`` a frame past the policy (one it held back, in another order), ``close`` a
connection with any reason, and make a :class:`VirtualMember` (``virtual``).
Used by the attack tests (real ``ChatSession``s) and by ``groupchat demo --attack``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any, Final

from ...client.room_payload import PayloadKind, RoomPayload
from ...core.group import GroupConfig
from ...relay_protocol import (
    ENVELOPE_VERSION,
    Ack,
    Deliver,
    Error,
    Hello,
    Join,
    Joined,
    Presence,
    PresenceEvent,
    Publish,
    SendTo,
    ServerFrame,
    ServerHello,
    ServerLimits,
    decode_client,
    encode,
)
from .policy import Policy, VirtualMember, payload_kind

__all__ = ["LIMITS", "LoopbackRelay"]

#: The limits the hostile relay announces (generous: the attacks are not about size).
LIMITS: Final = ServerLimits(1 << 22, 1 << 20, 8, 1000, 1000, 1000, 10_000, 1 << 26, 3600, 60)


class LoopbackRelay:
    """A websockets relay on 127.0.0.1 (``port`` 0: any free one) that obeys a :class:`Policy`."""

    def __init__(self, policy: Policy | None = None, port: int = 0) -> None:
        self.policy = policy or Policy()
        self.conns: dict[bytes, Any] = {}
        self.rooms: dict[bytes, bytes] = {}
        self.log: list[Deliver] = []
        self.fake_present: set[bytes] = set()
        self.virtuals: dict[bytes, VirtualMember] = {}
        self._port = port
        self._server: Any = None

    async def start(self) -> None:
        from websockets.asyncio.server import serve

        self._server = await serve(self._handle, "127.0.0.1", self._port, compression=None, max_size=1 << 22)

    async def stop(self) -> None:
        self._server.close()
        await asyncio.wait_for(self._server.wait_closed(), 5)

    async def __aenter__(self) -> LoopbackRelay:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return int(self._server.sockets[0].getsockname()[1])

    def virtual(self, name: str, room: str) -> VirtualMember:
        """An identity that exists only inside the relay (see :class:`VirtualMember`)."""
        v = VirtualMember(name, room, GroupConfig(rand=os.urandom))
        self.virtuals[v.mid] = v
        return v

    async def _send(self, mid: bytes, frame: ServerFrame, filtered: bool = True) -> None:
        ws = self.conns.get(mid)
        if ws is None:
            return
        out = self.policy.admit(mid, frame) if filtered else frame
        if out is not None:
            try:
                await ws.send(encode(out))
            except Exception:  # a closed peer: the relay goes on
                return

    async def forge(self, sender: bytes, payload: bytes, to: bytes | None = None) -> Deliver:
        """Log and deliver (through the policy) a frame as if ``sender`` had sent it."""
        room = next(iter(self.rooms.values()), b"room")
        d = Deliver(len(self.log) + 1, room, sender, to, payload)
        self.log.append(d)
        for mid in list(self.conns):
            if to is None or to == mid:
                await self._send(mid, d)
        return d

    async def announce(self, mid: bytes) -> None:
        """Presence says ``mid`` joined the room (to everyone); nothing is behind it."""
        self.fake_present.add(mid)
        for other in list(self.conns):
            room = self.rooms[other]
            await self._send(other, Presence(room, mid, PresenceEvent.JOINED))

    async def report_offline(self, mid: bytes) -> None:
        """Presence says ``mid`` left (to everyone else); its frames still flow."""
        for other in list(self.conns):
            if other != mid:
                self.policy.hide(mid, other)
                await self._send(other, Presence(self.rooms[other], mid, PresenceEvent.LEFT))

    async def deliver(self, mid: bytes, frame: ServerFrame) -> None:
        """Send ``frame`` to ``mid`` as it is, past the policy (to release frames it held back)."""
        await self._send(mid, frame, filtered=False)

    async def error(self, mid: bytes, code: str, reason: str) -> None:
        await self._send(mid, Error(code, reason), filtered=False)

    async def close(self, mid: bytes, code: int, reason: str) -> None:
        ws = self.conns.get(mid)
        if ws is not None:
            await ws.close(code, reason)

    async def _handle(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        with contextlib.suppress(ConnectionClosed):
            await self._serve(ws)

    async def _serve(self, ws: Any) -> None:
        first = decode_client(await ws.recv())
        if not isinstance(first, Hello):
            await ws.close(1002, "hello_required")
            return
        await ws.send(encode(ServerHello(ENVELOPE_VERSION, LIMITS, "hostile")))
        me: bytes | None = None
        try:
            async for msg in ws:
                frame = decode_client(msg)
                if isinstance(frame, Join):
                    refusal = self.policy.join_error(frame)
                    if refusal is not None:
                        await ws.send(encode(refusal))
                        continue
                    me = frame.member
                    present = tuple(
                        m for m in [*self.conns, *self.fake_present] if self.policy.shows_presence(m, me)
                    )
                    self.conns[me], self.rooms[me] = ws, frame.room
                    await ws.send(encode(Joined(frame.req_id, frame.room, len(self.log), present)))
                    for other in list(self.conns):
                        if other != me:
                            await self._send(other, Presence(frame.room, me, PresenceEvent.JOINED))
                    if frame.resume_after is not None:
                        for d in self.log[frame.resume_after :]:
                            if d.to is None or d.to == me:
                                await self._send(me, d)
                elif isinstance(frame, Publish | SendTo) and me is not None:
                    to = frame.to if isinstance(frame, SendTo) else None
                    d = Deliver(len(self.log) + 1, frame.room, me, to, frame.payload)
                    self.log.append(d)
                    await ws.send(encode(Ack(frame.req_id, d.seq)))
                    if to in self.virtuals and payload_kind(frame.payload) is PayloadKind.WELCOME:
                        self.virtuals[to].welcomes.append(RoomPayload.decode(frame.payload).body)
                    if self.policy.is_swallowed(me, frame.payload):
                        continue
                    for mid in list(self.conns):
                        if to is None or to == mid or (mid == me and to == me):
                            await self._send(mid, d)
        finally:
            if me is not None and self.conns.get(me) is ws:
                del self.conns[me]
                for other in list(self.conns):
                    await self._send(other, Presence(self.rooms[other], me, PresenceEvent.LEFT))
