"""The embedded relay over real websockets on 127.0.0.1: order, echo, resume, gap, limits."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest
from websockets.exceptions import ConnectionClosed

from groupchat.relay_protocol import (
    ENVELOPE_VERSION,
    Ack,
    Deliver,
    Error,
    ErrorCode,
    FrameType,
    Hello,
    Joined,
    Presence,
    PresenceEvent,
    encode,
)
from server.clock import ManualClock

ROOM = b"room-1"


async def until(predicate, timeout: float = 3.0) -> None:
    """Yield to the event loop until ``predicate()`` holds; bounded in time."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_hello_welcome_announces_version_and_limits(relay, make_client):
    c = await make_client(relay.port, hello=False)
    sh = await c.hello()
    assert sh.version == ENVELOPE_VERSION
    lim = relay.config.limits
    assert sh.limits.max_frame == lim.max_frame
    assert sh.limits.max_payload == lim.max_payload < lim.max_frame
    assert sh.limits.max_members_per_room == lim.max_members_per_room
    assert sh.limits.log_max_count == lim.log_max_count


async def test_first_frame_must_be_hello(relay, make_client):
    c = await make_client(relay.port, hello=False)
    await c.ws.send(encode(Joined(1, ROOM, 0, ())))  # not a client frame at all
    err = await c.recv()
    assert isinstance(err, Error) and err.code == ErrorCode.UNKNOWN_TYPE
    c2 = await make_client(relay.port, hello=False)
    await c2.publish(ROOM, b"x")
    err = await c2.recv()
    assert isinstance(err, Error) and err.code == ErrorCode.HELLO_REQUIRED
    with pytest.raises(ConnectionClosed):
        await c2.recv()
    assert c2.ws.close_code == 1002


async def test_publish_is_echoed_sequenced_and_byte_identical(relay, make_client):
    a = await make_client(relay.port)
    b = await make_client(relay.port)
    ja = await a.join(ROOM, b"alice")
    assert ja.head_seq == 0
    assert ja.members == (b"alice",)
    jb = await b.join(ROOM, b"bob")
    assert set(jb.members) == {b"alice", b"bob"}
    pres = await a.recv_type(Presence)
    assert pres == Presence(ROOM, b"bob", PresenceEvent.JOINED)

    payloads = [os.urandom(n) for n in (0, 1, 100, 5000)] + [bytes(range(256)) * 4]
    for p in payloads:
        await a.publish(ROOM, p)
    got_a = await a.delivers(len(payloads))
    got_b = await b.delivers(len(payloads))
    assert [d.payload for d in got_a] == payloads  # the echo, byte for byte
    assert [d.payload for d in got_b] == payloads
    assert [d.seq for d in got_a] == list(range(1, len(payloads) + 1))
    assert [d.seq for d in got_b] == [d.seq for d in got_a]
    assert all(d.sender == b"alice" and d.to is None and d.room == ROOM for d in got_b)


async def test_publish_ack_carries_the_seq(relay, make_client):
    a = await make_client(relay.port)
    await a.join(ROOM, b"alice")
    req = await a.publish(ROOM, b"hi")
    ack = await a.recv_type(Ack)
    assert ack == Ack(req, 1)


async def test_the_publisher_reads_its_deliver_then_its_ack(relay, make_client):
    """A publisher reads its own Deliver first, then the Ack, for a Publish and a SendTo alike,
    and nothing else between: the fan-out, then the Ack."""
    a = await make_client(relay.port)
    b = await make_client(relay.port)
    await a.join(ROOM, b"alice")
    await b.join(ROOM, b"bob")
    await a.recv_type(Presence)
    req = await a.publish(ROOM, b"one")
    assert await a.recv() == Deliver(1, ROOM, b"alice", None, b"one")
    assert await a.recv() == Ack(req, 1)
    req = await a.send_to(ROOM, b"bob", b"two")
    assert await a.recv() == Deliver(2, ROOM, b"alice", b"bob", b"two")
    assert await a.recv() == Ack(req, 2)
    assert [d.payload for d in await b.delivers(2)] == [b"one", b"two"]


