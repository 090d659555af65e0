"""Scale-out over a real redis-server: two relays, one order per room, resume across processes."""

from __future__ import annotations

import asyncio
import os

import pytest

from groupchat.relay_protocol import Error, ErrorCode, Presence, PresenceEvent

pytestmark = pytest.mark.redis

ROOM = b"shared-room"


async def test_two_relays_one_order(make_relay, make_client, redis_url):
    r1 = await make_relay(redis_url=redis_url)
    r2 = await make_relay(redis_url=redis_url)
    clients = []
    for i in range(6):
        c = await make_client((r1 if i % 2 else r2).port)
        await c.join(ROOM, b"m%d" % i)
        clients.append(c)

    per = 25

    async def blast(i: int) -> None:
        for k in range(per):
            await clients[i].publish(ROOM, b"%d:%d" % (i, k))

    await asyncio.gather(*(blast(i) for i in range(len(clients))))
    total = per * len(clients)
    seen = await asyncio.gather(*(c.delivers(total, timeout=15) for c in clients))
    orders = [[(d.seq, d.payload) for d in s] for s in seen]
    assert all(o == orders[0] for o in orders)
    assert [s for s, _ in orders[0]] == list(range(1, total + 1))


async def test_payloads_byte_identical_across_relays(make_relay, make_client, redis_url):
    r1 = await make_relay(redis_url=redis_url)
    r2 = await make_relay(redis_url=redis_url)
    a = await make_client(r1.port)
    b = await make_client(r2.port)
    await a.join(ROOM, b"a")
    await b.join(ROOM, b"b")
    payloads = [os.urandom(n) for n in (0, 1, 255, 70_000)] + [b"|D1|\x00\xff"]
    for p in payloads:
        await a.publish(ROOM, p)
    assert [d.payload for d in await b.delivers(len(payloads))] == payloads
    assert [d.payload for d in await a.delivers(len(payloads))] == payloads


async def test_resume_on_the_other_relay(make_relay, make_client, redis_url):
    r1 = await make_relay(redis_url=redis_url)
    r2 = await make_relay(redis_url=redis_url)
    a = await make_client(r1.port)
    b = await make_client(r1.port)
    await a.join(ROOM, b"alice")
    await b.join(ROOM, b"bob")
    await a.publish(ROOM, b"first")
    last = (await b.delivers(1))[0].seq
    await b.close()
    for k in range(30):
        await a.publish(ROOM, b"away-%d" % k)
    await a.send_to(ROOM, b"carol", b"not for bob")
    await a.send_to(ROOM, b"bob", b"for bob")
    await a.delivers(33)  # all sequenced (a sees its own echoes) before bob comes back
    b2 = await make_client(r2.port)
    joined = await b2.join(ROOM, b"bob", resume_after=last)
    assert joined.head_seq == 33
    await a.publish(ROOM, b"live")
    got = await b2.delivers(32)
    assert [d.payload for d in got] == (
        [b"away-%d" % k for k in range(30)] + [b"for bob", b"live"]
    )
    assert [d.seq for d in got] == [*range(2, 32), 33, 34]


async def test_gap_and_future_over_redis(make_relay, make_client, redis_url):
    r1 = await make_relay(redis_url=redis_url, log_max_count=5)
    r2 = await make_relay(redis_url=redis_url, log_max_count=5)
    a = await make_client(r1.port)
    await a.join(ROOM, b"a")
    for k in range(12):
        await a.publish(ROOM, b"%d" % k)
    await a.delivers(12)
    b = await make_client(r2.port)
    assert (await b.join_error(ROOM, b"b", resume_after=3)).code == ErrorCode.GAP
    assert (await b.join_error(ROOM, b"b", resume_after=50)).code == ErrorCode.FUTURE_SEQ
    await b.join(ROOM, b"b", resume_after=7)
    assert [d.seq for d in await b.delivers(5)] == [8, 9, 10, 11, 12]


async def test_presence_members_and_room_full_across_relays(make_relay, make_client, redis_url):
    r1 = await make_relay(redis_url=redis_url, max_members_per_room=2)
    r2 = await make_relay(redis_url=redis_url, max_members_per_room=2)
    a = await make_client(r1.port)
    b = await make_client(r2.port)
    c = await make_client(r2.port)
    await a.join(ROOM, b"a")
    jb = await b.join(ROOM, b"b")
    assert set(jb.members) == {b"a", b"b"}
    assert await a.recv_type(Presence) == Presence(ROOM, b"b", PresenceEvent.JOINED)
    assert (await c.join_error(ROOM, b"c")).code == ErrorCode.ROOM_FULL
    await b.close()
    assert await a.recv_type(Presence) == Presence(ROOM, b"b", PresenceEvent.LEFT)
    await c.join(ROOM, b"c")


async def test_same_member_on_the_other_relay_replaces(make_relay, make_client, redis_url):
    r1 = await make_relay(redis_url=redis_url)
    r2 = await make_relay(redis_url=redis_url)
    old = await make_client(r1.port)
    await old.join(ROOM, b"bob")
    new = await make_client(r2.port)
    await new.join(ROOM, b"bob")
    err = await old.recv_type(Error)
    assert err.code == ErrorCode.REPLACED
    await new.publish(ROOM, b"x")
    assert (await new.delivers(1))[0].payload == b"x"


async def test_processes_over_redis(relay_procs, make_client, redis_url):
    """Two relay processes (the real CLI) share a room; a client resumes on the other one."""
    p1 = relay_procs("--redis", redis_url)
    p2 = relay_procs("--redis", redis_url)
    a = await make_client(p1.port)
    b = await make_client(p2.port)
    await a.join(ROOM, b"a")
    await b.join(ROOM, b"b")
    for k in range(10):
        await a.publish(ROOM, b"a%d" % k)
        await b.publish(ROOM, b"b%d" % k)
    da, db = await a.delivers(20), await b.delivers(20)
    assert [(d.seq, d.payload) for d in da] == [(d.seq, d.payload) for d in db]
    assert [d.seq for d in da] == list(range(1, 21))
    await b.close()
    await a.publish(ROOM, b"while away")
    b2 = await make_client(p1.port)
    await b2.join(ROOM, b"b", resume_after=20)
    assert [(d.seq, d.payload) for d in await b2.delivers(1)] == [(21, b"while away")]
