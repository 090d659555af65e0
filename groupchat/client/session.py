"""The chat session: one member of one room, over the relay, driving the sans-I/O core.

A :class:`ChatSession` connects to the relay, joins the room and the group, and turns relay frames
and core events into :mod:`~groupchat.client.notices` for its UI. It adds no cryptography and no
protocol rule of its own: it decides *when* to call the core (who commits a pending Add, when to
self-update, when to rejoin) and moves the core's bytes. The relay is untrusted: whatever it does
only affects liveness; every group change is a signed commit the core verifies.

Structure: three tasks on the caller's event loop (the connector reads the websocket, the ticker
wakes timers, the *actor* owns every piece of state and handles one input at a time) plus one
worker thread for every core call (:mod:`groupchat.client.core_worker`). The UI calls the
synchronous methods from the same loop; they only queue work for the actor.

The rules (join, leave, eviction, updates, reconnect) are documented in ``docs/session.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
import types
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from ..core import tree_math as tm
from ..core.codec import Reader
from ..core.errors import (
    ConfirmationError,
    DecodeError,
    DecryptionError,
    EpochError,
    GenerationError,
    GroupChatError,
    InconsistentPathError,
    InvalidValueError,
    RemovedSenderError,
    ReplayError,
    SignatureError,
    UnknownMemberError,
    UsageError,
    WrongGroupError,
)
from ..core.events import (
    EpochChanged,
    Event,
    Member,
    MessageEchoed,
    MessageReceived,
    RekeyProgress,
    RemovedFromGroup,
)
from ..core.group import RING_CONFIRM_WIRE_FORMAT, Group, GroupConfig
from ..core.identity import (
    MAX_GROUP_ID,
    Identity,
    JoinRequest,
    PendingJoin,
    epoch_code,
    fingerprint,
    validate_display_name,
)
from ..core.message_protection import WireFormat
from ..core.outbox import Joiner, OutboundKind
from ..core.schemes.ring_errors import AttemptFailedError, RingTimeoutError, WrongAttemptError
from ..core.schemes.ring_message import RING_WIRE_FORMAT
from ..relay_protocol import (
    MAX_ID_LEN,
    Ack,
    Deliver,
    Error,
    ErrorCode,
    Hello,
    Join,
    Joined,
    Leave,
    Presence,
    PresenceEvent,
    Publish,
    SendTo,
    ServerFrame,
    ServerHello,
    decode_server,
    encode,
)
from .app_content import AppContent, ContentKind
from .backoff import Backoff
from .coordinator import AddDuty, RemoveDuty, plan_commit, turn_at
from .core_worker import CoreWorker, Timed, TreeSnapshot
from .notices import (
    ChatLine,
    ConnectionState,
    MessageConfirmed,
    Notice,
    Placeholder,
    RosterChanged,
    RosterEntry,
    StatusChanged,
    TimelineEvent,
    TimelineKind,
    TreeNode,
    TreeView,
    TrustState,
    UnreadableReason,
)
from .outbound_queue import OutboundQueue
from .room_payload import CREATION_NONCE_LEN, SYNC_NONCE_LEN, PayloadKind, RoomPayload
from .trust import TrustStore, safety_number

__all__ = ["ChatSession", "SessionSettings", "group_id_for_room", "member_id"]

log = logging.getLogger(__name__)

AGENT: Final = "groupchat-session/1"
MAX_TEXT_BYTES: Final = 16 * 1024
# The actor is woken for the earliest timed duty (see _next_deadline), and at least this often:
# a bound on how late anything timed can be, should a deadline not be foreseen (or the injected
# clock jump, as in tests), at one cheap wake-up a second when idle.
_MAX_SLEEP: Final = 1.0
_MAX_BUFFERED: Final = 4096  # core messages kept while waiting for our welcome
_SEEN_PER_SENDER: Final = 4096  # chat message ids remembered per sender, to show each once
_MAX_FRAME: Final = 4 << 20
_RING_POLL: Final = 1.0  # seconds between checks of a running ring's round deadline
_GROUP_ID_PREFIX: Final = b"groupchat room:"


@functools.lru_cache(maxsize=8192)
def member_id(identity_key: bytes) -> bytes:
    """Our relay member id: the identity fingerprint in compact form (32 hex digits)."""
    return fingerprint(identity_key).replace(" ", "").encode("ascii")


@functools.lru_cache(maxsize=8192)
def _fingerprint(identity_key: bytes) -> str:
    return fingerprint(identity_key)


@functools.lru_cache(maxsize=32)
def _levels(width: int) -> tuple[int, ...]:
    """The level of each node of a tree ``width`` nodes wide (the /tree view's layout)."""
    return tuple(tm.level(i) for i in range(width))


def _message_epoch(data: bytes) -> int | None:
    """The epoch in a core message's public header (PublicMessage and PrivateMessage both start
    ``version, wire_format, group_id<V>, epoch``), or None if it does not parse that far."""
    try:
        r = Reader(data, "message header")
        r.u16("version")
        r.u16("wire_format")
        r.opaque("group_id", MAX_GROUP_ID)
        return r.u64("epoch")
    except GroupChatError:
        return None


def group_id_for_room(room: str) -> bytes:
    """The group id bound into every join request for ``room``, so a request is good for that
    room's group only (threats.md §1.1: no request replayed into another group)."""
    return _GROUP_ID_PREFIX + room.encode("utf-8")


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """What a session needs to know; checked here so that a mistake is reported before connecting."""

    relay_url: str
    room: str
    name: str
    scheme: str = "tree"  # "tree" | "ring": for a group we create; a joiner follows the group's
    add_timeout: float = 3.0  # seconds before the next member in line commits a pending Add
    eviction_grace: float = 60.0  # offline longer than this -> removed by the others
    update_interval: float = 600.0  # self-Update at least this often (seconds)...
    update_every: int = 200  # ...or after this many messages sent, whichever first
    reconnect_min: float = 0.2
    reconnect_max: float = 10.0

    def __post_init__(self) -> None:
        if not self.relay_url.startswith(("ws://", "wss://")):
            raise UsageError(f"relay URL {self.relay_url!r} must start with ws:// or wss://")
        room = self.room.encode("utf-8")
        if not room or len(room) > MAX_ID_LEN:
            raise UsageError(f"room name must be 1 to {MAX_ID_LEN} bytes of UTF-8")
        try:
            validate_display_name(self.name)
        except InvalidValueError as exc:
            raise UsageError(f"name {self.name!r} cannot be used: {exc}") from None
        if self.scheme not in ("tree", "ring"):
            raise UsageError(f"unknown scheme {self.scheme!r}: choose tree or ring")
        for name in ("add_timeout", "eviction_grace", "update_interval", "reconnect_min", "reconnect_max"):
            if not getattr(self, name) > 0:
                raise UsageError(f"{name} must be a positive number of seconds")
        if self.reconnect_min > self.reconnect_max:
            raise UsageError("reconnect_min must not exceed reconnect_max")
        if self.update_every < 1:
            raise UsageError("update_every must be at least 1 message")


# --- the actor's inputs ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Connected:
    ws: ClientConnection
    hello: ServerHello


@dataclass(frozen=True, slots=True)
class _Received:
    frame: ServerFrame


@dataclass(frozen=True, slots=True)
class _Disconnected:
    reason: str
    retry_in: float | None


@dataclass(frozen=True, slots=True)
class _Command:
    name: str  # "wake" | "tick" | "rekey" | "kick" | "leave" | "close" | "drop"
    arg: bytes = b""
    done: asyncio.Future[None] | None = None


_Input = _Connected | _Received | _Disconnected | _Command


@dataclass(slots=True)
class _OwnCommit:
    """Our commit waiting for the relay's echo, and what it was for."""

    message: bytes
    build_ms: float
    update: bool
    removes: tuple[RemoveDuty, ...]
    kicks: frozenset[bytes]
    applied: bool = False  # ring: its echo won the epoch; the ring it started is still running


@dataclass(slots=True)
class _RingRun:
    """A ring rekey under way (ring groups): which epoch it creates and what it has cost so far."""

    epoch: int
    started: float
    core_ms: float = 0.0
    waiting_for: tuple[str, ...] = ()
    waiting_leaves: tuple[int, ...] = ()
    next_poll: float = 0.0
    timeouts: int = 0


@dataclass(slots=True)
class _Link:
    """One websocket connection and where we are on it."""

    ws: ClientConnection
    max_payload: int
    join_req: int = 0
    resume_after: int | None = None
    in_room: bool = False
    sync_nonce: bytes = b""
    caught_up: bool = False
    pending_acks: dict[int, tuple[str, float]] = field(default_factory=dict)


class ChatSession:
    """One member's chat session in one room (see the module docstring and docs/session.md)."""

    def __init__(
        self,
        settings: SessionSettings,
        identity: Identity,
        trust: TrustStore,
        notify: Callable[[Notice], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.settings = settings
        self.identity = identity
        self._trust = trust
        self._notify = notify
        self._clock = clock
        self._rand = rand
        self._me = member_id(identity.public_key)
        self._room = settings.room.encode("utf-8")
        self._group_id = group_id_for_room(settings.room)
        self._name = validate_display_name(settings.name)
        self._config = GroupConfig(clock=clock, rand=rand)
        self._worker: CoreWorker | None = None
        self._inbox: asyncio.Queue[_Input] = asyncio.Queue()
        self._backoff = Backoff(settings.reconnect_min, settings.reconnect_max, rand)
        self._req_ids = 0

        # Connection and room.
        self._link: _Link | None = None
        self._state = ConnectionState.CONNECTING
        self._ever_connected = False
        self._last_seq: int | None = None  # the last room seq we processed
        self._gap_from: int | None = None  # last seq before a gap, to count what we missed
        self._present: set[bytes] = set()
        self._offline_since: dict[bytes, float] = {}
        self._latency_ms: float | None = None
        self._send_pause_until = 0.0  # after the relay said rate_limited

        # Group membership.
        self._group: Group | None = None
        self._joined_epoch = 0
        self._pending_join: PendingJoin | None = None
        self._join_next_publish = 0.0
        self._join_attempts = 0
        self._waiting_since = 0.0  # when we started waiting for a welcome
        self._created_nonce: bytes | None = None  # our creation marker, until its echo
        self._traffic_seen = False  # any group traffic in the room (decides create vs join)
        self._buffer: list[bytes] = []  # core messages seen while waiting for our welcome
        self._buffer_dropped = 0

        # Duties and our own commit.
        self._add_duties: dict[bytes, AddDuty] = {}  # identity key -> the latest request
        self._leave_requests: dict[bytes, float] = {}  # identity key -> when asked
        self._kicks: set[bytes] = set()  # identity keys our user asked to remove
        self._own_commit: _OwnCommit | None = None
        self._ring: _RingRun | None = None  # ring groups: the rekey being agreed, if any
        self._old_commits: OrderedDict[bytes, None] = OrderedDict()  # ours, superseded or discarded
        self._want_update: str | None = None  # why we owe a self-update, if we do
        self._update_not_before = 0.0
        self._commit_losses = 0  # our commits superseded in a row
        self._last_update = clock()
        self._sent_since_update = 0

        # Messages.
        self._outbox = OutboundQueue(lambda: self._rand(8))
        self._seen_ids: dict[bytes, OrderedDict[bytes, None]] = {}
        self._placeholder_batch: dict[tuple[UnreadableReason, str | None, str], int] | None = None

        # What the UI reads.
        self._members: dict[int, Member] = {}
        self._snapshot: TreeSnapshot | None = None
        self._tree_view: TreeView | None = None  # built on demand from _snapshot (see tree_view)
        self._tree_watched = False  # a UI asked for the view: emit it at every change from then on
        self._tree_changed: frozenset[int] = frozenset()  # nodes the last change gave new keys
        self._epoch_codes: dict[int, str] = {}
        self._warned_keys: set[tuple[str, bytes]] = set()
        self._removal_reasons: dict[bytes, str] = {}  # identity key -> why it is being removed

        # Lifecycle.
        self._running = False
        self._tick_pending = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # when the armed timer fires (the injected clock)
        self._leaving = False
        self._leave_deadline = 0.0
        self._leave_sent = False
        self._finished: asyncio.Event | None = None
        self._stopped: asyncio.Event | None = None

    # --- the public API ------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, join the room and the group, and serve until :meth:`close` or until we left."""
        if self._running:
            raise UsageError("this session is already running")
        self._running = True
        self._worker = CoreWorker()
        self._finished = asyncio.Event()
        self._stopped = asyncio.Event()
        self._emit_status()
        tasks = [
            asyncio.create_task(self._actor(), name="session-actor"),
            asyncio.create_task(self._connector(), name="session-connector"),
        ]
        finished = asyncio.create_task(self._finished.wait())
        try:
            done, _ = await asyncio.wait([*tasks, finished], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = None if task is finished or task.cancelled() else task.exception()
                if exc is not None:
                    raise exc
        finally:
            link, self._link = self._link, None
            if link is not None:  # a clean close (1000) before the connector is cancelled
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2):
                        await link.ws.close()
            for task in [*tasks, finished]:
                task.cancel()
            await asyncio.gather(*tasks, finished, return_exceptions=True)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._worker.shutdown()
            self._state = ConnectionState.CLOSED
            self._emit_status()
            self._stopped.set()

    def send_text(self, text: str) -> int:
        """Queue ``text`` for the group; returns its local id. Shown at once as pending."""
        if self._leaving or self._state is ConnectionState.CLOSED:
            raise UsageError("this session has left the room; nothing more can be sent")
        if not text.strip():
            raise UsageError("an empty message is not sent")
        if len(text.encode("utf-8")) > MAX_TEXT_BYTES:
            raise UsageError(f"message is longer than {MAX_TEXT_BYTES} bytes; split it")
        entry = self._outbox.add(text)
        epoch = self._group.epoch if self._group is not None else 0
        self._emit(
            ChatLine(
                self._name,
                text,
                epoch,
                own=True,
                pending=True,
                local_id=entry.local_id,
                trust=TrustState.VERIFIED,
            )
        )
        self._post(_Command("wake"))
        return entry.local_id

    def request_rekey(self) -> None:
        """``/rekey``: commit a self-Update as soon as possible."""
        self._post(_Command("rekey"))

    def kick(self, name: str) -> None:
        """``/kick NAME``: commit the removal of that member ourselves."""
        member = self._member_named(name)
        if member.identity_key == self.identity.public_key:
            raise UsageError("you cannot kick yourself; use /leave")
        self._post(_Command("kick", member.identity_key))

    def leave(self) -> None:
        """``/leave``: publish a signed leave request; :meth:`run` ends once a member removed us."""
        self._post(_Command("leave"))

    def roster(self) -> tuple[RosterEntry, ...]:
        entries = []
        for leaf in sorted(self._members):
            m = self._members[leaf]
            mine = m.identity_key == self.identity.public_key
            online = self._link is not None if mine else member_id(m.identity_key) in self._present
            trust = TrustState.VERIFIED if mine else self._trust.state(m.display_name, m.identity_key)
            fp = _fingerprint(m.identity_key)
            entries.append(RosterEntry(m.display_name, fp, online, trust, is_me=mine))
        return tuple(entries)

    def safety_number(self, name: str) -> str:
        member = self._member_named(name)
        return safety_number(self.identity.public_key, member.identity_key)

    def trust(self, name: str) -> None:
        """``/trust NAME``: mark the key we see for ``name`` as verified out of band."""
        member = self._member_named(name)
        self._trust.trust(member.display_name, member.identity_key)
        self._emit(TimelineEvent(TimelineKind.INFO, f"{member.display_name} is now marked verified"))
        self._emit_roster()

    def tree_view(self) -> TreeView:
        """The key tree (or ring) of our epoch; from the first call on, every change also emits one."""
        self._tree_watched = True
        snap = self._snapshot
        if self._tree_view is None:
            if snap is None or self._group is None or self._group.joining:
                return TreeView(self._group.scheme if self._group else "tree", 0, ())
            self._tree_view = self._build_tree_view(snap)
        return self._tree_view

    @property
    def status(self) -> StatusChanged:
        group = self._group
        epoch = group.epoch if group is not None and not group.joining else None
        ring = self._ring
        return StatusChanged(
            connection=self._state,
            relay=self.settings.relay_url,
            room=self.settings.room,
            scheme=group.scheme if group is not None else self.settings.scheme,
            member_count=len(self._members),
            epoch=epoch,
            epoch_code=self._epoch_codes.get(epoch) if epoch is not None else None,
            latency_ms=self._latency_ms,
            rekey_waiting_for=ring.waiting_for if ring is not None and epoch is not None else None,
        )

    @property
    def quiet(self) -> bool:
        """Nothing of ours will change the epoch unless asked: no commit in flight, no update owed
        (a joiner's first, a reconnect's), no ring rekey running. For benchmarks and demos."""
        return self._own_commit is None and self._want_update is None and self._ring is None

    @property
    def epoch_codes(self) -> Mapping[int, str]:
        return types.MappingProxyType(dict(self._epoch_codes))

    @property
    def epoch(self) -> int | None:
        """Our current epoch; None before we are a member (a ring joiner: before its first ring is done)."""
        group = self._group
        if group is None or self._created_nonce is not None or group.joining:
            return None
        return group.epoch

    async def close(self, *, leave: bool = True, timeout: float = 5.0) -> None:
        """Stop the session. With ``leave`` (quitting), first publish a leave request so that the
        others remove us at once instead of after the eviction grace period."""
        if not self._running or self._stopped is None:
            self._state = ConnectionState.CLOSED
            return
        if self._stopped.is_set():
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._post(_Command("close", b"leave" if leave else b"", done))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await asyncio.shield(done)
        if self._finished is not None:
            self._finished.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._stopped.wait()

    async def drop_connection(self) -> None:
        """Close the websocket as if the network failed; the session reconnects by itself.

        For demos and tests of the reconnect path."""
        if not self._running or self._stopped is None or self._stopped.is_set():
            raise UsageError("the session is not running")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._post(_Command("drop", done=done))
        await done

    # --- tasks -----------------------------------------------------------------------------

    def _post(self, item: _Input) -> None:
        self._inbox.put_nowait(item)

    def _arm_timer(self) -> None:
        """Make sure the actor is woken by the next deadline (at most ``_MAX_SLEEP`` from now).

        An idle session costs nothing but that: no ticker polls the timers. Waking early is
        harmless (the actor finds nothing due and arms again); an earlier wake already armed stays.
        """
        now = self._clock()
        at = min(self._next_deadline(now), now + _MAX_SLEEP)
        if self._timer is not None:
            if self._timer_at <= at:
                return
            self._timer.cancel()
        self._timer_at = at
        self._timer = asyncio.get_running_loop().call_later(max(0.0, at - now), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if not self._tick_pending:  # one tick in the inbox is enough, however busy the actor
            self._tick_pending = True
            self._post(_Command("tick"))

    def _next_deadline(self, now: float) -> float:
        """The earliest future moment at which something timed becomes due (inf: nothing).

        Mirrors what :meth:`_progress` checks: the leave deadline, creating or re-asking to join,
        the relay's pause, the ring's round deadline, the scheduled update, and our turn for each
        pending Add or Remove (coordinator.turn_at). Times already past are left out: what is due
        but waits for something (an echo, a connection) is woken by that input.
        """
        s = self.settings
        times = [self._send_pause_until]
        if self._leaving:
            times.append(self._leave_deadline)
        group = self._group
        if group is None:
            if self._pending_join is not None:
                times.append(self._join_next_publish)
            if not self._traffic_seen:
                present = sorted(self._present | {self._me})
                since = self._waiting_since if self._pending_join is not None else now
                times.append(since + present.index(self._me) * s.add_timeout)
        else:
            if self._ring is not None:
                times.append(self._ring.next_poll)
            times.append(self._last_update + s.update_interval)
            if self._want_update is not None:
                times.append(self._update_not_before)
            times.extend(self._duty_turns())
        future = [t for t in times if t > now]
        return min(future, default=float("inf"))

    def _duty_turns(self) -> list[float]:
        """When our turn comes for each pending Add and Remove (see :meth:`_maybe_commit`)."""
        group = self._group
        if group is None or not (self._add_duties or self._leave_requests or self._offline_since):
            return []
        step = self.settings.add_timeout
        me = group.my_leaf
        online = [leaf for leaf, m in self._members.items() if member_id(m.identity_key) in self._present]
        by_key = {m.identity_key: leaf for leaf, m in self._members.items()}
        by_id = {member_id(m.identity_key): leaf for leaf, m in self._members.items()}
        turns = [turn_at(me, online, duty.since, step) for duty in self._add_duties.values()]
        for key, since in self._leave_requests.items():
            if key in by_key:
                turns.append(turn_at(me, online, since, step, exclude=by_key[key]))
        for mid, since in self._offline_since.items():
            if mid in by_id:
                due = since + self.settings.eviction_grace
                turns.append(turn_at(me, online, due, step, exclude=by_id[mid]))
        return [t for t in turns if t is not None]

    async def _connector(self) -> None:
        """Connect, read frames into the actor's inbox, and reconnect with backoff."""
        while True:
            reason = "connection closed"
            try:
                async with connect(
                    self.settings.relay_url,
                    compression=None,
                    max_size=_MAX_FRAME,
                    open_timeout=10,
                    user_agent_header=AGENT,
                ) as ws:
                    await ws.send(encode(Hello(AGENT)))
                    async with asyncio.timeout(10):
                        first = await ws.recv()
                    if not isinstance(first, bytes):
                        raise InvalidValueError("the relay answered Hello with a text frame")
                    hello = decode_server(first, _MAX_FRAME)
                    if not isinstance(hello, ServerHello):
                        raise InvalidValueError(f"the relay answered Hello with {type(hello).__name__}")
                    self._post(_Connected(ws, hello))
                    max_frame = max(hello.limits.max_frame, 1024) * 2
                    async for message in ws:
                        if not isinstance(message, bytes):
                            log.warning("relay sent a text frame; ignored")
                            continue
                        try:
                            frame = decode_server(message, max_frame)
                        except DecodeError as exc:
                            log.warning("relay sent an undecodable frame (%s); ignored", exc)
                            continue
                        self._post(_Received(frame))
                    reason = (
                        f"the relay closed the connection ({ws.close_code} {ws.close_reason or ''})".strip()
                    )
            except ConnectionClosed as exc:
                reason = f"connection lost ({exc})"
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI, GroupChatError) as exc:
                reason = (
                    f"cannot reach the relay: {exc}"
                    if str(exc)
                    else f"cannot reach the relay ({type(exc).__name__})"
                )
            delay = self._backoff.next()
            self._post(_Disconnected(reason, delay))
            await asyncio.sleep(delay)

    async def _actor(self) -> None:
        """Handle one input at a time; everything that changes session state happens here."""
        while True:
            item = await self._inbox.get()
            if isinstance(item, _Received):
                await self._on_frame(item.frame)
            elif isinstance(item, _Connected):
                await self._on_connected(item)
            elif isinstance(item, _Disconnected):
                self._on_disconnected(item)
            else:
                await self._on_command(item)
            if self._finished is not None and self._finished.is_set():
                return
            await self._progress()
            self._arm_timer()

    # --- connection ------------------------------------------------------------------------

    def _next_req(self) -> int:
        self._req_ids = self._req_ids % 0xFFFFFFFF + 1
        return self._req_ids

    async def _on_connected(self, item: _Connected) -> None:
        self._link = _Link(item.ws, item.hello.limits.max_payload)
        await self._join_room(self._last_seq if self._last_seq is not None else 0)

    async def _join_room(self, resume_after: int | None) -> None:
        link = self._link
        if link is None:
            return
        link.join_req = self._next_req()
        link.resume_after = resume_after
        self._set_state(ConnectionState.JOINING if self._group is None else self._state)
        await self._send(Join(link.join_req, self._room, self._me, resume_after))

    def _on_disconnected(self, item: _Disconnected) -> None:
        link, self._link = self._link, None
        self._present.clear()
        if link is not None:
            link.in_room = False
        if self._ever_connected:
            when = f"; reconnecting in {item.retry_in:.1f} s" if item.retry_in is not None else ""
            self._emit(TimelineEvent(TimelineKind.DISCONNECTED, f"{item.reason}{when}"))
        else:
            log.info("relay unreachable: %s", item.reason)
        self._set_state(ConnectionState.RECONNECTING if self._ever_connected else ConnectionState.CONNECTING)
        self._emit_roster()

    async def _send(self, frame: Join | Leave | Publish | SendTo) -> bool:
        link = self._link
        if link is None:
            return False
        try:
            await link.ws.send(encode(frame))
        except ConnectionClosed:
            return False
        return True

    async def _publish(
        self, kind: PayloadKind, body: bytes, what: str, to: bytes | None = None
    ) -> int | None:
        """Publish a room payload (or send it to ``to`` alone); returns the request id if sent."""
        link = self._link
        if link is None or not link.in_room:
            return None
        payload = RoomPayload(kind, body).encode()
        if len(payload) > link.max_payload:
            self._emit(
                TimelineEvent(
                    TimelineKind.WARNING,
                    f"cannot send a {what} of {len(payload)} bytes: "
                    f"the relay accepts at most {link.max_payload}",
                )
            )
            return None
        req = self._next_req()
        frame = Publish(req, self._room, payload) if to is None else SendTo(req, self._room, to, payload)
        if not await self._send(frame):
            return None
        link.pending_acks[req] = (what, self._clock())
        return req

    async def _on_frame(self, frame: ServerFrame) -> None:
        link = self._link
        if link is None:
            return
        if isinstance(frame, Deliver):
            if frame.room == self._room:
                await self._on_deliver(frame)
        elif isinstance(frame, Presence):
            if frame.room == self._room:
                self._on_presence(frame)
        elif isinstance(frame, Ack):
            sent = link.pending_acks.pop(frame.req_id, None)
            if sent is not None:
                self._latency_ms = (self._clock() - sent[1]) * 1000
        elif isinstance(frame, Joined):
            if frame.req_id == link.join_req:
                await self._on_joined(link, frame)
        elif isinstance(frame, Error):
            await self._on_error(link, frame)

    async def _on_joined(self, link: _Link, joined: Joined) -> None:
        link.in_room = True
        self._backoff.reset()
        self._present = set(joined.members)
        self._present.add(self._me)
        # We cannot know when the absent ones left while we were away: count from now.
        self._offline_since = {}
        self._note_absent_members()
        if self._gap_from is not None and link.resume_after is None:
            missed = max(0, joined.head_seq - self._gap_from)
            if missed:
                self._emit(
                    Placeholder(
                        UnreadableReason.MISSED_OFFLINE,
                        missed,
                        detail="the relay had already dropped them from its log "
                        "(every room message counts, not only chat)",
                    )
                )
            self._gap_from = None
        if link.resume_after is None:
            self._last_seq = joined.head_seq
        # A message addressed to ourselves marks the end of the backlog: everything the relay
        # logged before it has been delivered to us when its echo comes back.
        link.sync_nonce = self._rand(SYNC_NONCE_LEN)
        await self._publish(PayloadKind.SYNC, link.sync_nonce, "sync marker", to=self._me)
        self._emit_roster()

    async def _on_error(self, link: _Link, err: Error) -> None:
        if err.req_id and err.req_id == link.join_req:
            if err.code in (ErrorCode.GAP, ErrorCode.FUTURE_SEQ):
                await self._on_resume_refused(link, err)
                return
            self._emit(
                TimelineEvent(
                    TimelineKind.WARNING, f"the relay refused to let us into the room: {err.reason}"
                )
            )
            await link.ws.close()
            return
        what = link.pending_acks.pop(err.req_id, (None, 0.0))[0] if err.req_id else None
        log.warning("relay error %s for %s: %s", err.code, what or "no request", err.reason)
        entry = self._outbox.by_request(err.req_id) if err.req_id else None
        if entry is not None:
            if err.code == ErrorCode.TOO_LARGE:
                self._outbox.drop(entry)
                self._emit(
                    TimelineEvent(
                        TimelineKind.WARNING, f"message {entry.local_id} is too large for the relay"
                    )
                )
            else:
                self._outbox.requeue(entry)  # rate limited or the like: try again shortly
                self._send_pause_until = self._clock() + 0.25
            return
        own = self._own_commit
        if own is not None and what == "commit" and self._group is not None:
            # The relay dropped our commit: forget it and plan again on the same epoch.
            self._send_pause_until = self._clock() + 0.25
            await self._discard_own_commit()
            return
        if err.code in (ErrorCode.REPLACED, ErrorCode.SLOW_CONSUMER, ErrorCode.SHUTTING_DOWN):
            self._emit(TimelineEvent(TimelineKind.WARNING, f"relay: {err.reason}"))

    async def _on_resume_refused(self, link: _Link, err: Error) -> None:
        if link.resume_after == 0 and err.code == ErrorCode.GAP:
            # The log was trimmed, so the room had traffic: a group exists; join without resume.
            self._traffic_seen = True
            await self._join_room(None)
            return
        if err.code == ErrorCode.GAP:
            self._gap_from = self._last_seq
            why = "the relay no longer has the messages sent while you were offline (its log was trimmed)"
            self._traffic_seen = True
            self._rejoin(f"{why}; rejoining the group")
            await self._join_room(None)
            return
        # future_seq: the relay lost its log (an in-memory relay restarted): nobody can tell what
        # was lost, so every member re-forms the group and the new room log is read from seq 1.
        self._emit(
            TimelineEvent(
                TimelineKind.WARNING,
                "the relay restarted and lost its log: messages sent while you were offline cannot be read; "
                "re-forming the group",
            )
        )
        self._traffic_seen = False
        self._last_seq = None
        self._rejoin(None)
        self._epoch_codes.clear()  # the new group counts its epochs from 0 again
        await self._join_room(0)

    def _on_presence(self, p: Presence) -> None:
        if p.event is PresenceEvent.JOINED:
            self._present.add(p.member)
            self._offline_since.pop(p.member, None)
        else:
            self._present.discard(p.member)
            self._offline_since.setdefault(p.member, self._clock())
        if any(member_id(m.identity_key) == p.member for m in self._members.values()):
            self._emit_roster()  # a group member came or went (a joiner is not in the roster yet)

    def _note_absent_members(self) -> None:
        now = self._clock()
        for m in self._members.values():
            mid = member_id(m.identity_key)
            if mid != self._me and mid not in self._present:
                self._offline_since.setdefault(mid, now)

    # --- room payloads -------------------------------------------------------------------------

    async def _on_deliver(self, d: Deliver) -> None:
        if self._last_seq is not None and d.seq <= self._last_seq:
            return  # already processed (the relay never sends one twice; a safety net)
        self._last_seq = d.seq
        try:
            payload = RoomPayload.decode(d.payload)
        except GroupChatError as exc:
            log.warning("seq %d: unreadable room payload: %s", d.seq, exc)
            self._placeholder(UnreadableReason.TAMPERED, None, f"not a groupchat payload: {exc}")
            return
        kind = payload.kind
        if kind is PayloadKind.SYNC:
            link = self._link
            if d.sender == self._me and link is not None and payload.body == link.sync_nonce:
                await self._on_caught_up(link)
            return
        if kind is PayloadKind.GROUP_CREATED:
            await self._on_group_created(d, payload.body)
        elif kind is PayloadKind.JOIN_REQUEST:
            self._on_join_request(payload.body)
        elif kind is PayloadKind.WELCOME:
            self._traffic_seen = True
            if d.to == self._me and d.sender != self._me:
                await self._on_welcome(payload.body)
        else:
            self._traffic_seen = True
            await self._on_core(payload.body)

    async def _on_caught_up(self, link: _Link) -> None:
        first_time = not self._ever_connected
        link.caught_up = True
        self._ever_connected = True
        lost = self._outbox.requeue_in_flight()
        if lost:
            log.info("%d message(s) had no echo after reconnecting; sending them again", lost)
        if self._own_commit is not None and not self._own_commit.applied and self._group is not None:
            await self._discard_own_commit()  # the relay never logged it
        if self._group is not None and self._created_nonce is None:
            if not first_time:
                self._emit(
                    TimelineEvent(TimelineKind.RECONNECTED, f"reconnected · epoch {self._group.epoch}")
                )
                self._want_update = self._want_update or "reconnect"
            self._set_state(ConnectionState.READY)
        elif self._pending_join is not None:
            self._join_next_publish = 0.0  # publish our request again on the new connection
        self._emit_roster()

    async def _on_group_created(self, d: Deliver, nonce: bytes) -> None:
        mine = d.sender == self._me and nonce == self._created_nonce
        if mine and self._group is not None:
            self._created_nonce = None
            self._buffer = []  # nothing before our own group's creation concerns it
            self._emit(
                TimelineEvent(
                    TimelineKind.JOINED,
                    f"you created the group in room {self.settings.room} · epoch 0 · code {self._code()}",
                )
            )
            self._set_state(ConnectionState.READY)
            self._emit_status()
            return
        if self._created_nonce is not None and self._group is not None:
            # Two of us found the room empty at once; the relay's order says the other was first.
            log.info("another member created the group first; joining theirs")
            self._group = None
            self._created_nonce = None
            self._members = {}
        self._traffic_seen = True

    def _on_join_request(self, body: bytes) -> None:
        try:
            request = JoinRequest.decode(body)
        except GroupChatError as exc:
            log.warning("ignored an undecodable join request: %s", exc)
            return
        if request.group_id != self._group_id or request.identity_key == self.identity.public_key:
            return
        group = self._group
        if group is not None and group.has_init_key(request.init_key):  # a read between core calls
            # Already added: any earlier request of the same identity is stale (log order).
            self._add_duties.pop(request.identity_key, None)
            return
        previous = self._add_duties.get(request.identity_key)
        since = previous.since if previous is not None and previous.request == request else self._clock()
        self._add_duties[request.identity_key] = AddDuty(request, since)

    async def _on_welcome(self, welcome: bytes) -> None:
        pending = self._pending_join
        if self._group is not None or pending is None or self._worker is None:
            return
        try:
            group, timed = await self._worker.join(pending, welcome, self._config)
        except GroupChatError as exc:
            # A welcome for an older request of ours (we restarted): we keep asking.
            log.info("a welcome could not be opened with our current join request: %s", exc)
            return
        self._group = group
        self._pending_join = None
        self._last_update = self._clock()
        n = len(group.members())
        if group.joining:
            # A ring Welcome carries the epoch before ours: we are in once the ring creating our
            # first epoch is done, with every member (us included) contributing fresh keys. Nothing
            # was chosen for us, so no first Update is owed.
            self._joined_epoch = group.epoch + 1
            self._ring = _RingRun(group.epoch + 1, self._clock(), timed.ms)
            self._adopt(timed)
            self._emit(
                TimelineEvent(
                    TimelineKind.INFO,
                    f"welcome opened in {timed.ms:.1f} ms · agreeing epoch {group.epoch + 1} with "
                    f"{n} members in a ring",
                )
            )
        else:
            self._joined_epoch = group.epoch
            # The taint rule: our adder chose our first leaf secret, so the core's outbox carries
            # our first Update (sent below); should it lose a race, the planner retries it from here.
            self._want_update = "join"
            self._adopt(timed)
            self._emit(
                TimelineEvent(
                    TimelineKind.JOINED,
                    f"you joined · epoch {group.epoch} · {n} members · welcome opened in {timed.ms:.1f} ms · "
                    f"code {self._code()}",
                )
            )
        self._observe_roster()
        link = self._link
        ready = link is not None and link.caught_up and not group.joining
        self._set_state(ConnectionState.READY if ready else ConnectionState.JOINING)
        buffered, self._buffer = self._buffer, []
        self._placeholder_batch = {}
        try:
            if self._buffer_dropped:
                self._placeholder(UnreadableReason.BEFORE_JOIN, None, "", count=self._buffer_dropped)
                self._buffer_dropped = 0
            for data in buffered:
                if not self._in_group():
                    break
                epoch = _message_epoch(data)
                if epoch is not None and epoch < group.epoch:
                    # Older than anything we can hold keys for: the core would only refuse it by
                    # its epoch, so we spare it the call (a long room log makes many of these).
                    if int.from_bytes(data[2:4], "big") == WireFormat.PRIVATE_MESSAGE:
                        self._placeholder(UnreadableReason.BEFORE_JOIN, None, "")
                    continue
                await self._on_core(data)
        finally:
            self._flush_placeholders()
        if self._in_group():
            # Our first update (tree), built on the newest epoch we know; our ring messages (ring).
            await self._send_core_outbox()

    async def _on_core(self, data: bytes) -> None:
        group = self._group
        if group is None or self._created_nonce is not None or self._worker is None:
            # Not (yet) a member: keep it for when our welcome comes. Commits and messages at
            # our first epoch may arrive before the welcome, which is sent only after the echo.
            if len(self._buffer) < _MAX_BUFFERED:
                self._buffer.append(data)
            else:
                self._buffer_dropped += 1
            return
        wire = int.from_bytes(data[2:4], "big") if len(data) >= 4 else -1
        try:
            event, timed = await self._worker.receive(group, data, self._snapshot)
        except GroupChatError as exc:
            if wire == WireFormat.PUBLIC_MESSAGE:
                self._on_bad_commit(exc, data)
            elif wire in (RING_WIRE_FORMAT, RING_CONFIRM_WIRE_FORMAT):
                self._on_bad_ring_message(exc, wire)
            else:
                self._on_unreadable(exc, data)
            return
        own = self._own_commit
        if own is not None and isinstance(event, RekeyProgress) and data == own.message:
            own.applied = True  # our ring commit won the epoch; its EpochChanged ends the ring
        await self._on_event(event, timed)

    # --- core events ---------------------------------------------------------------------------

    async def _on_event(self, event: Event, timed: Timed) -> None:
        if isinstance(event, MessageReceived):
            self._on_message(event)
        elif isinstance(event, MessageEchoed):
            self._on_echo(event)
        elif isinstance(event, EpochChanged):
            await self._on_epoch(event, timed)
        elif isinstance(event, RekeyProgress):
            await self._on_ring_progress(event, timed)
        else:
            await self._on_removed(event)

    def _on_message(self, ev: MessageReceived) -> None:
        sender = ev.sender
        try:
            content = AppContent.decode(ev.plaintext)
        except GroupChatError as exc:
            self._placeholder(UnreadableReason.TAMPERED, sender.display_name, f"unknown content: {exc}")
            return
        if content.kind is ContentKind.LEAVE:
            self._leave_requests.setdefault(sender.identity_key, self._clock())
            self._removal_reasons[sender.identity_key] = "left"
            return
        seen = self._seen_ids.setdefault(sender.identity_key, OrderedDict())
        if content.msg_id in seen:
            log.info("a second copy of a message from %s was not shown", sender.display_name)
            return
        seen[content.msg_id] = None
        if len(seen) > _SEEN_PER_SENDER:
            seen.popitem(last=False)
        trust = self._trust.state(sender.display_name, sender.identity_key)
        self._emit(ChatLine(sender.display_name, content.text, ev.epoch, trust=trust))

    def _on_echo(self, ev: MessageEchoed) -> None:
        entry = self._outbox.echoed(ev.message_id)
        group = self._group
        if entry is None or group is None:
            return
        if ev.epoch < group.epoch - 1:
            # Receivers keep one previous epoch's keys only: this copy came too late to be read.
            log.info("message %d raced %d commits; re-encrypting it", entry.local_id, group.epoch - ev.epoch)
            self._outbox.requeue(entry)
            return
        self._emit(MessageConfirmed(entry.local_id))

    async def _on_ring_progress(self, ev: RekeyProgress, timed: Timed) -> None:
        """A ring rekey moved on: send our round messages, and show whom it still waits for."""
        ring = self._ring
        if ring is None or ring.epoch != ev.epoch:
            ring = self._ring = _RingRun(ev.epoch, self._clock())
            ring.next_poll = ring.started + _RING_POLL
        ring.core_ms += timed.ms
        waiting = tuple(m.display_name for m in ev.waiting_for)
        changed = waiting != ring.waiting_for
        ring.waiting_for = waiting
        ring.waiting_leaves = tuple(m.leaf for m in ev.waiting_for)
        await self._send_core_outbox()
        if changed:
            self._emit_status()

    async def _poll_ring(self, now: float) -> None:
        """Check the running ring's round deadline (the core's clock); on a timeout say who is
        missing and send our message of the next attempt, which the core has queued."""
        ring, group, worker = self._ring, self._group, self._worker
        if ring is None or group is None or worker is None or now < ring.next_poll:
            return
        ring.next_poll = now + _RING_POLL
        try:
            await worker.run(group.poll)
            await self._send_core_outbox()  # e.g. our confirmation, when the committer's never came
        except RingTimeoutError as exc:
            ring.timeouts += 1
            names = ", ".join(m.display_name for m in exc.missing)
            self._emit(
                TimelineEvent(
                    TimelineKind.WARNING,
                    f"the rekey to epoch {ring.epoch} is waiting for {names} (round {exc.round} timed "
                    f"out); trying again with fresh keys · offline members are removed after "
                    f"{self.settings.eviction_grace:g} s",
                )
            )
            await self._send_core_outbox()
        except GroupChatError as exc:
            log.warning("polling the ring failed: %s", exc)

    async def _on_epoch(self, ev: EpochChanged, timed: Timed) -> None:
        own = self._own_commit
        ms = timed.ms
        ring, self._ring = self._ring, None
        if ring is not None:
            ms += ring.core_ms  # the whole ring rekey's core time, every round of it
        first_ring_epoch = ring is not None and ev.epoch == self._joined_epoch and own is None and ev.added
        if own is not None and (ev.own or own.applied):
            # Ours won the epoch (an applied ring commit also when another member's restart, not
            # ours, then confirmed the ring).
            ms += own.build_ms
            self._own_commit = None
            self._commit_losses = 0
            if own.update:
                self._want_update = None
                self._update_not_before = 0.0
                self._last_update = self._clock()
                self._sent_since_update = 0
            for key in own.kicks:
                self._kicks.discard(key)
        elif own is not None and ev.superseded_own_commit:
            self._remember_old_commit(own.message)
            self._own_commit = None
            # Lost the race: rebuild on the new epoch after a random pause whose range doubles
            # with each loss in a row (binary exponential backoff), so that many members who
            # owe an update at once (say, after a mass join) spread out instead of colliding.
            self._commit_losses += 1
            window = min(5.0, 0.05 * 2 ** min(self._commit_losses, 7))
            jitter = int.from_bytes(self._rand(2), "big") / 65536
            self._update_not_before = self._clock() + jitter * window
        await self._handle_outbox(ev)
        before = set(self._members)
        self._adopt(timed, announce=False)
        if first_ring_epoch and any(m.identity_key == self.identity.public_key for m in ev.added):
            wall = (self._clock() - ring.started) * 1000 if ring is not None else 0.0
            self._emit(
                TimelineEvent(
                    TimelineKind.JOINED,
                    f"you joined · epoch {ev.epoch} · {len(self._members)} members · ring agreed in "
                    f"{wall:.0f} ms ({ms:.1f} ms of it computing) · code {self._code()}",
                )
            )
            link = self._link
            if link is not None and link.caught_up:
                self._set_state(ConnectionState.READY)
        else:
            changed = len(self._tree_changed)
            self._emit(TimelineEvent(self._epoch_kind(ev), self._describe(ev, changed, ms)))
        for m in ev.added:
            self._removal_reasons.pop(m.identity_key, None)
        for m in ev.removed:
            self._leave_requests.pop(m.identity_key, None)
            self._removal_reasons.pop(m.identity_key, None)
            self._offline_since.pop(member_id(m.identity_key), None)
        self._forget_done_duties()
        if set(self._members) != before or ev.added:
            self._observe_roster()
        self._emit_status()

    async def _handle_outbox(self, ev: EpochChanged) -> None:
        """Send what the protocol requires after an epoch change: the core's ``data_to_send()``.

        Drained only when our own commit won (its Welcome, one per joiner). After a lost race the
        core holds our commit's intent to rebuild it; we do not drain then: the planner commits
        again after a randomised backoff (so many members owing an update do not collide again),
        and that explicit commit, which carries every duty still open, replaces the rebuild.
        """
        if ev.own:
            await self._send_core_outbox()

    async def _send_core_outbox(self) -> None:
        """Drain the core's outbox and move each item: to the room, or to one joiner alone."""
        group, worker = self._group, self._worker
        if group is None or worker is None:
            return
        try:
            items = await worker.run(group.data_to_send)
        except GroupChatError as exc:  # a rebuild the core could not make; the planner retries
            log.warning("the core could not prepare what it must send: %s", exc)
            return
        for item in items:
            if isinstance(item.to, Joiner):
                to = member_id(item.to.identity_key)
                await self._publish(PayloadKind.WELCOME, item.data, "welcome", to=to)
            elif item.kind is OutboundKind.COMMIT:
                # A commit the protocol itself requires (our first update after joining): ours to
                # track like any other, so its echo, a lost race and its timing are handled alike.
                self._own_commit = _OwnCommit(item.data, 0.0, True, (), frozenset())
                if await self._publish(PayloadKind.CORE, item.data, "commit") is None:
                    await self._discard_own_commit()
            else:
                await self._publish(PayloadKind.CORE, item.data, item.kind.value)

    async def _on_removed(self, ev: RemovedFromGroup) -> None:
        by = ev.by.display_name
        self._group = None
        self._members = {}
        self._own_commit = None
        self._ring = None
        if self._leaving:
            self._emit(
                TimelineEvent(TimelineKind.LEFT, f"you left the group · removed by {by} at epoch {ev.epoch}")
            )
            await self._finish()
            return
        link = self._link
        if link is not None and not link.caught_up:
            # Removed while we were away (the others evicted us): come back in.
            self._emit(
                TimelineEvent(
                    TimelineKind.REMOVED,
                    f"{by} removed you while you were offline; asking to rejoin",
                )
            )
            self._rejoin(None)
            return
        self._emit(TimelineEvent(TimelineKind.REMOVED, f"you were removed from the group by {by}"))
        await self._finish()

    # --- rejections ----------------------------------------------------------------------------

    def _on_bad_commit(self, exc: GroupChatError, data: bytes) -> None:
        group = self._group
        assert group is not None
        if isinstance(exc, ReplayError):
            log.debug("replayed commit ignored: %s", exc)
            return
        if isinstance(exc, EpochError):
            epoch = _message_epoch(data)
            if epoch is None:
                epoch = -1
            if data in self._old_commits or 0 <= epoch < group.epoch:
                log.debug("commit for epoch %d lost the race to the one we applied", epoch)
                return
            if self._ring is not None and epoch == group.epoch:
                # Another commit won this epoch and its ring is running: this one lost the race.
                log.debug("commit for epoch %d lost the race to the running ring's commit", epoch)
                return
            self._rejoin(
                f"we missed a change to the group (a commit for epoch {epoch}, we are at "
                f"{group.epoch}); rejoining"
            )
            return
        if isinstance(exc, InconsistentPathError | ConfirmationError):
            self._rejoin(
                f"cannot follow the last change to the group ({exc}); our view of the group keys differs "
                "from the others' (a fork or a malicious member); rejoining"
            )
            return
        self._emit(TimelineEvent(TimelineKind.WARNING, f"ignored an invalid change to the group: {exc}"))

    def _on_bad_ring_message(self, exc: GroupChatError, wire: int) -> None:
        """A ring round or confirmation we could not take. Stale ones (a finished or abandoned
        attempt, our own echo twice) are normal under the relay's order and only logged; a
        confirmation that does not match our secret means our view of the ring differs: rejoin."""
        if isinstance(exc, ReplayError | WrongAttemptError | AttemptFailedError | EpochError):
            log.debug("stale ring message ignored: %s", exc)
            return
        if wire == RING_CONFIRM_WIRE_FORMAT and isinstance(exc, ConfirmationError):
            self._rejoin(
                f"cannot follow the last rekey ({exc}); our view of the group keys differs from the "
                "others' (a fork or a malicious member); rejoining"
            )
            return
        # A fatal problem of this attempt (a divergent round 1, values that do not add up) or an
        # invalid message: the attempt cannot finish, and its timeout starts the next one.
        self._emit(TimelineEvent(TimelineKind.WARNING, f"ignored an invalid ring message: {exc}"))

    def _on_unreadable(self, exc: GroupChatError, data: bytes) -> None:
        group = self._group
        assert group is not None
        epoch = _message_epoch(data)
        if isinstance(exc, EpochError) and epoch is not None:
            if epoch < self._joined_epoch:
                self._placeholder(UnreadableReason.BEFORE_JOIN, None, "")
            elif epoch < group.epoch:
                self._placeholder(UnreadableReason.EXPIRED_EPOCH, None, f"sent at epoch {epoch}")
            else:
                self._placeholder(
                    UnreadableReason.POSSIBLE_FORK, None, f"sent at epoch {epoch}, we are at {group.epoch}"
                )
                self._rejoin("messages come from an epoch we never reached; rejoining")
            return
        if isinstance(exc, DecryptionError) and epoch == group.epoch:
            self._placeholder(
                UnreadableReason.POSSIBLE_FORK,
                None,
                f"our epoch {group.epoch} code is {self._code()}: compare it with the sender's",
            )
            return
        if isinstance(exc, RemovedSenderError):
            # The core checked the signature first, so the name is the sender's own.
            self._placeholder(
                UnreadableReason.AFTER_REMOVAL, exc.name or None, f"epoch {epoch}"
            )
            return
        if isinstance(exc, UnknownMemberError | WrongGroupError):
            self._placeholder(UnreadableReason.UNKNOWN_SENDER, None, str(exc))
            return
        if isinstance(exc, SignatureError | DecryptionError | ReplayError | GenerationError | DecodeError):
            self._placeholder(UnreadableReason.TAMPERED, None, str(exc))
            return
        self._placeholder(UnreadableReason.TAMPERED, None, f"{type(exc).__name__}: {exc}")

    def _rejoin(self, reason: str | None) -> None:
        """Drop our group state and ask to be let in again with a fresh join request."""
        if reason:
            self._emit(TimelineEvent(TimelineKind.WARNING, reason))
        if self._own_commit is not None:
            self._remember_old_commit(self._own_commit.message)
        self._group = None
        self._members = {}
        self._own_commit = None
        self._ring = None
        self._created_nonce = None
        self._pending_join = None
        self._buffer = []
        self._add_duties.clear()
        self._leave_requests.clear()
        self._kicks.clear()
        self._want_update = None
        self._outbox.requeue_in_flight()
        self._set_state(ConnectionState.JOINING)
        self._emit_roster()

    # --- commands ------------------------------------------------------------------------------

    async def _on_command(self, cmd: _Command) -> None:
        if cmd.name == "tick":
            self._tick_pending = False
        elif cmd.name == "rekey":
            self._want_update = self._want_update or "request"
            self._update_not_before = 0.0
        elif cmd.name == "kick":
            self._kicks.add(cmd.arg)
            self._removal_reasons[cmd.arg] = f"was removed by {self._name}"
        elif cmd.name == "leave":
            if not self._leaving:
                self._leaving = True
                self._leave_deadline = self._clock() + max(5.0, 3 * self.settings.add_timeout)
        elif cmd.name == "drop":
            link = self._link
            if link is not None:
                link.ws.transport.abort()  # like a network failure: no close handshake
        elif cmd.name == "close":
            if (
                cmd.arg == b"leave"
                and self._group is not None
                and len(self._members) > 1
                and not self._leave_sent
            ):
                await self._send_leave_request()
            await self._finish()
        if cmd.done is not None and not cmd.done.done():
            cmd.done.set_result(None)

    async def _send_leave_request(self) -> None:
        group = self._group
        if group is None or self._worker is None or group.joining:
            return  # a ring joiner before its first epoch has no keys to ask with: it just goes
        data, _ = await self._worker.encrypt(group, AppContent.leave().encode())
        if await self._publish(PayloadKind.CORE, data, "leave request") is not None:
            self._leave_sent = True

    async def _finish(self) -> None:
        if self._finished is None or self._finished.is_set():
            return
        link = self._link
        if link is not None and link.in_room:
            await self._send(Leave(self._next_req(), self._room))
        self._finished.set()

    # --- making progress -------------------------------------------------------------------------

    async def _progress(self) -> None:
        """After every input: do whatever is due (create, ask to join, commit, send, leave)."""
        link = self._link
        if link is None or not link.caught_up or self._worker is None:
            if self._leaving and self._clock() > self._leave_deadline:
                self._emit(TimelineEvent(TimelineKind.LEFT, "you left (offline: the others will remove you)"))
                await self._finish()
            return
        now = self._clock()
        group = self._group
        if group is None:
            if self._leaving:
                self._emit(TimelineEvent(TimelineKind.LEFT, "you left the room"))
                await self._finish()
            elif self._created_nonce is not None:
                pass
            elif self._should_create(now):
                self._pending_join = None
                await self._create()
            elif self._pending_join is None:
                self._waiting_since = now
                await self._ask_to_join()
            elif now >= self._join_next_publish:
                await self._publish_join_request()
            return
        if self._created_nonce is not None:
            return
        if self._leaving:
            await self._progress_leave(now)
            return
        if now < self._send_pause_until:
            return  # the relay asked us to slow down
        if self._ring is not None:
            # A ring rekey is under way: only a restart that drops members it waits for can be
            # committed, and messages typed now wait for the new epoch (a joiner has no keys to
            # send with before it).
            await self._poll_ring(now)
            await self._maybe_restart_ring(now)
            return
        if self._own_commit is None:
            await self._maybe_commit(now)
        if self._own_commit is None:
            await self._flush_outbox()

    def _should_create(self, now: float) -> bool:
        """Create the group only in a room without one: no group traffic in the whole room log.

        If others are there but none has a group either (they arrived at the same moment), the
        present members take turns by member id, ``add_timeout`` apart, so exactly one usually
        creates; if two do, the relay's order of their creation markers decides (the first wins,
        the other joins it)."""
        if self._traffic_seen:
            return False
        present = sorted(self._present | {self._me})
        if present == [self._me]:
            return True
        rank = present.index(self._me)
        since = self._waiting_since if self._pending_join is not None else now
        return now - since >= rank * self.settings.add_timeout

    async def _progress_leave(self, now: float) -> None:
        if self._group is not None and self._group.joining:
            self._emit(TimelineEvent(TimelineKind.LEFT, "you left before the rekey letting you in was done"))
            await self._finish()
            return
        if len(self._members) <= 1:
            self._emit(TimelineEvent(TimelineKind.LEFT, "you left; the group is now empty"))
            await self._finish()
            return
        if not self._leave_sent:
            await self._send_leave_request()
        if now > self._leave_deadline:
            self._emit(
                TimelineEvent(TimelineKind.LEFT, "you left (no member confirmed your removal in time)")
            )
            await self._finish()

    async def _create(self) -> None:
        assert self._worker is not None
        group, timed = await self._worker.create(
            self.identity, self._group_id, self._name, self._config, self.settings.scheme
        )
        self._group = group
        self._joined_epoch = 0
        self._last_update = self._clock()
        self._created_nonce = self._rand(CREATION_NONCE_LEN)
        self._adopt(timed)
        await self._publish(PayloadKind.GROUP_CREATED, self._created_nonce, "group-created marker")

    async def _ask_to_join(self) -> None:
        assert self._worker is not None
        self._pending_join = await self._worker.join_request(
            self.identity, self._group_id, self._name, self._config
        )
        self._join_attempts = 0
        self._join_next_publish = 0.0
        self._set_state(ConnectionState.JOINING)
        await self._publish_join_request()

    async def _publish_join_request(self) -> None:
        pending = self._pending_join
        assert pending is not None
        if await self._publish(PayloadKind.JOIN_REQUEST, pending.request.encoded, "join request") is None:
            return
        # Publish again with backoff until welcomed: the member in line may have been offline.
        delay = min(30.0, self.settings.add_timeout * 2 ** min(self._join_attempts, 5))
        self._join_attempts += 1
        self._join_next_publish = self._clock() + delay

    async def _maybe_commit(self, now: float) -> None:
        group = self._group
        assert group is not None and self._worker is not None
        update_due = (
            self._want_update is not None
            or now - self._last_update >= self.settings.update_interval
            or self._sent_since_update >= self.settings.update_every
        )
        if not (update_due or self._add_duties or self._leave_requests or self._kicks or self._offline_since):
            return  # the common case, after every input: nothing to commit
        self._forget_done_duties()
        members = {leaf: m.identity_key for leaf, m in self._members.items()}
        by_key = {m.identity_key: leaf for leaf, m in self._members.items()}
        online = [leaf for leaf, m in self._members.items() if member_id(m.identity_key) in self._present]
        removes: list[RemoveDuty] = []
        for key, since in self._leave_requests.items():
            if key in by_key:
                removes.append(RemoveDuty(by_key[key], since, "left"))
        for mid, since in self._offline_since.items():
            leaf = next((lf for lf, k in members.items() if member_id(k) == mid), None)
            if leaf is not None and leaf != group.my_leaf:
                removes.append(RemoveDuty(leaf, since + self.settings.eviction_grace, "evicted"))
        adds: list[AddDuty] = []
        for key, duty in self._add_duties.items():
            if member_id(key) not in self._present:
                continue  # a welcome is only useful to a joiner who is there to read it
            if key in by_key:
                removes.append(RemoveDuty(by_key[key], duty.since, "rejoining"))
            else:
                adds.append(duty)
        plan = plan_commit(
            my_leaf=group.my_leaf,
            members=members,
            online_leaves=online,
            adds=adds,
            removes=removes,
            now=now,
            step=self.settings.add_timeout,
        )
        kicks = frozenset(k for k in self._kicks if k in by_key and by_key[k] != group.my_leaf)
        remove_leaves = sorted({d.leaf for d in plan.remove} | {by_key[k] for k in kicks})
        update = update_due and now >= self._update_not_before
        if not (plan.add or remove_leaves or update):
            return
        for rd in plan.remove:
            why = rd.why
            if why == "evicted":
                why = f"was removed after {self.settings.eviction_grace:g} s offline"
            elif why == "rejoining":
                why = "is rejoining"
            self._removal_reasons.setdefault(members[rd.leaf], why)
        try:
            message, timed = await self._worker.commit(group, plan.add, tuple(remove_leaves), update)
        except GroupChatError as exc:
            # A request the core refuses (e.g. a reused init key) must not block the group: drop it.
            self._emit(TimelineEvent(TimelineKind.WARNING, f"could not commit a pending change: {exc}"))
            for request in plan.add:
                self._add_duties.pop(request.identity_key, None)
            self._kicks -= kicks
            return
        self._own_commit = _OwnCommit(message, timed.ms, update, plan.remove, kicks)
        if await self._publish(PayloadKind.CORE, message, "commit") is None:
            await self._discard_own_commit()

    async def _maybe_restart_ring(self, now: float) -> None:
        """After a ring timed out, remove the members it waits for who are offline past the eviction
        grace (or whom our user kicked) with a restart commit (docs/protocol.md §8.3); the same
        rule as any eviction decides who in line commits it."""
        ring, group, worker = self._ring, self._group, self._worker
        own = self._own_commit
        if ring is None or group is None or worker is None or not ring.timeouts:
            return
        if own is not None and not own.applied:
            return  # a restart of ours is on its way
        removes: list[RemoveDuty] = []
        kicks: set[bytes] = set()
        for leaf in ring.waiting_leaves:
            m = self._members.get(leaf)
            if m is None or leaf == group.my_leaf:
                continue
            mid = member_id(m.identity_key)
            if m.identity_key in self._kicks:
                removes.append(RemoveDuty(leaf, now, "kicked"))
                kicks.add(m.identity_key)
            elif mid not in self._present and mid in self._offline_since:
                due = self._offline_since[mid] + self.settings.eviction_grace
                removes.append(RemoveDuty(leaf, due, "evicted"))
        if not removes:
            return
        members = {leaf: m.identity_key for leaf, m in self._members.items()}
        online = [leaf for leaf, m in self._members.items() if member_id(m.identity_key) in self._present]
        plan = plan_commit(
            my_leaf=group.my_leaf, members=members, online_leaves=online, adds=[], removes=removes,
            now=now, step=self.settings.add_timeout,
        )
        leaves = tuple(sorted(d.leaf for d in plan.remove))
        if not leaves:
            return
        evicted = f"was removed after {self.settings.eviction_grace:g} s offline, during a rekey"
        for rd in plan.remove:
            why = evicted if rd.why == "evicted" else f"was removed by {self._name}"
            self._removal_reasons.setdefault(members[rd.leaf], why)
        try:
            message, timed = await worker.commit(group, (), leaves, False)
        except GroupChatError as exc:
            warning = f"could not restart the rekey without them: {exc}"
            self._emit(TimelineEvent(TimelineKind.WARNING, warning))
            return
        # Our ring commit (if the ring is ours) has taken effect: its update is kept in the record.
        update = own.update if own is not None else False
        self._own_commit = _OwnCommit(message, timed.ms, update, plan.remove, frozenset(kicks))
        if await self._publish(PayloadKind.CORE, message, "commit") is None:
            await self._discard_own_commit()

    async def _discard_own_commit(self) -> None:
        own, self._own_commit = self._own_commit, None
        if own is not None:
            self._remember_old_commit(own.message)
        if self._group is not None and self._worker is not None:
            await self._worker.discard_pending(self._group)

    def _remember_old_commit(self, message: bytes) -> None:
        self._old_commits[message] = None
        while len(self._old_commits) > 16:
            self._old_commits.popitem(last=False)

    async def _flush_outbox(self) -> None:
        group = self._group
        assert group is not None and self._worker is not None
        while (entry := self._outbox.peek()) is not None and self._own_commit is None:
            if self._sent_since_update >= self.settings.update_every:
                break  # let the scheduled update go first
            data, digest = await self._worker.encrypt(
                group, AppContent.chat(entry.msg_id, entry.text).encode()
            )
            req = await self._publish(PayloadKind.CORE, data, "message")
            if req is None:
                return
            self._outbox.mark_sent(entry, digest, group.epoch, req)
            self._sent_since_update += 1

    def _forget_done_duties(self) -> None:
        group = self._group
        if group is None:
            return
        # A read between core calls (the worker is idle now).
        for key in [k for k, d in self._add_duties.items() if group.has_init_key(d.request.init_key)]:
            del self._add_duties[key]
        keys = {m.identity_key for m in self._members.values()}
        for key in [k for k in self._leave_requests if k not in keys]:
            del self._leave_requests[key]
        self._kicks &= keys

    # --- views and notices -----------------------------------------------------------------------

    def _adopt(self, timed: Timed, *, announce: bool = True) -> None:
        """Take the worker's snapshot of the group after a change (roster, tree, epoch code).

        With ``announce`` it also emits the roster and the status; an epoch change does that
        itself, once, after everything else (a roster notice costs O(members) at every member).
        """
        snap = timed.snapshot
        group = self._group
        if snap is None or group is None:
            return
        before = self._snapshot
        self._snapshot = snap
        self._members = {m.leaf: m for m in snap.members}
        if announce:
            self._emit_roster()
            self._emit_status()
        if group.joining:  # a ring joiner has no code for the epoch before it joined
            return
        self._epoch_codes[snap.epoch] = epoch_code(group.epoch_authenticator)
        self._tree_changed = (
            frozenset(range(len(snap.members))) if group.scheme == "ring" else snap.changed_since(before)
        )
        self._tree_view = None
        if self._tree_watched:  # only once a UI asked for the view: most members never look
            self._emit(self.tree_view())

    def _build_tree_view(self, snap: TreeSnapshot) -> TreeView:
        """The /tree view of ``snap``: the key tree, or the ring (all of it new at every epoch)."""
        changed = self._tree_changed
        if snap.capacity == 0:  # a ring: every member took fresh keys in the run that made it
            return TreeView(
                "ring",
                snap.epoch,
                tuple(
                    TreeNode(i, 0, m.display_name, "", changed=True, mine=m.leaf == snap.my_leaf)
                    for i, m in enumerate(snap.members)
                ),
            )
        mine = snap.my_path()
        keys, labels = [k.hex()[:8] for k in snap.keys], snap.labels
        set_by = {2 * leaf: name for leaf, name in snap.taints}
        nodes = tuple(
            TreeNode(
                i,
                level,
                labels[i] if i % 2 == 0 else keys[i][:4],
                keys[i],
                i in changed,
                i in mine,
                set_by.get(i, ""),
            )
            for i, level in enumerate(_levels(len(keys)))
        )
        return TreeView("tree", snap.epoch, nodes)

    def _epoch_kind(self, ev: EpochChanged) -> TimelineKind:
        if ev.added:
            return TimelineKind.JOINED
        if ev.removed:
            left = all(self._removal_reasons.get(m.identity_key) == "left" for m in ev.removed)
            return TimelineKind.LEFT if left else TimelineKind.REMOVED
        return TimelineKind.UPDATED

    def _describe(self, ev: EpochChanged, changed: int, ms: float) -> str:
        me = self.identity.public_key
        who = "you" if ev.committer.identity_key == me else ev.committer.display_name
        parts = []
        for m in ev.removed:
            why = self._removal_reasons.get(m.identity_key) or f"was removed by {who}"
            parts.append(f"{m.display_name} {why}")
        parts.extend(f"{m.display_name} joined" for m in ev.added)
        if ev.updated and not parts:
            parts.append("you refreshed your keys" if who == "you" else f"{who} refreshed their keys")
        if self._group is not None and self._group.scheme == "ring":
            cost = f"ring of {len(self._members)} agreed in 2 rounds, {ms:.1f} ms"
        else:
            cost = f"{'1 key' if changed == 1 else f'{changed} keys'} refreshed in {ms:.1f} ms"
        return f"{', '.join(parts)} · epoch {ev.epoch} · {cost} · code changed"

    def _observe_roster(self) -> None:
        """Trust on first use for every member; warn once per new key for a known name."""
        for m in self._members.values():
            if m.identity_key == self.identity.public_key:
                continue
            state = self._trust.observe(m.display_name, m.identity_key)
            if state is TrustState.KEY_CHANGED and (m.display_name, m.identity_key) not in self._warned_keys:
                self._warned_keys.add((m.display_name, m.identity_key))
                self._emit(
                    TimelineEvent(
                        TimelineKind.WARNING,
                        f"{m.display_name}'s key changed (fingerprint now {m.fingerprint}): this may be a "
                        f"new device or an impostor. Compare safety numbers with /verify {m.display_name}, "
                        f"then /trust {m.display_name}",
                    )
                )
        self._emit_roster()

    def _in_group(self) -> bool:
        return self._group is not None

    def _member_named(self, name: str) -> Member:
        for m in self._members.values():
            if m.display_name == name:
                return m
        raise UsageError(f"no member named {name!r} (see /who)")

    def _code(self) -> str:
        group = self._group
        return self._epoch_codes.get(group.epoch, "") if group is not None else ""

    def _placeholder(self, reason: UnreadableReason, sender: str | None, detail: str, count: int = 1) -> None:
        if self._placeholder_batch is not None and reason is UnreadableReason.BEFORE_JOIN:
            key = (reason, sender, detail)
            self._placeholder_batch[key] = self._placeholder_batch.get(key, 0) + count
            return
        self._emit(Placeholder(reason, count, sender, detail))

    def _flush_placeholders(self) -> None:
        batch, self._placeholder_batch = self._placeholder_batch, None
        for (reason, sender, detail), count in (batch or {}).items():
            self._emit(Placeholder(reason, count, sender, detail))

    def _set_state(self, state: ConnectionState) -> None:
        if state is not self._state:
            self._state = state
            self._emit_status()

    def _emit_status(self) -> None:
        self._emit(self.status)

    def _emit_roster(self) -> None:
        self._emit(RosterChanged(self.roster()))

    def _emit(self, notice: Notice) -> None:
        try:
            self._notify(notice)
        except Exception:  # the UI's bug must not take the session down; it is logged, not hidden
            log.exception("the notify callback raised on %s", type(notice).__name__)