async def test_total_order_under_concurrent_publishers(relay, make_client):
    n_clients, per_client = 6, 40
    clients = [await make_client(relay.port) for _ in range(n_clients)]
    for i, c in enumerate(clients):
        await c.join(ROOM, b"m%d" % i)

    async def blast(i: int) -> None:
        for k in range(per_client):
            await clients[i].publish(ROOM, b"%d:%d" % (i, k))

    await asyncio.gather(*(blast(i) for i in range(n_clients)))
    total = n_clients * per_client
    seen = await asyncio.gather(*(c.delivers(total, timeout=10) for c in clients))
    orders = [[(d.seq, d.payload) for d in s] for s in seen]
    assert all(o == orders[0] for o in orders)  # one order for everyone
    assert [s for s, _ in orders[0]] == list(range(1, total + 1))
    for i in range(n_clients):  # and each sender's own messages keep their order
        mine = [p for _, p in orders[0] if p.startswith(b"%d:" % i)]
        assert mine == [b"%d:%d" % (i, k) for k in range(per_client)]


async def test_send_to_reaches_only_the_addressee_and_the_sender(relay, make_client):
    a, b, c = [await make_client(relay.port) for _ in range(3)]
    await a.join(ROOM, b"alice")
    await b.join(ROOM, b"bob")
    await c.join(ROOM, b"carol")
    await a.send_to(ROOM, b"bob", b"welcome-for-bob")
    await a.publish(ROOM, b"to-all")
    da, db, dc = await a.delivers(2), await b.delivers(2), await c.delivers(1)
    assert [d.payload for d in da] == [b"welcome-for-bob", b"to-all"]
    assert db[0] == Deliver(1, ROOM, b"alice", b"bob", b"welcome-for-bob")
    assert dc[0].seq == 2 and dc[0].payload == b"to-all"  # carol never sees seq 1


async def test_resume_after_disconnect_loses_nothing(relay, make_client):
    a = await make_client(relay.port)
    b = await make_client(relay.port)
    await a.join(ROOM, b"alice")
    await b.join(ROOM, b"bob")
    for k in range(5):
        await a.publish(ROOM, b"before-%d" % k)
    seen = await b.delivers(5)
    last = seen[-1].seq
    await b.close()
    for k in range(20):  # sent while bob is away
        await a.publish(ROOM, b"away-%d" % k)
    await a.delivers(25)
    b2 = await make_client(relay.port)
    joined = await b2.join(ROOM, b"bob", resume_after=last)
    assert joined.head_seq == 25
    # Meanwhile more traffic: the backlog and the live stream must join without a seam.
    for k in range(5):
        await a.publish(ROOM, b"after-%d" % k)
    got = await b2.delivers(25)
    assert [d.seq for d in got] == list(range(6, 31))
    assert [d.payload for d in got[:20]] == [b"away-%d" % k for k in range(20)]
    assert [d.payload for d in got[20:]] == [b"after-%d" % k for k in range(5)]


async def test_resume_replays_directed_messages_only_to_their_addressee(relay, make_client):
    a = await make_client(relay.port)
    await a.join(ROOM, b"alice")
    await a.send_to(ROOM, b"bob", b"for-bob")
    await a.send_to(ROOM, b"carol", b"for-carol")
    await a.publish(ROOM, b"all")
    await a.delivers(3)
    b = await make_client(relay.port)
    await b.join(ROOM, b"bob", resume_after=0)
    got = await b.delivers(2)
    assert [(d.seq, d.payload) for d in got] == [(1, b"for-bob"), (3, b"all")]


async def test_gap_when_the_log_no_longer_holds_the_resume_point(make_relay, make_client):
    relay = await make_relay(log_max_count=10)
    a = await make_client(relay.port)
    await a.join(ROOM, b"alice")
    for k in range(30):
        await a.publish(ROOM, b"m%d" % k)
    await a.delivers(30)
    b = await make_client(relay.port)
    err = await b.join_error(ROOM, b"bob", resume_after=5)
    assert err.code == ErrorCode.GAP and err.room == ROOM
    ok = await b.join(ROOM, b"bob", resume_after=20)  # still logged: 21..30
    assert ok.head_seq == 30
    assert [d.seq for d in await b.delivers(10)] == list(range(21, 31))


async def test_gap_by_bytes_and_by_age(make_relay, make_client):
    clock = ManualClock()
    relay = await make_relay(log_max_bytes=2000, log_max_age=30.0, clock=clock)
    a = await make_client(relay.port)
    await a.join(ROOM, b"alice")
    for _ in range(10):
        await a.publish(ROOM, b"x" * 500)  # ~4 fit in 2000 bytes
    await a.delivers(10)
    b = await make_client(relay.port)
    assert (await b.join_error(ROOM, b"bob", resume_after=2)).code == ErrorCode.GAP
    await b.join(ROOM, b"bob", resume_after=8)
    await b.delivers(2)
    c = await make_client(relay.port)
    await clock.advance(29.0)  # not yet older than log_max_age: 9 and 10 are still logged
    await c.join(ROOM, b"carol", resume_after=8)
    await c.leave(ROOM)
    await clock.advance(2.0)  # now everything is older than log_max_age
    assert (await c.join_error(ROOM, b"carol", resume_after=9)).code == ErrorCode.GAP
    assert (await c.join(ROOM, b"carol", resume_after=10)).head_seq == 10


