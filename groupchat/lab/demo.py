"""``groupchat demo``: a relay, chatting bots that come and go, and your own chat window, in one command.

The demo starts an embedded relay on 127.0.0.1, then K bot peers (default 4) that join the same
room, chat, and churn on a schedule: one leaves, a newcomer joins, one loses its connection and
reconnects (the relay drops it; it resumes from the last sequence number it saw). Every join and
leave rekeys the group, and the timeline says what it cost. Your own chat TUI joins the room too.

``--headless`` runs without the TUI for ``--seconds`` and prints the transcript from the first
bot's point of view (plus every peer's warnings and reconnects). It then checks the run and exits
0 only if every two peers agree on the epoch code of every epoch they both saw, the members still
in the group end on the same epoch, and every message reached every member of its epoch;
otherwise it prints what disagreed and exits 1. Without a terminal the demo runs headless.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ..core.errors import UsageError  # light: no crypto behind it
from .demo_attack import NO_ATTACK, Attack  # light too: the hostile relay loads with an attack
from .demo_checks import PeerView, SentMessage, find_problems

if TYPE_CHECKING:
    from ..client.notices import Notice
    from ..client.session import ChatSession
    from .demo_attack import AnyRelay

__all__ = ["PeerView", "SentMessage", "add_arguments", "find_problems", "main", "run"]

HEADLESS_DEFAULT_SECONDS: Final = 15.0
_OTHER_TERMINALS: Final = "other terminals"  # the label of the --keep-relay invite (/invites shows it)
INVITE_TIMEOUT: Final = 20.0  # how long the host may take to be in and to have an invite committed
SETTLE_TIMEOUT: Final = 15.0  # after the run: how long deliveries and pending joins may take
LEAVE_TIMEOUT: Final = 5.0
_BOT_NAMES: Final = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter",
)
_PHRASES: Final = (
    "hello, all", "anyone around?", "the keys just changed under us", "keys look fresh",
    "coffee?", "reading you loud and clear", "epoch codes match on my side", "brb",
    "who is new here?", "nice and quiet", "rekeys are cheap today", "back again",
)


# --- command line ---------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--peers", type=int, default=4, metavar="K", help="bot peers")
    parser.add_argument("--churn", type=float, default=10.0, metavar="PER_MIN",
                        help="churn events per minute: leave, join, reconnect in turn")
    parser.add_argument("--scheme", choices=("tree", "ring"), default="tree",
                        help="group key scheme")
    parser.add_argument("--headless", action="store_true", help="no TUI: print the transcript and check it")
    parser.add_argument("--seconds", type=float, metavar="N",
                        help=f"run for N seconds (headless default {HEADLESS_DEFAULT_SECONDS:g}; "
                        "with the TUI: until you quit)")
    parser.add_argument("--keep-relay", action="store_true",
                        help="keep the relay and the bots after the run and print the command (with an "
                        "invite) to join from another terminal")
    from ..cli import port_number

    parser.add_argument("--port", type=port_number, default=0,
                        help="relay port on 127.0.0.1 (default: any free)")
    parser.add_argument("--room", default="demo", help="room name")
    parser.add_argument("--name", default=_default_name(),
                        help="your name in the TUI (the roster marks it \"(you)\")")
    parser.add_argument("--seed", type=int, help="seed for the chat and churn schedule (default random)")
    parser.add_argument("--log-dir", metavar="DIR", help="log directory (default: $GROUPCHAT_LOG_DIR or the "
                        "platform's)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="log detail")
    Attack.add_argument(parser)


def _default_name() -> str:
    """The user's login name if it makes a display name no bot has, else "guest" (not "you": the
    roster already marks our own line "(you)", and "you (you)" reads as a stutter)."""
    import getpass

    from ..core.text import has_unsafe

    try:
        name = getpass.getuser()
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        return "guest"
    ok = name.isascii() and 0 < len(name) <= 32 and not has_unsafe(name) and name not in _BOT_NAMES
    return name if ok and name.strip() == name else "guest"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="groupchat demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run the demo; in headless mode the exit status says whether the run checked out."""
    from pathlib import Path

    from ..client.config import load_config
    from ..client.logging_setup import configure_logging
    from ..core.errors import GroupChatError

    try:
        if not 1 <= args.peers <= len(_BOT_NAMES) // 2:
            raise DemoError(f"--peers must be between 1 and {len(_BOT_NAMES) // 2}")
        if args.churn < 0 or (args.seconds is not None and args.seconds <= 0):
            raise DemoError("--churn must not be negative and --seconds must be positive")
        if not 0 <= args.port <= 65535:
            raise DemoError("--port must be 0..65535")
        from ..client.session import SessionSettings

        # The sessions' own checks (room, name), before anything starts.
        SessionSettings("ws://127.0.0.1:1", args.room, args.name, scheme=args.scheme)
        if args.log_dir is not None:
            args.log_dir = Path(args.log_dir)
        config = load_config(argparse.Namespace(log_dir=args.log_dir, log_level=args.log_level))
        configure_logging(config.log_path, config.log_level)
    except GroupChatError as e:
        print(f"groupchat demo: error: {e}", file=sys.stderr)
        return 2
    headless = args.headless
    if not headless and not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("groupchat demo: no terminal here, so running headless (pass --headless to say so)", flush=True)
        headless = True
    options = DemoOptions(
        peers=args.peers, scheme=args.scheme, room=args.room, port=args.port,
        churn_per_min=0.0 if args.attack else args.churn,  # --attack: the relay's attack is the event
        seed=args.seed if args.seed is not None else random.randrange(1 << 30),
        seconds=args.seconds if args.seconds is not None else HEADLESS_DEFAULT_SECONDS if headless else None,
        keep_relay=args.keep_relay, name=args.name, attack=Attack.for_mode(args.attack),
        # Busy enough to check a short headless run; slow enough to read along in the TUI.
        chat_every=(0.8, 2.0) if headless else (4.0, 10.0),
    )
    try:
        if headless:
            return asyncio.run(_headless(options))
        return _with_tui(options)
    except KeyboardInterrupt:
        return 130


