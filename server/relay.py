"""The relay: a websockets server that orders, logs and fans out opaque room messages.

Theory of operation
-------------------
Each connection says Hello, then joins rooms and publishes. A backend (:mod:`server.backend`,
:mod:`server.redis_backend`) gives every room message its per-room seq and calls
:meth:`Relay.fanout`, which writes the one encoded Deliver frame to every local member.

Sending never awaits. Each connection's send queue is its transport write buffer, bounded by
``Limits.send_queue_bytes``: a frame that would overflow it marks the connection a slow consumer
and closes it (1008), so one slow client never stalls a room, and fan-out costs what
``websockets.broadcast`` costs. Only a resume replays its backlog with ``await send()`` (which
waits for the client to drain); live frames for that member wait in a bounded pending list until
the backlog is out, so the member still sees one gap-free order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import ssl
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response
from websockets.protocol import State

from groupchat.core.errors import DecodeError
from groupchat.relay_protocol import (
    ENVELOPE_VERSION,
    MAX_MEMBERS_LISTED,
    Ack,
    Error,
    ErrorCode,
    FrameType,
    Hello,
    Join,
    Joined,
    Leave,
    Publish,
    SendTo,
    ServerFrame,
    ServerHello,
    decode_client,
    encode,
    error_code_for,
)

from .backend import Backend, Hooks, JoinRefused, MemoryBackend
from .clock import Clock, MonotonicClock
from .config import RelayConfig
from .logs import fmt_id, log_event
from .ratelimit import TokenBucket

__all__ = ["Relay"]

_OPEN = State.OPEN
_REQ_TYPES = frozenset((FrameType.JOIN, FrameType.LEAVE, FrameType.PUBLISH, FrameType.SEND_TO))
_SWEEP_SECONDS = 1.0
_ROOM_SWEEP_EVERY = 5  # sweeps


def _peek_req_id(msg: bytes) -> int:
    """The req_id of a request envelope, read without decoding it (for refusals before decode)."""
    if len(msg) >= 6 and msg[0] == ENVELOPE_VERSION and msg[1] in _REQ_TYPES:
        return int.from_bytes(msg[2:6], "big")
    return 0


class _Membership:
    """One connection's presence in one room. ``pending`` is not None while catching up."""

    __slots__ = ("conn", "member", "pending", "pending_bytes", "room")

    def __init__(self, conn: _Conn, room: bytes, member: bytes) -> None:
        self.conn = conn
        self.room = room
        self.member = member
        self.pending: list[tuple[int | None, bytes]] | None = []
        self.pending_bytes = 0


class _Conn:
    """A client connection: its websocket, rooms, rate limit and bounded send queue."""

    __slots__ = (
        "bucket",
        "closing",
        "last_active",
        "limited",
        "peer",
        "queue_limit",
        "relay",
        "rooms",
        "token",
        "ws",
    )

    def __init__(self, relay: Relay, ws: ServerConnection, token: str) -> None:
        lim = relay.config.limits
        self.relay = relay
        self.ws = ws
        self.token = token
        addr = ws.remote_address
        self.peer = f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) else str(addr)
        self.rooms: dict[bytes, _Membership] = {}
        now = relay.clock.now()
        self.bucket = TokenBucket(lim.rate_per_second, lim.burst, now)
        self.limited = 0  # rate-limited frames in a row
        self.last_active = now
        self.closing = False
        self.queue_limit = lim.send_queue_bytes

    def push(self, data: bytes) -> None:
        """Queue ``data`` without waiting; a full queue disconnects the slow consumer."""
        if self.closing:
            return
        ws = self.ws
        if ws.protocol.state is not _OPEN:
            return
        if ws.transport.get_write_buffer_size() + len(data) > self.queue_limit:
            self.relay.disconnect(
                self, ErrorCode.SLOW_CONSUMER, f"send queue over {self.queue_limit} bytes",
                CloseCode.POLICY_VIOLATION,
            )
            return
        # What websockets.broadcast does per connection: frame it and hand it to the transport.
        ws.protocol.send_binary(data)
        ws.send_data()

    def send(self, frame: ServerFrame) -> None:
        self.push(encode(frame))


