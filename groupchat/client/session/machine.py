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
from typing import Final

from ...core.errors import GroupChatError, UsageError
from ...core.events import Member
from ...relay_protocol import (
    Ack,
    Deliver,
    Error,
    ErrorCode,
    Join,
    Joined,
    Presence,
    ServerFrame,
)
from .. import wording
from ..app_content import AppContent
from ..coordinator import next_turns
from ..names import resolve
from ..notices import ConnectionState, Placeholder, TimelineEvent, TimelineKind, UnreadableReason
from ..outbound_queue import Outgoing
from ..room_payload import CREATION_NONCE_LEN, SYNC_NONCE_LEN, PayloadKind, RoomPayload
from . import inputs as i
from .actions import AbortConnection, CloseConnection, ResetBackoff, Step
from .behind import PROBE_WAIT
from .bounds import sane_max_payload
from .core_calls import CreateGroup, Encrypt
from .duties import open_duties
from .eviction import ASK_AHEAD, note_absent
from .membership import Membership
from .phases import Creation, Departure, Hold, JoinAttempt, Link, Phase, Trigger
from .presence_steps import PresenceSteps
from .rejoin import (
    GAP_RETRIES,
    GAP_RETRY_DELAY,
    creation_turn,
    fresh_after,
    should_create,
    stranded,
)
from .state import log

__all__ = ["SessionMachine"]


