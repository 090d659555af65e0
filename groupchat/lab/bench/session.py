"""``groupchat bench session``: what the client session costs on top of the protocol core.

For each group size N (default 8, 32, 128) it builds a group of N real :class:`ChatSession`
objects in this process, talking to a relay subprocess on 127.0.0.1, and measures:

- **join**: a newcomer's time from starting its session to being a member (READY);
- **rekey**: from one member's ``/rekey`` until every member is in the new epoch;
- **fan-out**: from ``send_text`` until each other member has decrypted the message (p50, p99).

Beside each figure it does the same protocol work with the sans-I/O core alone, in the same run
and process: :class:`Group` objects handing bytes to each other through a list (request, commit,
every member processing it, the welcome; or encrypt and every member decrypting). The ratio
session/core is what the session adds: websockets, the relay hop, asyncio scheduling, the core
worker thread and the bookkeeping (the design's target: at most 1.5x). No assert is
made on timings; the report prints them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .targets import Target, header, target, target_line, verdict

if TYPE_CHECKING:
    from ...client.notices import Notice
    from ...client.session import ChatSession
    from ...core.group import Group

__all__ = ["main"]

ROOM = "bench"
# The rows of the report that carry a target (the others are printed for information).
_ROW_TARGETS: dict[str, Target] = {
    "join to ready": target("session.join"),
    "rekey, all in new epoch": target("session.rekey"),
    "fan-out p50": target("session.fanout"),
}


# --- the relay subprocess ------------------------------------------------------------------------


@contextlib.contextmanager
def _relay(timeout: float = 20.0) -> Iterator[int]:
    """A relay subprocess on 127.0.0.1 with limits out of the way; yields its port, stops it by PID."""
    cmd = [sys.executable, "-m", "server", "--port", "0", "--log-level", "info", "--rate", "1000000",
           "--burst", "1000000", "--max-members-per-room", "100000", "--ping-interval", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + timeout
        port = 0
        while time.monotonic() < deadline and not port:
            line = proc.stderr.readline()
            if not line:
                break
            m = re.search(r"event=listening .*port=(\d+)", line)
            port = int(m.group(1)) if m else 0
        if not port:
            raise RuntimeError("the relay did not start")
        threading.Thread(target=proc.stderr.read, daemon=True).start()  # never block on a full pipe
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- sessions -------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Peer:
    """A session and the moments its notices arrived (perf_counter seconds)."""

    name: str
    session: ChatSession
    task: asyncio.Task[None] | None = None
    ready_at: float | None = None
    epoch_at: dict[int, float] = field(default_factory=dict)
    read_at: dict[str, float] = field(default_factory=dict)  # text -> when decrypted here

    def notify(self, notice: Notice) -> None:
        from ...client.notices import ChatLine, ConnectionState, StatusChanged

        now = time.perf_counter()
        if isinstance(notice, StatusChanged):
            if notice.connection is ConnectionState.READY and self.ready_at is None:
                self.ready_at = now
            if notice.epoch is not None:
                self.epoch_at.setdefault(notice.epoch, now)
        elif isinstance(notice, ChatLine) and not notice.own:
            self.read_at.setdefault(notice.text, now)


class _SessionGroup:
    def __init__(self, port: int) -> None:
        self.url = f"ws://127.0.0.1:{port}"
        self.peers: list[_Peer] = []
        self._n = 0

    def start(self) -> _Peer:
        from ...client.session import ChatSession, SessionSettings
        from ...client.trust import TrustStore
        from ...core.identity import Identity

        self._n += 1
        name = f"m{self._n}"
        # An open room: the bench measures joins, rekeys and fan-out, the same with invites.
        settings = SessionSettings(self.url, ROOM, name, eviction_grace=3600.0, update_interval=3600.0,
                                   update_every=1_000_000, open_room=True)
        holder: list[_Peer] = []
        session = ChatSession(settings, Identity.generate(), TrustStore(None), lambda n: holder[0].notify(n))
        peer = _Peer(name, session)
        holder.append(peer)
        peer.task = asyncio.create_task(session.run(), name=f"bench-{name}")
        self.peers.append(peer)
        return peer

    def settled(self) -> bool:
        """Everyone is a member at the same epoch with the same code, with all N in the roster, and
        quiet (no first update still owed after a lost race): measuring starts from a still group,
        as the core's does."""
        from ...client.notices import ConnectionState

        statuses = [p.session.status for p in self.peers]
        return (
            all(s.connection is ConnectionState.READY for s in statuses)
            and len({(s.epoch, s.epoch_code) for s in statuses}) == 1
            and all(s.member_count == len(self.peers) for s in statuses)
            and all(p.session.quiet for p in self.peers)
        )

    async def wait(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                states = sorted({(s.connection.value, s.epoch, s.member_count)
                                 for s in (p.session.status for p in self.peers)}, key=str)
                raise TimeoutError(f"{what}: not done within {timeout:g} s; (state, epoch, members) "
                                   f"across the {len(self.peers)} sessions: {states}")
            for p in self.peers:
                if p.task is not None and p.task.done():
                    raise RuntimeError(f"{p.name}'s session ended: {p.task.exception()!r}")
            await asyncio.sleep(0.005)

    async def grow_to(self, n: int, batch: int, timeout: float) -> None:
        while len(self.peers) < n:
            for _ in range(min(batch if self.peers else 1, n - len(self.peers))):
                self.start()
            await self.wait(self.settled, timeout, f"group of {len(self.peers)}")

    async def close(self) -> None:
        async def stop(p: _Peer) -> None:
            with contextlib.suppress(Exception):
                await p.session.close(leave=False, timeout=2.0)
            if p.task is not None:
                p.task.cancel()
                with contextlib.suppress(BaseException):
                    await p.task

        await asyncio.gather(*(stop(p) for p in self.peers))


# --- the core alone ------------------------------------------------------------------------------


def _core_group(n: int) -> tuple[list[Group], Callable[[bytes], None]]:
    """N core members at one epoch, and a function that hands bytes to every one of them."""
    from ...core.events import EpochChanged
    from ...core.group import Group
    from ...core.identity import Identity, JoinRequest
    from .scene import take_welcome

    creator = Group.create(Identity.generate(), b"groupchat room:" + ROOM.encode(), "m0")
    pendings = [JoinRequest.create(creator.suite, Identity.generate(), creator.group_id, f"m{i}")
                for i in range(1, n)]
    members = [creator]
    for start in range(0, len(pendings), 32):  # a commit carries at most 64 operations
        chunk = pendings[start : start + 32]
        data = creator.commit(add=[p.request for p in chunk])
        for g in members:
            event = g.receive(data)
            if g is creator:
                assert isinstance(event, EpochChanged) and event.own
        welcome = take_welcome(creator, len(chunk))
        members += [Group.join(p, welcome) for p in chunk]

    def deliver(data: bytes) -> None:
        for g in members:
            g.receive(data)

    return members, deliver


def _core_join(members: list[Group], deliver: Callable[[bytes], None], tag: int) -> float:
    """Request, every member judging it, commit, every member processing it, the joiner opening
    the welcome (seconds). Every session judges each join request it reads (the coordinator's
    rule: any member in line may have to commit the Add), so the core does too."""
    from ...core.events import EpochChanged
    from ...core.group import Group
    from ...core.identity import Identity, JoinRequest
    from .scene import take_welcome

    t0 = time.perf_counter()
    pending = JoinRequest.create(members[0].suite, Identity.generate(), members[0].group_id, f"j{tag}")
    committer = members[tag % len(members)]
    for g in members:
        g.classify_request(pending.request, None, None, time.time())
    data = committer.commit(add=[pending.request])
    for g in members:
        event = g.receive(data)
        if g is committer:
            assert isinstance(event, EpochChanged) and event.own
    elapsed = time.perf_counter() - t0
    welcome = take_welcome(committer, 1)  # untimed, like the event field read it replaces
    t0 = time.perf_counter()
    joiner = Group.join(pending, welcome)
    elapsed += time.perf_counter() - t0
    # The joiner stays and commits its first Update (untimed), as a session's joiner does.
    members.append(joiner)
    deliver(joiner.commit(update=True))
    return elapsed


def _core_rekey(members: list[Group], deliver: Callable[[bytes], None], tag: int) -> float:
    t0 = time.perf_counter()
    deliver(members[tag % len(members)].commit(update=True))
    return time.perf_counter() - t0


def _core_fanout(members: list[Group], tag: int) -> list[float]:
    """Per-recipient latency of one message: encrypt, then each member decrypts in turn."""
    sender = members[tag % len(members)]
    t0 = time.perf_counter()
    data = sender.encrypt(f"bench message {tag}".encode())
    out = []
    for g in members:
        g.receive(data)
        if g is not sender:
            out.append(time.perf_counter() - t0)
    return out


# --- measuring ------------------------------------------------------------------------------------


@dataclass
class Figures:
    n: int
    join_session: list[float] = field(default_factory=list)
    join_core: list[float] = field(default_factory=list)
    rekey_session: list[float] = field(default_factory=list)
    rekey_core: list[float] = field(default_factory=list)
    fan_session: list[float] = field(default_factory=list)
    fan_core: list[float] = field(default_factory=list)
    fan_cpu_session: float = 0.0  # this process's CPU seconds over the session fan-out phase
    fan_cpu_core: float = 0.0
    build_seconds: float = 0.0
    idle_cpu: float = 0.0  # CPU seconds per session per second while nothing happens (timers)


def _pct(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def _is_ready(peer: _Peer) -> Callable[[], bool]:
    return lambda: peer.ready_at is not None


def _all_in_epoch(peers: Sequence[_Peer], epoch: int) -> Callable[[], bool]:
    return lambda: all(epoch in p.epoch_at for p in peers)


def _all_read(peers: Sequence[_Peer], text: str) -> Callable[[], bool]:
    return lambda: all(text in p.read_at for p in peers)


async def _measure(n: int, args: argparse.Namespace) -> Figures:
    fig = Figures(n)
    members, deliver = _core_group(n)
    with _relay() as port:
        group = _SessionGroup(port)
        try:
            t0 = time.perf_counter()
            await group.grow_to(n, args.batch, args.timeout)
            fig.build_seconds = time.perf_counter() - t0
            await asyncio.sleep(0.5)  # the last joiners' updates and their echoes settle first
            cpu0, t0 = time.process_time(), time.perf_counter()
            await asyncio.sleep(1.0)
            fig.idle_cpu = (time.process_time() - cpu0) / (time.perf_counter() - t0) / len(group.peers)
            for i in range(args.rekeys):
                member = group.peers[(i * 7) % len(group.peers)]
                epoch = member.session.status.epoch
                assert epoch is not None
                t0 = time.perf_counter()
                member.session.request_rekey()
                await group.wait(_all_in_epoch(group.peers, epoch + 1), args.timeout, "rekey")
                fig.rekey_session.append(max(p.epoch_at[epoch + 1] for p in group.peers) - t0)
                await group.wait(group.settled, args.timeout, "settle after rekey")
                fig.rekey_core.append(_core_rekey(members, deliver, i))
            for i in range(args.messages):
                sender = group.peers[(i * 5) % len(group.peers)]
                text = f"bench message {i}"
                others = [p for p in group.peers if p is not sender]
                t0, cpu0 = time.perf_counter(), time.process_time()
                sender.session.send_text(text)
                await group.wait(_all_read(others, text), args.timeout, "fan-out")
                fig.fan_cpu_session += time.process_time() - cpu0
                fig.fan_session += [p.read_at[text] - t0 for p in others]
                cpu0 = time.process_time()
                fig.fan_core += _core_fanout(members, i)
                fig.fan_cpu_core += time.process_time() - cpu0
            # Joins last: each newcomer stays (N, N+1, ...), in the session group and the core one.
            for i in range(args.joins):
                peer = group.start()
                started = time.perf_counter()
                await group.wait(_is_ready(peer), args.timeout, "join")
                assert peer.ready_at is not None
                fig.join_session.append(peer.ready_at - started)
                await group.wait(group.settled, args.timeout, "settle after join")
                fig.join_core.append(_core_join(members, deliver, i))
        finally:
            await group.close()
    return fig


def _report(fig: Figures) -> list[tuple[Target, float]]:
    """Print one size's rows; return each target's measured ratio."""
    rows = [
        ("join to ready", statistics.median(fig.join_session), statistics.median(fig.join_core)),
        ("rekey, all in new epoch", statistics.median(fig.rekey_session), statistics.median(fig.rekey_core)),
        ("fan-out p50", _pct(fig.fan_session, 0.5), _pct(fig.fan_core, 0.5)),
        ("fan-out p99", _pct(fig.fan_session, 0.99), _pct(fig.fan_core, 0.99)),
        # All N sessions share this process, so their latencies queue behind each other; CPU per
        # delivery is what one member's own process would spend.
        ("fan-out CPU/delivery", fig.fan_cpu_session / max(1, len(fig.fan_session)),
         fig.fan_cpu_core / max(1, len(fig.fan_core))),
    ]
    print(f"  N = {fig.n} (group built through the relay in {fig.build_seconds:.1f} s; joins at N..N+"
          f"{len(fig.join_session) - 1}; "
          f"{len(fig.join_session)} joins, {len(fig.rekey_session)} rekeys, "
          f"{len(fig.fan_session)} deliveries)")
    print(f"    idle: {fig.idle_cpu * 1e3:.2f} ms CPU per session per second (timers, no traffic)")
    measured: list[tuple[Target, float]] = []
    for label, session, core in rows:
        ratio = session / core if core > 0 else float("inf")
        t = _ROW_TARGETS.get(label)
        mark = f"  {verdict(ratio, t)} (≤ {t.limit:g}x)" if t is not None else ""
        if t is not None:
            measured.append((t, ratio))
        print(f"    {label:<24} session {session * 1e3:9.2f} ms   core {core * 1e3:9.2f} ms   {ratio:6.2f}x"
              + mark)
    return measured


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``groupchat bench session`` flags: sizes and how many joins, rekeys and messages to time."""
    from ...cli import positive_int

    p.add_argument("--sizes", type=int, nargs="+", default=[8, 32, 128], help="group sizes")
    p.add_argument("--joins", type=positive_int, default=3, help="timed joins per size")
    p.add_argument("--rekeys", type=positive_int, default=5, help="timed rekeys per size")
    p.add_argument("--messages", type=positive_int, default=20, help="timed messages per size")
    p.add_argument("--batch", type=positive_int, default=8, help="sessions started together while building")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds for any one step at most")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print the report; returns 0 (figures are reported, not asserted)."""
    if min(args.sizes) < 2 or min(args.joins, args.rekeys, args.messages, args.batch) < 1:
        print("groupchat bench session: error: sizes must be at least 2 and every count at least 1",
              file=sys.stderr)
        return 2
    print(f"session benchmark: {', '.join(map(str, args.sizes))} sessions in one process over a relay "
          "subprocess on loopback, beside the same work by the core alone", flush=True)
    t0 = time.monotonic()
    measured: list[tuple[int, Target, float]] = []
    for n in args.sizes:
        fig = asyncio.run(_measure(n, args))
        measured += [(n, t, ratio) for t, ratio in _report(fig)]
        sys.stdout.flush()
    print()
    print("Targets (issue 16, stated at N = 8, 32, 128), each beside its ratio in this run; reported,")
    print("never asserted (the exit status does not depend on them):")
    print(header())
    for n, t, ratio in measured:
        print(target_line(t, ratio, f"N = {n}"))
    print(f"  ({time.monotonic() - t0:.0f} s)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``groupchat bench session [--sizes 8 32 128] ...``"""
    p = argparse.ArgumentParser(prog="groupchat bench session", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return run(p.parse_args(list(argv) if argv is not None else None))
