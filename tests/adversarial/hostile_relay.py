"""A malicious relay for the attack tests of issue 13: two faces, one :class:`Policy`.

* :class:`HostileRoom` (sans-I/O): a :class:`MemoryRoom` (real :class:`SessionMachine`s, real
  cryptography, one ``ManualClock``) whose every delivery goes through the policy, so each member
  has its own view of the room.
* :class:`LoopbackRelay`: a real websockets server on 127.0.0.1 port 0 speaking the relay protocol
  (``groupchat.relay_protocol``) with the same policy, for real ``ChatSession``s.

The hooks (all on :class:`Policy` unless said otherwise; :meth:`Policy.behave` undoes them all):

* ``drop(pred)``: a frame for which ``pred(recipient, frame)`` holds is not delivered.
* ``alter(fn)``: ``fn(recipient, frame)`` returns the frame to deliver instead (or None: as is).
* ``withhold(sender, recipient=None)``: nothing from ``sender`` reaches ``recipient`` (anyone).
* ``swallow(sender, pred)``: a publish of ``sender`` matching ``pred(payload)`` is acknowledged
  and logged but delivered to nobody, not even as its echo (a withheld self-update).
* ``partition(half, other)``: each half receives only what its own half sent; presence still
  shows everyone online.
* ``hide(member, recipient=None)``: presence says ``member`` is gone (to ``recipient``, or all),
  though its frames still flow; ``Joined`` lists leave it out.
* ``answer_join(code, member=None, times=1, reason=None)``: the next Join of ``member`` (anyone)
  is answered with an Error of ``code`` (``gap``, ``future_seq``, any other) instead of ``Joined``.
* ``hold(recipient)`` / room ``release(recipient, reverse, renumber)``: reorder what one member
  receives, with seqs in the new order or keeping the old ones (sans-I/O face only).
* room ``on_publish``: callbacks run before a member's publish is logged, to forge what must
  come just before it in the relay's order (sans-I/O face only).

On both faces' rooms: ``forge(sender, payload, to=None)`` injects a Deliver as if from any
member id (one with no machine behind it included); ``announce(mid)`` fakes presence;
``report_offline(member)`` says a member left while its frames still flow; ``error(member, code,
reason)`` sends an Error frame with any code and reason; ``virtual(name)`` makes a
:class:`VirtualMember`: an identity that exists only inside the relay, with real keys and correctly
signed join requests, which records every welcome sent to it. The sans-I/O room also has
``forge(..., recipients=[...])`` (a per-member view, kept out of the others' resumes),
``replay(seq)`` (a logged frame again, under a new seq), ``retract(mid)`` and ``welcomes_for(mid)``;
the loopback relay has ``close(mid, code, reason)`` (any close reason). :func:`start_room` builds a
hostile room whose members all joined honestly; :func:`forged_request` and :func:`with_epoch` make
the forged payloads (a badly signed join request for a member's key; a later-epoch header).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from session_room import HELLO, Member, MemoryRoom

from groupchat.client.room_payload import JoinAsk, PayloadKind, RoomPayload
from groupchat.client.session import SessionSettings
from groupchat.client.session.machine import SessionMachine
from groupchat.client.session.settings import group_id_for_room, member_id
from groupchat.client.trust import TrustStore
from groupchat.core.codec import Reader
from groupchat.core.errors import GroupChatError
from groupchat.core.group import Group, GroupConfig
from groupchat.core.identity import Identity, JoinRequest, PendingJoin
from groupchat.core.peek import MessageKind, peek
from groupchat.lab.clock import ManualClock
from groupchat.relay_protocol import (
    Ack,
    Deliver,
    Error,
    Hello,
    Join,
    Joined,
    Leave,
    Presence,
    PresenceEvent,
    Publish,
    SendTo,
    ServerFrame,
    decode_client,
    encode,
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

Pred = Callable[[bytes, ServerFrame], bool]
Alter = Callable[[bytes, ServerFrame], ServerFrame | None]


# --- what a payload is (the relay sees the public headers, like any relay) -------------------


def payload_kind(payload: bytes) -> PayloadKind | None:
    try:
        return RoomPayload.decode(payload).kind
    except GroupChatError:
        return None


def core_kind(payload: bytes) -> MessageKind | None:
    """The core message kind a CORE room payload's public header claims."""
    try:
        p = RoomPayload.decode(payload)
        return peek(p.body).kind if p.kind is PayloadKind.CORE else None
    except GroupChatError:
        return None


