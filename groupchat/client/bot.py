"""``groupchat bot``: a headless chat client for scripted demos and tests, printing a transcript.

    groupchat bot --relay ws://127.0.0.1:8765 --room lobby --name bob --say "hello" --seconds 10
    groupchat bot --relay ws://127.0.0.1:8765 --room lobby --name bob --script bob.txt

The bot joins the room and the group, waits until it is a member, sends each ``--say`` text, runs
the script, and then leaves the group (a signed leave request, so a member removes it and the
group rekeys). With ``--seconds N`` it stays until N seconds after start, then leaves; without
``--seconds`` and with nothing to say it stays until interrupted (Ctrl-C or SIGTERM also leave).

A script holds one command per line; blank lines and lines starting with ``#`` are ignored::

    wait-members 3      # wait until the group has at least 3 members
    say hello, all      # send a message (the rest of the line, verbatim)
    sleep 1.5           # wait (seconds)
    rekey               # commit a self-Update (fresh keys on our path)
    kick carol          # ask the group to remove carol (or carol·3f2a: one member, see /who)
    leave               # leave the group and stop here

Bots are ephemeral by default: a fresh identity per run (``--identity FILE`` keeps one) and an
in-memory trust store, so many bots can run from one account without sharing a key.
Exit status: 0 when everything ran, 1 if the bot could not join or the session failed, 2 for a
usage error (bad flags, config or script).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from ..core.errors import GroupChatError, UsageError
from .notices import Notice

if TYPE_CHECKING:
    from .session import ChatSession

__all__ = ["SCRIPT_HELP", "ScriptError", "Step", "add_arguments", "main", "parse_script", "run"]

_VERBS: Final = ("say", "sleep", "rekey", "kick", "wait-members", "leave")

#: ``groupchat bot --help``'s epilog: the --script format, which the flag's help refers to.
SCRIPT_HELP: Final = """\
script format (--script FILE): one command per line; blank lines and lines starting with # are
ignored, and a # after a command's argument starts a comment (except after say):

  wait-members N    wait until the group has at least N members (exit 1 if not by --seconds)
  say TEXT          send a message: the rest of the line, verbatim
  sleep SECONDS     wait (0 to 86400, fractions allowed)
  rekey             commit a self-update (fresh keys on our path)
  kick NAME         ask the group to remove NAME (or NAME·3f2a: one member, as /who shows it)
  leave             leave the group and stop here

example:
  wait-members 3
  say hello, all
  sleep 1.5
  rekey
  leave