async def test_resume_from_the_future(relay, make_client):
    a = await make_client(relay.port)
    await a.join(ROOM, b"alice")
    await a.publish(ROOM, b"one")
    await a.delivers(1)
    b = await make_client(relay.port)
    err = await b.join_error(ROOM, b"bob", resume_after=99)
    assert err.code == ErrorCode.FUTURE_SEQ
    # the connection keeps working
    assert (await b.join(ROOM, b"bob", resume_after=1)).head_seq == 1


async def test_unknown_room_and_not_joined(relay, make_client):
    a = await make_client(relay.port)
    b = await make_client(relay.port)
    req = await a.publish(b"nowhere", b"x")
    err = await a.recv_type(Error)
    assert (err.code, err.req_id) == (ErrorCode.UNKNOWN_ROOM, req)
    await b.join(ROOM, b"bob")
    req = await a.publish(ROOM, b"x")
    err = await a.recv_type(Error)
    assert (err.code, err.req_id) == (ErrorCode.NOT_JOINED, req)
    await a.leave(b"nowhere")
    assert (await a.recv_type(Error)).code == ErrorCode.UNKNOWN_ROOM


async def test_leave_stops_delivery_and_announces_it(relay, make_client):
    a = await make_client(relay.port)
    b = await make_client(relay.port)
    await a.join(ROOM, b"alice")
    await b.join(ROOM, b"bob")
    req = await b.leave(ROOM)
    assert await b.recv_type(Ack) == Ack(req, 0)
    assert await a.recv_type(Presence) == Presence(ROOM, b"bob", PresenceEvent.JOINED)
    assert await a.recv_type(Presence) == Presence(ROOM, b"bob", PresenceEvent.LEFT)
    await a.publish(ROOM, b"after")
    await a.delivers(1)
    with pytest.raises(TimeoutError):
        await b.recv_type(Deliver, timeout=0.3)


async def test_disconnect_announces_left(relay, make_client):
    a = await make_client(relay.port)
    b = await make_client(relay.port)
    await a.join(ROOM, b"alice")
    await b.join(ROOM, b"bob")
    await b.close()
    await a.recv_type(Presence)  # bob joined
    assert await a.recv_type(Presence) == Presence(ROOM, b"bob", PresenceEvent.LEFT)


async def test_same_member_id_replaces_the_older_connection(relay, make_client):
    old = await make_client(relay.port)
    await old.join(ROOM, b"bob")
    new = await make_client(relay.port)
    await new.join(ROOM, b"bob")
    err = await old.recv_type(Error)
    assert err.code == ErrorCode.REPLACED and err.room == ROOM
    await new.publish(ROOM, b"hi")
    assert (await new.delivers(1))[0].payload == b"hi"
    with pytest.raises(TimeoutError):
        await old.recv_type(Deliver, timeout=0.3)


# --- limits ---------------------------------------------------------------------------------


async def test_payload_over_max_payload_is_refused_and_connection_survives(
    make_relay, make_client
):
    relay = await make_relay(max_frame=4096)
    a = await make_client(relay.port)
    await a.join(ROOM, b"alice")
    max_payload = relay.config.limits.max_payload
    req = await a.publish(ROOM, b"x" * (max_payload + 1))
    err = await a.recv_type(Error)
    assert (err.code, err.req_id) == (ErrorCode.TOO_LARGE, req)
    await a.ws.send(b"\x01\x04" + b"y" * 5000)  # an envelope over max_frame
    assert (await a.recv_type(Error)).code == ErrorCode.TOO_LARGE
    await a.publish(ROOM, b"x" * max_payload)  # exactly the limit is fine
    assert len((await a.delivers(1))[0].payload) == max_payload


async def test_websocket_message_far_over_the_limit_closes_1009(make_relay, make_client):
    relay = await make_relay(max_frame=4096)
    a = await make_client(relay.port)
    other = await make_client(relay.port)
    await other.join(ROOM, b"other")
    await a.ws.send(b"z" * 10_000)
    with pytest.raises(ConnectionClosed):
        await a.recv()
    assert a.ws.close_code == 1009
    await other.publish(ROOM, b"still here")
    assert (await other.delivers(1))[0].payload == b"still here"