def is_commit(payload: bytes) -> bool:
    return core_kind(payload) is MessageKind.COMMIT


def is_chat(payload: bytes) -> bool:
    return core_kind(payload) is MessageKind.APPLICATION


def with_epoch(core_message: bytes, epoch: int) -> bytes:
    """``core_message`` with its public header's epoch replaced (the rest, and so the AEAD, kept)."""
    r = Reader(core_message, "header")
    r.u16()
    r.u16()
    r.opaque("group_id", 255)
    at = r.position
    return core_message[:at] + epoch.to_bytes(8, "big") + core_message[at + 8 :]


# --- the policy ------------------------------------------------------------------------------


@dataclass
class Policy:
    """Which frames reach whom (see the module docstring); shared by both faces."""

    drops: list[Pred] = field(default_factory=list)
    alters: list[Alter] = field(default_factory=list)
    withheld: set[tuple[bytes, bytes | None]] = field(default_factory=set)
    swallowed: list[tuple[bytes, Callable[[bytes], bool]]] = field(default_factory=list)
    halves: tuple[frozenset[bytes], frozenset[bytes]] | None = None
    hidden: set[tuple[bytes, bytes | None]] = field(default_factory=set)
    join_answers: list[list[Any]] = field(default_factory=list)  # [code, member|None, times, reason]
    holding: set[bytes] = field(default_factory=set)
    dropped: list[tuple[bytes, ServerFrame]] = field(default_factory=list)  # what drop/withhold ate

    def behave(self) -> None:
        """From now on, deliver everything to everyone (what was dropped stays dropped)."""
        self.drops.clear()
        self.alters.clear()
        self.withheld.clear()
        self.swallowed.clear()
        self.halves = None
        self.hidden.clear()
        self.join_answers.clear()
        self.holding.clear()

    def drop(self, pred: Pred) -> None:
        self.drops.append(pred)

    def alter(self, fn: Alter) -> None:
        self.alters.append(fn)

    def withhold(self, sender: bytes, recipient: bytes | None = None) -> None:
        self.withheld.add((sender, recipient))

    def swallow(self, sender: bytes, pred: Callable[[bytes], bool]) -> None:
        self.swallowed.append((sender, pred))

    def partition(self, half: set[bytes], other: set[bytes]) -> None:
        self.halves = (frozenset(half), frozenset(other))

    def hide(self, member: bytes, recipient: bytes | None = None) -> None:
        self.hidden.add((member, recipient))

    def hold(self, recipient: bytes) -> None:
        self.holding.add(recipient)

    def answer_join(
        self, code: str, member: bytes | None = None, times: int = 1, reason: str | None = None
    ) -> None:
        self.join_answers.append([code, member, times, reason or f"the relay says {code}"])

    # --- what the faces ask --------------------------------------------------------------------

    def is_swallowed(self, sender: bytes, payload: bytes) -> bool:
        return any(s == sender and pred(payload) for s, pred in self.swallowed)

    def shows_presence(self, member: bytes, recipient: bytes) -> bool:
        return (member, None) not in self.hidden and (member, recipient) not in self.hidden

    def join_error(self, join: Join) -> Error | None:
        for answer in self.join_answers:
            code, member, times, reason = answer
            if times > 0 and member in (None, join.member):
                answer[2] -= 1
                return Error(code, reason, join.req_id, join.room)
        return None

    def admit(self, recipient: bytes, frame: ServerFrame) -> ServerFrame | None:
        """The frame ``recipient`` gets in place of ``frame`` (None: nothing)."""
        if isinstance(frame, Deliver):
            sender = frame.sender
            if (sender, None) in self.withheld or (sender, recipient) in self.withheld:
                self.dropped.append((recipient, frame))
                return None
            if self.halves is not None and sender != recipient:
                a, b = self.halves
                if (sender in a and recipient in b) or (sender in b and recipient in a):
                    self.dropped.append((recipient, frame))
                    return None
        if (
            isinstance(frame, Presence)
            and frame.event is PresenceEvent.JOINED
            and not self.shows_presence(frame.member, recipient)
        ):
            return None
        if any(pred(recipient, frame) for pred in self.drops):
            self.dropped.append((recipient, frame))
            return None
        for fn in self.alters:
            frame = fn(recipient, frame) or frame
        return frame


