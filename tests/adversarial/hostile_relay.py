"""A malicious relay for the attack tests of issue 13: two faces, one :class:`Policy`.

The policy, the payload predicates, :class:`VirtualMember`, the forged payloads and the loopback
face live in the package (:mod:`groupchat.lab.hostile`: ``groupchat demo --attack`` runs on them
too) and are re-exported here; this module adds the sans-I/O face, which is built on the client
tests' :class:`MemoryRoom`:

* :class:`HostileRoom` (sans-I/O): a :class:`MemoryRoom` (real :class:`SessionMachine`s, real
  cryptography, one ``ManualClock``) whose every delivery goes through the policy, so each member
  has its own view of the room.
* :class:`LoopbackRelay`: a real websockets server on 127.0.0.1 port 0 speaking the relay protocol
  (``groupchat.relay_protocol``) with the same policy, for real ``ChatSession``s.

The hooks are :class:`Policy`'s (``groupchat/lab/hostile/policy.py``); the sans-I/O face adds
``hold(recipient)`` / room ``release(recipient, reverse, renumber)`` to reorder what one member
receives, and room ``on_publish``: callbacks run before a member's publish is logged, to forge
what must come just before it in the relay's order.

On both faces' rooms: ``forge(sender, payload, to=None)`` injects a Deliver as if from any
member id (one with no machine behind it included); ``announce(mid)`` fakes presence;
``report_offline(member)`` says a member left while its frames still flow; ``error(member, code,
reason)`` sends an Error frame with any code and reason; ``virtual(name)`` makes a
:class:`VirtualMember`. The sans-I/O room also has ``forge(..., recipients=[...])`` (a per-member
view, kept out of the others' resumes), ``replay(seq)`` (a logged frame again, under a new seq),
``retract(mid)`` and ``welcomes_for(mid)``; the loopback relay has ``close(mid, code, reason)``
(any close reason). :func:`start_room` builds a hostile room whose members all joined honestly.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from session_room import Member, MemoryRoom

from groupchat.client.room_payload import PayloadKind, RoomPayload
from groupchat.client.session import SessionSettings
from groupchat.client.session.machine import SessionMachine
from groupchat.client.trust import TrustStore
from groupchat.core.group import GroupConfig
from groupchat.core.identity import Identity
from groupchat.lab.clock import ManualClock
from groupchat.lab.hostile.loopback import LoopbackRelay
from groupchat.lab.hostile.policy import (
    Policy,
    VirtualMember,
    core_kind,
    forged_request,
    is_chat,
    is_commit,
    payload_kind,
    with_epoch,
)
from groupchat.relay_protocol import (
    Ack,
    Deliver,
    Error,
    Join,
    Joined,
    Leave,
    Presence,
    PresenceEvent,
    Publish,
    SendTo,
    ServerFrame,
)

__all__ = [
    "HostileRoom",
    "LoopbackRelay",
    "Policy",
    "VirtualMember",
    "core_kind",
    "forged_request",
    "is_chat",
    "is_commit",
    "payload_kind",
    "start_room",
    "with_epoch",
]


# --- the sans-I/O face --------------------------------------------------------------------------


class HostileRoom(MemoryRoom):
    """A :class:`MemoryRoom` whose deliveries obey a :class:`Policy` (module docstring)."""

    def __init__(self, clock: ManualClock, policy: Policy | None = None) -> None:
        super().__init__(clock)
        self.policy = policy or Policy()
        self.virtuals: dict[bytes, VirtualMember] = {}
        self.fake_present: set[bytes] = set()
        self.held: dict[bytes, list[tuple[Member, ServerFrame]]] = {}
        self.visible: dict[int, frozenset[bytes] | None] = {}  # seq -> who may get it on resume
        # Called with (sender, frame) before a member's Publish/SendTo is logged: a test forges here
        # what must come just before it in the relay's order.
        self.on_publish: list[Callable[[Member, Publish | SendTo], None]] = []
        self.config = GroupConfig(clock=clock, wall_clock=clock.wall, rand=os.urandom)
        self.room_name = "room"

    def add(self, name: str, identity: Identity | None = None, **settings: Any) -> Member:
        s = SessionSettings("ws://memory", self.room_name, name, **{"add_timeout": 0.5, **settings})
        self.room = s.room.encode()
        # Invite-only (the default), and join requests dated by the room's clock.
        config = GroupConfig(clock=self.clock, wall_clock=self.clock.wall, rand=os.urandom)
        m = SessionMachine(
            s,
            identity or Identity.generate(),
            TrustStore(None),
            config=config,
            rand=os.urandom,
            now=self.clock(),
        )
        member = Member(name, m)
        self.members[member.mid] = member
        return member

    def virtual(self, name: str) -> VirtualMember:
        self.room = self.room_name.encode()
        v = VirtualMember(name, self.room_name, self.config)
        self.virtuals[v.mid] = v
        return v

    # --- hooks on the room ---------------------------------------------------------------------

    def _post(self, member: Member, frame: ServerFrame) -> None:
        out = self.policy.admit(member.mid, frame)
        if out is None:
            return
        if member.mid in self.policy.holding:
            self.held.setdefault(member.mid, []).append((member, out))
        else:
            self.inbox.append((member, out))

    def release(self, member: Member, reverse: bool = True, renumber: bool = True) -> None:
        """Deliver what was held for ``member``, in reverse order by default; stop holding.

        With ``renumber`` the held Delivers take their seqs in the new order (the relay's order for
        this member is what it says); without, they keep theirs, so later seqs arrive first."""
        self.policy.holding.discard(member.mid)
        held = self.held.pop(member.mid, [])
        order = list(reversed(held)) if reverse else held
        if renumber:
            seqs = iter(sorted(f.seq for _, f in order if isinstance(f, Deliver)))
            order = [
                (m, Deliver(next(seqs), f.room, f.sender, f.to, f.payload) if isinstance(f, Deliver) else f)
                for m, f in order
            ]
        self.inbox.extend(order)
        self.settle()

    def _connected(self) -> list[Member]:
        return [m for m in self.members.values() if m.connected and not m.stopped]

    def forge(
        self,
        sender: bytes,
        payload: bytes,
        to: bytes | None = None,
        recipients: list[Member] | None = None,
        settle: bool = True,
    ) -> Deliver:
        """Log and deliver a frame as if ``sender`` had sent it (to ``recipients``, default all)."""
        d = Deliver(len(self.log) + 1, self.room, sender, to, payload)
        self.log.append(d)
        targets = recipients if recipients is not None else self._connected()
        self.visible[d.seq] = frozenset(m.mid for m in targets) if recipients is not None else None
        for m in targets:
            if to is None or to == m.mid:
                self._post(m, d)
        if settle:
            self.settle()
        return d

    def replay(self, seq: int, recipients: list[Member] | None = None) -> Deliver:
        """Deliver logged frame ``seq`` again, under a new seq."""
        old = self.log[seq - 1]
        return self.forge(old.sender, old.payload, old.to, recipients)

    def announce(self, mid: bytes, recipients: list[Member] | None = None) -> None:
        self.fake_present.add(mid)
        for m in recipients if recipients is not None else self._connected():
            self._post(m, Presence(self.room, mid, PresenceEvent.JOINED))
        self.settle()

    def retract(self, mid: bytes, recipients: list[Member] | None = None) -> None:
        self.fake_present.discard(mid)
        for m in recipients if recipients is not None else self._connected():
            self.inbox.append((m, Presence(self.room, mid, PresenceEvent.LEFT)))
        self.settle()

    def report_offline(self, member: Member, recipients: list[Member] | None = None) -> None:
        """Presence says ``member`` left (to ``recipients``, default all others); it keeps sending."""
        targets = recipients if recipients is not None else [m for m in self._connected() if m is not member]
        for m in targets:
            self.policy.hide(member.mid, m.mid)
            self.inbox.append((m, Presence(self.room, member.mid, PresenceEvent.LEFT)))
        self.settle()

    def error(self, member: Member, code: str, reason: str, req_id: int = 0) -> None:
        self.inbox.append((member, Error(code, reason, req_id, self.room)))
        self.settle()

    def welcomes_for(self, mid: bytes) -> list[bytes]:
        return [d.payload for d in self.log if d.to == mid and payload_kind(d.payload) is PayloadKind.WELCOME]

    # --- the relay's work, through the policy -----------------------------------------------------

    def _gone(self, member: Member) -> None:
        for other in self._connected():
            if other is not member:
                self.inbox.append((other, Presence(self.room, member.mid, PresenceEvent.LEFT)))

    def _route(self, sender: Member, frame: Join | Leave | Publish | SendTo) -> None:
        if isinstance(frame, Join):
            refusal = self.policy.join_error(frame)
            if refusal is not None:
                self.inbox.append((sender, refusal))
                return
            present = tuple(
                mid
                for mid in [*(m.mid for m in self._connected() if m is not sender), *self.fake_present]
                if self.policy.shows_presence(mid, sender.mid)
            )
            for other in self._connected():
                if other is not sender:
                    self._post(other, Presence(self.room, sender.mid, PresenceEvent.JOINED))
            self.inbox.append((sender, Joined(frame.req_id, self.room, len(self.log), present)))
            if frame.resume_after is not None:
                for d in self.log[frame.resume_after :]:
                    seen = self.visible.get(d.seq)
                    if (d.to is None or d.to == sender.mid) and (seen is None or sender.mid in seen):
                        self._post(sender, d)
            return
        if isinstance(frame, Leave):
            return
        for hook in self.on_publish:
            hook(sender, frame)
        to = frame.to if isinstance(frame, SendTo) else None
        d = Deliver(len(self.log) + 1, self.room, sender.mid, to, frame.payload)
        self.log.append(d)
        self.inbox.append((sender, Ack(frame.req_id, d.seq)))
        if to is not None and to in self.virtuals and payload_kind(frame.payload) is PayloadKind.WELCOME:
            self.virtuals[to].welcomes.append(RoomPayload.decode(frame.payload).body)
        if self.policy.is_swallowed(sender.mid, frame.payload):
            self.visible[d.seq] = frozenset()
            return
        for m in self._connected():
            if to is None or to == m.mid:  # a SendTo has no echo (MemoryRoom's rule too)
                self._post(m, d)


def start_room(clock: ManualClock, *names: str, **settings: Any) -> tuple[HostileRoom, list[Member]]:
    """A hostile room where ``names`` all joined, one after the other, honestly: the first creates
    the group and lets each of the others in (``expect.invited`` and ``expect.let_in``)."""
    from expect import invited, let_in

    room = HostileRoom(clock)
    members: list[Member] = []
    for name in names:
        extra = invited(room, members[0], name) if members else {}
        m = room.add(name, **{**extra, **settings})
        room.connect(m)
        if members:
            let_in(room, members[0], m)
        room.tick()
        members.append(m)
    for _ in range(3):
        clock.advance(1.0)
        room.tick()
    return room, members
