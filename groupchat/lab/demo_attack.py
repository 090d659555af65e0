"""``groupchat demo --attack MODE``: the demo over a relay that misbehaves, so you watch your client catch it.

The relay is the hostile one of the attack tests (:mod:`groupchat.lab.hostile`): it serves the
room honestly until the group has formed and a few messages flowed, then does what the mode says,
and the demo says so in a line ("the relay now ..."), with what your client should show. With the
TUI the attack aims at your own window; headless, at the first bot, whose whole timeline the
transcript prints, and the run ends with exit status 0 only if that client reported the attack.
``--attack list`` prints the modes. Every report is the real client's own (its beacons, its
signature and authentication checks, its admission rules); nothing here makes one up.

Only :class:`Attack` is seen by ``demo.py``, as ``DemoOptions.attack``: without a mode it is
:data:`NO_ATTACK` and hands everything back to the ordinary demo (the real relay, the churn, the
end-of-run checks). Light to import: the hostile relay and the client load when an attack starts.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from server.relay import Relay

    from ..client.notices import Notice
    from ..client.session import ChatSession
    from .hostile.loopback import LoopbackRelay
    from .hostile.policy import VirtualMember

    AnyRelay = Relay | LoopbackRelay  # the demo's relay: the real one, or (--attack) the hostile one

__all__ = ["MODES", "NO_ATTACK", "SHORT_BOUNDS", "Attack", "Bot", "Mode", "Run", "describe_modes"]


@dataclass(frozen=True, slots=True)
class Mode:
    """One attack: what the relay does, and what the client it aims at shows for it."""

    name: str
    does: str
    shows: str
    ring: str = ""  # what a ring group shows instead (or as well), if it differs


#: The bots' (and a headless watcher's) beacon bounds and ring round deadline in an attack demo:
#: the client's own rules, on a clock short enough to watch (the defaults are 10, 15, 20 and 60 s,
#: and 30 s). The TUI keeps yours.
SHORT_BOUNDS: Final[dict[str, float]] = {
    "beacon_interval": 1.0,
    "confirm_after": 4.0,
    "loss_after": 3.0,
    "silence_after": 6.0,
    # A ring group's round deadline (30 s by default): a withheld member is named in seconds.
    "ring_round_timeout": 6.0,
}
FORMED_TIMEOUT: Final = 30.0  # how long the group (and your window) may take to form
WARMUP: Final = 2.0  # seconds of honest chat before the attack (TUI: WARMUP_TUI)
WARMUP_TUI: Final = 12.0
SPLIT_SECONDS: Final = 4.0  # fork: how long the halves stay apart (TUI: three times as long)
DROP_COUNT: Final = 4  # drop: application messages dropped before the relay delivers again
TAMPER_COUNT: Final = 3  # tamper: messages altered
REORDER_COUNT: Final = 3  # reorder: messages delivered last first
DETECT_TIMEOUT: Final = 25.0  # headless: how long the watcher may take to report it...
RING_TIMEOUT: Final = DETECT_TIMEOUT + SHORT_BOUNDS["ring_round_timeout"]  # ...in a ring group
GHOST_NAME: Final = "mallory"


MODES: Final = (
    Mode(
        "fork",
        "splits the room in two halves that hear only their own half while a member of each "
        "refreshes its keys, then joins them again",
        "the other half's messages 'cannot be shown: possible fork, or altered on the way' with your "
        "epoch code to compare, then 'not heard from' each of them",
        "no fork, as a ring rekey needs every member: 'the rekey to epoch ... is waiting for' the "
        "other half",
    ),
    Mode(
        "drop",
        f"drops {DROP_COUNT} of one member's messages to you (chat and beacons: it cannot tell them "
        "apart), then delivers again",
        "'N messages from NAME did not reach you', counted from NAME's signed beacons",
    ),
    Mode(
        "withhold",
        "delivers none of one member's messages to anyone, while it still shows that member online",
        "'not heard from NAME for ... s; the relay may be withholding their messages', and nobody "
        "removed",
        "a rekey starts too and times out: 'the rekey to epoch ... is waiting for NAME'",
    ),
    Mode(
        "ghost",
        f"says {GHOST_NAME}, whom nobody invited, is here and passes on her correctly signed request "
        "to join",
        f"'{GHOST_NAME} (fingerprint ...) asks to join: type /approve {GHOST_NAME} ...': not let in on "
        "the relay's word, not in /who, no welcome sent to her",
    ),
    Mode(
        "replay",
        "delivers one of a member's messages to you again, twice",
        "each copy refused: '1 message cannot be shown: a copy of one already read, sent again' "
        "(its key was used once already); the original shown once",
    ),
    Mode(
        "reorder",
        f"holds back {REORDER_COUNT} of one member's messages to you and delivers them last first, "
        "each under its own sequence number",
        "the newest shown; the older ones come under numbers already passed, so the client takes them "
        "for copies, and then counts the chat among them: 'N messages from NAME did not reach you'",
    ),
    Mode(
        "tamper",
        f"flips a bit in {TAMPER_COUNT} of one member's messages to you",
        "none of them shown: '1 message cannot be shown: possible fork, or altered on the way' (to "
        "the client a flipped bit and another epoch's keys look alike: neither decrypts)",
    ),
)
_BY_NAME: Final = {m.name: m for m in MODES}

def describe_modes() -> str:
    """The ``--attack list`` text: one line per mode, what the relay does and what you should see."""
    ring = {m.name: f" (a ring group: {m.ring})" if m.ring else "" for m in MODES}
    return "\n".join(f"{m.name:9} the relay {m.does}; you should see {m.shows}{ring[m.name]}" for m in MODES)


class _ModeAction(argparse.Action):
    """``--attack MODE``: a known mode, or ``list`` (prints the modes and exits 0, as --help does)."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: Any = None
    ) -> None:
        if values == "list":
            print(describe_modes())
            parser.exit(0)
        if values not in _BY_NAME:
            parser.error(f"--attack: no mode {values!r}; choose one of {', '.join(_BY_NAME)}, or list")
        setattr(namespace, self.dest, values)