class DemoError(UsageError):
    """A demo flag out of range."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    peers: int
    churn_per_min: float
    scheme: str
    room: str
    port: int
    seed: int
    seconds: float | None
    keep_relay: bool
    name: str
    chat_every: tuple[float, float] = (0.8, 2.0)  # seconds between one bot's messages (min, max)
    attack: Attack = NO_ATTACK  # --attack: the hostile relay and its script (demo_attack.py)


# --- peers and the run -------------------------------------------------------------------------------


@dataclass(eq=False)
class _Sent:
    sender: _Peer
    local_id: int
    text: str


@dataclass(eq=False)
class _Peer:
    """One bot: its session, the task running it, and what it saw (for the checks)."""

    name: str
    session: ChatSession
    task: asyncio.Task[None]
    received: dict[tuple[str, str], int] = field(default_factory=dict)  # (sender, text) -> epoch
    own_epochs: dict[int, int] = field(default_factory=dict)  # local id -> epoch of our own line
    confirmed: set[int] = field(default_factory=set)
    departed: bool = False  # left the group (or its session ended)
    chatting: bool = True

    @property
    def ready(self) -> bool:
        from ..client.notices import ConnectionState

        return not self.departed and self.session.status.connection is ConnectionState.READY


class DemoRun:
    """The bots, their schedule and the end-of-run checks, on one asyncio loop with the relay."""

    def __init__(self, options: DemoOptions, relay: AnyRelay, write: Callable[[str], None]) -> None:
        self.options = options
        self.relay = relay
        self.url = f"ws://127.0.0.1:{relay.port}"
        self.write = write
        self.rng = random.Random(options.seed)
        self.peers: list[_Peer] = []
        self.sent: list[_Sent] = []
        self.start = time.monotonic()
        self._names = iter(_BOT_NAMES)
        self._counter = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self.observer: _Peer | None = None  # whose timeline the transcript shows in full
        # The room is invite-only, as every room is by default: the first bot (the host) makes
        # it, and every later peer, the user's own window included, comes in with its invite.
        self._codes: list[str] = []  # invite codes the host's timeline showed, in order

    def say(self, text: str) -> None:
        self.write(f"{time.monotonic() - self.start:7.2f}s demo: {text}")

    # --- peers ----------------------------------------------------------------------------------

    async def invite(self, name: str, uses: int = 1, hours: float = 1.0) -> str | None:
        """``/invite`` at the host for ``name``; its code once the group has it (None: no host,
        or no code within the timeout)."""
        host = self.observer
        if host is None:
            return None
        deadline = time.monotonic() + INVITE_TIMEOUT
        while not host.ready and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        before = len(self._codes)
        host.session.invite(uses, hours, name)
        while len(self._codes) == before and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self._codes[before] if len(self._codes) > before else None

    async def start_peer(self) -> _Peer:
        """A bot: the host if there is none yet, else a joiner with the host's invite."""
        name = next(self._names)
        code = await self.invite(name) if self.observer is not None else None
        return self._start(name, code)

    def _start(self, name: str, code: str | None) -> _Peer:
        from ..client.notices import (
            ChatLine,
            MessageConfirmed,
            Placeholder,
            StatusChanged,
            TimelineEvent,
            TimelineKind,
        )
        from ..client.session import ChatSession, SessionSettings
        from ..client.transcript import Transcript
        from ..client.trust import TrustStore
        from ..core.identity import Identity

        transcript = Transcript(self.write, name, start=self.start)
        own_kinds = (TimelineKind.WARNING, TimelineKind.RECONNECTED, TimelineKind.DISCONNECTED)
        peer: _Peer

        def notify(notice: Notice) -> None:
            self.options.attack.seen(peer, notice)
            if isinstance(notice, ChatLine):
                if notice.own and notice.local_id is not None:
                    peer.own_epochs[notice.local_id] = notice.epoch
                elif not notice.own:
                    peer.received[(notice.sender, notice.text)] = notice.epoch
            elif isinstance(notice, MessageConfirmed):
                peer.confirmed.add(notice.local_id)
            elif peer is self.observer and isinstance(notice, TimelineEvent):
                code = _invite_code(notice.text)
                if code is not None:
                    self._codes.append(code)
            # The observer's whole timeline; from the others only what is theirs alone.
            if peer is self.observer or isinstance(notice, Placeholder | StatusChanged) or (
                isinstance(notice, TimelineEvent) and notice.kind in own_kinds
            ):
                transcript.notify(notice)

        # Each bot connects on its own path so that the demo can find its connection on the relay
        # (to drop it for the reconnect); the relay serves any path.
        settings = SessionSettings(
            relay_url=f"{self.url}/demo/{name}",
            room=self.options.room,
            name=name,
            scheme=self.options.scheme,
            invite=code,
            **self.options.attack.settings,
        )
        session = ChatSession(settings, Identity.generate(), TrustStore(None), notify)
        task = asyncio.create_task(session.run(), name=f"demo-{name}")
        peer = _Peer(name, session, task)
        if self.observer is None:
            self.observer = peer
        task.add_done_callback(lambda _t: setattr(peer, "departed", True))
        self.peers.append(peer)
        self._spawn(self._chat(peer))
        return peer

    async def _chat(self, peer: _Peer) -> None:
        rng = random.Random(self.rng.random())
        while peer.chatting and not peer.departed:
            await asyncio.sleep(rng.uniform(*self.options.chat_every))
            if peer.chatting and peer.ready:
                text = f"{rng.choice(_PHRASES)} (#{next(self._counter)})"
                self.sent.append(_Sent(peer, peer.session.send_text(text), text))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def active(self) -> list[_Peer]:
        return [p for p in self.peers if not p.departed and p.chatting]

    # --- churn ----------------------------------------------------------------------------------

    async def leave(self, peer: _Peer) -> None:
        """Stop chatting, let what it sent be echoed, then leave the group (a signed request)."""
        peer.chatting = False
        self.say(f"{peer.name} says goodbye and leaves")
        deadline = time.monotonic() + 3.0
        mine = [s.local_id for s in self.sent if s.sender is peer]
        while time.monotonic() < deadline and not set(mine) <= peer.confirmed:
            await asyncio.sleep(0.05)
        peer.session.leave()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(peer.task), LEAVE_TIMEOUT)
        if not peer.task.done():
            self.say(f"{peer.name} was not removed within {LEAVE_TIMEOUT:g} s; closing it")
        await peer.session.close()
        peer.departed = True

    def drop(self, peer: _Peer) -> bool:
        """Cut the peer's connection at the relay, as a network failure would."""
        path = f"/demo/{peer.name}"
        for conn in list(self.relay.conns.values()):
            request = conn.ws.request
            if request is not None and request.path == path:
                self.say(f"the network drops {peer.name}'s connection; it will reconnect and resume")
                conn.ws.transport.abort()
                return True
        return False

    async def churn(self, until: float) -> None:
        """Leave, join, reconnect in turn, every 60/churn seconds, starting once the peers are in."""
        if self.options.churn_per_min <= 0:
            return
        interval = 60.0 / self.options.churn_per_min
        await self.wait_ready(until)
        first = True
        for n in itertools.count():
            # The first event comes soon (short runs should show one); none starts near the end.
            at = time.monotonic() + (min(0.5, interval) if first else interval)
            if not first and at > until - 1.0:
                return
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            first = False
            candidates = [p for p in self.active() if p is not self.observer and p.ready]
            kind = ("leave", "join", "reconnect")[n % 3]
            if kind == "leave" and len(self.active()) <= 2:
                kind = "join"
            if kind == "leave" and candidates:
                await self.leave(self.rng.choice(candidates))
            elif kind == "join":
                peer = await self.start_peer()
                host = self.observer.name if self.observer is not None else "nobody"
                self.say(f"{peer.name} arrives with an invite from {host}")
            elif kind == "reconnect" and candidates:
                self.drop(self.rng.choice(candidates))

    async def wait_ready(self, until: float) -> bool:
        while time.monotonic() < until:
            if all(p.ready for p in self.active()):
                return True
            await asyncio.sleep(0.05)
        return False

    # --- the run ------------------------------------------------------------------------------------

    async def run(self, seconds: float) -> None:
        until = self.start + seconds
        self.say(f"relay on {self.url}, room {self.options.room!r}, scheme {self.options.scheme}, "
                 f"{self.options.peers} peers, churn {self.options.churn_per_min:g}/min, "
                 f"seed {self.options.seed}")
        for _ in range(self.options.peers):
            await self.start_peer()
            await asyncio.sleep(0.25)
        await self.options.attack.play(self, until)  # the churn, or (--attack) the relay's attack
        await asyncio.sleep(max(0.0, until - time.monotonic()))

    async def settle(self, timeout: float = SETTLE_TIMEOUT) -> list[str]:
        """Stop chatting, then wait until the checks pass or ``timeout``; return what is still wrong."""
        for p in self.peers:
            p.chatting = False
        deadline = time.monotonic() + timeout
        problems = self.check()
        while problems and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            problems = self.check()
        return problems

    def check(self) -> list[str]:
        """Everything that is not as it should be now (see :func:`find_problems`)."""
        views = [
            PeerView(
                name=p.name, epoch_codes=dict(p.session.epoch_codes), departed=p.departed,
                state=p.session.status.connection.value, epoch=p.session.status.epoch,
                received=dict(p.received), confirmed=frozenset(p.confirmed), own_epochs=dict(p.own_epochs),
            )
            for p in self.peers
        ]
        return find_problems(views, [SentMessage(m.sender.name, m.local_id, m.text) for m in self.sent])

    def summary(self) -> str:
        epochs = set().union(*(p.session.epoch_codes.keys() for p in self.peers)) if self.peers else set()
        return (f"{len(self.peers)} peers, {len(epochs)} epochs, {len(self.sent)} messages: every peer "
                "agreed on every epoch and every message reached every member of its epoch")

    async def close(self) -> None:
        """Stop every bot (each leaves the group on the way out) and the demo's own tasks."""
        for task in list(self._tasks):
            task.cancel()
        for p in self.peers:
            p.chatting = False

        async def stop(p: _Peer) -> None:
            with contextlib.suppress(Exception):
                await p.session.close()
            if not p.task.done():
                p.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await p.task

        await asyncio.gather(*(stop(p) for p in self.peers))


