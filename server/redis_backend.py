"""The scale-out backend: several relay processes share rooms through one Redis.

Each room has a sequence counter (INCR) and a Stream whose entry IDs are ``<seq>-0``, so the
log, its order and ``resume from seq N`` (``XRANGE (N-0 +``) are the same for every process. An
append is one Lua script that numbers the message, logs it, trims the log by count, bytes and
age, and PUBLISHes it on the room's channel. Redis runs scripts one at a time and delivers a
channel's messages in publish order, so every subscribed process fans out the same sequence;
the publishing process learns about its own message the same way (the echo).

Membership lives in a hash (member id → connection token ``<process>:<n>``). Each process keeps
a heartbeat key; a join drops members whose process stopped heart-beating (crashed), so they do
not count against ``max_members_per_room`` forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, cast

import redis.asyncio as aioredis

from groupchat.core.codec import Reader
from groupchat.relay_protocol import (
    MAX_ID_LEN,
    ErrorCode,
    PresenceEvent,
    deliver_prefix,
    deliver_rest,
)

from .backend import Backend, Hooks, JoinRefused, JoinResult, may_see, presence_frame
from .config import Limits
from .logs import log_event

if TYPE_CHECKING:
    from .relay import Relay

__all__ = ["RedisBackend", "redis_backend_factory"]

_HEARTBEAT_SECONDS = 5.0
_HEARTBEAT_TTL = 20
_BACKLOG_BATCH = 256

# Drop log entries from the front while the log is over its count or byte cap or the oldest
# entry is older than the age cap. Entry fields: f = frame rest, t = ms, s = sender, o = to.
_TRIM = """
local function trim(log, bytes_key, max_count, max_bytes, min_ms)
  local n = redis.call('XLEN', log)
  local total = tonumber(redis.call('GET', bytes_key) or '0')
  while n > 0 do
    local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1]
    local fields = first[2]
    local size = #fields[2]
    if n > max_count or total > max_bytes or tonumber(fields[4]) < min_ms then
      redis.call('XDEL', log, first[1])
      total = redis.call('DECRBY', bytes_key, size)
      n = n - 1
    else
      break
    end
  end
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# KEYS: seq, log, bytes, channel, members.
# ARGV: rest, sender, to, max_count, max_bytes, max_age_ms, ttl_s.
_APPEND = _TRIM + """
local seq = redis.call('INCR', KEYS[1])
local now = now_ms()
redis.call('XADD', KEYS[2], seq .. '-0', 'f', ARGV[1], 't', now, 's', ARGV[2], 'o', ARGV[3])
redis.call('INCRBY', KEYS[3], #ARGV[1])
trim(KEYS[2], KEYS[3], tonumber(ARGV[4]), tonumber(ARGV[5]), now - tonumber(ARGV[6]))
redis.call('PUBLISH', KEYS[4], 'D' .. seq .. '|' .. ARGV[1])
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[7]) end
return seq
"""

# KEYS: members, seq, log, bytes.
# ARGV: member, token, max_members, resume_after ('' for none), max_count, max_bytes,
#       max_age_ms, ttl_s, heartbeat key prefix.
_JOIN = _TRIM + """
local all = redis.call('HGETALL', KEYS[1])
local names, count = {}, 0
for i = 1, #all, 2 do
  local proc = string.match(all[i + 1], '^([^:]+)')
  if redis.call('EXISTS', ARGV[9] .. proc) == 0 then
    redis.call('HDEL', KEYS[1], all[i])
  elseif all[i] ~= ARGV[1] then
    count = count + 1
    names[#names + 1] = all[i]
  end
end
local old = redis.call('HGET', KEYS[1], ARGV[1])
if count >= tonumber(ARGV[3]) then return {'room_full', 0} end
local head = tonumber(redis.call('GET', KEYS[2]) or '0')
if ARGV[4] ~= '' then
  local after = tonumber(ARGV[4])
  if after > head then return {'future_seq', head} end
  trim(KEYS[3], KEYS[4], tonumber(ARGV[5]), tonumber(ARGV[6]), now_ms() - tonumber(ARGV[7]))
  local first = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)[1]
  local first_seq = head + 1
  if first then first_seq = tonumber(string.match(first[1], '^(%d+)')) end
  if after + 1 < first_seq then return {'gap', first_seq} end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
names[#names + 1] = ARGV[1]
for i = 1, 2 do redis.call('EXPIRE', KEYS[i], ARGV[8]) end
return {'ok', head, old or '', names}
"""

