"""Which frames a hostile relay delivers to whom, and what it can forge: one :class:`Policy`.

The hooks (:meth:`Policy.behave` undoes them all):

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
* ``hold(recipient)``: what ``recipient`` gets is kept back, for a room to release in another order.

A relay sees only public headers, as any relay does: :func:`payload_kind`, :func:`core_kind`,
:func:`is_commit` and :func:`is_chat` read them. :class:`VirtualMember` is an identity that exists
only inside the relay (real keys, correctly signed join requests, every welcome sent to it kept);
:func:`forged_request` and :func:`with_epoch` make forged payloads (a badly signed join request for
a member's key; a later-epoch header on a real message).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...client.room_payload import JoinAsk, PayloadKind, RoomPayload
from ...client.session.settings import group_id_for_room, member_id
from ...core.codec import Reader, Writer
from ...core.errors import GroupChatError
from ...core.group import Group, GroupConfig
from ...core.identity import Identity, JoinRequest, PendingJoin
from ...core.peek import MessageKind, peek
from ...relay_protocol import Deliver, Error, Join, Presence, PresenceEvent, ServerFrame

__all__ = [
    "Policy",
    "VirtualMember",
    "core_kind",
    "forged_request",
    "is_chat",
    "is_commit",
    "payload_kind",
    "with_epoch",
]

Pred = Callable[[bytes, ServerFrame], bool]
Alter = Callable[[bytes, ServerFrame], ServerFrame | None]


# --- what a payload is (the relay sees the public headers, like any relay) -------------------


def payload_kind(payload: bytes) -> PayloadKind | None:
    """The room payload's kind (None: not a room payload)."""
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
    """A commit (its public header says so)."""
    return core_kind(payload) is MessageKind.COMMIT


def is_chat(payload: bytes) -> bool:
    """An application message: chat or a beacon (both encrypted, so the relay cannot tell them apart)."""
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
    """Which frames reach whom (see the module docstring); shared by every face of the relay."""

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
        """The Error to answer ``join`` with instead of ``Joined`` (None: admit it)."""
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
    encoded = Writer().raw(tbs).opaque(req.signature).bytes()
    JoinRequest.decode(encoded)  # well-formed, badly signed
    return RoomPayload(PayloadKind.JOIN_REQUEST, JoinAsk(encoded).encode()).encode()
