"""The asyncio glue: :class:`ChatSession` runs a :class:`~.machine.SessionMachine` over a websocket.

It only executes what the machine asks: a connector task opens the websocket, sends ``Hello`` and
hands each relay frame to the machine (itself when the inbox is empty and no step runs, else
through the inbox), and reconnects with backoff and jitter; an actor task feeds
one input at a time to the machine and performs its effects (send a frame, run a core call on the
loop or, for a heavy one, in the :class:`~.worker.CoreWorker` thread, close or abort the socket);
a timer wakes the actor at the machine's next deadline, at most a second ahead. The actor awaits
each effect before resuming the machine, so its state is never touched concurrently.

The rules are documented in ``docs/session.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from ...core.errors import DecodeError, GroupChatError, InvalidValueError, UsageError
from ...core.group import GroupConfig
from ...core.identity import Identity
from ...relay_protocol import Hello, Publish, SendTo, ServerFrame, ServerHello, decode_server, encode
from .. import wording, wording_store
from .. import wording_connection as connection_wording
from ..backoff import Backoff
from ..notices import (
    ChatLine,
    Notice,
    RosterChanged,
    RosterEntry,
    StatusChanged,
    TimelineEvent,
    TimelineKind,
    TreeView,
    TrustState,
)
from ..session_store import SessionStore
from ..trust import TrustStore, safety_number
from . import inputs as i
from .actions import (
    AbortConnection,
    CallCore,
    CloseConnection,
    Effect,
    Notify,
    Reply,
    ResetBackoff,
    SendFrame,
    Stop,
    resume,
)
from .admitting import MAX_INVITE_USES, InviteView
from .machine import SessionMachine
from .settings import AGENT, MAX_FRAME, MAX_TEXT_BYTES, SessionSettings
from .worker import CoreWorker

__all__ = ["ChatSession"]

log = logging.getLogger("groupchat.client.session")

# The actor is woken for the earliest timed duty (SessionMachine.next_wakeup), and at least this
# often: a bound on how late anything timed can be, should a deadline not be foreseen (or the
# injected clock jump, as in tests), at one cheap wake-up a second when idle.
_MAX_SLEEP: Final = 1.0
# The longest the actor or the reader runs without letting the loop (the UI) have a turn: both
# can find many inputs ready at once (a relay's flood), and an await on a ready queue or socket
# buffer does not yield (issue 13 item 6).
_SLICE: Final = 0.002
_READ_SIZE: Final = 64 << 10  # bytes per socket read (asyncio's default: 256 KiB)
_INBOX_FRAMES: Final = 256
_PERSIST_EVERY: Final = 0.25  # seconds between stores of the group state while frames pour in


async def _yield_if_busy(since: float) -> float:
    """Let the loop run if we have held it for ``_SLICE`` since ``since``; the new ``since``."""
    if time.perf_counter() - since < _SLICE:
        return since
    await asyncio.sleep(0)
    return time.perf_counter()


def _failure(exc: BaseException) -> str:
    """Why a connection attempt failed, in the user's words (wording.py), without a traceback's
    detail: "cannot reach the relay (connection refused)", "... is not a groupchat relay (...)"."""
    if isinstance(exc, ConnectionRefusedError):
        return connection_wording.unreachable(connection_wording.CONNECTION_REFUSED)
    if isinstance(exc, socket.gaierror):
        return connection_wording.unreachable(connection_wording.HOST_NOT_FOUND)
    if isinstance(exc, TimeoutError):
        return connection_wording.unreachable(connection_wording.NO_ANSWER)
    if isinstance(exc, ssl.SSLError):
        return connection_wording.tls_failed(exc.reason or type(exc).__name__)
    if isinstance(exc, InvalidStatus):
        return connection_wording.not_a_relay(connection_wording.http_status(exc.response.status_code))
    if isinstance(exc, InvalidHandshake):
        return connection_wording.not_a_relay(connection_wording.NO_WEBSOCKET)
    if isinstance(exc, InvalidURI):
        return connection_wording.unreachable(str(exc))
    if isinstance(exc, GroupChatError):
        return connection_wording.not_a_relay(str(exc))
    if isinstance(exc, OSError):
        return connection_wording.unreachable(exc.strerror or str(exc) or type(exc).__name__)
    return connection_wording.unreachable(str(exc) or type(exc).__name__)


class _HandlerFailed(Exception):
    """A frame handed over in the reader raised: the session's failure, not the connection's
    (the reader's ``except`` for connection errors must not take it for one); run() re-raises
    the cause, as it would have come from the actor."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


# An input, the future to resolve once it is handled, and the websocket a Connected is about.
_Item = tuple[i.Input, "asyncio.Future[None] | None", "ClientConnection | None"]


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
        store: SessionStore | None = None,
    ) -> None:
        self.settings = settings
        self._store = store  # None: ephemeral (nothing written; a restart is a rejoin)
        self._persisted_at = 0.0
        self.identity = identity
        self._trust = trust
        self._notify = notify
        self._clock = clock
        self._machine = SessionMachine(
            settings,
            identity,
            trust,
            config=GroupConfig(clock=clock, rand=rand, ring_round_timeout=settings.ring_round_timeout),
            rand=rand,
            now=clock(),
        )
        self._worker: CoreWorker | None = None
        self._inbox: asyncio.Queue[_Item] = asyncio.Queue()
        # Frames read but not yet handled: past the bound the reader waits for the actor, so the
        # socket (and the relay) wait too, and a flood cannot fill memory (issue 13 item 6).
        self._frame_slots = asyncio.Semaphore(_INBOX_FRAMES)
        # Whoever feeds the machine holds this: the actor, or the reader handing a frame over
        # itself when nothing waits in the inbox (no queue hop, no second task woken per frame).
        self._turn = asyncio.Lock()
        self._idle_soon: asyncio.Handle | None = None  # the after-the-read bookkeeping, scheduled
        self._persist_later: asyncio.TimerHandle | None = None  # a store put off (_persist_when_due)
        self._backoff = Backoff(settings.reconnect_min, settings.reconnect_max, rand)
        self._ws: ClientConnection | None = None
        self._running = False
        self._tick_pending = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # when the armed timer fires (the injected clock)
        self._finished: asyncio.Event | None = None
        self._stopped: asyncio.Event | None = None

    # --- the public API ------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, join the room and the group, and serve until :meth:`close` or until we left."""
        if self._running:
            raise UsageError(wording.ALREADY_RUNNING)
        self._running = True
        self._worker = CoreWorker()
        self._finished = asyncio.Event()
        self._stopped = asyncio.Event()
        if self._store is not None:
            self._resume_stored(self._store)
        self._emit(self.status)
        tasks = [
            asyncio.create_task(self._actor(), name="session-actor"),
            asyncio.create_task(self._connector(), name="session-connector"),
        ]
        finished = asyncio.create_task(self._finished.wait())
        try:
            done, _ = await asyncio.wait([*tasks, finished], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = None if task is finished or task.cancelled() else task.exception()
                if isinstance(exc, _HandlerFailed):
                    raise exc.cause
                if exc is not None:
                    raise exc
        finally:
            ws, self._ws = self._ws, None
            if ws is not None:  # a clean close (1000) before the connector is cancelled
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2):
                        await ws.close()
            for task in [*tasks, finished]:
                task.cancel()
            await asyncio.gather(*tasks, finished, return_exceptions=True)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            for handle in (self._idle_soon, self._persist_later):
                if handle is not None:
                    handle.cancel()
            self._idle_soon = self._persist_later = None
            self._worker.shutdown()
            self._machine.mark_closed()
            self._deliver_queued()
            self._persist()  # what a busy last step left unstored
            self._stopped.set()

    def send_text(self, text: str) -> int:
        """Queue ``text`` for the group; returns its local id. Shown at once as pending."""
        if self._machine.closed:
            raise UsageError(wording.LEFT_SESSION)
        self._check_text(text)
        entry = self._machine.queue_text(text)
        self._emit(
            ChatLine(
                self._machine.own_label,
                text,
                self._machine.current_epoch,
                own=True,
                pending=True,
                local_id=entry.local_id,
                trust=TrustState.VERIFIED,
            )
        )
        self._post(i.Wake(self._clock()))
        return entry.local_id

    def request_rekey(self) -> None:
        """``/rekey``: commit a self-Update as soon as possible."""
        self._post(i.RekeyRequested(self._clock()))

    def kick(self, name: str) -> None:
        """``/kick NAME``: commit the removal of that member ourselves."""
        member = self._machine.member_named(name)
        if member.identity_key == self.identity.public_key:
            raise UsageError(wording.kick_self())
        self._post(i.KickRequested(member.identity_key, self._clock()))

    def invite(self, uses: int = 1, hours: float = 24.0, label: str = "") -> None:
        """``/invite [USES] [HOURS]``: commit a new invite; its code is shown once it is in."""
        if not 1 <= uses <= MAX_INVITE_USES or hours < 0:
            raise UsageError(wording.bad_invite_options(uses, hours, MAX_INVITE_USES))
        self._post(i.InviteRequested(uses, hours * 3600.0, label, self._clock()))

    def invites(self) -> tuple[InviteView, ...]:
        """``/invites``: the group's live invites (the codes of our own)."""
        return self._machine.live_invites()

    def revoke(self, query: str) -> None:
        """``/revoke N``: commit the withdrawal of a live invite (its number or label)."""
        self._post(i.RevokeRequested(self._machine.invite_named(query), self._clock()))

    def approve(self, query: str) -> None:
        """``/approve NAME``: let in a joiner who asked without an invite (we commit the Add)."""
        request = self._machine.approval_for(query)
        self._post(i.ApproveRequested(request.identity_key, self._clock()))

    def leave(self) -> None:
        """``/leave``: publish a signed leave request; :meth:`run` ends once a member removed us."""
        self._post(i.LeaveRequested(self._clock()))

    def roster(self) -> tuple[RosterEntry, ...]:
        return self._machine.roster()

    def member_label(self, name: str) -> str:
        """How the one member ``name`` means is shown (a name, ``name·3f2a`` or a fingerprint
        prefix; client/names.py): raises if nobody, or several, match."""
        return self._machine.label(self._machine.member_named(name))

    def safety_number(self, name: str) -> str:
        member = self._machine.member_named(name)
        return safety_number(self.identity.public_key, member.identity_key)

    def trust(self, name: str) -> None:
        """``/trust NAME``: mark the key we see for ``name`` as verified out of band."""
        member = self._machine.member_named(name)
        if member.identity_key in self._machine.unchecked_keys():
            raise UsageError(wording.still_checking(self._machine.label(member)))
        self._trust.trust(member.identity_key, member.display_name)
        self._emit(TimelineEvent(TimelineKind.INFO, wording.marked_verified(self._machine.label(member))))
        self._emit(RosterChanged(self.roster()))

    def untrust(self, name: str) -> None:
        """``/untrust NAME``: withdraw the verified mark of the key we see for ``name``."""
        member = self._machine.member_named(name)
        if self._trust.untrust(member.identity_key):
            label = self._machine.label(member)
            self._emit(TimelineEvent(TimelineKind.INFO, wording.marked_unverified(label)))
            self._emit(RosterChanged(self.roster()))

    def tree_view(self) -> TreeView:
        """The key tree (or ring) of our epoch; from the first call on, every change also emits one."""
        return self._machine.tree_view()

    @property
    def status(self) -> StatusChanged:
        return self._machine.status

    @property
    def quiet(self) -> bool:
        """Nothing of ours will change the epoch unless asked: no commit in flight, no update owed
        (a joiner's first, a reconnect's), no ring rekey running. For benchmarks and demos."""
        return self._machine.quiet

    @property
    def epoch_codes(self) -> Mapping[int, str]:
        return self._machine.epoch_codes

    @property
    def epoch(self) -> int | None:
        """Our current epoch; None before we are a member (a ring joiner: before its first ring is done)."""
        return self._machine.epoch

    @property
    def keeps_state(self) -> bool:
        """Whether the group state is stored now (a restart resumes this leaf): then quitting need
        not leave. False with ``--ephemeral``, or while no state is stored (not a member yet, a
        ring run, a failing disk): a restart would be a rejoin, so quitting leaves."""
        return self._store is not None and self._store.holds_state

    async def close(self, *, leave: bool = True, timeout: float = 5.0) -> None:
        """Stop the session. With ``leave`` (quitting), first publish a leave request so that the
        others remove us at once instead of after the eviction grace period."""
        if not self._running or self._stopped is None:
            self._machine.mark_closed()
            self._machine.take_actions()  # nobody listens before run()
            return
        if self._stopped.is_set():
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._post(i.CloseRequested(leave, self._clock()), done)
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
            raise UsageError(wording.NOT_RUNNING)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._post(i.DropRequested(self._clock()), done)
        await done

    # --- internals -----------------------------------------------------------------------------

    @property
    def _name(self) -> str:
        return self._machine._name

    def _check_text(self, text: str) -> None:
        if not text.strip():
            raise UsageError(wording.EMPTY_MESSAGE)
        if len(text.encode("utf-8")) > MAX_TEXT_BYTES:
            raise UsageError(wording.text_too_long(MAX_TEXT_BYTES))

    def _post(
        self, item: i.Input, done: asyncio.Future[None] | None = None, ws: ClientConnection | None = None
    ) -> None:
        self._inbox.put_nowait((item, done, ws))

    def _emit(self, notice: Notice) -> None:
        try:
            self._notify(notice)
        except Exception:  # the UI's bug must not take the session down; it is logged, not hidden
            log.exception("the notify callback raised on %s", type(notice).__name__)

    def _deliver_queued(self) -> None:
        """Carry out what the machine queued: notices, and the signals for this glue."""
        if self._store is not None:  # a message shown confirmed is a message kept
            for notice in self._store.keep(self._machine):
                self._emit(notice)
        for action in self._machine.take_actions():
            if isinstance(action, Notify):
                self._emit(action.notice)
            elif isinstance(action, Stop):
                if self._finished is not None:
                    self._finished.set()
            elif isinstance(action, ResetBackoff):
                self._backoff.reset()
            elif isinstance(action, AbortConnection) and self._ws is not None:
                self._ws.transport.abort()

    def _resume_stored(self, store: SessionStore) -> None:
        """Show the room's scrollback, then resume the stored group state (or say why not)."""
        for notice in store.scrollback():
            self._emit(notice)
        self._machine.remember_seen(store.seen())  # a resend of a message shown before: not again
        restored = store.restore(self._machine._config)
        unsent = store.unsent()
        if isinstance(unsent, str):
            self._emit(TimelineEvent(TimelineKind.WARNING, unsent))
            unsent = []
        if isinstance(restored, tuple):
            self._machine.resume_stored(*restored, unsent)
            self._emit(TimelineEvent(TimelineKind.INFO, wording_store.RESTORED))
        else:
            if restored is not None:
                self._emit(TimelineEvent(TimelineKind.WARNING, wording_store.rejoin_because(restored)))
            self._machine.carry_unsent(unsent)  # sent once we are in the group again
        self._deliver_queued()

    def _persist(self, *, before_send: bool = False) -> None:
        """Store what changed (session_store.py); before a send, as docs/protocol.md §12.2 asks."""
        if self._store is not None:
            for notice in self._store.persist(self._machine, before_send=before_send):
                self._emit(notice)

    async def _perform(self, effect: Effect) -> object:
        if isinstance(effect, SendFrame):
            ws = self._ws
            if ws is None:
                return False
            if isinstance(effect.frame, Publish | SendTo):
                self._persist(before_send=True)
                if self._store is not None and self._store.hold_sends:
                    return False  # not over a stale stored state (session_store.py); tried again later
            try:
                await ws.send(encode(effect.frame))
            except ConnectionClosed:
                return False
            return True
        if isinstance(effect, CallCore):
            assert self._worker is not None
            return await self._worker.call(effect.call)
        if isinstance(effect, CloseConnection):
            if self._ws is not None:
                await self._ws.close()
            return None
        raise UsageError(f"unknown effect {effect!r}")

    async def _drive(self, item: i.Input, *, settle: bool = True) -> None:
        """Run one machine step to its end, performing each effect it yields; with ``settle``,
        then store what changed (else :meth:`_when_idle` does, once the read is handled)."""
        step = self._machine.step(item)
        reply: Reply | None = None
        error: BaseException | None = None
        while True:
            try:
                effect = resume(step, reply, error)
            finally:
                self._deliver_queued()
            if effect is None:
                break
            error = None
            try:
                value = await self._perform(effect)
            except GroupChatError as exc:
                error, reply = exc, None
                continue
            reply = Reply(value, self._clock())
        self._deliver_queued()
        # After a step: at once when the inbox is idle, else at most every _PERSIST_EVERY (a
        # backlog of thousands of frames is not thousands of exports). What was received and not
        # stored yet is read again from the relay after a crash; a send always stores first.
        if not settle:
            return
        if self._inbox.empty() or time.perf_counter() - self._persisted_at >= _PERSIST_EVERY:
            self._persist()
            self._persisted_at = time.perf_counter()

    def _arm_timer(self) -> None:
        """Make sure the actor is woken by the next deadline (at most ``_MAX_SLEEP`` from now).

        An idle session costs nothing but that: no ticker polls the timers. Waking early is
        harmless (the machine finds nothing due and is armed again); an earlier wake stays.
        """
        now = self._clock()
        at = min(self._machine.next_wakeup(now), now + _MAX_SLEEP)
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
            self._post(i.Tick(self._clock()))

    async def _actor(self) -> None:
        """Feed one input at a time to the machine; everything that changes its state happens here."""
        since = time.perf_counter()
        while True:
            since = await _yield_if_busy(since)
            item, done, ws = await self._inbox.get()
            # Taken without waiting unless the reader is handing a frame over (it took the turn
            # only with the inbox empty: this input came after that frame, and goes after it).
            async with self._turn:
                if isinstance(item, i.FrameReceived):
                    self._frame_slots.release()
                if isinstance(item, i.Tick):
                    self._tick_pending = False
                elif isinstance(item, i.Connected):
                    self._ws = ws
                elif isinstance(item, i.Disconnected):
                    self._ws = None
                await self._drive(dataclasses.replace(item, now=self._clock()))  # handled now
                if done is not None and not done.done():
                    done.set_result(None)
                if self._finished is not None and self._finished.is_set():
                    return
                if self._inbox.empty():
                    # Armed once the inbox is drained, not after each of a burst of inputs: every
                    # input runs the machine's due duties anyway, so the timer matters only when idle.
                    self._arm_timer()

    async def _hand_over(self, frame: ServerFrame) -> None:
        """Give ``frame`` to the machine: at once, in the reader, when no input waits in the inbox
        and no step runs (the order of inputs is kept: nothing came before it that is not handled);
        else through the inbox, behind what waits there. The store and the timer are seen to once
        the read is handled (:meth:`_when_idle`), not after each of its frames."""
        if self._finished is not None and self._finished.is_set():
            return  # the machine stopped (as the actor stops): what the relay sends after is not read
        if not self._inbox.empty() or self._turn.locked():
            await self._frame_slots.acquire()  # released when the actor takes it
            self._post(i.FrameReceived(frame, self._clock()))
            return
        async with self._turn:
            try:
                await self._drive(i.FrameReceived(frame, self._clock()), settle=False)
            except Exception as exc:  # the machine's or the store's, not the connection's: fatal
                raise _HandlerFailed(exc) from exc
            if self._idle_soon is None:
                self._idle_soon = asyncio.get_running_loop().call_soon(self._when_idle)

    def _when_idle(self) -> None:
        """After a read handed over by the reader: arm the timer and store what changed, as the
        actor does once its inbox is drained. If a step runs now, whoever ends it does that: the
        actor at the end of its step, the reader by scheduling this again."""
        self._idle_soon = None
        if self._turn.locked():
            return
        if self._inbox.empty():
            self._arm_timer()
        self._persist_when_due()

    def _persist_when_due(self) -> None:
        """Store what changed: at once after a quiet spell, else once ``_PERSIST_EVERY`` has passed
        since the last store (reads that keep coming, a backlog, are not an export each, as with
        the actor under a backlog; a send always stores first)."""
        # A step running sees to it at its end (the actor's rule, or the reader's _when_idle);
        # a store put off comes soon.
        if self._turn.locked() or self._persist_later is not None:
            return
        wait = self._persisted_at + _PERSIST_EVERY - time.perf_counter()
        if wait > 0 and self._store is not None:
            self._persist_later = asyncio.get_running_loop().call_later(wait, self._persist_put_off)
            return
        self._persist()
        self._persisted_at = time.perf_counter()

    def _persist_put_off(self) -> None:
        """The store :meth:`_persist_when_due` put off is due."""
        self._persist_later = None
        self._persist_when_due()

    async def _connector(self) -> None:
        """Connect, read frames into the actor's inbox, and reconnect with backoff."""
        while True:
            reason = connection_wording.CONNECTION_CLOSED
            try:
                async with connect(
                    self.settings.relay_url,
                    compression=None,
                    max_size=MAX_FRAME,
                    open_timeout=10,
                    user_agent_header=AGENT,
                ) as ws:
                    # One read is parsed whole, in one callback: a smaller read bounds what a relay
                    # packing thousands of tiny frames into it can cost the loop at once.
                    if isinstance(getattr(ws.transport, "max_size", None), int):
                        ws.transport.max_size = _READ_SIZE  # type: ignore[attr-defined]
                    await ws.send(encode(Hello(AGENT)))
                    async with asyncio.timeout(10):
                        first = await ws.recv()
                    if not isinstance(first, bytes):
                        raise InvalidValueError(connection_wording.bad_hello("a text frame"))
                    hello = decode_server(first, MAX_FRAME)
                    if not isinstance(hello, ServerHello):
                        raise InvalidValueError(connection_wording.bad_hello(type(hello).__name__))
                    self._post(i.Connected(hello, self._clock()), ws=ws)
                    max_frame = max(hello.limits.max_frame, 1024) * 2
                    since = time.perf_counter()
                    async for message in ws:
                        since = await _yield_if_busy(since)
                        if not isinstance(message, bytes):
                            log.warning("relay sent a text frame; ignored")
                            continue
                        try:
                            frame = decode_server(message, max_frame)
                        except DecodeError as exc:
                            log.warning("relay sent an undecodable frame (%s); ignored", exc)
                            continue
                        await self._hand_over(frame)
                    reason = (
                        f"the relay closed the connection ({ws.close_code} {ws.close_reason or ''})".strip()
                    )
            except ConnectionClosed as exc:
                reason = f"connection lost ({exc})"
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI, GroupChatError) as exc:
                log.info("connection attempt failed: %r", exc)
                reason = _failure(exc)
            delay = self._backoff.next()
            self._post(i.Disconnected(reason, delay, self._clock(), attempt=self._backoff.attempts))
            await asyncio.sleep(delay)