async def test_rate_limit_refuses_with_the_req_id(make_relay, make_client):
    clock = ManualClock()  # time stands still: no refill until the test advances it
    relay = await make_relay(rate_per_second=5, burst=5, flood_frames=1000, clock=clock)
    a = await make_client(relay.port)
    await a.join(ROOM, b"alice")  # spends one token
    reqs = [await a.publish(ROOM, b"%d" % k) for k in range(10)]
    acks, errs = [], []
    while len(acks) + len(errs) < 10:
        f = await a.recv_type(Ack | Error)
        (acks if isinstance(f, Ack) else errs).append(f)
    assert len(acks) == 4  # the burst less the join's token
    assert all(e.code == ErrorCode.RATE_LIMITED for e in errs)
    assert sorted(e.req_id for e in errs) == reqs[len(acks):]
    await clock.advance(0.1)  # half a token: still refused
    await a.publish(ROOM, b"too soon")
    assert (await a.recv_type(Ack | Error)).code == ErrorCode.RATE_LIMITED
    await clock.advance(0.2)  # the bucket has refilled one token: publishing works again
    await a.publish(ROOM, b"later")
    assert isinstance(await a.recv_type(Ack | Error), Ack)


async def test_flood_is_disconnected(make_relay, make_client):
    relay = await make_relay(rate_per_second=1, burst=2, flood_frames=20)
    a = await make_client(relay.port)
    other = await make_client(relay.port)
    await other.join(ROOM, b"other")
    await a.join(ROOM, b"alice")
    codes = []
    with pytest.raises(ConnectionClosed):
        for k in range(100):
            await a.publish(ROOM, b"f%d" % k)
        while True:
            f = await a.recv(timeout=3)
            if isinstance(f, Error):
                codes.append(f.code)
    assert ErrorCode.RATE_LIMITED in codes and codes[-1] == ErrorCode.FLOOD
    assert a.ws.close_code == 1008 and a.ws.close_reason.startswith("flood")
    await other.publish(ROOM, b"unaffected")
    while (await other.recv_type(Deliver)).payload != b"unaffected":
        pass


async def test_rooms_per_connection(make_relay, make_client):
    relay = await make_relay(max_rooms_per_connection=2)
    a = await make_client(relay.port)
    await a.join(b"r1", b"a")
    await a.join(b"r2", b"a")
    err = await a.join_error(b"r3", b"a")
    assert err.code == ErrorCode.TOO_MANY_ROOMS
    await a.leave(b"r1")
    await a.recv_type(Ack)
    await a.join(b"r3", b"a")


async def test_members_per_room(make_relay, make_client):
    relay = await make_relay(max_members_per_room=2)
    cs = [await make_client(relay.port) for _ in range(3)]
    await cs[0].join(ROOM, b"a")
    await cs[1].join(ROOM, b"b")
    assert (await cs[2].join_error(ROOM, b"c")).code == ErrorCode.ROOM_FULL
    await cs[1].close()
    await until(lambda: len(relay.conns) == 2)  # the relay has processed the close
    await cs[2].join(ROOM, b"c")


async def test_total_connections(make_relay, make_client):
    relay = await make_relay(max_connections=2)
    a = await make_client(relay.port)
    b = await make_client(relay.port)
    c = await make_client(relay.port, hello=False)
    err = await c.recv()
    assert isinstance(err, Error) and err.code == ErrorCode.SERVER_FULL
    with pytest.raises(ConnectionClosed):
        await c.recv()
    assert c.ws.close_code == 1013
    await a.close()
    await until(lambda: len(relay.conns) == 1)  # wait for the relay, not for a fixed time
    d = await make_client(relay.port)  # a slot is free again
    await d.join(ROOM, b"d")
    await b.join(ROOM, b"b")


async def test_slow_consumer_is_disconnected_and_never_stalls_the_room(
    make_relay, make_client
):
    relay = await make_relay(max_frame=16384, send_queue_bytes=65536, rate_per_second=10_000,
                             burst=10_000)
    fast = await make_client(relay.port)
    # The slow client stops reading; a small kernel receive buffer so that the relay's send
    # queue, not the kernel, has to absorb the backlog.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", relay.port))
    sock.setblocking(False)
    slow = await make_client(relay.port, max_queue=1, sock=sock)
    await fast.join(ROOM, b"fast")
    await slow.join(ROOM, b"slow")
    slow.ws.transport.pause_reading()
    payload = os.urandom(16000)
    n = 300  # 4.8 MB: far more than the kernel buffers plus the 64 KiB queue
    t0 = time.monotonic()
    for _ in range(n):
        await fast.publish(ROOM, payload)
    got = await fast.delivers(n, timeout=20)
    assert len(got) == n and all(d.payload == payload for d in got)
    assert time.monotonic() - t0 < 15
    slow.ws.transport.resume_reading()
    codes = []
    try:
        while True:
            f = await slow.recv(timeout=10)
            if isinstance(f, Error):
                codes.append(f.code)
    except ConnectionClosed:
        pass
    assert ErrorCode.SLOW_CONSUMER in codes
    assert slow.ws.close_code == 1008
    assert slow.ws.close_reason.startswith("slow_consumer")