# --- identities that exist only inside the relay ------------------------------------------------


@dataclass
class VirtualMember:
    """The relay's own identity: real keys, correctly signed join requests, no machine behind it."""

    name: str
    room: str
    config: GroupConfig
    identity: Identity = field(default_factory=Identity.generate)
    pending: list[PendingJoin] = field(default_factory=list)
    welcomes: list[bytes] = field(default_factory=list)  # every WELCOME body sent to it

    @property
    def mid(self) -> bytes:
        return member_id(self.identity.public_key)

    def join_request(self) -> bytes:
        """A fresh, correctly signed join request, as a room payload."""
        p = JoinRequest.create(
            self.config.suite(),
            self.identity,
            group_id_for_room(self.room),
            self.name,
            self.config.rand,
            wall_clock=self.config.wall_clock,
        )
        self.pending.append(p)
        return RoomPayload(PayloadKind.JOIN_REQUEST, JoinAsk(p.request.encoded).encode()).encode()

    def opened(self) -> list[Group]:
        """Every group a welcome sent to it opens into, with any of its requests (it should be none)."""
        groups = []
        for w in self.welcomes:
            for p in self.pending:
                try:
                    groups.append(Group.join(p, w, self.config))
                except GroupChatError:
                    continue
        return groups


def forged_request(victim: Identity, room: str, config: GroupConfig, name: str) -> bytes:
    """A join request carrying ``victim``'s public identity key, signed by someone else."""
    p = JoinRequest.create(
        config.suite(),
        Identity.generate(),
        group_id_for_room(room),
        name,
        config.rand,
        wall_clock=config.wall_clock,
    )
    req = p.request
    tbs = JoinRequest.tbs(
        req.cipher_suite, req.group_id, victim.public_key, name.encode(), req.init_key, req.not_after
    )
    from groupchat.core.codec import Writer

    encoded = Writer().raw(tbs).opaque(req.signature).bytes()
    JoinRequest.decode(encoded)  # well-formed, badly signed
    return RoomPayload(PayloadKind.JOIN_REQUEST, JoinAsk(encoded).encode()).encode()


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


# --- the loopback face ----------------------------------------------------------------------------


