"""The session machine's beacon steps: keeping the book of :mod:`.beacons` and sending beacons.

:mod:`.membership` calls them when a message, an echo or an epoch change arrives, and
:mod:`.machine` after every input (``_progress``); ``SessionMachine.next_wakeup`` asks the book
when it is due next. Each step that sends is a generator of effects (see :mod:`.actions`).
"""

from __future__ import annotations

from ...core.errors import GroupChatError, InvalidValueError
from ...core.events import EpochChanged, Member, MessageReceived
from .. import wording
from ..app_content import AppContent
from ..notices import UnreadableReason
from ..room_payload import PayloadKind
from .actions import Step
from .beacons import Beacon, is_speaker
from .core_calls import Encrypt
from .phases import Hold
from .settings import member_id
from .state import MachineState

__all__ = ["BeaconSteps"]


class BeaconSteps(MachineState):
    """The beacon steps (see the module docstring)."""

    def _beacon_sync(self, hold: Hold, committer: Member | None = None) -> None:
        """Open the book's account of our epoch when we reach a new one (cheap when we did);
        ``committer``: whose commit took us there (we may be one who confirms it)."""
        group = hold.group
        if group.joining or (self._beacon_group is group and self._beacons.epoch == group.epoch):
            return
        fresh, self._beacon_group = self._beacon_group is not group, group
        book, present, members = self._beacons, self._present, hold.members
        speak = committer is not None and is_speaker(
            group.my_leaf, committer.leaf, members, lambda lf: member_id(members[lf].identity_key) in present
        )
        confirm = committer.identity_key if committer is not None and speak else None
        seq, now = self._last_seq or 0, self._now
        auth, leaf = group.epoch_authenticator, group.my_leaf
        by = None if committer is None else self.label(committer)
        if committer is not None and committer.identity_key == self.identity.public_key:
            by = ""  # our own commit
        by_leaf = None if committer is None else committer.leaf
        n = len(members)
        if book.enter(
            group.epoch, auth, leaf, seq, now, n, confirm=confirm, fresh=fresh, by=by, by_leaf=by_leaf
        ):
            book.watch_roster(members, self.identity.public_key, now)

    def _beacon_received(self, ev: MessageReceived, chat: bool) -> None:
        hold = self._hold
        if hold is not None:
            if self._beacon_group is not hold.group or self._beacons.epoch != hold.group.epoch:
                self._beacon_sync(hold)
            self._beacons.received(ev.sender, ev.epoch, ev.generation, chat, self._now)

    def _beacon_epoch(self, ev: EpochChanged, update: bool) -> None:
        hold = self._hold
        if hold is None:
            return
        self._beacon_sync(hold, ev.committer)
        if ev.own:
            self._beacons.own_commit(ev.epoch, update, self._now)
        else:
            self._beacons.commit_from(ev.committer, ev.epoch, self._now)

    def _on_beacon(self, ev: MessageReceived, body: bytes) -> None:
        try:
            beacon = Beacon.decode(body)
        except GroupChatError as exc:
            self._placeholder(UnreadableReason.TAMPERED, ev.sender.display_name, wording.bad_beacon(exc))
            return
        if beacon.epoch != ev.epoch:
            wrong = InvalidValueError(f"it names epoch {beacon.epoch} but was sent at epoch {ev.epoch}")
            self._placeholder(UnreadableReason.TAMPERED, ev.sender.display_name, wording.bad_beacon(wrong))
            return
        for text in self._beacons.read_beacon(ev.sender, beacon, self._now):
            self._warn(text)

    def _beacon_duty(self) -> Step[None]:
        """Report what the beacons' bounds say now; send our beacon when it is due (the machine
        asks only when the book says something is, see ``BeaconBook.due``)."""
        hold, book, now = self._hold, self._beacons, self._now
        if hold is None or hold.group.joining:
            return
        self._beacon_sync(hold)
        members = hold.members
        if book.next_check is not None and now >= book.next_check:
            by_key = {m.identity_key: m.display_name for m in members.values()}
            present = self._present
            for text in book.poll(now, by_key.get, lambda key: member_id(key) in present):
                self._warn(text)
        if hold.own_commit is not None or not book.beacon_due(now) or len(members) < 2:
            return
        if hold.group.holding_messages:
            return  # a ring that removes someone is agreed: its epoch's keys are not ours alone
        to = book.addressee
        beacon = book.beacon(self._last_seq or 0, now)
        if beacon is not None:
            data, _ = yield from self._core(Encrypt(hold.group, AppContent.beacon(beacon.encode()).encode()))
            # One that only confirms a commit goes to its committer alone (one decryption, not N).
            addressed = member_id(to) if to is not None else None
            if (yield from self._publish(PayloadKind.CORE, data, "beacon", to=addressed)) is None:
                book.retry(self._now)

    def _check_echoes(self, hold: Hold, now: float) -> Step[None]:
        """What the relay took and never delivered back to us (it acknowledges what it likes):
        our commit, or chat messages, whose echo is ``confirm_after`` seconds overdue. We say so
        and send again (a commit: planned anew; a message: re-encrypted, shown once anyway)."""
        after = self.settings.confirm_after
        own = hold.own_commit
        if own is not None and not own.applied and now >= own.sent_at + after:
            self._warn(wording.commit_not_echoed(own.update, after))
            self._send_pause_until = now + 0.25
            yield from self._discard_own_commit()
        overdue = self._outbox.overdue(now - after)
        if overdue:
            self._warn(wording.messages_not_echoed(len(overdue), after))
            for entry in overdue:
                self._outbox.requeue(entry)

    def _echo_deadlines(self, hold: Hold) -> list[float]:
        """When :meth:`_check_echoes` next has something to look at."""
        after = self.settings.confirm_after
        times = []
        own = hold.own_commit
        if own is not None and not own.applied:
            times.append(own.sent_at + after)
        oldest = self._outbox.oldest_sent()
        if oldest is not None:
            times.append(oldest + after)
        return times
