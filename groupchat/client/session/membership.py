"""The session machine's steps inside the group: core messages and events, our commits, the ring.

Everything here runs on a :class:`~.phases.Hold` (the core's ``Group``): reading a core message and
acting on its event (a chat line, an echo, an epoch change, a ring's progress, our removal),
carrying out a rejection (:mod:`.rejections`), planning and publishing our commits
(:mod:`..coordinator`, :mod:`.duties`, :mod:`.updates`, :mod:`.ring_driver`), sending queued
messages. Each step is a generator of effects (see :mod:`.actions`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

from ...core.admission import RemovalCode, RemovalReason
from ...core.errors import GroupChatError
from ...core.events import (
    EpochChanged,
    Event,
    MessageEchoed,
    MessageReceived,
    RekeyFailed,
    RekeyProgress,
    RemovedFromGroup,
)
from ...core.peek import MessageKind, Peek, peek
from .. import wording, wording_ring
from ..app_content import AppContent, ContentKind
from ..coordinator import plan_commit
from ..notices import (
    ChatLine,
    ConnectionState,
    MessageConfirmed,
    TimelineEvent,
    TimelineKind,
    UnreadableReason,
)
from ..room_payload import PayloadKind
from .actions import Step
from .beacon_steps import BeaconSteps
from .behind import note_hint
from .bounds import MAX_BUFFERED, MAX_BUFFERED_BYTES
from .core_calls import (
    CheckRoster,
    CommitChange,
    Encrypt,
    OpenWelcome,
    Receive,
    Timed,
)
from .duties import open_duties
from .entry import Entry
from .eviction import ASK_AHEAD
from .persistence import Kept
from .phases import Hold, JoinAttempt, Link, OwnCommit, Phase, RingRun, Trigger, remember
from .rejections import (
    Outcome,
    Rejection,
    commit_rejection,
    message_rejection,
    ring_rejection,
    welcome_unopened,
)
from .rejoin import AfterRemoval, after_removal, fresh_after
from .ring_steps import RingSteps
from .settings import member_id
from .state import log
from .views import describe_epoch, epoch_kind, lookalikes

__all__ = ["Membership"]

_SEEN_PER_SENDER: Final = 4096  # chat message ids remembered per sender, to show each once


class Membership(Entry, BeaconSteps, RingSteps):
    """The steps that need the group (see the module docstring)."""

    # --- welcome ------------------------------------------------------------------------------

    def _on_welcome(self, welcome: bytes) -> Step[None]:
        """A welcome addressed to us: for our join request (JOINING) or our re-add request (a
        member that fell behind, :attr:`Hold.reentry`). Only one that opens, every signature in it
        checked by the core, replaces the group we hold."""
        hold = self._hold
        attempt = hold.reentry if hold is not None and self._phase is Phase.MEMBER else self._phase_data
        if not isinstance(attempt, JoinAttempt) or (hold is not None and attempt is not hold.reentry):
            return
        if hold is not None and hold.solo and len(hold.members) > 1:
            return  # others joined the group we made meanwhile: we stay with them
        opened, refusals, used = None, [], None
        candidates = [attempt.pending, attempt.previous, *reversed(self._published)]
        for pending in dict.fromkeys(p for p in candidates if p is not None):
            try:
                opened = yield from self._core(OpenWelcome(pending, welcome, self._config))
                used = pending
                break
            except GroupChatError as exc:
                refusals.append(exc)
                log.info("a welcome could not be opened with our join request: %s", exc)
        if opened is None:
            # Tampered on the way, or for a request of ours we no longer hold: a fresh request
            # is answered (a stale one, whose init key may already be in the tree, never is).
            attempt.fresh_due = welcome_unopened(refusals)
            attempt.next_publish = self._now
            return
        group, timed = opened
        # A request of ours made after the one that let us in is still out there: the others may
        # act on it (a re-add of a member all along, to them), and then it is ours being carried
        # out, answered by its welcome, not a removal to answer with yet another request.
        assert used is not None
        self._published = [p for p in self._published if p.request.not_after > used.request.not_after]
        split = hold is not None and hold.split is not None
        all_along = hold is not None and not hold.solo  # re-added: a member all along
        trigger = Trigger.REENTERED if hold is not None else Trigger.WELCOMED
        buffered = self._arrival.buffer
        n = len(group.members())
        if group.joining:
            # A ring Welcome carries the epoch before ours: we are in once the ring creating our
            # first epoch is done, with every member (us included) contributing fresh keys. Nothing
            # was chosen for us, so no first Update is owed.
            hold = Hold(group, group.epoch + 1, ring=RingRun(group.epoch + 1, self._now, timed.ms))
            self._enter(trigger, hold=hold)
            self._updates.last_update = self._now
            self._adopt(timed)
            line = wording_ring.welcome_ring(timed.ms, group.epoch + 1, n)
            self._emit(TimelineEvent(TimelineKind.INFO, line))
        else:
            # Re-added in place of our leaf, we were a member all along: what was sent since we
            # first joined is never "before you joined" (issue 15).
            joined = min(hold.joined_epoch, group.epoch) if hold and all_along else group.epoch
            self._enter(trigger, hold=Hold(group, joined))
            self._updates.last_update = self._now
            # The taint rule: our adder chose our first leaf secret, so the core's outbox carries
            # our first Update (sent below); should it lose a race, the planner retries it from here.
            self._duties.want_update = "join"
            self._adopt(timed)
            self._emit(
                TimelineEvent(
                    TimelineKind.JOINED, wording.joined_tree(group.epoch, n, timed.ms, self._code())
                )
            )
        self._observe_roster()
        link = self._link
        ready = link is not None and link.caught_up and not group.joining
        self._set_state(ConnectionState.READY if ready else ConnectionState.JOINING)
        self._placeholder_batch = {}
        try:
            if self._buffer_dropped:
                self._placeholder(UnreadableReason.BEFORE_JOIN, None, "", count=self._buffer_dropped)
                self._buffer_dropped = 0
            for data in buffered:
                if not self._in_group():
                    break
                claim = _claim(data)
                if claim is not None and claim.epoch is not None and claim.epoch < group.epoch:
                    # Older than anything we can hold keys for: the core would only refuse it by
                    # its epoch, so we spare it the call (a long room log makes many of these).
                    if claim.kind is MessageKind.APPLICATION:
                        self._placeholder(*_unread_before_welcome(all_along, split))
                    continue
                yield from self._on_core(data)
        finally:
            self._flush_placeholders()
        if self._in_group() and group.checking_roster:
            # Read first (above), send once the welcome's roster is verified: n signature checks,
            # in the core's thread. A forged member there is the welcome signer's doing: we drop
            # that group and ask again, naming the signer.
            try:
                ms = yield from self._core(CheckRoster(group))
            except GroupChatError as exc:
                log.warning("the welcome's roster did not verify: %s", exc)
                self._rejoin(welcome_unopened([exc]))
                return
            log.info("verified the join requests of %d members in %.1f ms", n, ms)
            self._observe_roster()
            self._emit_roster()  # every member's trust mark as the store has it, now that all verified
        if self._in_group():
            # Our first update (tree), built on the newest epoch we know; our ring messages (ring).
            yield from self._send_core_outbox()

    # --- core messages --------------------------------------------------------------------------

    def _on_core(self, data: bytes) -> Step[None]:
        hold = self._hold
        if hold is None or self._phase is Phase.CREATING:
            # Not (yet) a member: keep it for when our welcome comes. Commits and messages at
            # our first epoch may arrive before the welcome, which is sent only after the echo.
            # Bounded in count and bytes (bounds.py); the oldest go first, the newest being the
            # likeliest to be at our first epoch. Each dropped one is counted in a placeholder.
            self._keep_for_welcome(data)
            return
        try:
            event, timed = yield from self._core(Receive(hold.group, data, self._snapshot))
        except GroupChatError as exc:
            group = hold.group
            claim = _claim(data)
            kind = claim.kind if claim is not None else None
            later = claim is not None and claim.epoch is not None and claim.epoch > group.epoch
            if later and hold.reentry is not None:
                self._keep_for_welcome(data)  # for the group our re-add request will open
            if kind is MessageKind.COMMIT:
                ring_running, old = hold.ring is not None, data in self._old_commits
                self._carry_out(commit_rejection(exc, group.epoch, old, ring_running, self.label))
            elif kind is MessageKind.ROUND:
                self._carry_out(ring_rejection(exc, self.label))
            else:
                self._carry_out(message_rejection(exc, group.epoch, hold.joined_epoch, self._code()))
            return
        own = hold.own_commit
        if own is not None and isinstance(event, RekeyProgress) and data == own.message:
            own.applied = True  # our ring commit won the epoch; its EpochChanged ends the ring
        if isinstance(event, EpochChanged):
            claim = _claim(data)
            hold.last_commit = data if claim is not None and claim.kind is MessageKind.COMMIT else None
        yield from self._on_event(event, timed)

    def _republish_last_commit(self, link: Link) -> Step[None]:
        """Caught up on a relay that lost its log: publish again the signed commit that made our
        epoch, so that a member who missed it before the loss can follow (it is not behind for
        good, and reads what is sent from now on). The others ignore it as an old commit. Our
        own update waits ``fresh_after`` seconds, to let the others do the same first."""
        hold = self._hold
        if not link.lost_log or hold is None:
            return
        link.lost_log = False
        # Our reconnect update waits: the member who missed a commit may be the first one back,
        # and an update of its own on the epoch it holds would fork it off the others.
        pause = fresh_after(self.settings.add_timeout)
        self._updates.not_before = max(self._updates.not_before, self._now + pause)
        if hold.last_commit is None:
            return
        yield from self._publish(PayloadKind.CORE, hold.last_commit, "the commit of our epoch, again")

    def _keep_for_welcome(self, data: bytes) -> None:
        """Keep a core message for the group a welcome will give us. Bounded in count and bytes
        (bounds.py); the oldest go first, the newest being the likeliest to be at our first
        epoch. Each dropped one is counted in a placeholder."""
        arrival = self._arrival
        arrival.buffer.append(data)
        arrival.buffered_bytes += len(data)
        while len(arrival.buffer) > MAX_BUFFERED or arrival.buffered_bytes > MAX_BUFFERED_BYTES:
            arrival.buffered_bytes -= len(arrival.buffer.pop(0))
            self._buffer_dropped += 1

    def _carry_out(self, r: Rejection) -> None:
        """Do what the rejection table (rejections.py) decided."""
        if r.outcome is Outcome.IGNORE:
            log.debug("%s", r.text)
        elif r.outcome is Outcome.WARN:
            self._warn(r.text)
        elif r.outcome is Outcome.SPLIT:
            self._split_off(r)
        elif r.outcome is Outcome.BEHIND:
            if self._note_behind(r.behind_epoch):
                self._warn(r.text)
            else:
                log.info("%s", r.text)
        else:
            assert r.reason is not None
            if r.behind_epoch is None or self._note_behind(r.behind_epoch):
                self._placeholder(r.reason, r.sender, r.detail)
            else:
                log.info("another message claims epoch %d (not shown; the first one was)", r.behind_epoch)

    def _note_behind(self, epoch: int | None) -> bool:
        """Count a hint that we fell behind (behind.py); True for the first of a run of hints,
        which is shown (the rest are counted, not repeated: the relay can send any number)."""
        hold = self._hold
        if hold is None:
            return True
        first = hold.behind is None
        hold.behind = note_hint(hold.behind, self._now, hold.group.epoch + 1 if epoch is None else epoch)
        return first

    def _on_event(self, event: Event, timed: Timed) -> Step[None]:
        hold = self._hold
        if hold is not None and hold.behind is not None and _readable_from_others(event, hold.group.epoch):
            hold.behind = None  # authenticated traffic at our epoch: whatever was claimed, we are not behind
        if isinstance(event, MessageReceived):
            self._on_message(event)
        elif isinstance(event, MessageEchoed):
            self._on_echo(event)
        elif isinstance(event, EpochChanged):
            yield from self._on_epoch(event, timed)
        elif isinstance(event, RekeyProgress):
            yield from self._on_ring_progress(event, timed)
        elif isinstance(event, RekeyFailed):
            self._on_ring_failed(event)
        else:
            yield from self._on_removed(event)

    def _on_message(self, ev: MessageReceived) -> None:
        sender = ev.sender
        try:
            content = AppContent.decode(ev.plaintext)
        except GroupChatError as exc:
            self._beacon_received(ev, False)
            self._placeholder(UnreadableReason.TAMPERED, self.label(sender), wording.unknown_content(exc))
            return
        self._beacon_received(ev, content.kind is ContentKind.CHAT)
        if content.kind is ContentKind.BEACON:
            self._on_beacon(ev, content.body)
            return
        if content.kind is ContentKind.LEAVE:
            self._duties.leave_requests.setdefault(sender.identity_key, self._now)
            return
        seen = self._seen_ids.setdefault(sender.identity_key, OrderedDict())
        if content.msg_id in seen:
            log.info("a second copy of a message from %s was not shown", sender.display_name)
            return
        seen[content.msg_id] = None
        if len(seen) > _SEEN_PER_SENDER:
            seen.popitem(last=False)
        trust = self._trust.state(sender.identity_key)
        self._emit(ChatLine(self.label(sender), content.text, ev.epoch, trust=trust))
        self._kept.append(
            Kept(content.msg_id, ev.epoch, sender.identity_key, sender.display_name, content.text, False)
        )

    def _on_echo(self, ev: MessageEchoed) -> None:
        entry = self._outbox.echoed(ev.message_id)
        group = self._group
        if entry is None or group is None:
            return
        self._beacons.echoed_chat(ev.epoch, self._now)
        if ev.epoch < group.epoch - 1:
            # Receivers keep one previous epoch's keys only: this copy came too late to be read.
            log.info("message %d raced %d commits; re-encrypting it", entry.local_id, group.epoch - ev.epoch)
            self._outbox.requeue(entry)
            return
        self._emit(MessageConfirmed(entry.local_id))
        me = self.identity.public_key
        self._kept.append(Kept(entry.msg_id, ev.epoch, me, self._name, entry.text, True))

    # --- epochs ---------------------------------------------------------------------------------

    def _on_epoch(self, ev: EpochChanged, timed: Timed) -> Step[None]:
        hold = self._hold
        assert hold is not None
        own = hold.own_commit
        ms = timed.ms
        ring, hold.ring = hold.ring, None
        if ring is not None:
            ms += ring.core_ms  # the whole ring rekey's core time, every round of it
        first_ring_epoch = ring is not None and ev.epoch == hold.joined_epoch and own is None and ev.added
        if own is not None and (own.applied or (ev.own and not ev.superseded_own_commit)):
            # Ours won the epoch (an applied ring commit also when another member's restart, not
            # ours, then confirmed the ring).
            ms += own.build_ms
            hold.own_commit = None
            self._updates.committed(self._now, own.update)
            if own.update:
                self._duties.want_update = None
            for key in own.kicks:
                self._duties.kicks.discard(key)
            self._after_own_admission({i.invite_key for i in ev.invites_created}, set(ev.invites_revoked))
        elif own is not None and ev.superseded_own_commit:
            remember(self._old_commits, own.message)
            hold.own_commit = None
            # Lost the race: rebuild on the new epoch after a random pause (updates.py).
            self._updates.lost(self._now, self._rand)
        if ev.own:
            # The core's outbox after our own commit won: its Welcome, one per joiner. After a lost
            # race we do not drain: the planner commits again after the pause, and that explicit
            # commit, which carries every duty still open, replaces the core's rebuild. Ours won,
            # so nothing is left to rebuild: unless our leaf is still tainted (its first Update
            # owed), the outbox holds only what is built, and is drained on the loop.
            won = hold.group
            builds = won.scheme == "ring" or won.tainted_by(won.my_leaf) is not None
            yield from self._send_core_outbox(builds=builds)
        before = set(self._members)
        self._adopt(timed, announce=False)
        self._beacon_epoch(ev, own is not None and own.update)
        if first_ring_epoch and any(m.identity_key == self.identity.public_key for m in ev.added):
            code = self._code()
            text = wording_ring.joined_ring(ev.epoch, len(self._members), ms, code)
            self._emit(TimelineEvent(TimelineKind.JOINED, text))
            link = self._link
            if link is not None and link.caught_up:
                self._set_state(ConnectionState.READY)
        else:
            group = self._group
            text = describe_epoch(
                self.label,
                ev,
                self.identity.public_key,
                group is not None and group.scheme == "ring",
                len(self._members),
                len(self._tree_changed),
                ms,
            )
            self._emit(TimelineEvent(epoch_kind(ev), text))
        for m in ev.added:
            self._duties.approvals.pop(m.identity_key, None)
            self._duties.approved.discard(m.identity_key)
        for m in ev.removed:
            self._duties.leave_requests.pop(m.identity_key, None)
            self._offline_since.pop(member_id(m.identity_key), None)
        if hold.solo and len(self._members) > 1:
            hold.reentry, hold.solo = None, False  # others joined the group we made: it stands
        self._forget_done_duties()
        yield from self._classify_pending()  # the state requests are judged by has moved on
        if set(self._members) != before or ev.added:
            self._observe_roster()
        self._emit_status()

    def _on_removed(self, ev: RemovedFromGroup) -> Step[None]:
        by = self.label(ev.by)
        link, hold = self._link, self._hold
        code = ev.reason.code if ev.reason is not None else None
        asked = hold is not None and (hold.reentry is not None or bool(self._published))
        what = after_removal(self._departure is not None, link is None or link.caught_up, code, asked)
        if what is AfterRemoval.READD:
            # A request of ours is being carried out: the old leaf goes first, the Add follows.
            assert hold is not None
            reentry = hold.reentry or JoinAttempt(self._published[-1], self._now, first_published=self._now)
            self._enter(Trigger.READDING, reentry)
            self._emit(TimelineEvent(TimelineKind.INFO, wording.removed_for_readd(by)))
            self._set_state(ConnectionState.JOINING)
            self._emit_roster()
            return
        if what is AfterRemoval.REJOIN:
            if hold is not None:
                hold.own_commit = None
            seconds = ev.reason.seconds if ev.reason is not None else 0
            if code is RemovalCode.REJOINING:  # the others say "rejoining": so do we, not "offline"
                text = wording.readded_unasked(by)
            else:
                text = wording.evicted_coming_back(by, seconds)
            self._emit(TimelineEvent(TimelineKind.REMOVED, text))
            self._rejoin(None)
            return
        if what is AfterRemoval.LEFT:
            self._emit(TimelineEvent(TimelineKind.LEFT, wording.left_removed_by(by, ev.epoch)))
        else:
            self._emit(TimelineEvent(TimelineKind.REMOVED, wording.removed_by(by)))
        yield from self._finish(Trigger.REMOVED)

    # --- the ring driver ------------------------------------------------------------------------

    # --- our commits ----------------------------------------------------------------------------

    def _maybe_commit(self, now: float) -> Step[None]:
        """Commit what is ours to commit now: due Adds and Removes (coordinator.py), kicks, an
        update, and what our user asked for (approvals, invites, revocations: ours at once)."""
        hold = self._hold
        assert hold is not None
        group, duties = hold.group, self._duties
        update_due = self._updates.due(now, duties.want_update is not None)
        ours = duties.approved or duties.invites or duties.revokes
        waiting = duties.adds or duties.leave_requests or duties.kicks or self._offline_since
        if not (update_due or ours or waiting):
            return  # the common case, after every input: nothing to commit
        self._forget_done_duties()
        yield from self._classify_pending()  # requests seen before we were in, or at an older epoch
        members, by_key = self._roster_keys()
        grace = self.settings.eviction_grace
        pending = open_duties(
            duties,
            hold.members,
            group.my_leaf,
            self._present,
            self._offline_since,
            grace,
            self._beacons.last_heard,
            by_key,
        )
        if any(d.why == "evicted" and d.since - now <= ASK_AHEAD for d in pending.removes):
            # Before anyone is evicted for silence, ask everyone for signs of life: a member the
            # relay only says is gone answers (signed), and its eviction moves out of reach.
            self._beacons.ask_for_life(now)
        plan = plan_commit(
            my_leaf=group.my_leaf,
            members=members,
            online_leaves=self._online_leaves(),
            adds=pending.adds,
            removes=pending.removes,
            now=now,
            step=self.settings.add_timeout,
        )
        kicks = frozenset(k for k in duties.kicks if k in by_key and by_key[k] != group.my_leaf)
        remove_leaves = sorted({d.leaf for d in plan.remove} | {by_key[k] for k in kicks})
        adds = {d.request.identity_key: d.add for d in plan.add}
        for key in duties.approved:
            approved = duties.approvals.get(key)
            if approved is not None and key not in by_key:
                adds.setdefault(key, approved.request)
        invites, revokes = self._own_admission_changes()
        update = update_due and self._updates.may_commit(now)
        if not (adds or remove_leaves or update or invites or revokes):
            return
        reasons = {rd.leaf: _reason(rd.why, grace) for rd in plan.remove}
        reasons.update({by_key[k]: RemovalReason(RemovalCode.KICKED) for k in kicks})
        try:
            call = CommitChange(
                group, tuple(adds.values()), tuple(remove_leaves), update, reasons, invites, revokes
            )
            message, timed = yield from self._core(call)
        except GroupChatError as exc:
            # A request the core refuses (e.g. a reused init key) must not block the group: drop it.
            self._warn(wording.could_not_commit(exc))
            for key in adds:
                duties.adds.pop(key, None)
                duties.approvals.pop(key, None)
                duties.approved.discard(key)
            duties.kicks -= kicks
            duties.invites.clear()
            duties.revokes.clear()
            return
        yield from self._commit_out(OwnCommit(message, timed.ms, update, plan.remove, kicks))

    def _flush_outbox(self) -> Step[None]:
        hold = self._hold
        assert hold is not None
        group = hold.group
        while (entry := self._outbox.peek()) is not None and hold.own_commit is None:
            if self._updates.hold_messages() or group.holding_messages:
                break  # let the scheduled update go first; or the removed could read it
            data, digest = yield from self._core(
                Encrypt(group, AppContent.chat(entry.msg_id, entry.text).encode())
            )
            # In flight before the frame goes out, so the state stored before it names the copy
            # (a restart then knows its echo); not sent after all, it goes back to the queue.
            self._outbox.mark_sent(entry, digest, group.epoch, 0, self._now)
            req = yield from self._publish(PayloadKind.CORE, data, "message")
            if req is None:
                self._outbox.requeue(entry)
                return
            entry.req_id = req
            self._updates.sent_since += 1

    def _forget_done_duties(self) -> None:
        group = self._group
        if group is None:
            return
        duties = self._duties
        # A read between core calls (no call runs now).
        for key in [k for k, d in duties.adds.items() if group.has_init_key(d.request.init_key)]:
            del duties.adds[key]
        if duties.leave_requests or duties.kicks:  # else nothing to drop: no O(members) pass per epoch
            keys = self._roster_keys()[1]  # by identity key, kept per roster
            for key in [k for k in duties.leave_requests if k not in keys]:
                del duties.leave_requests[key]
            duties.kicks.intersection_update(keys)
        # A revoke whose invite is no longer live (used up, or revoked by another first) is done,
        # and the code of an invite of ours that is gone need not be kept.
        live = {i.invite_key for i in group.admission.invites}
        duties.revokes &= live
        for gone in [k for k in self._invite_codes if k not in live]:
            del self._invite_codes[gone]
        duties.approved &= duties.approvals.keys()  # an approval whose asker gave way is moot

    def _observe_roster(self) -> None:
        """Record every member's key in the trust store (client/trust.py, keyed by identity key):
        warn when a key new to us (or a known key under a new name) looks like another's, and note
        a known key's new name. Never "key changed": another key is another member. Not while our
        welcome's roster is being checked: a name under a key is the welcome signer's claim until
        then (a forged one must never reach the store), so the check's end observes them all."""
        group = self._group
        if group is not None and group.checking_roster:
            return
        members = self._members
        labels = self._labeler.labels(members)
        version = self._trust.version
        observed = self._observed
        if version != self._observed_version:
            observed.clear()  # the store changed since: every sighting is made again
        for m in members.values():
            if m.identity_key == self.identity.public_key or observed.get(m.identity_key) == m.display_name:
                # Ours, or seen under this name by our last pass, and the store has not changed
                # since (no name learned, none dropped): observing it again would change nothing.
                continue
            observed[m.identity_key] = m.display_name
            seen = self._trust.observe(m.display_name, m.identity_key)
            if not (seen.new_key or seen.earlier_names):
                continue  # the common case: a key we know, under a name it used before
            label = labels.get(m.identity_key, m.display_name)
            if seen.earlier_names:
                renamed = wording.member_renamed(label, seen.earlier_names)
                self._emit(TimelineEvent(TimelineKind.INFO, renamed))
            others = lookalikes(m, self._labeler.lookalikes(members, m), self._trust, labels)
            if others:
                self._warn(wording.lookalike_member(label, others))
        self._labeler.learned_roster(members, version)
        self._observed_version = self._trust.version
        self._emit_roster()