class SessionMachine(Membership, PresenceSteps):
    """One member's session in one room, as a state machine (see the module docstring)."""

    def step(self, item: i.Input) -> Step[None]:
        """Handle one input, then do whatever is due (create, ask to join, commit, send, leave)."""
        self._now = item.now
        if self._phase is Phase.ENDED:
            return
        link = self._link
        if link is not None and link.retry_resume_at is not None and item.now >= link.retry_resume_at:
            link.retry_resume_at = None
            yield from self._join_room(link.resume_after)
        if link is not None and _sync_overdue(link, item.now):
            # The relay never echoed our sync marker: its backlog is all we will get. Going on
            # beats waiting for good (a relay that withholds our own frames must not freeze us).
            self._warn(wording.NO_SYNC_ECHO)
            yield from self._on_caught_up(link)
        creation = self._phase_data
        if isinstance(creation, Creation) and item.now >= creation.at + SYNC_TIMEOUT:
            # Our creation marker never came back: no other marker came before it either, so
            # the group we made stands (a relay that withholds it must not freeze us).
            self._warn(wording.NO_MARKER_ECHO)
            self._group_stands(creation)
        if isinstance(item, i.FrameReceived):
            yield from self._on_frame(item.frame)
        elif isinstance(item, i.Connected):
            self._link = Link(sane_max_payload(item.hello.limits))
            if self._problem is not None:  # the relay answered: the status line's reason is gone
                self._problem = None
                self._emit_status()
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
        """The glue stopped: the status says closed (and no retry is coming)."""
        self._state = ConnectionState.CLOSED
        self._problem = (self._closed_why, 0, None) if self._closed_why else None
        self._emit_status()

    def member_named(self, query: str) -> Member:
        """The one member ``query`` means: a name, ``name·3f2a`` or a fingerprint prefix
        (:func:`..names.resolve`; an ambiguous name raises with the candidates)."""
        return resolve(query, self._members.values())

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
        if self._link is not None and self._link.retry_resume_at is not None:
            times.append(self._link.retry_resume_at)
        if self._link is not None and self._link.joined_at is not None and not self._link.caught_up:
            times.append(self._link.joined_at + SYNC_TIMEOUT)
        if isinstance(self._phase_data, Creation):
            times.append(self._phase_data.at + SYNC_TIMEOUT)
        if self._departure is not None:
            times.append(self._departure.deadline)
        hold, attempt = self._hold, self._phase_data
        if hold is None:
            if isinstance(attempt, JoinAttempt):
                times.append(attempt.next_publish)
            if self._arrival.fallback is not None:
                times.append(self._arrival.fallback_since + self.settings.creation_fallback)
            if not self._traffic_seen and self.settings.invite is None:
                since = attempt.since if isinstance(attempt, JoinAttempt) else now
                times.append(creation_turn(self._present, since, self.settings.add_timeout))
        else:
            if hold.ring is not None:
                times.append(hold.ring.next_poll)
            if hold.reentry is not None:
                times.append(hold.reentry.next_publish)
            times.extend(self._echo_deadlines(hold))
            if hold.behind is not None and hold.behind.probed_at is not None:
                times.append(hold.behind.probed_at + PROBE_WAIT)
            if hold.split is not None:
                times.append(hold.split.since + fresh_after(self.settings.add_timeout))
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
        pending = open_duties(
            duties,
            hold.members,
            my_leaf,
            self._present,
            self._offline_since,
            grace,
            self._beacons.last_heard,
            self._roster_keys()[1],
        )
        asks = [d.since - ASK_AHEAD for d in pending.removes if d.why == "evicted"]
        return asks + next_turns(
            my_leaf=my_leaf,
            online_leaves=self._online_leaves(),
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
        if self._ever_connected and link is not None:
            # The loss of a connection we had is one timeline entry; the failed attempts after it
            # only update the status line (issue 15: not an entry per attempt).
            self._emit(
                TimelineEvent(TimelineKind.DISCONNECTED, wording.disconnected(item.reason, item.retry_in))
            )
        log.info("not connected: %s (attempt %d in %s s)", item.reason, item.attempt, item.retry_in)
        self._problem = (item.reason, item.attempt, item.retry_in)
        state = ConnectionState.RECONNECTING if self._ever_connected else ConnectionState.CONNECTING
        if state is self._state:
            self._emit_status()  # the same state, a new reason or retry: the status line updates
        self._set_state(state)
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
                self._check_numbering(frame.seq)
        elif isinstance(frame, Joined):
            if frame.req_id == link.join_req:
                yield from self._on_joined(link, frame)
        elif isinstance(frame, Error):
            yield from self._on_error(link, frame)

    def _on_joined(self, link: Link, joined: Joined) -> Step[None]:
        link.in_room = True
        link.joined_at = self._now
        self._actions.append(ResetBackoff())
        self._present.reset(joined.members, self._member_ids())
        self._present.add(self._me)
        self._log_ignored_presence()
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
        if err.code == ErrorCode.REPLACED and not err.req_id:  # our identity in another window
            link.in_room = False
            yield from self._taken_over(err.reason)
            return
        what = link.pending_acks.pop(err.req_id, (None, 0.0))[0] if err.req_id else None
        code, reason = wording.relay_text(str(err.code)), wording.relay_text(err.reason)
        log.warning("relay error %s for %s: %s", code, what or "no request", reason)
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
        # Both answers are the relay's claims: neither drops our group (behind.py says what would).
        if err.code == ErrorCode.GAP and self._hold is not None and link.gap_retries < GAP_RETRIES:
            # The relay may be lying (it costs it nothing): ask again for the resume before we
            # skip to the head, since what we would skip may hold commits the others applied.
            link.gap_retries += 1
            link.retry_resume_at = self._now + GAP_RETRY_DELAY * link.gap_retries
            return
        if err.code == ErrorCode.GAP:
            # What was trimmed is counted and shown; if it held a commit, the others' traffic at
            # a later epoch will say so, and behind.py decides.
            self._gap_from = self._last_seq
            self._traffic_seen = True
            if self._hold is not None:
                self._on_gap_with_group()
            yield from self._join_room(None)
            return
        if not link.resume_after:
            # future_seq for the log's start: nothing lies ahead of it, the relay contradicts
            # itself. Asking again at once would loop as fast as it answers; the glue reconnects
            # with its backoff.
            self._warn(wording.refused_room(err.reason))
            yield from self._do(CloseConnection())
            return
        # future_seq: the relay lost its log (an in-memory relay restarted). We keep our group
        # and read the new log from its start; whoever holds no group decides afresh.
        self._warn(wording.RELAY_RESTARTED)
        link.lost_log = True
        if self._hold is None:
            self._traffic_seen = False
        self._last_seq = None
        yield from self._join_room(0)

    # --- room payloads ----------------------------------------------------------------------

    def _check_numbering(self, acked: int) -> None:
        """The relay numbered our publish ``acked``, not above a seq it delivered before: that one
        was made up (seqs are its claims), and dropping every frame not above it would leave us
        deaf for good. We read on from just before our own frame."""
        # Our own echo may come before its Ack, and frames of others just after ours may too:
        # only an Ack well below what we took is evidence (an honest relay never lags that far).
        if self._last_seq is not None and acked < self._last_seq - NUMBERING_SLACK:
            log.warning(
                "the relay numbered our frame %d after delivering seq %d: reading on from %d",
                acked,
                self._last_seq,
                acked - 1,
            )
            self._last_seq = acked - 1

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
            self._note_live_sender(d.sender)
            yield from self._on_join_request(payload.body)
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
        yield from self._republish_last_commit(link)
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
            self._group_stands(creation)
            return
        if creation is not None:
            # Two of us found the room empty at once; the relay's order says the other was first.
            # The marker is unsigned, so we keep our group: if no welcome comes, it stands.
            log.info("another member created the group first; joining theirs")
            fallback = self._hold
            self._enter(Trigger.CREATION_LOST)
            self._arrival.fallback, self._arrival.fallback_since = fallback, self._now
        self._traffic_seen = True

    def _group_stands(self, creation: Creation) -> None:
        """Our creation marker came first (or never came back, and nothing came before it)."""
        self._enter(Trigger.MARKER_ECHOED)  # nothing before our own group's creation concerns it
        line = wording.created(self.settings.room, self._code(), creation.reformed)
        self._emit(TimelineEvent(TimelineKind.JOINED, line))
        if creation.keep_asking is not None and self._hold is not None:
            # A stranded newcomer: the relay showed no one. We keep asking to join the room's
            # group, and its welcome replaces ours while we are still alone in it.
            self._hold.reentry, self._hold.solo = creation.keep_asking, True
            self._warn(wording.STRANDED_CREATED)
        self._set_state(ConnectionState.READY)
        self._emit_status()

    # --- commands -------------------------------------------------------------------------------

    def _on_command(self, cmd: i.Input) -> Step[None]:
        if isinstance(cmd, i.RekeyRequested):
            self._duties.want_update = self._duties.want_update or "request"
            self._updates.asked()
        elif isinstance(cmd, i.KickRequested):
            self._duties.kicks.add(cmd.identity_key)
        elif isinstance(cmd, i.InviteRequested):
            self._want_invite(cmd.uses, cmd.lifetime, cmd.label)
        elif isinstance(cmd, i.RevokeRequested):
            self._duties.revokes.add(cmd.invite_key)
        elif isinstance(cmd, i.ApproveRequested):
            self._approve(cmd.identity_key)
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
        if group is None or group.joining or group.holding_messages:
            # A ring joiner before its first epoch has no keys to ask with, and while a ring that
            # removes someone runs the removed could read it: we just go (eviction follows).
            return
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
            elif self.settings.invite is None and should_create(
                self._traffic_seen, self._present, since, now, self.settings.add_timeout
            ):
                # (An invitee never creates: its way in is the group that invited it.)
                yield from self._create()
            elif joining is None:
                yield from self._ask_to_join(now)
            elif self._fallback_due(now):
                self._resume_own_group()
            elif joining is not None and stranded(
                self._present, now, joining.since, self.settings.creation_fallback
            ):
                yield from self._create(keep_asking=joining)
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
        yield from self._check_echoes(hold, now)
        yield from self._maybe_reenter(hold, now)
        # Cut off (behind.py): our epoch is one the others left; a commit of ours would fork what
        # is left of it, and chat sent at it would reach only the others cut off. Both wait.
        if hold.own_commit is None and hold.split is None:
            yield from self._maybe_commit(now)
        if hold.own_commit is None and hold.split is None:
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

    def _create(self, keep_asking: JoinAttempt | None = None) -> Step[None]:
        call = CreateGroup(
            self.identity,
            self._group_id,
            self._name,
            self._config,
            self._scheme_to_create,
            self.settings.open_room,
        )
        reformed = self._held_scheme  # we had a group here: this one takes its place
        group, timed = yield from self._core(call)
        self._updates.last_update = self._now
        nonce = self._rand(CREATION_NONCE_LEN)
        self._enter(Trigger.CREATE, Creation(nonce, self._now, keep_asking, reformed), Hold(group, 0))
        self._adopt(timed)
        yield from self._publish(PayloadKind.GROUP_CREATED, nonce, "group-created marker")


NUMBERING_SLACK: Final = 64  # seqs an Ack of ours may trail what the relay already delivered
SYNC_TIMEOUT: Final = 10.0  # seconds we wait for our sync marker's echo before going on without it


def _sync_overdue(link: Link, now: float) -> bool:
    return (
        link.in_room
        and not link.caught_up
        and link.joined_at is not None
        and now >= link.joined_at + SYNC_TIMEOUT
    )
