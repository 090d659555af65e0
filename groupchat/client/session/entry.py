"""Coming in and coming back: asking to join (and again, freshly), a lost creation race that no
welcome followed, a member that fell behind asking to be re-added while it keeps its group.

The rules are :mod:`.rejoin` and :mod:`.behind` (pure); these are the machine's steps that carry
them out. Every request we publish is signed by us; nothing here acts on a relay claim alone.
"""

from __future__ import annotations

from ...core.identity import PendingJoin
from .. import wording
from ..notices import ConnectionState, TimelineEvent, TimelineKind
from ..room_payload import PayloadKind
from .actions import Step
from .admitting import Admitting
from .behind import Split, probe_due, should_reenter
from .core_calls import MakeJoinRequest
from .phases import Hold, JoinAttempt, Trigger
from .rejections import Rejection
from .rejoin import fresh_after, fresh_request_due, join_republish_delay
from .state import log

__all__ = ["Entry"]


class Entry(Admitting):
    """The steps of coming in and coming back (see the module docstring)."""

    def _new_join_request(self) -> Step[PendingJoin]:
        """A fresh signed request, ending after every one we made before: the members take a
        known identity's request only if it is strictly newer (a same-second one is a replay)."""
        pending = yield from self._core(
            MakeJoinRequest(self.identity, self._group_id, self._name, self._config, self._newest_request)
        )
        self._newest_request = max(self._newest_request, pending.request.not_after)
        return pending

    def _ask_to_join(self, since: float) -> Step[None]:
        pending = yield from self._new_join_request()
        self._enter(Trigger.ASK_TO_JOIN, JoinAttempt(pending, since))
        self._set_state(ConnectionState.JOINING)
        yield from self._publish_join_request()

    def _publish_join_request(self, attempt: JoinAttempt | None = None) -> Step[None]:
        """Publish our join request (JOINING's, or a member's re-add request); first replace it
        with a fresh one when rejoin.py says the old one will not get us in."""
        if attempt is None:
            assert isinstance(self._phase_data, JoinAttempt)
            attempt = self._phase_data
        step = self.settings.add_timeout
        why = attempt.fresh_due or fresh_request_due(attempt.first_published, self._now, step)
        if why is not None:
            pending = yield from self._new_join_request()
            attempt.previous, attempt.pending, attempt.fresh_due = attempt.pending, pending, None
            attempt.first_published = None
            self._emit(TimelineEvent(TimelineKind.INFO, wording.fresh_join_request(why)))
        if attempt.first_published is None:
            attempt.first_published = self._now
        if (
            yield from self._publish(PayloadKind.JOIN_REQUEST, self._join_ask(attempt), "join request")
        ) is None:
            return
        if attempt.pending not in self._published:
            self._published = [*self._published[-2:], attempt.pending]
        # Publish again with backoff until welcomed: the member in line may have been offline.
        delay = join_republish_delay(self.settings.add_timeout, attempt.attempts)
        attempt.attempts += 1
        attempt.next_publish = self._now + delay

    # --- coming back: a lost creation race, falling behind ------------------------------------

    def _fallback_due(self, now: float) -> bool:
        fallback = self._arrival.fallback
        return fallback is not None and now >= self._arrival.fallback_since + self.settings.creation_fallback

    def _resume_own_group(self) -> None:
        """No welcome came after a creation race we were told we lost: the group we made stands."""
        fallback = self._arrival.fallback
        assert fallback is not None
        attempt = self._phase_data
        self._enter(Trigger.RESUME_OWN, hold=fallback)
        if isinstance(attempt, JoinAttempt):
            # Should the group said to be first exist after all, its welcome still moves us there
            # while no one has joined ours.
            fallback.reentry, fallback.solo = attempt, True
        self._warn(wording.creation_fallback(self.settings.creation_fallback))
        self._set_state(ConnectionState.READY)
        self._emit_roster()

    def _maybe_reenter(self, hold: Hold, now: float) -> Step[None]:
        """Ask to be re-added (keeping our group) once behind.py says the hints warrant it, and
        publish that request again with backoff until a welcome for it comes. Cut off by a commit
        we could not follow (``hold.split``), we ask at once, and wait ``fresh_after`` at most."""
        split = hold.split
        if split is not None:
            wait = fresh_after(self.settings.add_timeout)
            if now >= split.since + wait:
                hold.split = None  # nobody took the change: the group we hold stands
                self._warn(wording.cut_off_over(split.by, wait))
                self._set_state(ConnectionState.READY)
            elif hold.reentry is None:
                pending = yield from self._new_join_request()
                hold.reentry = JoinAttempt(pending, now)
        elif probe_due(hold.behind, self.settings.behind_after):
            assert hold.behind is not None
            hold.behind.probed_at = now
            self._beacons.ask_for_life(now)  # an idle room answers, readably, and ends the run
        if hold.split is None and should_reenter(hold.behind, now):
            assert hold.behind is not None
            hold.behind.asked = True
            self._warn(wording.behind_reentering(hold.behind.epoch, hold.behind.last - hold.behind.first))
            if hold.reentry is None:
                pending = yield from self._new_join_request()
                hold.reentry = JoinAttempt(pending, now)
        if hold.reentry is not None and now >= hold.reentry.next_publish:
            yield from self._publish_join_request(hold.reentry)

    def _split_off(self, r: Rejection) -> None:
        """A signed commit at our epoch we could not follow (behind.py, "cut off"): say whose,
        tell the others with a beacon at our epoch soon, and let ``_maybe_reenter`` ask to be
        re-added; until a welcome comes we commit nothing and hold our chat."""
        hold = self._hold
        if hold is None or hold.split is not None:
            log.info("%s", r.text)
            return
        self._warn(r.text)
        assert r.signer is not None
        hold.split = Split(hold.group.epoch, r.sender or "", r.signer, self._now)
        hold.behind = None  # not a hint: signed; hints no longer decide anything until we are back
        self._beacons.cut_off(r.signer, self._now)
        self._set_state(ConnectionState.JOINING)