--say texts are sent first, then the script. Exit status: 0 when everything ran, 1 if the bot
could not join or the session failed, 2 for a usage error (bad flags, config or script)."""
LEAVE_TIMEOUT: Final = 5.0  # seconds to wait for the group to remove us before closing anyway


class ScriptError(UsageError):
    """A bot script line that cannot be run; the message names the line."""


@dataclass(frozen=True, slots=True)
class Step:
    """One script command: ``verb`` with its argument (text, seconds, name or count)."""

    verb: str
    arg: str = ""
    line: int = 0

    @property
    def seconds(self) -> float:
        return float(self.arg)

    @property
    def count(self) -> int:
        return int(self.arg)


def parse_script(text: str, source: str = "script") -> list[Step]:
    """Parse a bot script; raise :class:`ScriptError` naming the first bad line."""
    steps: list[Step] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        verb, _, rest = line.partition(" ")
        rest = rest.strip()
        where = f"{source} line {n}"
        if verb not in _VERBS:
            raise ScriptError(f"{where}: unknown command {verb!r} (use one of: {', '.join(_VERBS)})")
        if verb in ("rekey", "leave"):
            rest = rest.split("#", 1)[0].strip()
            if rest:
                raise ScriptError(f"{where}: {verb!r} takes no argument, got {rest!r}")
        elif verb == "say":
            if not rest:
                raise ScriptError(f"{where}: 'say' needs the text to send")
        else:
            rest = rest.split("#", 1)[0].strip()
            if verb == "kick" and (not rest or " " in rest):
                raise ScriptError(f"{where}: 'kick' needs one member name")
            if verb == "sleep":
                try:
                    ok = 0 <= float(rest) < 86_400
                except ValueError:
                    ok = False
                if not ok:
                    raise ScriptError(f"{where}: 'sleep' needs seconds between 0 and 86400, got {rest!r}")
            if verb == "wait-members" and not (rest.isdigit() and 1 <= int(rest) <= 100_000):
                raise ScriptError(f"{where}: 'wait-members' needs a member count, got {rest!r}")
        steps.append(Step(verb, rest, n))
    return steps


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The bot's flags, plus every client configuration flag."""
    from .config import add_config_arguments

    parser.add_argument("--say", action="append", default=[], metavar="TEXT",
                        help="send TEXT once joined (repeat for several messages)")
    parser.epilog = SCRIPT_HELP
    parser.add_argument("--script", type=Path, metavar="FILE",
                        help="run the commands in FILE (the format is described at the end of --help)")
    parser.add_argument("--seconds", type=float, metavar="N",
                        help="stay until N seconds after start, then leave (default: leave when done)")
    parser.add_argument("--join-timeout", type=float, default=30.0, metavar="SEC",
                        help="give up if not a member after this long (default 30)")
    add_config_arguments(parser, ephemeral_identity=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="groupchat bot", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run the bot described by ``args``; print the transcript on stdout, errors on stderr."""
    from .config import load_config
    from .logging_setup import configure_logging

    try:
        config = load_config(args)
        settings = config.session_settings()
        steps = [Step("say", text) for text in args.say]
        if args.script is not None:
            try:
                script = args.script.read_text(encoding="utf-8")
            except OSError as e:
                raise ScriptError(f"cannot read script {args.script}: {e.strerror}") from None
            steps += parse_script(script, str(args.script))
        if args.seconds is not None and args.seconds <= 0:
            raise UsageError("--seconds must be positive")
        configure_logging(config.log_path, config.log_level)
    except GroupChatError as e:
        print(f"groupchat bot: error: {e}", file=sys.stderr)
        return 2

    from ..core.identity import Identity
    from .identity_store import load_or_create_identity
    from .session import ChatSession
    from .transcript import Transcript
    from .trust import TrustStore

    try:
        identity = load_or_create_identity(args.identity) if args.identity else Identity.generate()
    except GroupChatError as e:
        print(f"groupchat bot: error: {e}", file=sys.stderr)
        return 2
    transcript = Transcript(lambda line: print(line, flush=True))
    watcher = _Watcher(transcript.notify)
    session = ChatSession(settings, identity, TrustStore(None), watcher.notify)
    stay_until = args.seconds
    if stay_until is None and not steps:
        stay_until = float("inf")  # nothing to do: stay until interrupted
    return asyncio.run(
        run_bot(session, watcher, steps, stay_until=stay_until, join_timeout=args.join_timeout,
                say=transcript.line)
    )


class _Watcher:
    """Passes notices on and remembers what the bot waits for (readiness, member count)."""

    def __init__(self, forward: Callable[[Notice], None]) -> None:
        self._forward = forward
        self.changed = asyncio.Event()

    def notify(self, notice: Notice) -> None:
        self._forward(notice)
        self.changed.set()

    async def wait(self, ready: Callable[[], bool], deadline: float) -> bool:
        """Wait until ``ready()`` or the monotonic ``deadline``; True if it became ready."""
        while not ready():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                # Re-check at least every 0.2 s: status also changes without a notice (roster()).
                await asyncio.wait_for(self.changed.wait(), min(left, 0.2))
        return True


async def run_bot(
    session: ChatSession,
    watcher: _Watcher,
    steps: Sequence[Step],
    *,
    stay_until: float | None,
    join_timeout: float,
    say: Callable[[str], None],
) -> int:
    """Drive ``session`` through ``steps``; ``stay_until`` is seconds after start (None: leave when done)."""
    from .notices import ConnectionState

    start = time.monotonic()
    end = start + stay_until if stay_until is not None else float("inf")
    runner = asyncio.create_task(session.run(), name="groupchat-bot-session")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)

    def alive() -> bool:
        return not runner.done() and not stop.is_set()

    code = 0
    left_group = False
    try:
        ready_by = min(end, start + join_timeout)
        joined = await watcher.wait(
            lambda: session.status.connection is ConnectionState.READY or not alive(), ready_by
        )
        if runner.done():
            return _runner_result(runner, say) or 1
        if not joined or stop.is_set():
            if not stop.is_set():
                why = session.status.problem  # e.g. "cannot reach the relay (connection refused)"
                say(f"not a member after {ready_by - start:.1f} s: giving up" + (f" ({why})" if why else ""))
            return 1 if not stop.is_set() else 0
        leave_now = False
        for step in steps:
            if not alive() or time.monotonic() >= end:
                break
            if step.verb == "say":
                session.send_text(step.arg)
            elif step.verb == "sleep":
                await _sleep_until(min(end, time.monotonic() + step.seconds), stop, runner)
            elif step.verb == "rekey":
                session.request_rekey()
            elif step.verb == "kick":
                session.kick(step.arg)
            elif step.verb == "wait-members":
                if not await watcher.wait(_members_at_least(session, step.count, alive), end):
                    say(f"script line {step.line}: fewer than {step.count} members by the deadline")
                    code = 1
                    break
            elif step.verb == "leave":
                leave_now = True
                break
        if stay_until is not None and not leave_now:
            await _sleep_until(end, stop, runner)
        if runner.done():
            return max(code, _runner_result(runner, say))
        session.leave()
        left_group = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(runner), LEAVE_TIMEOUT)
        return max(code, _runner_result(runner, say)) if runner.done() else code
    except GroupChatError as e:
        say(f"error: {e}")
        return 1
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)
        if not left_group and not runner.done():
            with contextlib.suppress(GroupChatError):
                session.leave()
        await session.close()
        if not runner.done():
            runner.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await runner


def _members_at_least(session: ChatSession, n: int, alive: Callable[[], bool]) -> Callable[[], bool]:
    return lambda: len(session.roster()) >= n or not alive()


def _runner_result(runner: asyncio.Task[None], say: Callable[[str], None]) -> int:
    """0 if the session ended normally, else report its failure and return 1."""
    if runner.cancelled():
        return 0
    exc = runner.exception()
    if exc is None:
        return 0
    say(f"session failed: {exc}")
    return 1


async def _sleep_until(deadline: float, stop: asyncio.Event, runner: asyncio.Task[None]) -> None:
    """Sleep until the monotonic ``deadline``, waking early if stopped or the session ended."""
    while not stop.is_set() and not runner.done():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), min(left, 0.25))