# --- the two modes ---------------------------------------------------------------------------------


async def _start_relay(port: int, attack: Attack = NO_ATTACK) -> AnyRelay:
    if attack.mode is not None:
        return await attack.start_relay(port)
    from server.config import RelayConfig
    from server.relay import Relay

    relay = Relay(RelayConfig(host="127.0.0.1", port=port))
    await relay.start()
    return relay


def _groupchat_executable() -> str:
    """How to run ``groupchat`` from another terminal: the script beside this Python (the venv's
    ``bin/groupchat``, absolute, since ``make demo`` puts nothing on PATH), else ``python -m``."""
    import os
    import shlex

    script = os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "groupchat")
    if os.access(script, os.X_OK):
        return shlex.quote(script)
    return f"{shlex.quote(os.path.abspath(sys.executable))} -m groupchat.cli"


def _chat_command(relay: AnyRelay, options: DemoOptions, code: str | None, name: str = "NAME") -> str:
    import shlex

    invite = f" --invite {code}" if code else ""
    return (f"{_groupchat_executable()} chat --relay ws://127.0.0.1:{relay.port} "
            f"--room {shlex.quote(options.room)} --name {name}{invite}")


def _redact_invites(line: str) -> str:
    """``line`` with every invite code's secret left out (for a log file)."""
    return re.sub(r"gci1-[a-z2-7]+", "gci1-…", line)


