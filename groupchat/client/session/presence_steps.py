"""The session machine's presence steps: what the relay says of who is here (a claim: it may
only delay or prompt a check, never remove anyone; docs/session.md, "The rule"), kept bounded and
cheap per input however many ids the relay announces (:class:`~.bounds.RoomPresence`).
"""

from __future__ import annotations

from ...relay_protocol import Presence, PresenceEvent
from .bounds import MAX_PRESENT
from .settings import member_id
from .state import MachineState, log

__all__ = ["PresenceSteps"]


class PresenceSteps(MachineState):
    """Presence and the live senders it stands for (see the module docstring)."""

    def _on_presence(self, p: Presence) -> None:
        # O(1) in the number of ids the relay announced: a bounded set, member ids cached per roster.
        member = p.member in self._member_ids()
        if p.event is PresenceEvent.JOINED:
            if not self._present.add(p.member, member=member):
                self._log_ignored_presence()
            self._offline_since.pop(p.member, None)
        elif p.member != self._me:  # we are here, whatever the relay says of us
            self._present.discard(p.member)
            if member:  # only a member's absence can matter (eviction); others are not remembered
                self._offline_since.setdefault(p.member, self._now)
        if member:
            self._emit_roster()  # a group member came or went (a joiner is not in the roster yet)

    def _member_ids(self) -> frozenset[bytes]:
        """The relay ids of the group's members, computed once per roster (``_members`` is replaced,
        never changed in place, when the roster changes)."""
        members = self._members
        cached = self._member_ids_cache
        if cached is None or cached[0] is not members:
            cached = self._member_ids_cache = (
                members,
                frozenset(member_id(m.identity_key) for m in members.values()),
            )
        return cached[1]

    def _log_ignored_presence(self) -> None:
        n = self._present.ignored
        if n and n & (n - 1) == 0:  # 1, 2, 4, 8...: a flood costs a few log lines
            log.warning("the relay announced more than %d present ids; %d ignored so far", MAX_PRESENT, n)

    def _note_live_sender(self, mid: bytes) -> None:
        """A join request sent now (past the backlog) says, as the relay's claim, that its sender
        is here, as a Presence would: one LEFT said before must not keep a joiner out for good."""
        link = self._link
        if link is not None and link.caught_up and mid not in self._present:
            self._present.add(mid, member=mid in self._member_ids())
