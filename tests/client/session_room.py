"""Session machines in an in-memory room, on one ManualClock (the fixtures are in conftest.py).

:class:`MemoryRoom` stands in for the relay (total order, echoes, ``SendTo``, presence) with no
socket: each :class:`Member` is a real :class:`SessionMachine` with real cryptography, driven by
:func:`groupchat.client.session.driver.drive`. Time moves only when a test says so.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from groupchat.client.notices import Notice, TimelineEvent
from groupchat.client.session import SessionSettings
from groupchat.client.session.actions import Action, Notify, SendFrame, Stop
from groupchat.client.session.driver import drive
from groupchat.client.session.inputs import Connected, FrameReceived, Input, Tick
from groupchat.client.session.machine import SessionMachine
from groupchat.client.trust import TrustStore
from groupchat.core.group import GroupConfig
from groupchat.core.identity import Identity
from groupchat.lab.clock import ManualClock
from groupchat.relay_protocol import (
    Ack,
    Deliver,
    Join,
    Joined,
    Leave,
    Presence,
    PresenceEvent,
    Publish,
    SendTo,
    ServerFrame,
    ServerHello,
    ServerLimits,
)

LIMITS = ServerLimits(1 << 22, 1 << 20, 8, 1000, 1000, 1000, 10_000, 1 << 26, 3600, 60)
HELLO = ServerHello(1, LIMITS, "memory")


@dataclass
class Member:
    """One session machine in the room, and everything it produced."""

    name: str
    machine: SessionMachine
    actions: list[Action] = field(default_factory=list)
    connected: bool = False
    stopped: bool = False

    @property
    def mid(self) -> bytes:
        return self.machine._me

    def notices(self) -> list[Notice]:
        return [a.notice for a in self.actions if isinstance(a, Notify)]

    def timeline(self) -> list[str]:
        return [n.text for n in self.notices() if isinstance(n, TimelineEvent)]

    def sent(self) -> list[SendFrame]:
        return [a for a in self.actions if isinstance(a, SendFrame)]


class MemoryRoom:
    """A relay in memory: one room, one total order, frames delivered when :meth:`settle` runs."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.members: dict[bytes, Member] = {}
        self.log: list[Deliver] = []
        self.inbox: list[tuple[Member, ServerFrame]] = []
        self.room = b""

    def add(self, name: str, identity: Identity | None = None, **settings: Any) -> Member:
        # Open rooms unless a test says otherwise: most tests are about something else than who
        # may come in (tests/client/test_session_admission.py and tests/adversarial are).
        defaults: dict[str, Any] = {"add_timeout": 0.5, "open_room": True}
        s = SessionSettings("ws://memory", "room", name, **{**defaults, **settings})
        self.room = s.room.encode()
        rand: Callable[[int], bytes] = os.urandom
        config = GroupConfig(clock=self.clock, wall_clock=self.clock.wall, rand=rand)
        m = SessionMachine(
            s, identity or Identity.generate(), TrustStore(None), config=config, rand=rand, now=self.clock()
        )
        member = Member(name, m)
        self.members[member.mid] = member
        return member

    def feed(self, member: Member, item: Input) -> list[Action]:
        """Run one step and route what it sent."""
        if member.stopped:
            return []
        out = drive(member.machine, item, self.clock)
        member.actions.extend(out)
        for action in out:
            if isinstance(action, SendFrame):
                self._route(member, action.frame)
            elif isinstance(action, Stop):
                member.stopped = True
                self._gone(member)
        return out

    def connect(self, member: Member) -> None:
        member.connected = True
        self.feed(member, Connected(HELLO, self.clock()))
        self.settle()

    def disconnect(self, member: Member) -> None:
        from groupchat.client.session.inputs import Disconnected

        member.connected = False
        self._gone(member)
        self.feed(member, Disconnected("test", 0.1, self.clock()))
        self.settle()

    def tick(self, *members: Member) -> None:
        for m in members or tuple(self.members.values()):
            self.feed(m, Tick(self.clock()))
        self.settle()

    def settle(self, limit: int = 10_000) -> None:
        """Deliver every frame in flight, and what they cause, until the room is quiet."""
        for _ in range(limit):
            if not self.inbox:
                return
            member, frame = self.inbox.pop(0)
            if member.connected and not member.stopped:
                self.feed(member, FrameReceived(frame, self.clock()))
        raise AssertionError("the room never settled")

    def _gone(self, member: Member) -> None:
        for other in self.members.values():
            if other is not member and other.connected:
                self.inbox.append((other, Presence(self.room, member.mid, PresenceEvent.LEFT)))

    def _route(self, sender: Member, frame: Join | Leave | Publish | SendTo) -> None:
        if isinstance(frame, Join):
            present = tuple(m.mid for m in self.members.values() if m.connected and m is not sender)
            for other in self.members.values():
                if other is not sender and other.connected:
                    self.inbox.append((other, Presence(self.room, sender.mid, PresenceEvent.JOINED)))
            self.inbox.append((sender, Joined(frame.req_id, self.room, len(self.log), present)))
            after = frame.resume_after or 0
            if frame.resume_after is not None:
                for d in self.log[after:]:
                    if d.to is None or d.to == sender.mid:
                        self.inbox.append((sender, d))
            return
        if isinstance(frame, Leave):
            return
        to = frame.to if isinstance(frame, SendTo) else None
        d = Deliver(len(self.log) + 1, self.room, sender.mid, to, frame.payload)
        self.log.append(d)
        self.inbox.append((sender, Ack(frame.req_id, d.seq)))
        for m in self.members.values():
            if m.connected and (to is None or to == m.mid):
                self.inbox.append((m, d))