def _unread_before_welcome(all_along: bool, split: bool) -> tuple[UnreadableReason, None, str]:
    """Why a message kept for our welcome, older than its epoch, cannot be shown: before we joined,
    or (re-added, a member all along) at an epoch whose keys never reached us."""
    if not all_along:
        return UnreadableReason.BEFORE_JOIN, None, ""
    detail = wording.SENT_WHILE_CUT_OFF if split else wording.SENT_BEFORE_READDED
    return UnreadableReason.MISSED_OFFLINE, None, detail


def _claim(data: bytes) -> Peek | None:
    """What the message's public header claims (the core's reading; unauthenticated), if anything."""
    try:
        return peek(data)
    except GroupChatError:
        return None


def _readable_from_others(event: Event, epoch: int) -> bool:
    """Whether ``event`` is authenticated traffic from another member at ``epoch`` (or moved us
    to it): the evidence that ends a run of hints that we fell behind."""
    if isinstance(event, MessageReceived | RekeyProgress):
        return event.epoch >= epoch
    if isinstance(event, EpochChanged):
        return not event.own
    return False


def _reason(why: str, grace: float) -> RemovalReason:
    """The signed reason of a planned removal (coordinator.RemoveDuty.why)."""
    if why == "left":
        return RemovalReason(RemovalCode.LEFT)
    if why == "rejoining":
        return RemovalReason(RemovalCode.REJOINING)
    return RemovalReason(RemovalCode.OFFLINE, int(grace))