async def test_idle_timeout(make_relay, make_client):
    clock = ManualClock()
    relay = await make_relay(idle_timeout=60.0, clock=clock)
    a = await make_client(relay.port)
    b = await make_client(relay.port)
    await clock.advance(30.0)
    await b.join(ROOM, b"b")  # b is active at t = 30; a has said nothing since its Hello at 0
    await clock.advance(31.0)  # t = 61: a is idle for 61 s, b for 31 s
    with pytest.raises(ConnectionClosed):
        while True:
            f = await a.recv(timeout=4)
            assert isinstance(f, Error) and f.code == ErrorCode.IDLE_TIMEOUT
    assert a.ws.close_reason.startswith("idle_timeout")
    await b.publish(ROOM, b"still here")  # b was not idle long enough and still works
    assert (await b.recv_type(Deliver)).payload == b"still here"


async def test_hello_timeout(make_relay, make_client):
    relay = await make_relay(handshake_timeout=0.5)
    a = await make_client(relay.port, hello=False)
    err = await a.recv(timeout=3)
    assert isinstance(err, Error) and err.code == ErrorCode.HELLO_REQUIRED
    with pytest.raises(ConnectionClosed):
        await a.recv(timeout=3)


async def test_keepalive_ping_closes_a_dead_peer(make_relay, make_client):
    relay = await make_relay(ping_interval=0.2, ping_timeout=0.3, close_timeout=0.5)
    a = await make_client(relay.port, ping_interval=None)
    b = await make_client(relay.port)
    await b.join(ROOM, b"b")
    await a.join(ROOM, b"a")
    a.ws.transport.pause_reading()  # a never answers pings any more
    for _ in range(50):
        await asyncio.sleep(0.1)
        if len(relay.conns) == 1:
            break
    assert len(relay.conns) == 1
    assert await b.recv_type(Presence) == Presence(ROOM, b"a", PresenceEvent.JOINED)
    assert await b.recv_type(Presence) == Presence(ROOM, b"a", PresenceEvent.LEFT)
    a.ws.transport.abort()  # its close handshake could only time out


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", ErrorCode.BAD_FRAME),
        (b"\xff\xfe garbage", ErrorCode.UNSUPPORTED_VERSION),
        (bytes([ENVELOPE_VERSION]), ErrorCode.BAD_FRAME),
        (bytes([ENVELOPE_VERSION, 200]), ErrorCode.UNKNOWN_TYPE),
        (bytes([ENVELOPE_VERSION, FrameType.DELIVER]) + bytes(20), ErrorCode.UNKNOWN_TYPE),
        (bytes([2, FrameType.PUBLISH]), ErrorCode.UNSUPPORTED_VERSION),
        (bytes([ENVELOPE_VERSION, FrameType.PUBLISH, 0, 0, 0, 7, 0x40]), ErrorCode.BAD_FRAME),
        (encode(Hello("x")) + b"trailing", ErrorCode.BAD_FRAME),
    ],
)
async def test_bad_input_gets_an_error_and_the_connection_keeps_working(
    relay, make_client, data, code
):
    a = await make_client(relay.port)
    await a.join(ROOM, b"a")
    await a.ws.send(data)
    err = await a.recv_type(Error)
    assert err.code == code
    await a.publish(ROOM, b"ok")
    assert (await a.delivers(1))[0].payload == b"ok"


async def test_text_frames_and_second_hello(relay, make_client):
    a = await make_client(relay.port)
    await a.ws.send("hello as text")
    assert (await a.recv_type(Error)).code == ErrorCode.BAD_FRAME
    await a.send(Hello())
    assert (await a.recv_type(Error)).code == ErrorCode.BAD_FRAME


async def test_unsupported_version_in_hello_closes(relay, make_client):
    a = await make_client(relay.port, hello=False)
    await a.ws.send(bytes([9, FrameType.HELLO, 0]))
    err = await a.recv()
    assert isinstance(err, Error) and err.code == ErrorCode.UNSUPPORTED_VERSION
    assert "speaks 1" in err.reason
    with pytest.raises(ConnectionClosed):
        await a.recv()

