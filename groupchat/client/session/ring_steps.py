"""The session machine's ring steps (ring groups): move the core's outbox, follow a running ring,
say why an attempt cannot complete, poll its deadline, and restart it without members gone for good
or who lost their state (docs/session.md, "Ring groups"; the pure rules are in :mod:`.ring_driver`).

:mod:`.membership` calls them on the core's events and :mod:`.machine` on its timer. Each step that
sends is a generator of effects (see :mod:`.actions`).
"""

from __future__ import annotations

from ...core.admission import Admissibility, RemovalCode, RemovalReason
from ...core.errors import GroupChatError
from ...core.events import FailureKind, RekeyFailed, RekeyProgress
from ...core.outbox import Joiner, OutboundKind
from .. import wording_ring
from ..coordinator import plan_commit
from ..room_payload import PayloadKind
from . import ring_driver
from .actions import Step
from .core_calls import CommitChange, DrainOutbox, TickRing, Timed
from .phases import OwnCommit
from .settings import member_id
from .state import MachineState, log

__all__ = ["RingSteps"]


class RingSteps(MachineState):
    """The core's outbox and the ring steps (see the module docstring)."""

    def _send_core_outbox(self, *, builds: bool = True) -> Step[None]:
        """Drain the core's outbox and move each item: to the room, or to one joiner alone
        (``builds``: see :class:`DrainOutbox`)."""
        hold = self._hold
        if hold is None:
            return
        try:
            items = yield from self._core(DrainOutbox(hold.group, builds))
        except GroupChatError as exc:  # a rebuild the core could not make; the planner retries
            log.warning("the core could not prepare what it must send: %s", exc)
            return
        for item in items:
            if isinstance(item.to, Joiner):
                to = member_id(item.to.identity_key)
                yield from self._publish(PayloadKind.WELCOME, item.data, "welcome", to=to)
            elif item.kind is OutboundKind.COMMIT:
                # A commit the protocol itself requires (our first update after joining): ours to
                # track like any other, so its echo, a lost race and its timing are handled alike.
                yield from self._commit_out(OwnCommit(item.data, 0.0, True, (), frozenset()))
            else:
                yield from self._publish(PayloadKind.CORE, item.data, item.kind.value)

    def _on_ring_progress(self, ev: RekeyProgress, timed: Timed) -> Step[None]:
        """A ring rekey moved on: send our round messages, and show whom it still waits for."""
        hold = self._hold
        assert hold is not None
        hold.ring, changed = ring_driver.follow(hold.ring, ev, self._now, timed.ms, self.label, hold.members)
        if ev.retried_by is not None and ev.early:
            # Starting attempts before the deadline stalls a ring like withholding does: name it,
            # and count it as a timeout so the restart and kick rules apply to this ring too.
            hold.ring.timeouts += 1
            self._warn(wording_ring.ring_retried_early(ev.epoch, self.label(ev.retried_by)))
        yield from self._send_core_outbox()
        if changed:
            self._emit_status()

    def _on_ring_failed(self, ev: RekeyFailed) -> None:
        """A signed ring message showed the attempt can never complete: say so, naming its signer."""
        who = self.label(ev.signer) if ev.signer is not None else None
        self._warn(wording_ring.ring_failed(ev.epoch, ev.kind.value, who))
        hold = self._hold
        if hold is not None and hold.ring is not None:
            proven = ev.kind is FailureKind.WRONG_VALUE
            ring_driver.joiner_failed(hold.ring, ev.signer, hold.members, proven)

    def _poll_ring(self, now: float) -> Step[None]:
        """Check the running ring's round deadline (the core's clock); on a timeout say who is
        missing and send our message of the next attempt, which the core has queued."""
        hold = self._hold
        ring = hold.ring if hold is not None else None
        if hold is None or ring is None or not ring_driver.poll_due(ring, now):
            return
        try:
            timed_out = yield from self._core(TickRing(hold.group))
        except GroupChatError as exc:
            log.warning("checking the ring's deadline failed: %s", exc)
            return
        if timed_out is not None:
            ring.timeouts += 1
            names = ", ".join(self.label(m) for m in timed_out.missing)
            grace = self.settings.eviction_grace
            self._warn(wording_ring.ring_timed_out(ring.epoch, names, timed_out.round, grace))
        # Our proposal of the next attempt (none at the last attempt number: a restart goes on).
        yield from self._send_core_outbox()

    def _maybe_restart_ring(self, now: float) -> Step[None]:
        """Remove with a restart commit (docs/protocol.md §8.3) the members the ring waits for who
        asked to join again (they lost their state: at once); and, after a ring timed out, those
        offline past the eviction grace (or whom our user kicked), and joiners that stalled it or
        failed it repeatedly. The same rule as any eviction decides who in line commits it."""
        hold = self._hold
        ring = hold.ring if hold is not None else None
        if hold is None or ring is None:
            return
        group = hold.group
        rejoining = {
            key: d.since
            for key, d in self._duties.adds.items()
            if d.admissibility is Admissibility.REJOINING and d.classified_at == group.epoch
        }
        if not (ring.timeouts or rejoining):
            return
        own = hold.own_commit
        if own is not None and not own.applied:
            return  # a restart of ours is on its way
        if group.joining:
            return  # a joiner of the ring removes nobody: it may be the one whose state is wrong
        members = {**ring.joiners, **hold.members}
        grace = self.settings.eviction_grace
        # A member that signed a newer join request lost its state: it goes at once (the request
        # is the evidence, not a timeout), and comes back by the add path once the ring is done.
        removes = ring_driver.rejoining_removes(ring, hold.members, group.my_leaf, rejoining)
        kicks: set[bytes] = set()
        if ring.timeouts:
            kicks_wanted, present, offline_since = self._duties.kicks, self._present, self._offline_since
            timed_out, kicks = ring_driver.restart_removes(
                ring, hold.members, group.my_leaf, kicks_wanted, present, offline_since, grace, now
            )
            listed = {d.leaf for d in removes}
            removes += [d for d in timed_out if d.leaf not in listed]
        live = {m.leaf for m in group.members()}  # the run's roster: a restart may have gone out
        removes = [d for d in removes if d.leaf in live]
        if not removes:
            return
        plan = plan_commit(
            my_leaf=group.my_leaf,
            members={leaf: m.identity_key for leaf, m in members.items()},
            online_leaves=self._online_leaves(),  # joiners never commit
            adds=[],
            removes=removes,
            now=now,
            step=self.settings.add_timeout,
        )
        leaves = tuple(sorted(d.leaf for d in plan.remove))
        if not leaves:
            return
        reasons = {
            rd.leaf: RemovalReason(RemovalCode.REJOINING)
            if rd.why == "rejoining"
            else RemovalReason(RemovalCode.UNRESPONSIVE, int(grace))
            if rd.why == "evicted"
            else RemovalReason(RemovalCode.UNRESPONSIVE, int(now - ring.started))
            if rd.why == "stalled"
            else RemovalReason(RemovalCode.KICKED)  # kicked, or proven to lie: stays out
            for rd in plan.remove
        }
        try:
            message, timed = yield from self._core(CommitChange(group, (), leaves, False, reasons))
        except GroupChatError as exc:
            self._warn(wording_ring.could_not_restart_ring(exc))
            return
        # Our ring commit (if the ring is ours) has taken effect: its update is kept in the record.
        update = own.update if own is not None else False
        yield from self._commit_out(OwnCommit(message, timed.ms, update, plan.remove, frozenset(kicks)))

