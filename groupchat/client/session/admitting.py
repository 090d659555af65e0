"""Who may come in: join requests judged by the agreed group state, approvals, invites.

Every member decides the same way because it asks the core (``Group.classify_request``), which
reads only state all members agree on (the invites and the returning list in the GroupContext,
the roster's join requests): an invited joiner, a member evicted for being offline coming back, a
member who lost its state (a strictly newer request), or anyone in an open room is let in by the
member in line (coordinator.py); anyone else waits for one member's ``/approve``, which that
member commits itself. A request is checked (its signature, then its invite proof) before it can
plan anything; the relay, which sees every request, can make no request admissible (it never
learns an invite's secret) and cannot remove a member with one (identity keys are public, so a
request naming one proves nothing until its signature checks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from ...core.admission import Admissibility, NewInvite
from ...core.errors import GroupChatError, UsageError
from ...core.identity import JoinRequest
from ...core.invite import InviteSecret, prove
from .. import wording
from ..coordinator import AddDuty
from ..names import NoSuchMember, resolve
from ..notices import TimelineEvent, TimelineKind
from ..room_payload import JoinAsk
from .actions import Step
from .bounds import MAX_PENDING_JOINERS
from .core_calls import Classify
from .phases import JoinAttempt, Phase, WantedInvite
from .state import MachineState, log

__all__ = ["MAX_APPROVALS", "MAX_INVITE_USES", "PROMPTS_PER_MINUTE", "Admitting", "InviteView"]

MAX_APPROVALS: Final = 32  # requests waiting for a member's approval; the oldest goes first

MAX_INVITE_USES: Final = 1000
PROMPTS_PER_MINUTE: Final = 5  # "asks to join" lines shown a minute at most (the rest are counted)

_DROP: Final = frozenset({Admissibility.STALE, Admissibility.ALREADY_IN})


@dataclass(frozen=True, slots=True)
class InviteView:
    """One live invite as ``/invites`` shows it (``code``: only for the invites we made)."""

    number: int
    invite_key: bytes = field(repr=False)
    label: str
    uses_left: int
    not_after: int
    inviter: str
    code: str | None = field(default=None, repr=False)


class Admitting(MachineState):
    """The admission steps of the session machine (see the module docstring)."""

    # --- a joiner's side -----------------------------------------------------------------------

    def _join_ask(self, attempt: JoinAttempt) -> bytes:
        """Our JOIN_REQUEST body: the request and, if we hold an invite, its proof."""
        request = attempt.pending.request
        code = self.settings.invite
        if code is None:
            return JoinAsk(request.encoded).encode()
        secret = InviteSecret.from_code(code)
        proof = prove(secret, self._group_id, request, self._suite)
        return JoinAsk(request.encoded, secret.public_key, proof).encode()

    # --- a member's side -------------------------------------------------------------------------

    def _judging(self) -> bool:
        """Whether we judge join requests now (as _classify_pending does): as a member."""
        hold = self._hold
        return hold is not None and self._phase is Phase.MEMBER and not hold.group.joining

    def _on_join_request(self, body: bytes) -> Step[None]:
        try:
            ask = JoinAsk.decode(body)
            request = JoinRequest.decode(ask.request)
            if request.group_id != self._group_id or request.identity_key == self.identity.public_key:
                return
            adds = self._duties.adds
            previous = adds.get(request.identity_key)
            if previous is not None and previous.request == request:
                return  # published again: nothing new
            # Checked before it can plan anything (a rejoin's Remove above all): identity keys are
            # public, so an unchecked request would let the relay remove any member. Classify
            # (below, at once for a member) checks the signature before it judges; only a request
            # that would replace one we keep is checked first, so a forged one cannot push a good
            # one out. Before we are a member nothing is planned, and once we are, Classify checks
            # each request still open (those already in are dropped unchecked): a joiner reading
            # the room's log does not check every request ever made in it.
            if previous is not None and self._judging():
                request.verify(self._suite)
        except GroupChatError as exc:
            log.warning("ignored a join request that is not validly signed: %s", exc)
            return
        if previous is None and len(adds) >= MAX_PENDING_JOINERS:
            del adds[next(iter(adds))]  # the oldest pending request gives way (the relay may flood)
            self._joiners_dropped += 1
            n = self._joiners_dropped
            if n & (n - 1) == 0:
                log.warning(
                    "more than %d pending join requests; %d oldest dropped so far", MAX_PENDING_JOINERS, n
                )
        adds[request.identity_key] = AddDuty(request, self._now, ask.invite_key, ask.proof)
        yield from self._classify_pending()

    def _classify_pending(self) -> Step[None]:
        """Judge every pending request not yet judged at our epoch (once per request and epoch).

        While a ring runs only a REJOINING one is acted on (its member lost its state: the ring
        restart drops the old leaf, ring_steps.py); the others are kept and judged again by the
        state of the epoch the ring makes (a member a restart removed is let in by it)."""
        hold = self._hold
        if hold is None or self._phase is not Phase.MEMBER or hold.group.joining:
            return  # not a member yet: judged once we are (the state to judge by is the group's)
        group, duties, ring_runs = hold.group, self._duties, hold.ring is not None
        for key, duty in list(duties.adds.items()):
            if duty.classified_at == group.epoch:
                continue
            try:
                c = yield from self._core(
                    Classify(group, duty.request, duty.invite_key, duty.proof, self._config.wall_clock)
                )
            except GroupChatError as exc:
                log.info("join request of %s refused: %s", duty.request.display_name, exc)
                del duties.adds[key]
                continue
            how = c.admissibility
            if ring_runs and how is not Admissibility.REJOINING:
                duties.adds[key] = AddDuty(
                    duty.request, duty.since, duty.invite_key, duty.proof, None, group.epoch
                )
            elif how in _DROP:
                del duties.adds[key]
            elif how is Admissibility.NEEDS_APPROVAL:
                del duties.adds[key]
                self._ask_for_approval(duty, c.invite_problem)
            else:
                duties.adds[key] = AddDuty(
                    duty.request, duty.since, duty.invite_key, duty.proof, how, group.epoch
                )

    def _ask_for_approval(self, duty: AddDuty, problem: str) -> None:
        approvals = self._duties.approvals
        key = duty.request.identity_key
        if key in approvals:
            approvals[key] = duty
            return
        if len(approvals) >= MAX_APPROVALS:
            del approvals[next(iter(approvals))]
        approvals[key] = duty
        # The relay can make up any number of signed askers: at most PROMPTS_PER_MINUTE lines a
        # minute; the rest are counted into the next line that is shown.
        shown = self._prompt_times
        while shown and shown[0] <= self._now - 60.0:
            shown.popleft()
        if len(shown) >= PROMPTS_PER_MINUTE:
            self._prompts_held += 1
            return
        shown.append(self._now)
        held, self._prompts_held = self._prompts_held, 0
        fp = duty.request.fingerprint
        text = wording.asks_to_join(duty.request.display_name, fp, problem)
        if held:
            text += wording.more_asking(held)
        self._emit(TimelineEvent(TimelineKind.INFO, text))

    def pending_approvals(self) -> tuple[JoinRequest, ...]:
        """The requests waiting for a member's ``/approve``, oldest first."""
        return tuple(d.request for d in self._duties.approvals.values())

    def approval_for(self, query: str) -> JoinRequest:
        """The waiting request that ``query`` names (a name, a label or a fingerprint prefix, as
        for members: client/names.py)."""
        try:
            return resolve(query, (d.request for d in self._duties.approvals.values()))
        except NoSuchMember:
            raise UsageError(wording.no_one_asking(query)) from None

    def _approve(self, identity_key: bytes) -> None:
        duty = self._duties.approvals.get(identity_key)
        if duty is None:
            self._warn(wording.no_one_asking(identity_key.hex()[:8]))
            return
        self._duties.approved.add(identity_key)

    # --- invites -----------------------------------------------------------------------------------

    def live_invites(self) -> tuple[InviteView, ...]:
        """The group's live invites (agreed state), numbered for ``/revoke``; our own show their code."""
        group = self._group
        if group is None or group.joining:
            return ()
        names = {m.identity_key: m.display_name for m in self._members.values()}
        return tuple(
            InviteView(
                n,
                i.invite_key,
                i.label,
                i.uses_left,
                i.not_after,
                names.get(i.inviter, "a former member"),
                self._invite_codes.get(i.invite_key),
            )
            for n, i in enumerate(group.admission.invites, start=1)
        )

    def invite_named(self, query: str) -> bytes:
        """The invite key ``query`` names: its number in :meth:`live_invites`, or its label."""
        views = self.live_invites()
        q = query.strip()
        found = [v for v in views if str(v.number) == q or (v.label and v.label == q)]
        if len(found) != 1:
            raise UsageError(wording.no_such_invite(query, len(views)))
        return found[0].invite_key

    def _want_invite(self, uses: int, lifetime: float, label: str) -> None:
        wall = self._config.wall_clock()
        not_after = int(wall + lifetime) if lifetime > 0 else 0
        secret = InviteSecret.generate(self._rand)
        self._duties.invites.append(WantedInvite(secret, uses, not_after, label))

    def _own_admission_changes(self) -> tuple[tuple[NewInvite, ...], tuple[bytes, ...]]:
        """The invites and revocations our user asked for, for our next commit."""
        group = self._group
        live = {i.invite_key for i in group.admission.invites} if group is not None else set()
        invites = tuple(
            NewInvite(w.secret.public_key, w.uses, w.not_after, w.label) for w in self._duties.invites
        )
        return invites, tuple(k for k in self._duties.revokes if k in live)

    def _after_own_admission(self, created: set[bytes], revoked: set[bytes]) -> None:
        """Our commit is in: show each new invite's code (once), forget what is done."""
        duties = self._duties
        for w in [w for w in duties.invites if w.secret.public_key in created]:
            duties.invites.remove(w)
            self._invite_codes[w.secret.public_key] = w.secret.code
            self._emit(
                TimelineEvent(
                    TimelineKind.INFO,
                    wording.invite_ready(
                        w.secret.code, self.settings.relay_url, self.settings.room, w.uses, w.not_after
                    ),
                )
            )
        duties.revokes -= revoked