def _invite_code(text: str) -> str | None:
    """The code in an "invite ready" line of the session (wording.invite_ready)."""
    if not text.startswith("invite ready"):
        return None
    match = re.search(r"--invite (\S+)", text)
    return match.group(1) if match else None


async def _headless(options: DemoOptions) -> int:
    def write(line: str) -> None:
        print(line, flush=True)

    from ..client import session as _session  # noqa: F401  (import before the clock starts)

    relay = await _start_relay(options.port, options.attack)
    demo = DemoRun(options, relay, write)
    try:
        assert options.seconds is not None
        await demo.run(options.seconds)
        demo.say(f"{options.seconds:g} s are up: the bots stop chatting; checking the run")
        problems = await options.attack.settle(demo)  # --attack: did the client report it?
        if problems:
            write("FAILED: " + f"{len(problems)} problem(s):")
            for p in problems:
                write("  - " + p)
            return 1
        write("OK: " + options.attack.summary(demo))
        if options.keep_relay:
            code = await demo.invite(_OTHER_TERMINALS, uses=10, hours=24.0)
            write("the relay stays open; join from another terminal with (an invite for 10):\n  "
                  f"{_chat_command(relay, options, code)}\n(Ctrl-C to stop)")
            await asyncio.Event().wait()
        return 0
    finally:
        await demo.close()
        await relay.stop()


