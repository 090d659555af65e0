"""The session machine: one member of one room, sans-I/O, like ``websockets.protocol``.

Feed it inputs (:mod:`.inputs`: relay frames, connection changes, timer ticks, commands, each
with ``now``) through :meth:`SessionMachine.step`, a generator of effects (:mod:`.actions`: send
a frame, call the core, close the connection) that the driver performs and answers with a
:class:`~.actions.Reply`; take the queued notices and signals with ``take_actions()``; arm a timer
for :meth:`SessionMachine.next_wakeup`. It reads no clock, opens no socket and starts no thread,
so a test drives it input by input in milliseconds (:func:`.driver.drive`) and the asyncio glue
(:mod:`.asyncio_session`) only executes what it asks.

Its phases and transitions are :mod:`.phases`; its policies are modules of their own (who
commits: ``coordinator.py`` and :mod:`.duties`; :mod:`.eviction`; :mod:`.updates`;
:mod:`.rejoin`; :mod:`.ring_driver`; :mod:`.rejections`; the sentences: ``client/wording.py``).
This module handles the relay and the room; :mod:`.membership` the group's life.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ...core.errors import GroupChatError, UsageError
from ...core.events import Member
from ...core.identity import JoinRequest
from ...relay_protocol import (
    Ack,
    Deliver,
    Error,
    ErrorCode,
    Join,
    Joined,
    Presence,
    PresenceEvent,
    ServerFrame,
)
from .. import wording
from ..app_content import AppContent
from ..coordinator import AddDuty, next_turns
from ..notices import ConnectionState, Placeholder, TimelineEvent, TimelineKind, UnreadableReason
from ..outbound_queue import Outgoing
from ..room_payload import CREATION_NONCE_LEN, SYNC_NONCE_LEN, PayloadKind, RoomPayload
from . import inputs as i
from .actions import AbortConnection, CloseConnection, ResetBackoff, Step
from .core_calls import CreateGroup, Encrypt, MakeJoinRequest
from .duties import online_leaves, open_duties
from .eviction import note_absent
from .membership import Membership
from .phases import Creation, Departure, Hold, JoinAttempt, Link, Phase, Trigger
from .rejoin import creation_turn, join_republish_delay, should_create
from .settings import member_id
from .state import log

__all__ = ["SessionMachine"]


class SessionMachine(Membership):
    """One member's session in one room, as a state machine (see the module docstring)."""

    def step(self, item: i.Input) -> Step[None]:
        """Handle one input, then do whatever is due (create, ask to join, commit, send, leave)."""
        self._now = item.now
        if self._phase is Phase.ENDED:
            return
        if isinstance(item, i.FrameReceived):
            yield from self._on_frame(item.frame)
        elif isinstance(item, i.Connected):
            self._link = Link(item.hello.limits.max_payload)
            yield from self._join_room(self._last_seq if self._last_seq is not None else 0)
        elif isinstance(item, i.Disconnected):
            self._on_disconnected(item)
        else:
            yield from self._on_command(item)
        if self._ended():
            return
        yield from self._progress()

    # --- what the UI reads and queues -------------------------------------------------------

    def queue_text(self, text: str) -> Outgoing:
        """Queue a typed message (sent once we are ready; see ``_flush_outbox``)."""
        if self.closed:
            raise UsageError(wording.LEFT_SESSION)
        return self._outbox.add(text)

    @property
    def closed(self) -> bool:
        """Leaving or closed: nothing more can be queued."""
        return self._departure is not None or self._state is ConnectionState.CLOSED

    def mark_closed(self) -> None:
        """The glue stopped: the status says closed."""
        self._state = ConnectionState.CLOSED
        self._emit_status()

    def member_named(self, name: str) -> Member:
        for m in self._members.values():
            if m.display_name == name:
                return m
        raise UsageError(wording.no_member_named(name))

    @property
    def current_epoch(self) -> int:
        group = self._group
        return group.epoch if group is not None else 0

    @property
    def quiet(self) -> bool:
        """Nothing of ours will change the epoch unless asked: no commit in flight, no update owed
        (a joiner's first, a reconnect's), no ring rekey running. For benchmarks and demos."""
        hold = self._hold
        busy = hold is not None and (hold.own_commit is not None or hold.ring is not None)
        return not busy and self._duties.want_update is None

    @property
    def want_update(self) -> str | None:
        """Why we owe a self-update, if we do."""
        return self._duties.want_update

    @property
    def epoch_codes(self) -> Mapping[int, str]:
        return MappingProxyType(dict(self._epoch_codes))

    @property
    def epoch(self) -> int | None:
        """Our current epoch; None before we are a member (a ring joiner: before its first ring is done)."""
        group = self._group
        if group is None or self._phase is Phase.CREATING or group.joining:
            return None
        return group.epoch

    # --- the timer -----------------------------------------------------------------------------

    def next_wakeup(self, now: float) -> float:
        """The earliest future moment at which something timed becomes due (inf: nothing).

        Derived from the policies that :meth:`_progress` asks: the leave deadline, the creators'
        turn and re-asking to join (rejoin.py), the relay's pause, the ring's poll (ring_driver.py),
        the scheduled update (updates.py), and our turn for each open duty (coordinator.next_turns
        over duties.open_duties, the very duties the planner weighs). Times already past are left
        out: what is due but waits for something (an echo, a connection) is woken by that input.
        """
        times = [self._send_pause_until]
        if self._departure is not None:
            times.append(self._departure.deadline)
        hold, attempt = self._hold, self._phase_data
        if hold is None:
            if isinstance(attempt, JoinAttempt):
                times.append(attempt.next_publish)
            if not self._traffic_seen:
                since = attempt.since if isinstance(attempt, JoinAttempt) else now
                times.append(creation_turn(self._present, self._me, since, self.settings.add_timeout))
        else:
            if hold.ring is not None:
                times.append(hold.ring.next_poll)
            times.extend(self._updates.wakeups(self._duties.want_update is not None))
            if self._departure is None:
                times.extend(self._beacons.wakeups())
            times.extend(self._duty_turns(hold))
        future = [t for t in times if t > now]
        return min(future, default=float("inf"))

    def _duty_turns(self, hold: Hold) -> list[float]:
        duties = self._duties
        if not (duties.adds or duties.leave_requests or self._offline_since):
            return []
        my_leaf = hold.group.my_leaf
        grace = self.settings.eviction_grace
        pending = open_duties(duties, hold.members, my_leaf, self._present, self._offline_since, grace)
        return next_turns(
            my_leaf=my_leaf,
            online_leaves=online_leaves(hold.members, self._present),
            adds=pending.adds,
            removes=pending.removes,
            step=self.settings.add_timeout,
        )

    # --- the connection and the room (the relay's claims) ------------------------------------

    def _join_room(self, resume_after: int | None) -> Step[None]:
        link = self._link
        if link is None:
            return
        link.join_req = self._next_req()
        link.resume_after = resume_after
        self._set_state(ConnectionState.JOINING if self._hold is None else self._state)
        yield from self._send(Join(link.join_req, self._room, self._me, resume_after))

    def _on_disconnected(self, item: i.Disconnected) -> None:
        link, self._link = self._link, None
        self._present.clear()
        if link is not None:
            link.in_room = False
        if self._ever_connected:
            self._emit(
                TimelineEvent(TimelineKind.DISCONNECTED, wording.disconnected(item.reason, item.retry_in))
            )
        else:
            log.info("relay unreachable: %s", item.reason)
        self._set_state(ConnectionState.RECONNECTING if self._ever_connected else ConnectionState.CONNECTING)
        self._emit_roster()

    def _on_frame(self, frame: ServerFrame) -> Step[None]:
        link = self._link
        if link is None:
            return
        if isinstance(frame, Deliver):
            if frame.room == self._room:
                yield from self._on_deliver(frame)
        elif isinstance(frame, Presence):
            if frame.room == self._room:
                self._on_presence(frame)
        elif isinstance(frame, Ack):
            sent = link.pending_acks.pop(frame.req_id, None)
            if sent is not None:
                self._latency_ms = (self._now - sent[1]) * 1000
        elif isinstance(frame, Joined):
            if frame.req_id == link.join_req:
                yield from self._on_joined(link, frame)
        elif isinstance(frame, Error):
            yield from self._on_error(link, frame)

    def _on_joined(self, link: Link, joined: Joined) -> Step[None]:
        link.in_room = True
        self._actions.append(ResetBackoff())
        self._present = set(joined.members)
        self._present.add(self._me)
        # We cannot know when the absent ones left while we were away: count from now.
        self._offline_since = {}
        note_absent(self._offline_since, self._members, self._me, self._present, self._now)
        if self._gap_from is not None and link.resume_after is None:
            missed = max(0, joined.head_seq - self._gap_from)
            if missed:
                self._emit(
                    Placeholder(UnreadableReason.MISSED_OFFLINE, missed, detail=wording.MISSED_FROM_LOG)
                )
            self._gap_from = None
        if link.resume_after is None:
            self._last_seq = joined.head_seq
        # A message addressed to ourselves marks the end of the backlog: everything the relay
        # logged before it has been delivered to us when its echo comes back.
        link.sync_nonce = self._rand(SYNC_NONCE_LEN)
        yield from self._publish(PayloadKind.SYNC, link.sync_nonce, "sync marker", to=self._me)
        self._emit_roster()

    def _on_error(self, link: Link, err: Error) -> Step[None]:
        if err.req_id and err.req_id == link.join_req:
            if err.code in (ErrorCode.GAP, ErrorCode.FUTURE_SEQ):
                yield from self._on_resume_refused(link, err)
                return
            self._warn(wording.refused_room(err.reason))
            yield from self._do(CloseConnection())
            return
        what = link.pending_acks.pop(err.req_id, (None, 0.0))[0] if err.req_id else None
        log.warning("relay error %s for %s: %r", err.code, what or "no request", err.reason)
        if what == "beacon":
            self._beacons.retry(self._now)  # its generation is used: the next beacon explains it
        entry = self._outbox.by_request(err.req_id) if err.req_id else None
        if entry is not None:
            if err.code == ErrorCode.TOO_LARGE:
                self._outbox.drop(entry)
                self._warn(wording.too_large(entry.local_id))
            else:
                self._outbox.requeue(entry)  # rate limited or the like: try again shortly
                self._send_pause_until = self._now + 0.25
            return
        hold = self._hold
        if hold is not None and hold.own_commit is not None and what == "commit":
            # The relay dropped our commit: forget it and plan again on the same epoch.
            self._send_pause_until = self._now + 0.25
            yield from self._discard_own_commit()
            return
        if err.code in (ErrorCode.REPLACED, ErrorCode.SLOW_CONSUMER, ErrorCode.SHUTTING_DOWN):
            self._warn(wording.relay_said(err.reason))

    def _on_resume_refused(self, link: Link, err: Error) -> Step[None]:
        if link.resume_after == 0 and err.code == ErrorCode.GAP:
            # The log was trimmed, so the room had traffic: a group exists; join without resume.
            self._traffic_seen = True
            yield from self._join_room(None)
            return
        if err.code == ErrorCode.GAP:
            self._gap_from = self._last_seq
            self._traffic_seen = True
            self._rejoin(wording.gap_rejoin())
            yield from self._join_room(None)
            return
        # future_seq: the relay lost its log (an in-memory relay restarted): nobody can tell what
        # was lost, so every member re-forms the group and the new room log is read from seq 1.
        self._warn(wording.RELAY_RESTARTED)
        self._traffic_seen = False
        self._last_seq = None
        self._rejoin(None)
        self._epoch_codes.clear()  # the new group counts its epochs from 0 again
        yield from self._join_room(0)

    def _on_presence(self, p: Presence) -> None:
        if p.event is PresenceEvent.JOINED:
            self._present.add(p.member)
            self._offline_since.pop(p.member, None)
        else:
            self._present.discard(p.member)
            self._offline_since.setdefault(p.member, self._now)
        if any(member_id(m.identity_key) == p.member for m in self._members.values()):
            self._emit_roster()  # a group member came or went (a joiner is not in the roster yet)

    # --- room payloads ----------------------------------------------------------------------

    def _on_deliver(self, d: Deliver) -> Step[None]:
        if self._last_seq is not None and d.seq <= self._last_seq:
            return  # already processed (the relay never sends one twice; a safety net)
        self._last_seq = d.seq
        try:
            payload = RoomPayload.decode(d.payload)
        except GroupChatError as exc:
            log.warning("seq %d: unreadable room payload: %s", d.seq, exc)
            self._placeholder(UnreadableReason.TAMPERED, None, wording.not_a_payload(exc))
            return
        kind = payload.kind
        if kind is PayloadKind.SYNC:
            link = self._link
            if d.sender == self._me and link is not None and payload.body == link.sync_nonce:
                yield from self._on_caught_up(link)
            return
        if kind is PayloadKind.GROUP_CREATED:
            self._on_group_created(d, payload.body)
        elif kind is PayloadKind.JOIN_REQUEST:
            self._on_join_request(payload.body)
        elif kind is PayloadKind.WELCOME:
            self._traffic_seen = True
            if d.to == self._me and d.sender != self._me:
                yield from self._on_welcome(payload.body)
        else:
            self._traffic_seen = True
            yield from self._on_core(payload.body)

    def _on_caught_up(self, link: Link) -> Step[None]:
        first_time = not self._ever_connected
        link.caught_up = True
        self._ever_connected = True
        lost = self._outbox.requeue_in_flight()
        if lost:
            log.info("%d message(s) had no echo after reconnecting; sending them again", lost)
        hold = self._hold
        if hold is not None and hold.own_commit is not None and not hold.own_commit.applied:
            yield from self._discard_own_commit()  # the relay never logged it
        attempt = self._phase_data
        if self._hold is not None and self._phase is not Phase.CREATING:
            if not first_time:
                self._emit(TimelineEvent(TimelineKind.RECONNECTED, wording.reconnected(self.current_epoch)))
                self._duties.want_update = self._duties.want_update or "reconnect"
            self._set_state(ConnectionState.READY)
        elif isinstance(attempt, JoinAttempt):
            attempt.next_publish = 0.0  # publish our request again on the new connection
        self._emit_roster()

    def _on_group_created(self, d: Deliver, nonce: bytes) -> None:
        creation = self._phase_data if isinstance(self._phase_data, Creation) else None
        if creation is not None and d.sender == self._me and nonce == creation.nonce:
            self._enter(Trigger.MARKER_ECHOED)  # nothing before our own group's creation concerns it
            self._emit(TimelineEvent(TimelineKind.JOINED, wording.created(self.settings.room, self._code())))
            self._set_state(ConnectionState.READY)
            self._emit_status()
            return
        if creation is not None:
            # Two of us found the room empty at once; the relay's order says the other was first.
            log.info("another member created the group first; joining theirs")
            self._enter(Trigger.CREATION_LOST)
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
        adds = self._duties.adds
        if group is not None and group.has_init_key(request.init_key):  # a read between core calls
            # Already added: any earlier request of the same identity is stale (log order).
            adds.pop(request.identity_key, None)
            return
        previous = adds.get(request.identity_key)
        since = previous.since if previous is not None and previous.request == request else self._now
        adds[request.identity_key] = AddDuty(request, since)

    # --- commands -------------------------------------------------------------------------------

    def _on_command(self, cmd: i.Input) -> Step[None]:
        if isinstance(cmd, i.RekeyRequested):
            self._duties.want_update = self._duties.want_update or "request"
            self._updates.asked()
        elif isinstance(cmd, i.KickRequested):
            self._duties.kicks.add(cmd.identity_key)
            self._removal_reasons[cmd.identity_key] = wording.reason_kicked(self._name)
        elif isinstance(cmd, i.LeaveRequested):
            if self._departure is None:
                self._departure = Departure(self._now + max(5.0, 3 * self.settings.add_timeout))
        elif isinstance(cmd, i.DropRequested):
            if self._link is not None:
                self._actions.append(AbortConnection())  # like a network failure: no close handshake
        elif isinstance(cmd, i.CloseRequested):
            sent = self._departure is not None and self._departure.sent
            if cmd.leave and self._hold is not None and len(self._members) > 1 and not sent:
                yield from self._send_leave_request()
            yield from self._finish()

    def _send_leave_request(self) -> Step[None]:
        group = self._group
        if group is None or group.joining:
            return  # a ring joiner before its first epoch has no keys to ask with: it just goes
        data, _ = yield from self._core(Encrypt(group, AppContent.leave().encode()))
        if (
            yield from self._publish(PayloadKind.CORE, data, "leave request")
        ) is not None and self._departure:
            self._departure.sent = True

    # --- making progress --------------------------------------------------------------------

    def _progress(self) -> Step[None]:
        """After every input: do whatever is due (create, ask to join, commit, send, leave)."""
        link, now, departure = self._link, self._now, self._departure
        if link is None or not link.caught_up:
            if departure is not None and now > departure.deadline:
                self._emit(TimelineEvent(TimelineKind.LEFT, wording.LEFT_OFFLINE))
                yield from self._finish()
            return
        hold, attempt = self._hold, self._phase_data
        if hold is None:
            joining = attempt if isinstance(attempt, JoinAttempt) else None
            since = joining.since if joining is not None else now
            if departure is not None:
                self._emit(TimelineEvent(TimelineKind.LEFT, wording.LEFT_ROOM))
                yield from self._finish()
            elif should_create(
                self._traffic_seen, self._present, self._me, since, now, self.settings.add_timeout
            ):
                yield from self._create()
            elif joining is None:
                yield from self._ask_to_join(now)
            elif now >= joining.next_publish:
                yield from self._publish_join_request()
            return
        if self._phase is Phase.CREATING:
            return
        if departure is not None:
            yield from self._progress_leave(hold, departure, now)
            return
        if now < self._send_pause_until:
            return  # the relay asked us to slow down
        if hold.ring is not None:
            # A ring rekey is under way: only a restart that drops members it waits for can be
            # committed, and messages typed now wait for the new epoch (a joiner has no keys to
            # send with before it).
            yield from self._poll_ring(now)
            yield from self._maybe_restart_ring(now)
            return
        if hold.own_commit is None:
            yield from self._maybe_commit(now)
        if hold.own_commit is None:
            yield from self._flush_outbox()
        if self._beacons.due(now):
            yield from self._beacon_duty()

    def _progress_leave(self, hold: Hold, departure: Departure, now: float) -> Step[None]:
        if hold.group.joining:
            self._emit(TimelineEvent(TimelineKind.LEFT, wording.LEFT_BEFORE_RING))
            yield from self._finish()
            return
        if len(hold.members) <= 1:
            self._emit(TimelineEvent(TimelineKind.LEFT, wording.LEFT_EMPTY_GROUP))
            yield from self._finish()
            return
        if not departure.sent:
            yield from self._send_leave_request()
        if now > departure.deadline:
            self._emit(TimelineEvent(TimelineKind.LEFT, wording.LEFT_NO_CONFIRMATION))
            yield from self._finish()

    def _create(self) -> Step[None]:
        call = CreateGroup(self.identity, self._group_id, self._name, self._config, self.settings.scheme)
        group, timed = yield from self._core(call)
        self._updates.last_update = self._now
        nonce = self._rand(CREATION_NONCE_LEN)
        self._enter(Trigger.CREATE, Creation(nonce), Hold(group, 0))
        self._adopt(timed)
        yield from self._publish(PayloadKind.GROUP_CREATED, nonce, "group-created marker")

    def _ask_to_join(self, since: float) -> Step[None]:
        pending = yield from self._core(
            MakeJoinRequest(self.identity, self._group_id, self._name, self._config)
        )
        self._enter(Trigger.ASK_TO_JOIN, JoinAttempt(pending, since))
        self._set_state(ConnectionState.JOINING)
        yield from self._publish_join_request()

    def _publish_join_request(self) -> Step[None]:
        attempt = self._phase_data
        assert isinstance(attempt, JoinAttempt)
        if (
            yield from self._publish(
                PayloadKind.JOIN_REQUEST, attempt.pending.request.encoded, "join request"
            )
        ) is None:
            return
        # Publish again with backoff until welcomed: the member in line may have been offline.
        delay = join_republish_delay(self.settings.add_timeout, attempt.attempts)
        attempt.attempts += 1
        attempt.next_publish = self._now + delay