class LoopbackRelay:
    """A websockets relay on 127.0.0.1 port 0 that obeys a :class:`Policy` (one room)."""

    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy or Policy()
        self.conns: dict[bytes, Any] = {}
        self.rooms: dict[bytes, bytes] = {}
        self.log: list[Deliver] = []
        self.fake_present: set[bytes] = set()
        self.virtuals: dict[bytes, VirtualMember] = {}
        self._server: Any = None

    async def __aenter__(self) -> LoopbackRelay:
        from websockets.asyncio.server import serve

        self._server = await serve(self._handle, "127.0.0.1", 0, compression=None, max_size=1 << 22)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await asyncio.wait_for(self._server.wait_closed(), 5)

    @property
    def port(self) -> int:
        return int(self._server.sockets[0].getsockname()[1])

    def virtual(self, name: str, room: str) -> VirtualMember:
        v = VirtualMember(name, room, GroupConfig(rand=os.urandom))
        self.virtuals[v.mid] = v
        return v

    async def _send(self, mid: bytes, frame: ServerFrame, filtered: bool = True) -> None:
        ws = self.conns.get(mid)
        if ws is None:
            return
        out = self.policy.admit(mid, frame) if filtered else frame
        if out is not None:
            try:
                await ws.send(encode(out))
            except Exception:  # a closed peer: the relay goes on
                return

    async def forge(self, sender: bytes, payload: bytes, to: bytes | None = None) -> None:
        room = next(iter(self.rooms.values()), b"room")
        d = Deliver(len(self.log) + 1, room, sender, to, payload)
        self.log.append(d)
        for mid in list(self.conns):
            if to is None or to == mid:
                await self._send(mid, d)

    async def announce(self, mid: bytes) -> None:
        self.fake_present.add(mid)
        for other in list(self.conns):
            room = self.rooms[other]
            await self._send(other, Presence(room, mid, PresenceEvent.JOINED))

    async def report_offline(self, mid: bytes) -> None:
        """Presence says ``mid`` left (to everyone else); its frames still flow."""
        for other in list(self.conns):
            if other != mid:
                self.policy.hide(mid, other)
                await self._send(other, Presence(self.rooms[other], mid, PresenceEvent.LEFT))

    async def error(self, mid: bytes, code: str, reason: str) -> None:
        await self._send(mid, Error(code, reason), filtered=False)

    async def close(self, mid: bytes, code: int, reason: str) -> None:
        ws = self.conns.get(mid)
        if ws is not None:
            await ws.close(code, reason)

    async def _handle(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        with contextlib.suppress(ConnectionClosed):
            await self._serve(ws)

    async def _serve(self, ws: Any) -> None:
        from groupchat.relay_protocol import ENVELOPE_VERSION, ServerHello

        first = decode_client(await ws.recv())
        if not isinstance(first, Hello):
            await ws.close(1002, "hello_required")
            return
        await ws.send(encode(ServerHello(ENVELOPE_VERSION, HELLO.limits, "hostile")))
        me: bytes | None = None
        try:
            async for msg in ws:
                frame = decode_client(msg)
                if isinstance(frame, Join):
                    refusal = self.policy.join_error(frame)
                    if refusal is not None:
                        await ws.send(encode(refusal))
                        continue
                    me = frame.member
                    present = tuple(
                        m for m in [*self.conns, *self.fake_present] if self.policy.shows_presence(m, me)
                    )
                    self.conns[me], self.rooms[me] = ws, frame.room
                    await ws.send(encode(Joined(frame.req_id, frame.room, len(self.log), present)))
                    for other in list(self.conns):
                        if other != me:
                            await self._send(other, Presence(frame.room, me, PresenceEvent.JOINED))
                    if frame.resume_after is not None:
                        for d in self.log[frame.resume_after :]:
                            if d.to is None or d.to == me:
                                await self._send(me, d)
                elif isinstance(frame, Publish | SendTo) and me is not None:
                    to = frame.to if isinstance(frame, SendTo) else None
                    d = Deliver(len(self.log) + 1, frame.room, me, to, frame.payload)
                    self.log.append(d)
                    await ws.send(encode(Ack(frame.req_id, d.seq)))
                    if to in self.virtuals and payload_kind(frame.payload) is PayloadKind.WELCOME:
                        self.virtuals[to].welcomes.append(RoomPayload.decode(frame.payload).body)
                    if self.policy.is_swallowed(me, frame.payload):
                        continue
                    for mid in list(self.conns):
                        if to is None or to == mid or (mid == me and to == me):
                            await self._send(mid, d)
        finally:
            if me is not None and self.conns.get(me) is ws:
                del self.conns[me]
                for other in list(self.conns):
                    await self._send(other, Presence(self.rooms[other], me, PresenceEvent.LEFT))
