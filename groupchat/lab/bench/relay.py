"""``groupchat bench relay``: our relay against a bare websockets broadcast server, same run.

Both servers run as subprocesses on 127.0.0.1, so the server CPU read from ``/proc/PID/stat``
is the server's alone, not the load client's. One load client (this process) drives both with
the same loop: N clients in one room, a few publishers, a bounded window of messages in flight,
a fixed number of messages. It prints deliveries/s, server CPU µs per delivery and p50/p99
latency, and our relay's CPU per delivery as a ratio to the bare server's. With redis-server
installed it also runs the Redis-backed figures: one relay over Redis against the in-memory relay
at the same N (CPU per delivery, redis-server included), and two relay processes vs one. Each
ratio is printed beside its target (``targets.TARGETS``), met or NOT met.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection, connect

from ...relay_protocol import FrameType, Hello, Join, Joined, Publish, ServerHello, decode_server, encode
from .targets import header, target, target_line

__all__ = ["main"]

_TICK = os.sysconf("SC_CLK_TCK")
_HDR = struct.Struct(">HIQ")  # publisher, message index, send time (ns)
ROOM = b"bench"
_CPU = target("relay.cpu")
_REDIS = target("relay.redis")


@dataclass
class Result:
    name: str
    n: int
    deliveries: int
    wall: float
    cpu: float  # server seconds, summed over server processes
    lat_ns: list[int]

    @property
    def per_s(self) -> float:
        return self.deliveries / self.wall

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.deliveries * 1e6

    def pct(self, q: float) -> float:
        s = sorted(self.lat_ns)
        return s[min(len(s) - 1, int(q * len(s)))] / 1e6 if s else float("nan")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


@contextmanager
def _server(cmd: list[str], pattern: str, timeout: float = 20) -> Iterator[tuple[int, int]]:
    """Run a server subprocess until the block ends; yield (pid, port). Stops it by PID."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        port = 0
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            m = re.search(pattern, line)
            if m:
                port = int(m.group(1))
                break
        if not port:
            raise RuntimeError(f"server did not start: {' '.join(cmd)}")
        # Drain its output in the background so it never blocks on a full pipe.
        import threading

        threading.Thread(target=proc.stdout.read, daemon=True).start()
        yield proc.pid, port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _relay_cmd(*extra: str) -> list[str]:
    return [
        sys.executable, "-m", "server", "--port", "0", "--log-level", "info",
        "--rate", "1000000", "--burst", "1000000", "--max-members-per-room", "100000",
        "--max-connections", "100000", "--ping-interval", "0", *extra,
    ]


_RELAY_PAT = r"event=listening .*port=(\d+)"
_BARE_CMD = [sys.executable, "-m", "groupchat.lab.bench.bare_relay", "0"]
_BARE_PAT = r"listening port=(\d+)"


