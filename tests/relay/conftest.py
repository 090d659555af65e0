"""Fixtures for the relay tests: a real relay on 127.0.0.1 port 0, real websocket clients, and a
real redis-server started (and stopped, by PID) by the project's own launcher."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from groupchat.relay_protocol import (
    Deliver,
    Error,
    Hello,
    Join,
    Joined,
    Leave,
    Publish,
    SendTo,
    ServerFrame,
    ServerHello,
    decode_server,
    encode,
)
from server.clock import Clock
from server.config import Limits, RelayConfig
from server.redis_server import RedisProcess, redis_available, start_redis
from server.relay import Relay

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Client:
    """A test client speaking the relay protocol over a real websocket."""

    ws: ClientConnection
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    server_hello: ServerHello | None = None

    async def send(self, frame: Any) -> None:
        await self.ws.send(encode(frame))

    async def recv(self, timeout: float = 3.0) -> ServerFrame:
        async with asyncio.timeout(timeout):
            msg = await self.ws.recv()
        assert isinstance(msg, bytes)
        return decode_server(msg, 4 << 20)

    async def recv_type(self, cls: type[Any], timeout: float = 3.0) -> Any:
        """Receive frames until one of type ``cls`` arrives (presence etc. are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.recv(max(0.01, deadline - time.monotonic()))
            if isinstance(frame, cls):
                return frame

    async def hello(self) -> ServerHello:
        await self.send(Hello("test"))
        frame = await self.recv()
        assert isinstance(frame, ServerHello), frame
        self.server_hello = frame
        return frame

    async def join(
        self, room: bytes, member: bytes, resume_after: int | None = None
    ) -> Joined:
        req = next(self.ids)
        await self.send(Join(req, room, member, resume_after))
        frame = await self.recv_type(Joined | Error)
        assert isinstance(frame, Joined), frame
        assert frame.req_id == req
        return frame

    async def join_error(
        self, room: bytes, member: bytes, resume_after: int | None = None
    ) -> Error:
        req = next(self.ids)
        await self.send(Join(req, room, member, resume_after))
        frame = await self.recv_type(Joined | Error)
        assert isinstance(frame, Error), frame
        assert frame.req_id == req
        return frame

    async def publish(self, room: bytes, payload: bytes) -> int:
        req = next(self.ids)
        await self.send(Publish(req, room, payload))
        return req

    async def send_to(self, room: bytes, to: bytes, payload: bytes) -> int:
        req = next(self.ids)
        await self.send(SendTo(req, room, to, payload))
        return req

    async def leave(self, room: bytes) -> int:
        req = next(self.ids)
        await self.send(Leave(req, room))
        return req

    async def delivers(self, n: int, timeout: float = 5.0) -> list[Deliver]:
        """The next ``n`` Deliver frames (other frame types are skipped)."""
        out: list[Deliver] = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            out.append(await self.recv_type(Deliver, max(0.01, deadline - time.monotonic())))
        return out

    async def close(self) -> None:
        await self.ws.close()


ClientFactory = Callable[..., Awaitable[Client]]


@pytest.fixture
async def make_relay() -> AsyncIterator[Callable[..., Awaitable[Relay]]]:
    """Start in-process relays on 127.0.0.1:0 with the given limits; stop them afterwards.

    Pass ``clock=ManualClock()`` to drive idle timeouts, rate-limit refill and log ages by hand.
    """
    relays: list[Relay] = []

    async def make(redis_url: str | None = None, clock: Clock | None = None, **limits: Any) -> Relay:
        config = RelayConfig(host="127.0.0.1", port=0, redis_url=redis_url, limits=Limits(**limits))
        factory = None
        if redis_url:
            from server.redis_backend import redis_backend_factory

            factory = redis_backend_factory(redis_url)
        relay = Relay(config, factory, clock=clock)
        await relay.start()
        relays.append(relay)
        return relay

    yield make
    for relay in relays:
        await relay.stop()


@pytest.fixture
async def relay(make_relay: Callable[..., Awaitable[Relay]]) -> Relay:
    return await make_relay()


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    """Open real websocket clients to a port; close them afterwards."""
    clients: list[Client] = []

    async def make(port: int, hello: bool = True, **kw: Any) -> Client:
        kw.setdefault("compression", None)
        kw.setdefault("max_size", 4 << 20)
        ws = await connect(f"ws://127.0.0.1:{port}", **kw)
        c = Client(ws)
        clients.append(c)
        if hello:
            await c.hello()
        return c

    yield make
    for c in clients:
        await c.ws.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisProcess]:
    """A real redis-server on a free loopback port, for the whole session.

    Skipped only when redis-server is missing outside CI; in CI (CI=true) it must be there
    (`.ci/install-deps` installs it).
    """
    if not redis_available():
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing in CI: run .ci/install-deps")
        pytest.skip("redis-server is not installed (run .ci/install-deps)")
    proc = start_redis()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def redis_url(redis_server: RedisProcess) -> str:
    """A clean database on the session's redis-server."""
    subprocess.run(
        ["redis-cli", "-p", str(redis_server.port), "FLUSHALL"],
        check=True, capture_output=True, timeout=10,
    )
    return redis_server.url


@dataclass
class RelayProcess:
    proc: subprocess.Popen[str]
    port: int
    lines: list[str]


def spawn_relay(*args: str, timeout: float = 15.0) -> RelayProcess:
    """Run ``python -m server`` as a subprocess on port 0; wait for its ``listening`` log line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "--port", "0", *args],
        cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"event=listening .*port=(\d+)", line)
        if m:
            # Keep draining stderr so the relay never blocks on a full pipe.
            threading.Thread(target=lines.extend, args=(proc.stderr,), daemon=True).start()
            return RelayProcess(proc, int(m.group(1)), lines)
    proc.kill()
    proc.wait()
    raise RuntimeError("relay did not start: " + "".join(lines))


@pytest.fixture
def relay_procs() -> Iterator[Callable[..., RelayProcess]]:
    """Start relay subprocesses; each is stopped (by its PID) after the test."""
    procs: list[RelayProcess] = []

    def make(*args: str) -> RelayProcess:
        rp = spawn_relay(*args)
        procs.append(rp)
        return rp

    yield make
    for rp in procs:
        if rp.proc.poll() is None:
            rp.proc.terminate()
            try:
                rp.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                rp.proc.kill()
                rp.proc.wait()
