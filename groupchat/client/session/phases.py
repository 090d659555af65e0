"""The session's phases, the transitions between them, and the state each phase owns.

Theory of operation (like h11's ``_state.py``): everything that decides *where* a session is lives
here. A session is in exactly one :class:`Phase`. It moves only through :data:`TRANSITIONS`, by
``Machine._enter`` (the one place that does), and each transition says which state objects it
replaces whole (:class:`Fresh`), so no path resets a hand-picked subset of fields:

* the **phase data** (:class:`Creation` in CREATING, :class:`JoinAttempt` in JOINING, nothing
  otherwise) is replaced at every transition;
* the **hold** (:class:`Hold`: the core's ``Group`` and what hangs on it: roster, our commit in
  flight, a ring being agreed) exists in CREATING and MEMBER;
* the **arrival** (:class:`Arrival`: core messages kept until our welcome) lives from the first
  arrival until we are a member, across a lost creation race;
* the **duties** (:class:`Duties`: pending Adds, leave requests, kicks, an update we owe) survive
  everything but a rejoin: requests seen while we were arriving are ours to commit once we are in.

Two things are orthogonal to the phase: the connection (:class:`Link`, replaced at each connect)
and a departure in progress (:class:`Departure`, from ``/leave`` until the session ends).

Transitions (phase, trigger) -> phase [fresh]::

    ARRIVING  --create-->        CREATING   [hold]
    JOINING   --create-->        CREATING   [hold]      (nobody answered; our turn to create)
    ARRIVING  --ask_to_join-->   JOINING
    CREATING  --marker_echoed--> MEMBER     [arrival]   (our marker came first: the group stands)
    CREATING  --creation_lost--> ARRIVING   [hold]      (another marker came first: join theirs)
    JOINING   --welcomed-->      MEMBER     [arrival, hold]
    JOINING   --resume_own-->    MEMBER     [arrival, hold]  (lost creation race, no welcome came)
    MEMBER    --reentered-->     MEMBER     [arrival, hold]  (a welcome for our re-add request)
    MEMBER    --readding-->      JOINING    [hold]      (removed while our re-add request is out)
    any live  --rejoin-->        ARRIVING   [arrival, hold, duties]
    MEMBER    --removed-->       ENDED      [hold]
    any       --finish-->        ENDED
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from ...core.events import Member
from ...core.group import Group
from ...core.identity import PendingJoin
from ...core.invite import InviteSecret
from ..coordinator import AddDuty, RemoveDuty
from .behind import Behind, Split

__all__ = [
    "TRANSITIONS",
    "Arrival",
    "Creation",
    "Departure",
    "Duties",
    "Fresh",
    "Hold",
    "JoinAttempt",
    "Link",
    "OwnCommit",
    "Phase",
    "RingRun",
    "Transition",
    "Trigger",
    "WantedInvite",
]


class Phase(enum.Enum):
    """Where the session is on its way into, through and out of the group."""

    ARRIVING = "arriving"  # no group: reading the room's log to decide whether to create or join
    CREATING = "creating"  # we made a group; the relay's order of creation markers decides
    JOINING = "joining"  # our join request is out; waiting for a welcome
    MEMBER = "member"  # we hold the group (a ring joiner: its first ring may still be running)
    ENDED = "ended"  # left, removed or closed: run() ends


class Trigger(enum.Enum):
    CREATE = "create"
    ASK_TO_JOIN = "ask_to_join"
    MARKER_ECHOED = "marker_echoed"
    CREATION_LOST = "creation_lost"
    WELCOMED = "welcomed"
    REJOIN = "rejoin"
    RESUME_OWN = "resume_own"
    RESTORED = "restored"  # our stored group state, read back at start (persistence.py)
    REENTERED = "reentered"
    READDING = "readding"
    REMOVED = "removed"
    FINISH = "finish"


class Fresh(enum.Flag):
    """The state objects a transition replaces whole (the phase data always is)."""

    NONE = 0
    ARRIVAL = enum.auto()
    HOLD = enum.auto()
    DUTIES = enum.auto()


@dataclass(frozen=True, slots=True)
class Transition:
    target: Phase
    fresh: Fresh = Fresh.NONE


_LIVE: Final = (Phase.ARRIVING, Phase.CREATING, Phase.JOINING, Phase.MEMBER)

TRANSITIONS: Final[dict[tuple[Phase, Trigger], Transition]] = {
    (Phase.ARRIVING, Trigger.CREATE): Transition(Phase.CREATING, Fresh.HOLD),
    (Phase.JOINING, Trigger.CREATE): Transition(Phase.CREATING, Fresh.HOLD),
    (Phase.ARRIVING, Trigger.ASK_TO_JOIN): Transition(Phase.JOINING),
    (Phase.CREATING, Trigger.MARKER_ECHOED): Transition(Phase.MEMBER, Fresh.ARRIVAL),
    (Phase.CREATING, Trigger.CREATION_LOST): Transition(Phase.ARRIVING, Fresh.HOLD),
    (Phase.JOINING, Trigger.WELCOMED): Transition(Phase.MEMBER, Fresh.ARRIVAL | Fresh.HOLD),
    (Phase.JOINING, Trigger.RESUME_OWN): Transition(Phase.MEMBER, Fresh.ARRIVAL | Fresh.HOLD),
    (Phase.ARRIVING, Trigger.RESTORED): Transition(Phase.MEMBER, Fresh.ARRIVAL | Fresh.HOLD),
    (Phase.MEMBER, Trigger.REENTERED): Transition(Phase.MEMBER, Fresh.ARRIVAL | Fresh.HOLD),
    (Phase.MEMBER, Trigger.READDING): Transition(Phase.JOINING, Fresh.HOLD),
    **{
        (p, Trigger.REJOIN): Transition(Phase.ARRIVING, Fresh.ARRIVAL | Fresh.HOLD | Fresh.DUTIES)
        for p in _LIVE
    },
    (Phase.MEMBER, Trigger.REMOVED): Transition(Phase.ENDED, Fresh.HOLD),
    **{(p, Trigger.FINISH): Transition(Phase.ENDED) for p in (*_LIVE, Phase.ENDED)},
}


# --- phase data -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Creation:
    """CREATING: our creation marker, until its echo says whether our group stands."""

    nonce: bytes
    at: float = 0.0  # when we published it
    keep_asking: JoinAttempt | None = None  # a stranded newcomer's request, still published (solo)
    reformed: str | None = None  # made in place of a group we held: that group's scheme


@dataclass(slots=True)
class JoinAttempt:
    """JOINING (and a member's re-add request, :attr:`Hold.reentry`): our signed join request,
    published again with backoff until a welcome comes."""

    pending: PendingJoin
    since: float  # when we started waiting (the creators' turn rule counts from here)
    next_publish: float = 0.0
    attempts: int = 0
    previous: PendingJoin | None = None  # the request this one replaced: its welcome may be late
    fresh_due: str | None = None  # why the next publish makes a fresh request (see rejoin.py)
    first_published: float | None = None  # when the current request first went out


# --- state that spans phases -------------------------------------------------------------------


@dataclass(slots=True)
class Arrival:
    """Until we are a member: core messages seen meanwhile, processed right after the welcome
    (commits and messages at our first epoch can reach us before the welcome does)."""

    buffer: list[bytes] = field(default_factory=list)
    buffered_bytes: int = 0  # the sum of the buffer's lengths (bounded: bounds.py)
    fallback: Hold | None = None  # the group we created before losing the creation race
    fallback_since: float = 0.0


@dataclass(slots=True)
class OwnCommit:
    """Our commit waiting for the relay's echo, and what it was for."""

    message: bytes
    build_ms: float
    update: bool
    removes: tuple[RemoveDuty, ...]
    kicks: frozenset[bytes]
    applied: bool = False  # ring: its echo won the epoch; the ring it started is still running
    sent_at: float = 0.0  # when it went out: its echo is expected soon after


@dataclass(slots=True)
class RingRun:
    """A ring rekey under way (ring groups): which epoch it creates and what it has cost so far."""

    epoch: int
    started: float
    core_ms: float = 0.0
    waiting_for: tuple[str, ...] = ()
    waiting_leaves: tuple[int, ...] = ()
    next_poll: float = 0.0
    timeouts: int = 0
    # Joiners of the ring's commit (not in the old roster): whom the ring waited for, and how many
    # attempts failed on a signed message of theirs (a joiner given a bad Welcome fails them all).
    joiners: dict[int, Member] = field(default_factory=dict)
    failed_by: dict[int, int] = field(default_factory=dict)
    liars: set[int] = field(default_factory=set)  # proven by their own signed reveal (WRONG_VALUE)


@dataclass(slots=True)
class Hold:
    """CREATING and MEMBER: the core's group and what hangs on it."""

    group: Group
    joined_epoch: int
    members: dict[int, Member] = field(default_factory=dict)
    own_commit: OwnCommit | None = None
    ring: RingRun | None = None
    behind: Behind | None = None  # unverifiable hints that we fell behind (behind.py)
    split: Split | None = None  # a signed commit we could not follow: cut off (behind.py)
    reentry: JoinAttempt | None = None  # our request to be re-added, while we keep this group
    solo: bool = False  # reentry is a stranded newcomer's: a welcome replaces us only while alone
    # The signed tree commit that made our epoch: published again into a relay's new log when it
    # lost the old one, for a member who missed it (issue 15: else it reads nothing from then on).
    last_commit: bytes | None = None


@dataclass(slots=True)
class Duties:
    """What we may have to commit: pending Adds, leave requests, kicks, and an update we owe."""

    adds: dict[bytes, AddDuty] = field(default_factory=dict)  # identity key -> the latest request
    leave_requests: dict[bytes, float] = field(default_factory=dict)  # identity key -> when asked
    kicks: set[bytes] = field(default_factory=set)  # identity keys our user asked to remove
    want_update: str | None = None  # why we owe a self-update, if we do
    # Admission (session/admitting.py): requests only a member's approval can let in, those our
    # user approved (ours to commit at once), and invites to create or revoke (ours too).
    approvals: dict[bytes, AddDuty] = field(default_factory=dict)
    approved: set[bytes] = field(default_factory=set)
    invites: list[WantedInvite] = field(default_factory=list)
    revokes: set[bytes] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class WantedInvite:
    """An invite our user asked for: its secret (shown once committed) and what it allows."""

    secret: InviteSecret
    uses: int
    not_after: int  # Unix seconds, 0 = never
    label: str


@dataclass(slots=True)
class Departure:
    """From ``/leave`` on: when we give up waiting for our removal, and whether we asked."""

    deadline: float
    sent: bool = False


@dataclass(slots=True)
class Link:
    """One websocket connection (held by the glue) and where we are on it."""

    max_payload: int
    join_req: int = 0
    resume_after: int | None = None
    in_room: bool = False
    sync_nonce: bytes = b""
    caught_up: bool = False
    joined_at: float | None = None  # when the relay said Joined: our sync marker's echo is due
    gap_retries: int = 0  # resumes retried after the relay said GAP (it may have lied)
    retry_resume_at: float | None = None
    lost_log: bool = False  # the relay said future_seq: it lost its log (see Hold.last_commit)
    pending_acks: dict[int, tuple[str, float]] = field(default_factory=dict)


def remember(old: OrderedDict[bytes, None], message: bytes, keep: int = 16) -> None:
    """Record one of our commits that was superseded or discarded (its late copies are ignored)."""
    old[message] = None
    while len(old) > keep:
        old.popitem(last=False)