class Bot(Protocol):
    """What the attack reads of one demo bot."""

    @property
    def name(self) -> str: ...
    @property
    def session(self) -> ChatSession: ...
    @property
    def ready(self) -> bool: ...


class Run(Protocol):
    """What the attack uses of the demo's run (``demo.DemoRun``)."""

    @property
    def peers(self) -> Sequence[Bot]: ...
    @property
    def observer(self) -> Bot | None: ...
    def say(self, text: str) -> None: ...
    async def churn(self, until: float) -> None: ...
    async def settle(self) -> list[str]: ...
    def summary(self) -> str: ...


@dataclass(frozen=True, slots=True)
class _Member:
    name: str
    mid: bytes
    bot: Bot | None  # None: the user's own window


class Attack:
    """One demo's attack (or, as :data:`NO_ATTACK`, none): its relay, its script and its verdict."""

    def __init__(self, mode: str | None = None) -> None:
        self.mode = _BY_NAME[mode] if mode is not None else None
        self.relay: LoopbackRelay | None = None
        self.heard: dict[str, list[Notice]] = {}  # what each bot was told, by bot name
        self.watcher: _Member | None = None  # whom the attack aims at
        self.culprit: _Member | None = None  # whose messages the relay drops, withholds or alters
        self.members: tuple[_Member, ...] = ()  # everyone in the group when the attack began
        self.others: tuple[_Member, ...] = ()  # fork: the half the watcher is not in
        self.ghost: VirtualMember | None = None
        self.mounted = False
        self._tell: Callable[[Notice], None] | None = None
        self._counted: set[int] = set()
        self.released: list[int] = []  # reorder: the seqs delivered late, in the order sent
        self._spawned: asyncio.Task[None] | None = None  # reorder: the release of what was held

    @classmethod
    def for_mode(cls, mode: str | None) -> Attack:
        """The attack of ``--attack MODE`` (:data:`NO_ATTACK` without one)."""
        return cls(mode) if mode is not None else NO_ATTACK

    @staticmethod
    def add_argument(parser: argparse.ArgumentParser) -> None:
        """``--attack MODE`` on the demo's parser (``list``: print the modes and exit)."""
        parser.add_argument(
            "--attack", action=_ModeAction, metavar="MODE",
            help=f"run over a relay that misbehaves ({', '.join(_BY_NAME)}) and watch your client report "
            "it; 'list' describes each",
        )  # fmt: skip

    @property
    def settings(self) -> dict[str, Any]:
        """``SessionSettings`` overrides for the bots: :data:`SHORT_BOUNDS` in an attack demo."""
        return dict(SHORT_BOUNDS) if self.mode is not None else {}

    def show_in(self, deliver: Callable[[Notice], None]) -> None:
        """The user's window (TUI): the attack aims at it and its lines show in its timeline."""
        if self.mode is not None:
            self._tell = deliver

    async def start_relay(self, port: int) -> LoopbackRelay:
        """The hostile relay on 127.0.0.1 (``port`` 0: any free one), behaving until the attack."""
        from .hostile.loopback import LoopbackRelay

        self.relay = LoopbackRelay(port=port)
        await self.relay.start()
        return self.relay

    def seen(self, bot: Bot, notice: Notice) -> None:
        """Every notice of every bot (the verdict reads the watcher's)."""
        if self.mode is not None:
            self.heard.setdefault(bot.name, []).append(notice)

    # --- the run ----------------------------------------------------------------------------------

    async def play(self, run: Run, until: float) -> None:
        """The churn of the ordinary demo; with a mode, the attack once the group has formed."""
        if self.mode is None:
            await run.churn(until)
            return
        members = await self._formed(run, min(until, time.monotonic() + FORMED_TIMEOUT))
        if members is None:
            self._say(run, "the group did not form in time: no attack")
            return
        self._say(run, f"attack {self.mode.name}: the relay behaves for now; the group chats")
        await asyncio.sleep(WARMUP_TUI if self._tell is not None else WARMUP)
        await self.mount(run, members)

    async def mount(self, run: Run, members: list[_Member]) -> None:
        """Choose who is aimed at, say what the relay now does, and do it."""
        assert self.mode is not None and self.relay is not None
        self.watcher, self.members = members[0], tuple(members)
        bots = [m for m in members[1:] if m.bot is not None]
        self.culprit = bots[0] if bots else None
        mode = self.mode.name
        if self.culprit is None and mode != "ghost":
            self._say(run, f"the {mode} attack needs a bot beside {self.watcher.name} (--peers 2): no attack")
            return
        if mode == "fork":
            half = (len(members) + 1) // 2
            self.others = tuple(members[half:])
            self._say(run, f"the relay now splits the room: {_names(members[:half])} | {_names(self.others)}")
            self.mounted = True
            self.relay.policy.partition({m.mid for m in members[:half]}, {m.mid for m in self.others})
            for side in (members[:half], self.others):
                talker = next((m.bot for m in side if m.bot is not None), None)
                if talker is not None:
                    talker.session.request_rekey()
            apart = SPLIT_SECONDS * (3 if self._tell is not None else 1)
            await asyncio.sleep(apart)
            self.relay.policy.behave()
            self._say(run, f"after {apart:g} s the relay joins the two halves again; {self._watch()}")
            return
        if mode == "ghost":
            self.ghost = self.relay.virtual(GHOST_NAME, self._room())
            self._say(run, f"the relay now claims {GHOST_NAME} is here and passes on her signed request "
                      f"to join; {self._watch()}")  # fmt: skip
            self.mounted = True
            await self.relay.announce(self.ghost.mid)
            await self.relay.forge(self.ghost.mid, self.ghost.join_request())
            return
        culprit = self.culprit
        assert culprit is not None
        self._say(run, f"the relay now {self._doing(culprit.name)}; {self._watch()}")
        self.mounted = True
        if mode == "drop":
            self.relay.policy.drop(self._dropper(culprit.mid, self.watcher.mid))
        elif mode == "withhold":
            self.relay.policy.withhold(culprit.mid)
            starter = next((m.bot for m in members if m.bot is not None and m is not culprit), None)
            if starter is not None and self._ring():
                starter.session.request_rekey()  # a ring rekey needs everyone: it waits for the culprit
        elif mode == "replay":
            await self._replay(culprit.mid, self.watcher.mid)
        elif mode == "tamper":
            self.relay.policy.alter(self._flipper(culprit.mid, self.watcher.mid))
        elif mode == "reorder":
            self.relay.policy.drop(self._holder(culprit.mid, self.watcher.mid))

    async def settle(self, run: Run, timeout: float = DETECT_TIMEOUT) -> list[str]:
        """The ordinary demo's checks; with a mode, wait until the watcher reported the attack."""
        if self.mode is None:
            return await run.settle()
        deadline = time.monotonic() + (max(timeout, RING_TIMEOUT) if self._ring() else timeout)
        while self.mounted and not self.caught() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return self.problems()

    def summary(self, run: Run) -> str:
        """The OK line's words: the ordinary demo's, or who reported the attack and how."""
        if self.mode is None:
            return run.summary()
        who = self.watcher.name if self.watcher is not None else "the client"
        return f"the relay's {self.mode.name} attack was reported by {who}: {self.caught()}"

    # --- the verdict -------------------------------------------------------------------------------

    def watcher_notices(self) -> list[Notice]:
        """Everything the watcher's client was told (a bot's; the user's window is not read)."""
        return list(self.heard.get(self.watcher.name, [])) if self.watcher is not None else []

    def caught(self) -> str | None:
        """The first line the watcher was shown that reports this attack (None: none yet)."""
        if self.mode is None or not self.mounted or self.watcher is None:
            return None
        if self.mode.name == "ghost" and self._ghost_let_in():
            return None
        for n in self.watcher_notices():
            line = self._reports(n)
            if line is not None:
                return line
        return None

    def _reports(self, n: Notice) -> str | None:
        """``n``'s text if it is the client's report of this attack: its own sentence, exactly."""
        from ..client import wording
        from ..client.notices import Placeholder, TimelineEvent, UnreadableReason

        assert self.mode is not None
        mode, culprit = self.mode.name, self.culprit.name if self.culprit is not None else ""
        if isinstance(n, Placeholder):
            unreadable = (UnreadableReason.POSSIBLE_FORK,) if mode == "fork" else (
                (UnreadableReason.REPLAYED,) if mode == "replay" else
                (UnreadableReason.POSSIBLE_FORK, UnreadableReason.TAMPERED) if mode == "tamper" else ()
            )  # fmt: skip
            return n.text if n.reason in unreadable else None
        if not isinstance(n, TimelineEvent):
            return None
        text, waits = n.text, _ring_waits_for(n.text)
        other_half = {m.name for m in self.others}
        if mode == "fork" and (text.startswith(("fork:", "split:")) or waits == other_half):
            return text
        lost = any(text == wording.messages_lost(k, culprit) for k in range(1, 100))
        if mode in ("drop", "reorder") and lost:
            return text
        if mode == "withhold" and (text == wording.not_heard(culprit, SHORT_BOUNDS["silence_after"])
                                   or waits == {culprit}):  # fmt: skip
            return text
        if mode == "ghost" and self.ghost is not None:
            asks = wording.asks_to_join(GHOST_NAME, self.ghost.identity.fingerprint, "")
            return text if text == asks else None
        return None

    def problems(self) -> list[str]:
        """What is wrong with the run: an attack not mounted, not reported, or a ghost let in."""
        if self.mode is None:
            return []
        if not self.mounted or self.watcher is None:
            return [f"the {self.mode.name} attack never started (the transcript says why)"]
        out = []
        if self.mode.name == "ghost" and self._ghost_let_in():
            out.append(f"{GHOST_NAME}, whom only the relay vouched for, was let in")
        if self.caught() is None:
            out.append(f"{self.watcher.name} was not told: expected {self.mode.shows}")
        return out

    # --- helpers -----------------------------------------------------------------------------------

    def _say(self, run: Run, text: str) -> None:
        from ..client.notices import TimelineEvent, TimelineKind

        run.say(text)
        if self._tell is not None:
            self._tell(TimelineEvent(TimelineKind.INFO, f"demo: {text}"))

    def _watch(self) -> str:
        assert self.mode is not None and self.watcher is not None
        shows = self.mode.ring if self._ring() and self.mode.ring else self.mode.shows
        shows = shows.replace("NAME", self.culprit.name if self.culprit else "NAME")
        whose = "your client" if self.watcher.bot is None else f"{self.watcher.name}'s client"
        return f"watch {whose} for {shows}"

    def _doing(self, culprit: str) -> str:
        assert self.mode is not None and self.watcher is not None
        you = "you" if self.watcher.bot is None else self.watcher.name
        return {
            "drop": f"drops {DROP_COUNT} of {culprit}'s messages to {you}, then delivers again",
            "withhold": f"delivers none of {culprit}'s messages to anyone (it still shows {culprit} online)",
            "replay": f"delivers one of {culprit}'s messages to {you} again, twice",
            "reorder": f"holds back {REORDER_COUNT} of {culprit}'s messages to {you} and delivers them last "
            "first",
            "tamper": f"flips a bit in {TAMPER_COUNT} of {culprit}'s messages to {you}",
        }[self.mode.name]

    def _ring(self) -> bool:
        """Whether the group is a ring group (as the bots' status says)."""
        return any(m.bot.session.status.scheme == "ring" for m in self.members if m.bot is not None)

    def _room(self) -> str:
        assert self.relay is not None
        return next(iter(self.relay.rooms.values()), b"demo").decode()

    def _ghost_let_in(self) -> bool:
        """Whether any bot's roster lists the ghost, or a welcome was sent to it."""
        if self.ghost is None:
            return False
        fp = self.ghost.identity.fingerprint
        bots = [m.bot for m in self.members if m.bot is not None]
        return bool(self.ghost.welcomes) or any(e.fingerprint == fp for b in bots for e in b.session.roster())

    def _dropper(self, sender: bytes, to: bytes) -> Callable[[bytes, Any], bool]:
        from ..relay_protocol import Deliver
        from .hostile.policy import is_chat

        def drop(recipient: bytes, frame: Any) -> bool:
            hit = (
                recipient == to and isinstance(frame, Deliver) and frame.sender == sender
                and is_chat(frame.payload) and len(self._counted) < DROP_COUNT
            )  # fmt: skip
            if hit:
                self._counted.add(frame.seq)
            return hit

        return drop

    def _holder(self, sender: bytes, to: bytes) -> Callable[[bytes, Any], bool]:
        """Hold back the next :data:`REORDER_COUNT` of ``sender``'s messages to ``to``; then deliver
        them last first, each keeping its seq (so the older ones come after a later seq)."""
        from ..relay_protocol import Deliver
        from .hostile.policy import is_chat

        held: list[Deliver] = []

        async def release() -> None:
            assert self.relay is not None
            for frame in reversed(held):
                await self.relay.deliver(to, frame)
                self.released.append(frame.seq)

        def hold(recipient: bytes, frame: Any) -> bool:
            ours = isinstance(frame, Deliver) and frame.sender == sender and is_chat(frame.payload)
            if recipient != to or not ours or len(held) >= REORDER_COUNT:
                return False
            held.append(frame)
            if len(held) == REORDER_COUNT:
                self._spawned = asyncio.get_running_loop().create_task(release())
            return True

        return hold

    def _flipper(self, sender: bytes, to: bytes) -> Callable[[bytes, Any], Any]:
        from ..relay_protocol import Deliver
        from .hostile.policy import is_chat

        def flip(recipient: bytes, frame: Any) -> Any:
            ours = isinstance(frame, Deliver) and frame.sender == sender and is_chat(frame.payload)
            if recipient == to and ours and (frame.seq in self._counted or len(self._counted) < TAMPER_COUNT):
                self._counted.add(frame.seq)
                payload = frame.payload[:-1] + bytes([frame.payload[-1] ^ 1])
                return Deliver(frame.seq, frame.room, frame.sender, frame.to, payload)
            return None

        return flip

    async def _replay(self, sender: bytes, to: bytes) -> None:
        """The culprit's latest application message, to the watcher again (twice)."""
        from .hostile.policy import is_chat

        assert self.relay is not None
        for _ in range(50):  # the culprit chats every second or two
            sent = [d for d in self.relay.log if d.sender == sender and d.to is None and is_chat(d.payload)]
            if sent:
                for _ in range(2):
                    await self.relay.forge(sender, sent[-1].payload, to)
                return
            await asyncio.sleep(0.2)

    async def _formed(self, run: Run, deadline: float) -> list[_Member] | None:
        """The members once every bot (and the user's window, if any) is in one group at one epoch:
        the one to aim at first (the user's window, else the first bot), then the bots in order."""
        from ..client.session.settings import member_id

        assert self.relay is not None
        while time.monotonic() < deadline:
            bots = [b for b in run.peers if b.ready]
            mids = {member_id(b.session.identity.public_key): b for b in bots}
            users = [mid for mid in self.relay.conns if mid not in mids] if self._tell is not None else []
            want = len(bots) + (1 if self._tell is not None else 0)
            epochs = {b.session.epoch for b in bots}
            full = all(b.session.status.member_count == want for b in bots)
            everyone = bool(bots) and len(bots) == len(run.peers) and (bool(users) or self._tell is None)
            if everyone and len(epochs) == 1 and full:
                members = [_Member(b.name, mid, b) for mid, b in mids.items()]
                if users:
                    name = next((e.name for e in bots[0].session.roster()
                                 if e.fingerprint.replace(" ", "").encode() == users[0]), "you")  # fmt: skip
                    return [_Member(name, users[0], None), *members]
                return members
            await asyncio.sleep(0.1)
        return None


def _ring_waits_for(text: str) -> set[str] | None:
    """Whom a ring's "the rekey to epoch E is waiting for NAMES (round R timed out)" names, if
    ``text`` is exactly that sentence of the client's (None: it is not)."""
    import re

    from ..client import wording_ring

    m = re.match(r"the rekey to epoch (\d+) is waiting for (.+?) \(round (\d+) timed out\).* ([\d.]+) s$",
                 text)  # fmt: skip
    if m is None or text != wording_ring.ring_timed_out(int(m[1]), m[2], int(m[3]), float(m[4])):
        return None
    return set(m[2].split(", "))


def _names(members: Sequence[_Member]) -> str:
    return ", ".join(m.name for m in members)


#: No attack: the ordinary demo (the real relay, the churn, the end-of-run checks).
NO_ATTACK: Final = Attack()
