"""Helpers for the session tests: a real relay on 127.0.0.1 port 0 and real sessions on it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from groupchat.client.notices import (
    ChatLine,
    ConnectionState,
    MessageConfirmed,
    Notice,
    Placeholder,
    TimelineEvent,
)
from groupchat.client.session import ChatSession, SessionSettings
from groupchat.client.trust import TrustStore
from groupchat.core.identity import Identity
from server.config import Limits, RelayConfig
from server.relay import Relay

FAST: dict[str, Any] = {
    "add_timeout": 0.5,
    "open_room": True,  # most tests are about something else than admission
    "eviction_grace": 60.0,
    "update_interval": 600.0,
    "reconnect_min": 0.05,
    "reconnect_max": 0.3,
}


@asynccontextmanager
async def running_relay(redis_url: str | None = None, port: int = 0, **limits: Any) -> AsyncIterator[Relay]:
    config = RelayConfig(host="127.0.0.1", port=port, redis_url=redis_url, limits=Limits(**limits))
    factory = None
    if redis_url:
        from server.redis_backend import redis_backend_factory

        factory = redis_backend_factory(redis_url)
    relay = Relay(config, factory)
    await relay.start()
    try:
        yield relay
    finally:
        await relay.stop()


@dataclass
class Peer:
    name: str
    session: ChatSession
    notices: list[Notice] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def texts(self) -> list[str]:
        """Chat texts received from others, in order."""
        return [n.text for n in self.notices if isinstance(n, ChatLine) and not n.own]

    def timeline(self) -> list[str]:
        return [n.text for n in self.notices if isinstance(n, TimelineEvent)]

    def placeholders(self) -> list[Placeholder]:
        return [n for n in self.notices if isinstance(n, Placeholder)]

    def confirmed(self) -> list[int]:
        return [n.local_id for n in self.notices if isinstance(n, MessageConfirmed)]

    @property
    def ready(self) -> bool:
        return self.session.status.connection is ConnectionState.READY

    @property
    def epoch(self) -> int | None:
        return self.session.epoch

    async def stop(self, leave: bool = False) -> None:
        await self.session.close(leave=leave)
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)


def start_peer(port: int, room: str, name: str, identity: Identity | None = None, **overrides: Any) -> Peer:
    clock = overrides.pop("clock", None)
    settings = SessionSettings(
        relay_url=f"ws://127.0.0.1:{port}", room=room, name=name, **{**FAST, **overrides}
    )
    notices: list[Notice] = []
    kwargs: dict[str, Any] = {"clock": clock} if clock is not None else {}
    session = ChatSession(
        settings, identity or Identity.generate(), TrustStore(None), notices.append, **kwargs
    )
    peer = Peer(name, session, notices)
    peer.task = asyncio.create_task(session.run(), name=f"peer-{name}")
    return peer


async def wait_until(pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``pred`` every 20 ms; fail after ``timeout`` seconds with ``what`` in the message."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def agree(*peers: Peer) -> bool:
    """Every peer is ready, at the same epoch, with the same epoch code."""
    if not all(p.ready for p in peers):
        return False
    epochs = {p.epoch for p in peers}
    if len(epochs) != 1 or None in epochs:
        return False
    epoch = epochs.pop()
    assert epoch is not None
    codes = {p.session.epoch_codes.get(epoch) for p in peers}
    return len(codes) == 1 and None not in codes


async def stop_all(*peers: Peer) -> None:
    for p in peers:
        try:
            await p.stop()
        except Exception:  # keep stopping the others; the test already failed or passed
            if p.task is not None:
                p.task.cancel()


class HoldingProxy:
    """A websocket proxy between one client and the relay that can hold the client's frames.

    While ``hold`` is set, frames from the client wait here (the relay never sees them); frames
    from the relay always pass. ``release()`` forwards the held ones in order. This recreates,
    on demand, a message or commit that is late because of the network.
    """

    def __init__(self, relay_port: int) -> None:
        self.relay_port = relay_port
        self.hold = False
        self.held: list[bytes] = []
        self._up: Any = None
        self._server: Any = None

    async def __aenter__(self) -> HoldingProxy:
        from websockets.asyncio.server import serve

        self._server = await serve(self._handle, "127.0.0.1", 0, compression=None, max_size=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        return int(self._server.sockets[0].getsockname()[1])

    async def release(self) -> None:
        self.hold = False
        held, self.held = self.held, []
        for frame in held:
            await self._up.send(frame)

    async def _handle(self, client: Any) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        async with connect(f"ws://127.0.0.1:{self.relay_port}", compression=None, max_size=None) as up:
            self._up = up

            async def upstream() -> None:
                async for message in client:
                    if self.hold:
                        self.held.append(message)
                    else:
                        await up.send(message)

            async def downstream() -> None:
                async for message in up:
                    await client.send(message)

            tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            except ConnectionClosed:
                pass
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