def _with_tui(options: DemoOptions) -> int:
    """Relay and bots on a background thread's loop; the user's TUI owns the main thread."""
    from ..client.notices import Notice as _Notice
    from ..client.session import ChatSession, SessionSettings
    from ..client.trust import TrustStore
    from ..core.identity import Identity
    from ..tui.app import ChatApp

    ready = threading.Event()
    box: dict[str, AnyRelay] = {}
    demos: list[DemoRun] = []
    demo_ready = threading.Event()
    failure: list[BaseException] = []
    loop = asyncio.new_event_loop()
    stop: asyncio.Event | None = None
    log = logging.getLogger("groupchat.demo")

    async def backdrop() -> None:
        nonlocal stop
        stop = asyncio.Event()
        try:
            relay = box["relay"] = await _start_relay(options.port, options.attack)
        except BaseException as e:
            failure.append(e)
            raise
        finally:
            ready.set()
        # The bots' transcript goes to the log file (the terminal belongs to the TUI), without
        # the secret of the host's invites: a log is no place for a bearer secret.
        demo = DemoRun(options, relay, lambda line: log.info("%s", _redact_invites(line)))
        demos.append(demo)
        demo_ready.set()
        try:
            seconds = options.seconds if options.seconds is not None else float("inf")
            runner = asyncio.ensure_future(demo.run(min(seconds, 10 * 365 * 86400.0)))
            await stop.wait()
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner
            if options.keep_relay:
                # The bots stay, quiet: the host holds the group the printed invite is for (with
                # the bots gone, a joiner would wait for a welcome nobody can send, for good).
                for p in demo.peers:
                    p.chatting = False
                print("the relay and the bots stay for whoever joins with the command above "
                      "(Ctrl-C to stop)", flush=True)
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.Event().wait()
        finally:
            await demo.close()
            await relay.stop()

    def thread_main() -> None:
        try:
            loop.run_until_complete(backdrop())
        except BaseException:
            # Never a traceback on the TUI's terminal: the log file has it, run() reports failure.
            log.exception("the demo's relay and bots stopped")
        finally:
            loop.close()

    thread = threading.Thread(target=thread_main, name="demo-relay", daemon=True)
    thread.start()
    if not ready.wait(15) or failure:
        reason = f": {failure[0]}" if failure else ""
        print(f"groupchat demo: the relay did not start{reason}", file=sys.stderr)
        return 1
    relay = box["relay"]
    url = f"ws://127.0.0.1:{relay.port}"
    def host_invite(name: str, uses: int = 1, hours: float = 1.0) -> str | None:
        """An invite from the host bot, made on the demo's loop (None, and a log line, if not)."""
        if not demo_ready.wait(5):
            log.warning("the demo's bots did not start: no invite for %s", name)
            return None
        future = asyncio.run_coroutine_threadsafe(demos[0].invite(name, uses, hours), loop)
        try:
            code = future.result(INVITE_TIMEOUT + 5)
        except Exception as exc:  # the TUI must start anyway: say why in the log
            log.warning("the demo's host made no invite for %s: %s", name, exc)
            return None
        if code is None:
            log.warning("the demo's host made no invite for %s in time", name)
        return code

    # The user's window comes in as everyone does: with an invite from the host bot (without
    # one, it asks and is shown to the bots as asking to join).
    code = host_invite(options.name)
    if options.keep_relay:
        extra = host_invite(_OTHER_TERMINALS, 10, 24.0)
        print("join from another terminal with (an invite for 10):\n  "
              + _chat_command(relay, options, extra), flush=True)
    identity = Identity.generate()
    settings = SessionSettings(
        relay_url=url, room=options.room, name=options.name, scheme=options.scheme, invite=code
    )

    def make_session(notify: Callable[[_Notice], None]) -> ChatSession:
        return ChatSession(settings, identity, TrustStore(None), notify)

    app = ChatApp(make_session)
    options.attack.show_in(app.deliver)  # --attack: it aims at this window, and says so there
    if options.seconds is not None:
        timer = threading.Timer(options.seconds, lambda: app.call_from_thread(app.exit))
        timer.daemon = True
        timer.start()
    try:
        app.run()
    finally:
        if stop is not None:
            loop.call_soon_threadsafe(stop.set)
        thread.join(None if options.keep_relay else 20)
    return app.return_code or 0