# KEYS: members. ARGV: member, token. Returns 1 if the token held the member.
_LEAVE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


def _key(room: bytes, what: str) -> str:
    return f"gc:{room.hex()}:{what}"


class RedisBackend(Backend):
    """Rooms shared by every relay process connected to the same Redis."""

    def __init__(self, url: str, limits: Limits, hooks: Hooks, proc_id: str) -> None:
        super().__init__(limits, hooks)
        self.url = url
        self.proc_id = proc_id
        self.redis: aioredis.Redis = aioredis.Redis.from_url(url, decode_responses=False)
        self.pubsub = self.redis.pubsub()
        self._append = self.redis.register_script(_APPEND)
        self._join = self.redis.register_script(_JOIN)
        self._leave = self.redis.register_script(_LEAVE)
        self._hb_prefix = "gc:proc:"
        self._ttl = int(limits.log_max_age) + 3600
        self._local: dict[bytes, int] = {}  # room -> local joins (subscribe while > 0)
        self._sub_waiters: dict[bytes, asyncio.Future[None]] = {}  # channel -> confirmation
        self._channel_room: dict[bytes, bytes] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self._heartbeat_once()
        # Subscribe to a channel of our own first, so the pub/sub connection always has a
        # subscription and the listener can block on it.
        ctl = f"gc:ctl:{self.proc_id}".encode()
        await self._subscribe(ctl, start_listener=True)
        self._tasks.append(asyncio.create_task(self._heartbeat()))
        log_event(logging.INFO, "redis_connected", url=self.url.split("@")[-1])

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.redis.delete(self._hb_prefix + self.proc_id)
        with contextlib.suppress(Exception):
            pubsub: Any = self.pubsub  # redis-py types PubSub.aclose only from 8.2 on
            await pubsub.aclose()
        await self.redis.aclose()

    async def _heartbeat_once(self) -> None:
        await self.redis.set(self._hb_prefix + self.proc_id, b"1", ex=_HEARTBEAT_TTL)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(_HEARTBEAT_SECONDS)
            try:
                await self._heartbeat_once()
            except Exception as exc:
                log_event(logging.WARNING, "redis_heartbeat_failed", error=type(exc).__name__)

    # --- pub/sub ------------------------------------------------------------------------------

    async def _subscribe(self, channel: bytes, start_listener: bool = False) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sub_waiters[channel] = fut
        await self.pubsub.subscribe(channel)
        if start_listener:
            self._tasks.append(asyncio.create_task(self._listen()))
        await asyncio.wait_for(fut, timeout=10)

    async def _listen(self) -> None:
        """Read pub/sub messages and hand each room message to the relay, in order."""
        while True:
            try:
                msg: dict[str, Any] | None = await self.pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log_event(logging.ERROR, "redis_pubsub_failed", error=type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            if msg is None:
                continue
            kind, channel = msg["type"], msg["channel"]
            if kind == b"subscribe" or kind == "subscribe":
                fut = self._sub_waiters.pop(channel, None)
                if fut is not None and not fut.done():
                    fut.set_result(None)
            elif kind == b"message" or kind == "message":
                room = self._channel_room.get(channel)
                if room is not None:
                    try:
                        self._on_message(room, msg["data"])
                    except Exception:
                        logging.getLogger("groupchat.relay").exception("event=redis_bad_message")

    def _on_message(self, room: bytes, data: bytes) -> None:
        tag = data[:1]
        if tag == b"D":
            bar = data.index(b"|")
            seq = int(data[1:bar])
            rest = data[bar + 1 :]
            r = Reader(rest, "deliver")
            r.opaque("room", MAX_ID_LEN)
            sender = r.opaque("sender", MAX_ID_LEN)
            to = r.opaque("to", MAX_ID_LEN) if r.u8("to") else None
            self.hooks.fanout(room, seq, deliver_prefix(seq) + rest, to, sender)
        elif tag == b"P":
            bar = data.index(b"|")
            member = bytes.fromhex(data[1:bar].decode())
            self.hooks.presence(room, data[bar + 1 :], member)
        elif tag == b"K":
            _, token, member_hex = data.decode().split("|", 2)
            self.hooks.kick(room, bytes.fromhex(member_hex), token)

    async def _acquire(self, room: bytes) -> None:
        """Make sure this process receives ``room``'s messages before it reads the log."""
        n = self._local.get(room, 0)
        self._local[room] = n + 1
        channel = _key(room, "ch").encode()
        self._channel_room[channel] = room
        if n == 0:
            await self._subscribe(channel)
        elif channel in self._sub_waiters:
            await asyncio.shield(self._sub_waiters[channel])

    async def _release(self, room: bytes) -> None:
        n = self._local.get(room, 0) - 1
        if n > 0:
            self._local[room] = n
            return
        self._local.pop(room, None)
        channel = _key(room, "ch").encode()
        await self.pubsub.unsubscribe(channel)

    async def _publish(self, room: bytes, data: bytes) -> None:
        await self.redis.publish(_key(room, "ch"), data)

    # --- Backend ------------------------------------------------------------------------------

    async def join(
        self, room: bytes, member: bytes, token: str, resume_after: int | None
    ) -> JoinResult:
        await self._acquire(room)
        lim = self.limits
        try:
            res = await self._join(
                keys=[_key(room, "members"), _key(room, "seq"), _key(room, "log"),
                      _key(room, "bytes")],
                args=[member, token, lim.max_members_per_room,
                      "" if resume_after is None else str(resume_after), lim.log_max_count,
                      lim.log_max_bytes, int(lim.log_max_age * 1000), self._ttl,
                      self._hb_prefix],
            )
        except BaseException:
            await self._release(room)
            raise
        status = res[0].decode()
        if status != "ok":
            await self._release(room)
            if status == "room_full":
                raise JoinRefused(
                    ErrorCode.ROOM_FULL, f"the room has {lim.max_members_per_room} members"
                )
            if status == "future_seq":
                raise JoinRefused(
                    ErrorCode.FUTURE_SEQ,
                    f"resume from {resume_after} but the room is at {res[1]}: rejoin the group",
                )
            raise JoinRefused(
                ErrorCode.GAP,
                f"seqs {(resume_after or 0) + 1}..{int(res[1]) - 1} are no longer logged: "
                "rejoin the group",
            )
        head, old = int(res[1]), res[2].decode()
        if old and old != token:
            await self._publish(room, f"K|{old}|{member.hex()}".encode())
        pres = presence_frame(room, member, PresenceEvent.JOINED)
        await self._publish(room, b"P" + member.hex().encode() + b"|" + pres)
        return JoinResult(head, tuple(bytes(m) for m in res[3]))

    async def leave(self, room: bytes, member: bytes, token: str) -> None:
        try:
            held = await self._leave(keys=[_key(room, "members")], args=[member, token])
            if held:
                pres = presence_frame(room, member, PresenceEvent.LEFT)
                await self._publish(room, b"P" + member.hex().encode() + b"|" + pres)
        finally:
            await self._release(room)

    async def append(self, room: bytes, sender: bytes, to: bytes | None, payload: bytes) -> int:
        lim = self.limits
        rest = deliver_rest(room, sender, to, payload)
        seq = await self._append(
            keys=[_key(room, "seq"), _key(room, "log"), _key(room, "bytes"), _key(room, "ch"),
                  _key(room, "members")],
            args=[rest, sender, to or b"", lim.log_max_count, lim.log_max_bytes,
                  int(lim.log_max_age * 1000), self._ttl],
        )
        return int(seq)

    async def backlog(
        self, room: bytes, after: int, member: bytes
    ) -> AsyncIterator[tuple[int, bytes]]:
        log = _key(room, "log")
        start = f"({after}-0"
        first = True
        while True:
            raw = await self.redis.xrange(log, min=start, max="+", count=_BACKLOG_BATCH)
            # decode_responses=False: ids and fields are bytes.
            batch = cast(list[tuple[bytes, dict[bytes, bytes]]], raw or [])
            if not batch:
                return
            for entry_id, fields in batch:
                seq = int(entry_id.split(b"-")[0])
                if first and seq != after + 1:
                    raise JoinRefused(ErrorCode.GAP, f"seq {after + 1} is no longer logged")
                first = False
                to = fields[b"o"] or None
                if may_see(member, to, fields[b"s"]):
                    yield seq, deliver_prefix(seq) + fields[b"f"]
            start = f"({seq}-0"

    async def room_exists(self, room: bytes) -> bool:
        return bool(await self.redis.exists(_key(room, "seq"), _key(room, "members")))


def redis_backend_factory(url: str) -> Callable[[Relay], Backend]:
    """A backend factory for :class:`server.relay.Relay` that shares rooms through ``url``."""

    def make(relay: Relay) -> Backend:
        return RedisBackend(url, relay.config.limits, relay, relay.proc_id)

    return make