class Relay(Hooks):
    """The relay server. ``await start()`` listens; ``await stop()`` shuts down cleanly.

    ``clock`` drives idle timeouts, rate-limit refill, log-age expiry and the housekeeping sweep
    (tests pass a :class:`~server.clock.ManualClock`); socket timers use the event loop's clock.
    """

    def __init__(
        self,
        config: RelayConfig,
        backend_factory: Callable[[Relay], Backend] | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or MonotonicClock()
        # Unique across processes: connection tokens "<proc_id>:<n>" name a connection in Redis.
        self.proc_id = f"{os.getpid():x}{os.urandom(4).hex()}"
        self.backend: Backend = (
            backend_factory(self) if backend_factory else MemoryBackend(config.limits, self, self.clock.now)
        )
        self.conns: dict[str, _Conn] = {}
        self.rooms: dict[bytes, dict[bytes, _Membership]] = {}  # local members per room
        self.stopping = False
        self.started_at = self.clock.now()
        self._ids = itertools.count(1)
        self._server: Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the relay listens on (useful with port 0)."""
        assert self._server is not None, "relay not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> int:
        """Start listening; return the port."""
        cfg, lim = self.config, self.config.limits
        ssl_ctx: ssl.SSLContext | None = None
        if cfg.certfile:
            ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_ctx.load_cert_chain(cfg.certfile, cfg.keyfile)
        await self.backend.start()
        self._server = await serve(
            self._handler,
            cfg.host,
            cfg.port,
            ssl=ssl_ctx,
            compression=None,  # ciphertext does not compress; deflate is an amplifier
            process_request=self._process_request,
            open_timeout=lim.handshake_timeout,
            ping_interval=lim.ping_interval,
            ping_timeout=lim.ping_timeout,
            close_timeout=lim.close_timeout,
            # Twice the envelope limit so that a too-large envelope gets an Error frame and the
            # connection survives; only beyond this does websockets close with 1009.
            max_size=2 * lim.max_frame,
            max_queue=4,
            server_header=None,
        )
        self._sweeper = asyncio.create_task(self._sweep())
        log_event(
            logging.INFO, "listening", host=cfg.host, port=self.port, tls=bool(ssl_ctx),
            backend="redis" if cfg.redis_url else "memory",
        )
        return self.port

    async def stop(self) -> None:
        """Tell every client we are going, close them with 1001, and release the backend."""
        if self.stopping:
            return
        self.stopping = True
        log_event(logging.INFO, "shutdown", connections=len(self.conns))
        for conn in list(self.conns.values()):
            conn.send(Error(ErrorCode.SHUTTING_DOWN, "the relay is shutting down"))
        if self._server is not None:
            self._server.close(
                close_connections=True, code=CloseCode.GOING_AWAY,
                reason="shutting_down: the relay is shutting down",
            )
            await self._server.wait_closed()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for task in list(self._tasks):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
        await self.backend.close()
        log_event(logging.INFO, "stopped")

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sweep(self) -> None:
        """Close idle connections every second and trim room logs by age every few seconds."""
        lim = self.config.limits
        for n in itertools.count():
            await self.clock.sleep(_SWEEP_SECONDS)
            now = self.clock.now()
            for conn in list(self.conns.values()):
                if not conn.closing and now - conn.last_active > lim.idle_timeout:
                    self.disconnect(
                        conn, ErrorCode.IDLE_TIMEOUT,
                        f"nothing received for {lim.idle_timeout:g} s", CloseCode.NORMAL_CLOSURE,
                    )
            if n % _ROOM_SWEEP_EVERY == 0:
                try:
                    self.backend.sweep(now)
                except Exception:
                    logging.getLogger("groupchat.relay").exception("event=sweep_failed")

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Serve ``GET /healthz`` as plain HTTP on the websocket port; pass the rest through."""
        if request.path != "/healthz":
            return None
        if self.stopping:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "shutting down\n")
        body = {
            "status": "ok",
            "connections": len(self.conns),
            "rooms": len(self.rooms),
            "backend": "redis" if self.config.redis_url else "memory",
            "uptime_s": round(self.clock.now() - self.started_at, 1),
        }
        return connection.respond(HTTPStatus.OK, json.dumps(body) + "\n")

    # --- connections --------------------------------------------------------------------------

    def disconnect(self, conn: _Conn, code: ErrorCode, reason: str, close_code: int) -> None:
        """Send a last Error frame and close ``conn`` with ``close_code`` in the background.

        Never awaits, so it is safe in the middle of a fan-out; the handler's cleanup removes
        the connection from its rooms once the websocket is closed.
        """
        if conn.closing:
            return
        conn.closing = True
        log_event(logging.WARNING, "disconnect", conn=conn.token, code=code, reason=reason)
        ws = conn.ws
        if ws.protocol.state is _OPEN:
            # Bypasses the queue bound on purpose: the client should learn why, if it reads.
            ws.protocol.send_binary(encode(Error(code, reason)))
            ws.send_data()
        self._spawn(ws.close(close_code, f"{code}: {reason}"[:120]))

    async def _handler(self, ws: ServerConnection) -> None:
        lim = self.config.limits
        if len(self.conns) >= lim.max_connections or self.stopping:
            code = ErrorCode.SHUTTING_DOWN if self.stopping else ErrorCode.SERVER_FULL
            reason = "the relay is shutting down" if self.stopping else (
                f"the relay has {lim.max_connections} connections"
            )
            log_event(logging.WARNING, "refused", peer=str(ws.remote_address), code=code)
            with contextlib.suppress(ConnectionClosed):
                await ws.send(encode(Error(code, reason)))
                await ws.close(CloseCode.TRY_AGAIN_LATER, f"{code}: {reason}")
            return
        conn = _Conn(self, ws, f"{self.proc_id}:{next(self._ids)}")
        self.conns[conn.token] = conn
        log_event(logging.INFO, "conn_open", conn=conn.token, peer=conn.peer)
        try:
            if await self._hello(conn):
                async for msg in ws:
                    if not conn.closing:
                        await self._on_message(conn, msg)
                    # Once closing, keep reading (and dropping) so the close handshake can
                    # complete instead of stalling behind unread frames.
            if conn.closing:
                # disconnect() is closing it with a code and reason; returning now would
                # make websockets close first with 1000.
                await ws.wait_closed()
        except ConnectionClosed:
            pass
        except Exception:
            # A bug must cost one connection at most, never the relay.
            logging.getLogger("groupchat.relay").exception(
                "event=handler_failed conn=%s", conn.token
            )
            with contextlib.suppress(ConnectionClosed):
                await ws.close(CloseCode.INTERNAL_ERROR, "internal: relay error")
        finally:
            del self.conns[conn.token]
            for m in list(conn.rooms.values()):
                await self._leave(m)
            log_event(
                logging.INFO, "conn_close", conn=conn.token, code=ws.close_code,
                reason=ws.close_reason or "",
            )

    async def _hello(self, conn: _Conn) -> bool:
        """Wait for the client's Hello and answer with the welcome; False if it never came."""
        lim = self.config.limits
        try:
            async with asyncio.timeout(lim.handshake_timeout):
                msg = await conn.ws.recv()
        except TimeoutError:
            self.disconnect(
                conn, ErrorCode.HELLO_REQUIRED, "no Hello in time", CloseCode.POLICY_VIOLATION
            )
            return False
        try:
            if isinstance(msg, str):
                raise DecodeError("text frames are not accepted; envelopes are binary")
            frame = decode_client(msg, lim.max_frame)
        except DecodeError as exc:
            code = error_code_for(exc)
            self.disconnect(conn, code, str(exc), CloseCode.PROTOCOL_ERROR)
            return False
        if not isinstance(frame, Hello):
            self.disconnect(
                conn, ErrorCode.HELLO_REQUIRED, "the first frame must be a Hello",
                CloseCode.PROTOCOL_ERROR,
            )
            return False
        conn.send(ServerHello(ENVELOPE_VERSION, lim.announce(), "groupchat-relay"))
        log_event(logging.DEBUG, "hello", conn=conn.token, agent=frame.agent[:64])
        return True

    async def _on_message(self, conn: _Conn, msg: str | bytes) -> None:
        """Rate-limit, decode and dispatch one frame; every refusal is an Error frame."""
        lim = self.config.limits
        now = self.clock.now()
        conn.last_active = now
        if not conn.bucket.take(now):
            conn.limited += 1
            if conn.limited >= lim.flood_frames:
                self.disconnect(
                    conn, ErrorCode.FLOOD, f"{conn.limited} rate-limited frames in a row",
                    CloseCode.POLICY_VIOLATION,
                )
                return
            req_id = _peek_req_id(msg) if isinstance(msg, bytes) else 0
            conn.send(Error(
                ErrorCode.RATE_LIMITED,
                f"over {lim.rate_per_second:g} frames/s (burst {lim.burst}); frame dropped",
                req_id,
            ))
            return
        conn.limited = 0
        if isinstance(msg, str):
            conn.send(Error(ErrorCode.BAD_FRAME, "text frames are not accepted; use binary"))
            return
        try:
            frame = decode_client(msg, lim.max_frame)
        except DecodeError as exc:
            code = error_code_for(exc)
            log_event(logging.DEBUG, "bad_frame", conn=conn.token, code=code, size=len(msg))
            conn.send(Error(code, str(exc)[:200], _peek_req_id(msg)))
            return
        try:
            await self._dispatch(conn, frame)
        except ConnectionClosed:
            raise
        except Exception:
            logging.getLogger("groupchat.relay").exception(
                "event=dispatch_failed conn=%s", conn.token
            )
            conn.send(Error(ErrorCode.INTERNAL, "the relay failed on this request"))

    async def _dispatch(self, conn: _Conn, frame: Hello | Join | Leave | Publish | SendTo) -> None:
        if isinstance(frame, Publish | SendTo):
            m = conn.rooms.get(frame.room)
            if m is None:
                await self._not_member(conn, frame.req_id, frame.room)
                return
            if len(frame.payload) > self.config.limits.max_payload:
                conn.send(Error(
                    ErrorCode.TOO_LARGE,
                    f"payload of {len(frame.payload)} bytes is over the limit of "
                    f"{self.config.limits.max_payload}", frame.req_id, frame.room,
                ))
                return
            to = frame.to if isinstance(frame, SendTo) else None
            seq = await self.backend.append(frame.room, m.member, to, frame.payload)
            conn.send(Ack(frame.req_id, seq))
        elif isinstance(frame, Join):
            await self._join(conn, frame)
        elif isinstance(frame, Leave):
            m = conn.rooms.get(frame.room)
            if m is None:
                await self._not_member(conn, frame.req_id, frame.room)
                return
            await self._leave(m)
            conn.send(Ack(frame.req_id, 0))
        else:
            conn.send(Error(ErrorCode.BAD_FRAME, "Hello was already received"))

    async def _not_member(self, conn: _Conn, req_id: int, room: bytes) -> None:
        if await self.backend.room_exists(room):
            conn.send(Error(ErrorCode.NOT_JOINED, "join the room first", req_id, room))
        else:
            conn.send(Error(ErrorCode.UNKNOWN_ROOM, "no such room on this relay", req_id, room))

    # --- rooms --------------------------------------------------------------------------------

    def _register(self, m: _Membership) -> None:
        self.rooms.setdefault(m.room, {})[m.member] = m
        m.conn.rooms[m.room] = m

    def _unregister(self, m: _Membership) -> bool:
        """Forget ``m`` locally; False if it was already gone (left, replaced or dropped)."""
        if m.conn.rooms.get(m.room) is not m:
            return False
        del m.conn.rooms[m.room]
        local = self.rooms.get(m.room)
        if local is not None and local.get(m.member) is m:
            del local[m.member]
            if not local:
                del self.rooms[m.room]
        m.pending = None
        return True

    async def _leave(self, m: _Membership) -> None:
        if self._unregister(m):
            log_event(logging.DEBUG, "leave", conn=m.conn.token, room=fmt_id(m.room))
            await self.backend.leave(m.room, m.member, m.conn.token)

    def kick(self, room: bytes, member: bytes, token: str) -> None:
        """Remove a local membership that another connection took over (same member id)."""
        m = self.rooms.get(room, {}).get(member)
        if m is not None and m.conn.token == token:
            self._unregister(m)
            m.conn.send(Error(
                ErrorCode.REPLACED, "another connection joined as this member", 0, room
            ))
            # Let the backend release what this membership held; it leaves the member in
            # place because the token no longer holds it.
            self._spawn(self.backend.leave(room, member, token))

    async def _join(self, conn: _Conn, f: Join) -> None:
        lim = self.config.limits
        if f.room in conn.rooms:
            conn.send(Error(ErrorCode.ALREADY_JOINED, "already in this room", f.req_id, f.room))
            return
        if len(conn.rooms) >= lim.max_rooms_per_connection:
            conn.send(Error(
                ErrorCode.TOO_MANY_ROOMS,
                f"at most {lim.max_rooms_per_connection} rooms per connection", f.req_id, f.room,
            ))
            return
        old = self.rooms.get(f.room, {}).get(f.member)
        if old is not None:
            self.kick(f.room, f.member, old.conn.token)
        # Register before asking the backend: from here on, live messages for this member
        # collect in m.pending, so nothing slips between the backlog and the live stream.
        m = _Membership(conn, f.room, f.member)
        self._register(m)
        try:
            result = await self.backend.join(f.room, f.member, conn.token, f.resume_after)
        except JoinRefused as exc:
            self._unregister(m)
            conn.send(Error(exc.code, exc.reason, f.req_id, f.room))
            return
        log_event(
            logging.DEBUG, "join", conn=conn.token, room=fmt_id(f.room), head=result.head,
            resume=f.resume_after if f.resume_after is not None else "-",
        )
        conn.send(Joined(f.req_id, f.room, result.head, result.members[:MAX_MEMBERS_LISTED]))
        last = result.head
        if f.resume_after is not None:
            try:
                async for seq, frame in self.backend.backlog(f.room, f.resume_after, f.member):
                    if conn.rooms.get(f.room) is not m:
                        return  # left, replaced or disconnected meanwhile
                    await conn.ws.send(frame)  # waits for the client to drain: no overflow
                    last = max(last, seq)
            except JoinRefused as exc:
                await self._leave(m)
                conn.send(Error(exc.code, exc.reason, f.req_id, f.room))
                return
        # Drain what arrived live meanwhile, skipping what the backlog already covered.
        while m.pending:
            batch, m.pending, m.pending_bytes = m.pending, [], 0
            for seq_or_none, frame in batch:
                if seq_or_none is None or seq_or_none > last:
                    await conn.ws.send(frame)
                    if seq_or_none is not None:
                        last = seq_or_none
        if conn.rooms.get(f.room) is m:
            m.pending = None  # live from now on: fanout pushes directly

    def _hold(self, m: _Membership, seq: int | None, frame: bytes) -> None:
        """Keep a live frame for a member still catching up, within the send queue bound."""
        pending = m.pending
        assert pending is not None
        m.pending_bytes += len(frame)
        if m.pending_bytes > m.conn.queue_limit:
            self.disconnect(
                m.conn, ErrorCode.SLOW_CONSUMER, "fell behind while catching up",
                CloseCode.POLICY_VIOLATION,
            )
            return
        pending.append((seq, frame))

    # --- Hooks: called by the backend -----------------------------------------------------------

    def fanout(self, room: bytes, seq: int, frame: bytes, to: bytes | None, sender: bytes) -> None:
        """Write one sequenced Deliver frame to each local member it is for (hot path)."""
        local = self.rooms.get(room)
        if not local:
            return
        if to is None:
            for m in local.values():
                if m.pending is None:
                    m.conn.push(frame)
                else:
                    self._hold(m, seq, frame)
            return
        for member in (to,) if to == sender else (to, sender):
            target = local.get(member)
            if target is None:
                continue
            if target.pending is None:
                target.conn.push(frame)
            else:
                self._hold(target, seq, frame)

    def presence(self, room: bytes, frame: bytes, member: bytes) -> None:
        """Tell the room's other local members that ``member`` joined or left."""
        local = self.rooms.get(room)
        if not local:
            return
        for m in local.values():
            if m.member == member:
                continue
            if m.pending is None:
                m.conn.push(frame)
            else:
                self._hold(m, None, frame)
