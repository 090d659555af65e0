"""The session machine's state and its few primitives: effects, notices, phase changes.

:class:`MachineState` holds every field of the session machine (grouped by what owns it, see
:mod:`.phases`) and the primitives the steps are written with: yield an effect and get its
outcome (:meth:`_core`, :meth:`_send`), queue a notice (:meth:`_emit`), and change phase
(:meth:`_enter`, the one place that does, with :meth:`_rejoin` and :meth:`_finish` on top). The
steps themselves are in :mod:`.membership` (the group's life) and :mod:`.machine` (the relay and
the room). Sans-I/O: no clock (``now`` comes with every input and reply), no socket, no thread.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Final, TypeVar, cast

from ...core.errors import UsageError
from ...core.events import Member
from ...core.group import Group, GroupConfig
from ...core.identity import Identity, PendingJoin, epoch_code, validate_display_name
from ...relay_protocol import Join, Leave, Publish, SendTo
from .. import wording, wording_store
from ..names import Labeler
from ..notices import (
    ChatLine,
    ConnectionState,
    Notice,
    Placeholder,
    RosterChanged,
    RosterEntry,
    StatusChanged,
    TimelineEvent,
    TimelineKind,
    TreeView,
    TrustState,
    UnreadableReason,
)
from ..outbound_queue import OutboundQueue
from ..room_payload import PayloadKind, RoomPayload
from ..trust import TrustStore
from .actions import CallCore, Effect, Notify, Queued, Reply, SendFrame, Step, Stop
from .beacons import BeaconBook
from .bounds import MAX_PENDING_ACKS, RoomPresence
from .core_calls import CoreCall, DiscardPending, Timed, TreeSnapshot, snapshot
from .duties import online_leaves
from .persistence import Kept, Unsent
from .phases import (
    TRANSITIONS,
    Arrival,
    Creation,
    Departure,
    Duties,
    Fresh,
    Hold,
    JoinAttempt,
    Link,
    OwnCommit,
    Phase,
    Trigger,
    remember,
)
from .settings import SessionSettings, group_id_for_room, member_id
from .updates import UpdateSchedule
from .views import RosterBook, build_tree_view

__all__ = ["MachineState"]

log = logging.getLogger("groupchat.client.session")

T = TypeVar("T")

_NO_MEMBERS: Final[dict[int, Member]] = {}


class MachineState:
    """Every field of the session machine, and the primitives its steps use."""

    def __init__(
        self,
        settings: SessionSettings,
        identity: Identity,
        trust: TrustStore,
        *,
        config: GroupConfig,
        rand: Callable[[int], bytes],
        now: float,
    ) -> None:
        self.settings = settings
        self.identity = identity
        self._trust = trust
        self._labeler = Labeler(trust)  # how each member is shown (client/names.py)
        self._roster_book = RosterBook()  # the roster's entries, made again only where changed
        # Who _observe_roster saw under which name, while the trust store's version is this one.
        self._observed: dict[bytes, str] = {}
        self._observed_version = -1
        self._config = config
        self._suite = config.suite()
        self._rand = rand
        self._me = member_id(identity.public_key)
        self._room = settings.room.encode("utf-8")
        self._group_id = group_id_for_room(settings.room)
        self._name = validate_display_name(settings.name)
        self._now = now
        self._actions: list[Queued] = []
        self._req_ids = 0

        # Where we are (phases.py): the phase, its data, and the state objects that span phases.
        self._phase = Phase.ARRIVING
        self._phase_data: Creation | JoinAttempt | None = None
        self._arrival = Arrival()
        self._hold: Hold | None = None
        # The scheme of the group we hold or last held (None: never one): a group we create in
        # place of one we lost keeps it, whatever the settings say (issue 15).
        self._held_scheme: str | None = None
        self._duties = Duties()
        self._departure: Departure | None = None

        # The connection and the room: what the relay says (claims, never evidence).
        self._link: Link | None = None
        self._state = ConnectionState.CONNECTING
        self._ever_connected = False
        # Why we are not connected, and the next retry (issue 15: shown in the status bar, one line
        # that updates with each failed attempt, instead of a timeline entry per attempt).
        self._problem: tuple[str, int, float | None] | None = None
        self._closed_why = ""  # why the session stopped by itself, for the status line once closed
        self._last_seq: int | None = None  # the last room seq we processed
        self._gap_from: int | None = None  # last seq before a gap, to count what we missed
        self._present = RoomPresence(self._me)  # bounded (bounds.py)
        self._member_ids_cache: tuple[Mapping[int, Member], frozenset[bytes]] | None = None
        self._roster_keys_cache: tuple[Mapping[int, Member], dict[int, bytes], dict[bytes, int]] | None = None
        self._online_cache: tuple[Mapping[int, Member], int, tuple[int, ...]] | None = None
        self._joiners_dropped = 0  # pending join requests dropped at the bound (for the log)
        self._offline_since: dict[bytes, float] = {}
        self._latency_ms: float | None = None
        self._send_pause_until = 0.0  # after the relay said rate_limited
        self._traffic_seen = False  # any group traffic in the room (decides create vs join)
        self._buffer_dropped = 0  # core messages not kept while waiting for a welcome
        # Join requests we published since our last welcome: a member may act on any of them (a
        # rejoin's Remove, then the Add), so a welcome for any must open (see _on_removed).
        self._published: list[PendingJoin] = []
        self._newest_request = 0  # not_after of our latest join request: the next must end later

        # Our commits and updates.
        self._updates = UpdateSchedule(settings.update_interval, settings.update_every, now)
        self._old_commits: OrderedDict[bytes, None] = OrderedDict()  # ours, superseded or discarded

        # Messages.
        self._outbox = OutboundQueue(lambda: self._rand(8))
        self._seen_ids: dict[bytes, OrderedDict[bytes, None]] = {}
        self._placeholder_batch: dict[tuple[UnreadableReason, str | None, str], int] | None = None
        self._kept: list[Kept] = []  # chat messages shown since the glue last took them (to store)
        self._restored_seq: int | None = None  # the stored position we resumed from, until we read on

        # What the UI reads.
        self._snapshot: TreeSnapshot | None = None
        self._tree_view_cache: TreeView | None = None  # built on demand from _snapshot (see tree_view)
        self._tree_watched = False  # a UI asked for the view: emit it at every change from then on
        self._tree_changed: frozenset[int] = frozenset()  # nodes the last change gave new keys
        self._epoch_codes: dict[int, str] = {}
        self._warned_keys: set[tuple[str, bytes]] = set()
        self._invite_codes: dict[bytes, str] = {}  # invite key -> code, for invites we made
        self._prompt_times: deque[float] = deque()  # when "asks to join" lines were shown (a minute)
        self._prompts_held = 0  # askers not shown since the last line (rate limit)

        # Beacons (beacons.py): what we and the others sent and received, and the signed traffic
        # last heard from each member.
        self._beacons = BeaconBook(
            settings.beacon_interval,
            settings.confirm_after,
            settings.loss_after,
            settings.silence_after,
            fraction=lambda: int.from_bytes(self._rand(2), "big") / 65536,
        )
        self._beacon_group: Group | None = None  # the group the book's accounts are of

    # --- reading the hold ------------------------------------------------------------------------

    @property
    def _scheme_to_create(self) -> str:
        """The scheme of a group we would create now: the one we last held, else the settings'."""
        return self._held_scheme or self.settings.scheme

    @property
    def _group(self) -> Group | None:
        return self._hold.group if self._hold is not None else None

    @property
    def _members(self) -> dict[int, Member]:
        return self._hold.members if self._hold is not None else _NO_MEMBERS

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def own_label(self) -> str:
        """How our own name is shown (with a suffix when another member's looks like it)."""
        return self._labeler.labels(self._members).get(self.identity.public_key, self._name)

    def _roster_keys(self) -> tuple[dict[int, bytes], dict[bytes, int]]:
        """Each member's identity key by leaf, and its leaf by key: made once per roster (the
        mapping is replaced, never changed in place), not at every input while a duty is open.
        Read only: shared until the roster changes."""
        members = self._members
        cached = self._roster_keys_cache
        if cached is None or cached[0] is not members:
            keys = {leaf: m.identity_key for leaf, m in members.items()}
            cached = self._roster_keys_cache = (members, keys, {k: leaf for leaf, k in keys.items()})
        return cached[1], cached[2]

    def _online_leaves(self) -> tuple[int, ...]:
        """:func:`~.duties.online_leaves` of our roster, made once per roster and presence version
        (both are read at every input while a duty is open, and change far more rarely)."""
        members, present = self._members, self._present
        cached = self._online_cache
        if cached is None or cached[0] is not members or cached[1] != present.version:
            cached = self._online_cache = (members, present.version, tuple(online_leaves(members, present)))
        return cached[2]

    def label(self, member: Member) -> str:
        """How ``member`` is shown: its name, with a fingerprint suffix if it looks like another's."""
        return self._labeler.label(self._members, member)

    def last_heard(self, identity_key: bytes) -> float | None:
        """When the last signed traffic (chat, beacon, commit) of this member reached us (None:
        none since it entered our roster). Only its own signed traffic moves it, never the relay."""
        return self._beacons.last_heard.get(identity_key)

    def _in_group(self) -> bool:
        """We hold a group (a step may have dropped it since the caller looked)."""
        return self._hold is not None

    def _ended(self) -> bool:
        """The session is over (a step may have ended it since the caller looked)."""
        return self._phase is Phase.ENDED

    # --- the store (persistence.py; the glue reads and writes it) --------------------------------

    def take_kept(self) -> list[Kept]:
        """The chat messages shown since the last call, to add to the history."""
        kept, self._kept = self._kept, []
        return kept

    def stored_group(self) -> Group | None:
        """The group whose state stands for us (to store): ``None`` unless we hold one as a member
        that is not leaving (a session closed without leaving keeps it, to resume)."""
        if self._departure is not None or self._phase not in (Phase.MEMBER, Phase.ENDED):
            return None
        return self._group

    @property
    def last_seq(self) -> int | None:
        """The last room seq we processed: the relay position a stored state matches."""
        return self._last_seq

    def unsent(self) -> list[Unsent]:
        """Our typed messages not yet echoed (queued or in flight), in typing order: to store."""
        return [Unsent(e.msg_id, e.text, e.digest, e.epoch) for e in self._outbox.entries()]

    def resume_stored(self, group: Group, last_seq: int, unsent: Sequence[Unsent] = ()) -> None:
        """Start as the member ``group`` (restored from the store) that read the room up to
        ``last_seq``: the first join resumes from there instead of asking to be let in. ``unsent``
        (stored with it) are shown again as sending: the log's echo confirms them, the rest are
        sent again once caught up."""
        if self._phase is not Phase.ARRIVING or self._hold is not None:
            raise UsageError("a stored group state is resumed only before the session starts")
        if group.checking_roster:  # never stored so (persist.py); a caller's group mid-join
            raise UsageError("a group still checking its roster is not resumed: finish its check first")
        hold = Hold(group, group.epoch)
        pending = group.pending_commit
        if pending is not None:  # stored in flight: its echo, or the catch-up's end, settles it
            hold.own_commit = OwnCommit(pending[0], 0.0, pending[1], (), frozenset())
        self._enter(Trigger.RESTORED, hold=hold)
        self._last_seq = self._restored_seq = last_seq
        self._traffic_seen = True
        self._updates.last_update = self._now
        own = group.join_request(group.my_leaf)
        if own is not None:  # a rejoin after this (removed while we were off) must be newer
            self._newest_request = max(self._newest_request, own.not_after)
        self._adopt(Timed(0.0, snapshot(group)))
        self.carry_unsent(unsent, in_flight=True)

    def remember_seen(self, shown: Sequence[tuple[bytes, bytes]]) -> None:
        """(sender identity key, message id) of messages shown before a restart (the kept history,
        oldest first): a copy sent again under the same id is then not shown twice."""
        for sender, msg_id in shown:
            self._seen_ids.setdefault(sender, OrderedDict())[msg_id] = None

    def carry_unsent(self, unsent: Sequence[Unsent], *, in_flight: bool = False) -> None:
        """Show ``unsent`` (stored before a restart) as sending again, under their old message ids
        (receivers drop a copy they already have). ``in_flight``: the copies went out from the
        restored group, whose echo in the log confirms them; else they are sent once we are in."""
        for u in unsent:
            digest = u.digest if in_flight else None
            entry = self._outbox.restore(u.message_id, u.text, digest, u.epoch)
            group = self._group
            now_at = group.epoch if group is not None else 0
            epoch = u.epoch if digest is not None and u.epoch is not None else now_at
            self._emit(
                ChatLine(
                    self.own_label,
                    u.text,
                    epoch,
                    own=True,
                    pending=True,
                    local_id=entry.local_id,
                    trust=TrustState.VERIFIED,
                )
            )

    def _on_gap_with_group(self) -> None:
        """The relay no longer has the log after our position. A live member keeps its group (the
        others' traffic shows whether it fell behind); a state read back from the store, with
        nothing read since, may predate commits that are gone for good: we join afresh."""
        restored, self._restored_seq = self._restored_seq, None
        if restored is not None and restored == self._last_seq:
            self._rejoin(wording_store.rejoin_because(wording_store.STATE_TOO_OLD))
        else:
            self._warn(wording.gap_rejoin())

    # --- effects and queued actions -----------------------------------------------------------

    def take_actions(self) -> list[Queued]:
        """The notices and other actions queued since the last call, in order."""
        actions, self._actions = self._actions, []
        return actions

    def _do(self, effect: Effect) -> Step[object]:
        reply = yield effect
        if not isinstance(reply, Reply):
            raise UsageError("a session machine step must be resumed with a Reply")
        self._now = reply.now
        return reply.value

    def _core(self, call: CoreCall[T]) -> Step[T]:
        """Run a core call (the glue decides where) and return its result."""
        return cast(T, (yield from self._do(CallCore(call))))

    def _send(self, frame: Join | Leave | Publish | SendTo) -> Step[bool]:
        """Send a frame on the current connection; False if there is none or it closed."""
        if self._link is None:
            return False
        return bool((yield from self._do(SendFrame(frame))))

    def _next_req(self) -> int:
        self._req_ids = self._req_ids % 0xFFFFFFFF + 1
        return self._req_ids

    def _publish(
        self, kind: PayloadKind, body: bytes, what: str, to: bytes | None = None
    ) -> Step[int | None]:
        """Publish a room payload (or send it to ``to`` alone); returns the request id if sent."""
        link = self._link
        if link is None or not link.in_room:
            return None
        payload = RoomPayload(kind, body).encode()
        if len(payload) > link.max_payload:
            self._warn(wording.cannot_send_payload(what, len(payload), link.max_payload))
            return None
        req = self._next_req()
        frame = Publish(req, self._room, payload) if to is None else SendTo(req, self._room, to, payload)
        if not (yield from self._send(frame)):
            return None
        acks = link.pending_acks
        acks[req] = (what, self._now)
        if len(acks) > MAX_PENDING_ACKS:  # a relay that never acks: forget the oldest
            del acks[next(iter(acks))]
        return req

    # --- phases: the one place that changes them --------------------------------------------

    def _enter(
        self, trigger: Trigger, data: Creation | JoinAttempt | None = None, hold: Hold | None = None
    ) -> None:
        """Take the transition ``(phase, trigger)`` of :data:`~.phases.TRANSITIONS`: the phase data
        is replaced by ``data``, and the state objects the transition names are replaced whole."""
        transition = TRANSITIONS.get((self._phase, trigger))
        if transition is None:
            raise UsageError(f"no transition from {self._phase.name} on {trigger.name}")
        log.debug("phase %s -> %s (%s)", self._phase.name, transition.target.name, trigger.value)
        self._phase = transition.target
        self._phase_data = data
        if transition.fresh & Fresh.ARRIVAL:
            self._arrival = Arrival()
        if transition.fresh & Fresh.HOLD:
            self._hold = hold
            if hold is not None:
                self._held_scheme = hold.group.scheme
        if transition.fresh & Fresh.DUTIES:
            self._duties = Duties()

    def _rejoin(self, reason: str | None) -> None:
        """Drop our group state and ask to be let in again with a fresh join request."""
        if reason:
            self._warn(reason)
        if self._hold is not None and self._hold.own_commit is not None:
            remember(self._old_commits, self._hold.own_commit.message)
        if self._phase is not Phase.ENDED:
            self._enter(Trigger.REJOIN)
        self._outbox.requeue_in_flight()
        self._set_state(ConnectionState.JOINING)
        self._emit_roster()

    def _finish(self, trigger: Trigger = Trigger.FINISH) -> Step[None]:
        """End the session (``trigger``: FINISH, or REMOVED, which drops the group): say goodbye
        to the room, and stop."""
        if self._phase is Phase.ENDED:
            return
        self._enter(trigger)
        link = self._link
        if link is not None and link.in_room:
            yield from self._send(Leave(self._next_req(), self._room))
        self._actions.append(Stop())

    def _taken_over(self, reason: str) -> Step[None]:
        """The relay says another connection joined the room as us (our identity in a second
        window): it serves that one now, so nothing reaches us. We stop rather than claim to be
        live, without a leave request: the other window is this member too."""
        self._warn(wording.replaced_elsewhere(reason))
        self._closed_why = wording.REPLACED_STATUS
        yield from self._finish()

    # --- our commit in flight ----------------------------------------------------------------

    def _commit_out(self, own: OwnCommit) -> Step[None]:
        """Publish our commit and wait for its echo; if it cannot go out, forget it."""
        assert self._hold is not None
        self._hold.own_commit = own
        own.sent_at = self._now
        if (yield from self._publish(PayloadKind.CORE, own.message, "commit")) is None:
            yield from self._discard_own_commit()

    def _discard_own_commit(self) -> Step[None]:
        hold = self._hold
        if hold is None:
            return
        own, hold.own_commit = hold.own_commit, None
        if own is not None:
            remember(self._old_commits, own.message)
        yield from self._core(DiscardPending(hold.group))

    # --- notices -----------------------------------------------------------------------------

    def _emit(self, notice: Notice) -> None:
        self._actions.append(Notify(notice))

    def _warn(self, text: str) -> None:
        self._emit(TimelineEvent(TimelineKind.WARNING, text))

    def _set_state(self, state: ConnectionState) -> None:
        if state is not self._state:
            self._state = state
            self._emit_status()

    def _emit_status(self) -> None:
        self._emit(self.status)

    def _emit_roster(self) -> None:
        self._emit(RosterChanged(self.roster()))

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

    def _code(self) -> str:
        group = self._group
        return self._epoch_codes.get(group.epoch, "") if group is not None else ""

    def _adopt(self, timed: Timed, *, announce: bool = True) -> None:
        """Take the core's snapshot of the group after a change (roster, tree, epoch code).

        With ``announce`` it also emits the roster and the status; an epoch change does that
        itself, once, after everything else (a roster notice costs O(members) at every member).
        """
        snap, hold = timed.snapshot, self._hold
        if snap is None or hold is None:
            return
        before = self._snapshot
        self._snapshot = snap
        if before is None or snap.members is not before.members or len(hold.members) != len(snap.members):
            hold.members = {m.leaf: m for m in snap.members}
        # else an update-only epoch: the very members the hold's mapping was made of (a snapshot
        # reuses them, core_calls.snapshot), so the mapping stands and what is keyed on it too
        if announce:
            self._emit_roster()
            self._emit_status()
        group = hold.group
        if group.joining:  # a ring joiner has no code for the epoch before it joined
            return
        self._epoch_codes[snap.epoch] = epoch_code(group.epoch_authenticator)
        self._tree_changed = (
            frozenset(range(len(snap.members))) if group.scheme == "ring" else snap.changed_since(before)
        )
        self._tree_view_cache = None
        if self._tree_watched:  # only once a UI asked for the view: most members never look
            self._emit(self.tree_view())

    # --- what the UI reads ------------------------------------------------------------------------

    @property
    def status(self) -> StatusChanged:
        group = self._group
        epoch = group.epoch if group is not None and not group.joining else None
        ring = self._hold.ring if self._hold is not None else None
        return StatusChanged(
            connection=self._state,
            relay=self.settings.relay_url,
            room=self.settings.room,
            scheme=group.scheme if group is not None else self._scheme_to_create,
            member_count=len(self._members),
            epoch=epoch,
            epoch_code=self._epoch_codes.get(epoch) if epoch is not None else None,
            latency_ms=self._latency_ms,
            rekey_waiting_for=ring.waiting_for if ring is not None and epoch is not None else None,
            open_room=group is not None and group.admission.open,
            problem=self._problem[0] if self._problem is not None else "",
            retry_attempt=self._problem[1] if self._problem is not None else 0,
            retry_in=self._problem[2] if self._problem is not None else None,
        )

    def roster(self) -> tuple[RosterEntry, ...]:
        members = self._members
        return self._roster_book.entries(
            members,
            self.identity.public_key,
            self._link is not None,
            self._present,
            self._trust,
            self._labeler.labels(members),
            self.unchecked_keys(),
        )

    def unchecked_keys(self) -> frozenset[bytes]:
        """Identity keys of the members our welcome listed whose join requests are still being
        checked (right after a join): shown unverified, never trusted or recorded, until then."""
        group = self._group
        if group is None or not group.checking_roster:
            return frozenset()
        members = self._members
        return frozenset(members[leaf].identity_key for leaf in group.unchecked_leaves if leaf in members)

    def tree_view(self) -> TreeView:
        """The key tree (or ring) of our epoch; from the first call on, every change also emits one."""
        self._tree_watched = True
        snap, group = self._snapshot, self._group
        if self._tree_view_cache is None:
            if snap is None or group is None or group.joining:
                return TreeView(group.scheme if group else self._scheme_to_create, 0, ())
            labels = self._labeler.labels(self._members)
            self._tree_view_cache = build_tree_view(snap, self._tree_changed, labels)
        return self._tree_view_cache