async def _load(
    ports: list[int], pids: list[int], n: int, messages: int, size: int, window: int,
    publishers: int, enveloped: bool, name: str, timeout: float,
) -> Result:
    """Connect n clients (spread over ``ports``), publish ``messages``, count every delivery."""
    conns: list[ClientConnection] = []
    for i in range(n):
        ws = await connect(
            f"ws://127.0.0.1:{ports[i % len(ports)]}", compression=None, max_size=2**21,
            ping_interval=None, open_timeout=30,
        )
        conns.append(ws)
    if enveloped:
        for i, ws in enumerate(conns):
            await ws.send(encode(Hello("bench")))
            assert isinstance(decode_server(await ws.recv()), ServerHello)  # type: ignore[arg-type]
            await ws.send(encode(Join(1, ROOM, b"m%d" % i)))
            while not isinstance(decode_server(await ws.recv()), Joined):  # type: ignore[arg-type]
                pass  # presence of earlier joiners
    # Let presence traffic settle before measuring.
    await asyncio.sleep(0.3)
    for ws in conns:
        while True:
            try:
                async with asyncio.timeout(0.001):
                    await ws.recv()
            except TimeoutError:
                break

    remaining: dict[int, int] = {}
    inflight = asyncio.Semaphore(window)
    lat: list[int] = []
    delivered = 0
    total = messages * n
    done = asyncio.Event()

    async def reader(ws: ClientConnection) -> None:
        nonlocal delivered
        async for msg in ws:
            assert isinstance(msg, bytes)
            if enveloped and msg[1] != FrameType.DELIVER:
                continue  # the Ack to a publisher
            _, idx, t0 = _HDR.unpack_from(msg, len(msg) - size)
            lat.append(time.perf_counter_ns() - t0)
            delivered += 1
            left = remaining[idx] - 1
            if left:
                remaining[idx] = left
            else:
                del remaining[idx]
                inflight.release()
            if delivered >= total:
                done.set()

    pad = bytes(size - _HDR.size)

    async def publisher(p: int, idxs: range) -> None:
        ws = conns[p]
        for idx in idxs:
            await inflight.acquire()
            remaining[idx] = n
            payload = _HDR.pack(p, idx, time.perf_counter_ns()) + pad
            await ws.send(encode(Publish(idx, ROOM, payload)) if enveloped else payload)

    readers = [asyncio.create_task(reader(ws)) for ws in conns]
    cpu0 = sum(_cpu_seconds(pid) for pid in pids)
    t0 = time.perf_counter()
    per = -(-messages // publishers)
    pubs = [
        asyncio.create_task(publisher(p, range(p * per, min(messages, (p + 1) * per))))
        for p in range(publishers)
    ]
    try:
        async with asyncio.timeout(timeout):
            await done.wait()
    except TimeoutError:
        print(f"  ! {name} N={n}: timed out with {delivered}/{total} deliveries", flush=True)
    wall = time.perf_counter() - t0
    cpu = sum(_cpu_seconds(pid) for pid in pids) - cpu0
    for t in pubs + readers:
        t.cancel()
    await asyncio.gather(*pubs, *readers, return_exceptions=True)
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    return Result(name, n, delivered, wall, cpu, lat)


def _row(r: Result, base: Result | None) -> str:
    ratio = f"{r.cpu_us / base.cpu_us:5.2f}x" if base and base.cpu_us > 0 else "   1x "
    return (
        f"  {r.name:<22} N={r.n:<4} {r.per_s:>9,.0f} deliveries/s  {r.cpu_us:6.2f} µs CPU/delivery"
        f"  ({ratio})  p50 {r.pct(0.5):6.2f} ms  p99 {r.pct(0.99):7.2f} ms"
    )


def _messages_for(n: int, deliveries: int) -> int:
    return max(20, deliveries // n)


async def _compare(args: argparse.Namespace) -> list[tuple[Result, Result]]:
    pairs = []
    for n in args.clients:
        msgs = _messages_for(n, args.deliveries)
        pubs = min(n, args.publishers)
        best: dict[str, Result] = {}
        for _ in range(args.repeat):
            # Alternate bare and relay so that machine noise hits both alike; keep the best run.
            for name, cmd, pat, env in (
                ("bare websockets", _BARE_CMD, _BARE_PAT, False),
                ("groupchat relay", _relay_cmd(), _RELAY_PAT, True),
            ):
                with _server(cmd, pat) as (pid, port):
                    r = await _load([port], [pid], n, msgs, args.size, args.window, pubs, env,
                                    name, args.timeout)
                if r.deliveries and (name not in best or r.cpu_us < best[name].cpu_us):
                    best[name] = r
        if len(best) == 2:
            base, ours = best["bare websockets"], best["groupchat relay"]
            print(_row(base, None))
            print(_row(ours, base), flush=True)
            pairs.append((base, ours))
    return pairs


async def _redis_figure(args: argparse.Namespace) -> float | None:
    """Redis relays vs the in-memory one at the same N; returns the CPU ratio (None if skipped)."""
    from server.redis_server import redis_available, start_redis

    if not redis_available():
        print("  (redis-server not installed: Redis-backed figure skipped; see .ci/install-deps)")
        return None
    n = args.redis_clients
    msgs = _messages_for(n, args.deliveries)
    with _server(_relay_cmd(), _RELAY_PAT) as (pid, port):
        memory = await _load([port], [pid], n, msgs, args.size, args.window, min(n, args.publishers), True,
                             "in-memory relay", args.timeout)
    redis = start_redis()
    try:
        results = []
        for procs in (1, 2):
            cmd = _relay_cmd("--redis", redis.url)
            with _server(cmd, _RELAY_PAT) as (pid1, port1):
                if procs == 2:
                    with _server(cmd, _RELAY_PAT) as (pid2, port2):
                        r = await _load([port1, port2], [pid1, pid2, redis.pid], n, msgs,
                                        args.size, args.window, min(n, args.publishers), True,
                                        "redis, 2 relays", args.timeout)
                else:
                    r = await _load([port1], [pid1, redis.pid], n, msgs, args.size, args.window,
                                    min(n, args.publishers), True, "redis, 1 relay",
                                    args.timeout)
            results.append(r)
        one, two = results
        print(_row(memory, None))
        print(_row(one, None).replace("(   1x )", "(CPU incl. redis)"))
        print(_row(two, None).replace("(   1x )", "(CPU incl. redis)"))
        print(f"  two relays vs one over Redis: {two.per_s / one.per_s:.2f}x deliveries/s, "
              f"{two.cpu_us / one.cpu_us:.2f}x CPU/delivery", flush=True)
    finally:
        redis.stop()
    return one.cpu_us / memory.cpu_us if memory.cpu_us > 0 and one.deliveries else None


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``groupchat bench relay`` flags: room sizes, load shape and the Redis figure."""
    from ...cli import positive_int

    p.add_argument("--clients", type=positive_int, nargs="+", default=[10, 100, 500],
                   help="room sizes to run")
    p.add_argument("--deliveries", type=positive_int, default=100_000,
                   help="deliveries per run (messages = this / N)")
    p.add_argument("--size", type=int, default=256, help=f"payload bytes, at least {_HDR.size}")
    p.add_argument("--window", type=positive_int, default=8, help="messages in flight")
    p.add_argument("--publishers", type=positive_int, default=10, help="publishing clients")
    p.add_argument("--repeat", type=positive_int, default=2, help="runs per server, best kept")
    p.add_argument("--timeout", type=float, default=60, help="seconds per run at most")
    p.add_argument("--redis-clients", type=positive_int, default=100, help="N for the Redis figure")
    p.add_argument("--no-redis", action="store_true", help="skip the Redis-backed figure")


def main(argv: list[str]) -> int:
    """Run the benchmark stand-alone; returns 0, or 1 if our relay missed its CPU target."""
    p = argparse.ArgumentParser(
        prog="groupchat bench relay", description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_arguments(p)
    return run(p.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; returns 0, 1 if our relay missed its CPU target (``relay.cpu``) at any N
    (or nothing was measured), 2 on bad flags."""
    if args.size < _HDR.size:
        print(f"groupchat bench relay: error: --size must be at least {_HDR.size}", file=sys.stderr)
        return 2
    print(f"relay benchmark: loopback, payload {args.size} B, window {args.window}, "
          f"~{args.deliveries:,} deliveries per run, best of {args.repeat}; CPU is the server "
          "process's own (ratio vs bare websockets in this run)", flush=True)
    t0 = time.monotonic()
    pairs = asyncio.run(_compare(args))
    ratios = [(ours.n, ours.cpu_us / base.cpu_us if base.cpu_us > 0 else None) for base, ours in pairs]
    timed = [r for _, r in ratios if r is not None]
    if timed:
        print(f"  CPU per delivery vs bare: {', '.join(f'{r:.2f}x' for r in timed)} "
              f"(median {statistics.median(timed):.2f}x)", flush=True)
    redis_ratio = None if args.no_redis else asyncio.run(_redis_figure(args))
    print()
    print("Targets (issue 16), each beside its ratio in this run (\"not measured\": a run too short for")
    print(f"the CPU clock, or skipped); the exit status is 1 if {_CPU.what} misses its target:")
    print(header())
    for n, r in ratios:
        print(target_line(_CPU, r, f"N = {n}"))
    if not ratios:
        print(target_line(_CPU, None))
    print(target_line(_REDIS, redis_ratio, f"N = {args.redis_clients}"))
    print(f"  ({time.monotonic() - t0:.0f} s)")
    return 0 if timed and len(timed) == len(ratios) and max(timed) <= _CPU.limit else 1
