"""The simulated group: real :class:`~groupchat.core.group.Group` members on the lab's relay order.

Every member is a keeper (:class:`~groupchat.lab.keeper.Keeper`: its random source records every
output, and its state is recorded before every commit it takes in and after every step), so a
removed member's attack uses everything it ever held. The relay is the lab's
:class:`~groupchat.lab.room.Room`; each member reads the room's order from its own cursor, and
after every call the member's outbox is sent (what a session does), so Welcomes, a joiner's first
update and the ring's rounds happen as they would over a real relay. :meth:`World.pump` runs the
room until nobody has anything to read or send (bounded).

Costs are counted by :class:`~groupchat.lab.sim.counting.OpCounter` for whichever member is called;
bytes are the payload bytes each member hands to the relay and the relay hands to each member (its
echo included). *Rounds* are the relay hops of one operation: a message sent in reply to something
received is one hop further than what it replied to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from ...core.admission import RemovalCode, RemovalReason
from ...core.errors import EpochError, GroupChatError, UsageError
from ...core.events import EpochChanged, Event, RemovedFromGroup
from ...core.group import Group, GroupConfig
from ...core.identity import Identity, JoinRequest, PendingJoin
from ...core.outbox import Outbound
from ...core.peek import MessageKind, peek
from ...core.schemes.ring_errors import AttemptFailedError, WrongAttemptError
from ..clock import ManualClock
from ..keeper import Keeper
from ..room import Delivery, Room
from .churn import Step
from .counting import OpCounter
from .secrecy import Attacker, EpochRecord

__all__ = ["GROUP_ID", "Failure", "Member", "Removed", "SimRoom", "World"]

GROUP_ID: Final = b"groupchat-sim"
_PUMP_LIMIT: Final = 100_000  # deliveries per pump; a run that needs more has not settled
# How the core words a commit that lost the race for its epoch (the session drops it; so does the sim).
_LOST: Final = ("another commit won that epoch", "already won this epoch")


class Member:
    """One simulated member: its Group, its keeper and its cursor in the room's order."""

    def __init__(self, name: str, group: Group, keeper: Keeper, counter: OpCounter) -> None:
        self.name = name
        self.group = group
        self.keeper = keeper
        self.counter = counter
        self.inits: set[bytes] = set()  # every init secret it held (the ring attack starts there)
        self.cursor = 0
        self.depth = 0  # the relay hop of the last message it took in, in this operation
        self.keep()

    def keep(self) -> None:
        """Record everything it holds now (not counted: the keeper's bookkeeping, not the group's)."""
        with self.counter.paused():
            self.keeper.keep(self.group)
            secrets = self.group._secrets
            if secrets.init_secret != bytes(len(secrets.init_secret)):
                self.inits.add(secrets.init_secret)

    def receive(self, data: bytes) -> Event:
        claim = peek(data)
        if claim.kind is MessageKind.COMMIT and claim.epoch == self.group.epoch:
            # What it had just before this commit (a removed member keeps exactly this); a commit
            # of an earlier epoch lost its race and changes nothing.
            self.keep()
        with self.counter.member(self.name):
            return self.group.receive(data)

    def data_to_send(self) -> list[Outbound]:
        """Its outbox (a session sends it after every call): commits are built here, counted as its."""
        with self.counter.member(self.name):
            return list(self.group.data_to_send())

    def attacker(self, label: str) -> Attacker:
        """Everything it holds now, frozen, as an attacker."""
        with self.counter.paused():
            return Attacker(
                label, self.keeper.held(), frozenset(self.inits), self.group.suite, self.group.scheme
            )


class SimRoom(Room[str, Member]):
    """The lab's room, counting the bytes each member sends (its receipts are counted by the pump)."""

    def __init__(self, counter: OpCounter) -> None:
        super().__init__()
        self.counter = counter
        self.depth: dict[int, int] = {}  # seq -> relay hop in the current operation

    def publish(self, payload: bytes, sender: str | None = None, to: str | None = None) -> Delivery[str]:
        delivery = super().publish(payload, sender, to)
        if sender is not None:
            self.counter.of(sender).bytes_sent += len(payload)
            m = self.members.get(sender)
            self.depth[delivery.seq] = (m.depth if m is not None else 0) + 1
        return delivery


@dataclass
class Removed:
    """A member who left or was kicked, its kept knowledge and the epochs it tried so far."""

    name: str
    epoch: int  # the first epoch it is not entitled to
    attacker: Attacker
    reads_tried: int = 0


@dataclass
class Failure:
    """One invariant that did not hold."""

    check: str
    detail: str


class World:
    """The group, the room, the keepers, the public record of every epoch and what failed."""

    def __init__(self, scheme: str, names: list[str]) -> None:
        if not names:
            raise UsageError("the group needs at least one member")
        self.scheme = scheme
        self.clock = ManualClock()
        self.base = GroupConfig(clock=self.clock, wall_clock=self.clock.wall)
        self.counter = OpCounter()
        self.room = SimRoom(self.counter)
        self.members: dict[str, Member] = self.room.members
        self.removed: dict[str, Removed] = {}
        self.epochs: dict[int, EpochRecord] = {}
        self.authenticators: dict[int, set[bytes]] = {}
        self.failures: list[Failure] = []
        self.joined: list[tuple[str, int]] = []  # (joiner, its first epoch) in this operation
        self.rounds = 0
        self.stale = 0  # messages dropped as a session drops them (lost commits), this operation
        self.withhold: Callable[[str, Delivery[str]], bool] | None = None  # a test's fault
        self._traffic_from = 0
        keeper = Keeper(names[0], self.base)
        with self.counter.member(names[0]):
            group = Group.create(Identity.generate(), GROUP_ID, names[0], keeper.config, scheme=scheme)
        self.room.join(names[0], Member(names[0], group, keeper, self.counter))
        self._record(group)

    # --- operations ---------------------------------------------------------------------------------

    def live(self) -> dict[str, Member]:
        return dict(self.members)

    def request(self, name: str) -> PendingJoin:
        keeper = Keeper(name, self.base)
        with self.counter.member(name):
            pj = JoinRequest.create(
                self.base.suite(),
                Identity.generate(),
                GROUP_ID,
                name,
                keeper.config.rand,
                wall_clock=self.clock.wall,
            )
        keeper.keep(pj)  # its init private key
        since = len(self._wide())

        def make(welcome: bytes) -> Member:
            with self.counter.member(name):
                group = Group.join(pj, welcome, keeper.config)
            m = Member(name, group, keeper, self.counter)
            m.depth = self.room.depth.get(self.room.head, 0)  # the Welcome's hop (published just now)
            m.cursor = since + 1  # it reads the room from just after the commit that added it
            self.counter.of(name).bytes_delivered += len(welcome)
            # A ring joiner holds no key of the epoch it joins in: its first is the ring's next.
            self.joined.append((name, group.epoch + 1 if group.joining else group.epoch))
            if not group.joining:
                self._record(group)
            return m

        self.room.expect(name, pj.request.identity_key, make)
        return pj

    def commit(
        self,
        actor: str,
        *,
        add: Sequence[str] = (),
        remove: dict[str, RemovalCode] | None = None,
        update: bool = False,
    ) -> None:
        """``actor`` commits; the commit is sent (its joiners expected); :meth:`pump` delivers it."""
        m = self.members[actor]
        m.depth = 0
        removals = {self.members[v].group.my_leaf: code for v, code in (remove or {}).items()}
        joins = [self.request(a) for a in add]
        with self.counter.member(actor):
            data = m.group.commit(
                add=[pj.request for pj in joins],
                remove=list(removals),
                update=update,
                reasons={leaf: RemovalReason(code) for leaf, code in removals.items()},
            )
        self.room.publish(data, actor)

    def message(self, actor: str, text: str) -> None:
        m = self.members[actor]
        m.depth = 0
        with self.counter.member(actor):
            data = m.group.encrypt(text.encode())
        self.room.publish(data, actor)

    def apply(self, step: Step) -> None:
        """Run one step of the schedule (then :meth:`pump`)."""
        self.rounds = 0
        self.stale = 0
        self.room.depth.clear()
        self.joined.clear()
        if step.kind == "join":
            self.commit(step.actor, add=[step.target])
        elif step.kind in ("leave", "kick"):
            code = RemovalCode.LEFT if step.kind == "leave" else RemovalCode.KICKED
            self.commit(step.actor, remove={step.target: code})
        elif step.kind == "update":
            self.commit(step.actor, update=True)
        else:
            self.message(step.actor, step.text or f"message {step.index}")
        self.pump()

    # --- the relay ----------------------------------------------------------------------------------

    def _wide(self) -> list[Delivery[str]]:
        """Everything sequenced to the whole room (a Welcome goes to its joiner only)."""
        return [d for d in self.room.log if d.to is None]

    def pump(self) -> None:
        """Deliver and send until the room is quiet (``withhold``, a test's fault, drops some)."""
        skip = self.withhold
        wide = self._wide()
        for _ in range(_PUMP_LIMIT):
            progress = False
            for name in list(self.members):
                m = self.members.get(name)
                while m is not None and m.cursor < len(wide):
                    d = wide[m.cursor]
                    m.cursor += 1
                    progress = True
                    if skip is not None and skip(name, d):
                        continue
                    self._take(m, d)
                    m = self.members.get(name)
                    if m is not None and self._flush(m):  # what it sends in reply to this one
                        wide = self._wide()
                if m is not None and self._flush(m):
                    progress = True
                    wide = self._wide()
            if not progress:
                return
        raise UsageError("the simulated room did not settle")

    def _flush(self, m: Member) -> bool:
        """Send ``m``'s outbox; whether it sent anything."""
        before = self.room.head
        self.room.flush(m.name, hand_over=False)
        return self.room.head != before

    def _take(self, m: Member, d: Delivery[str]) -> None:
        m.depth = self.room.depth.get(d.seq, 0)
        self.rounds = max(self.rounds, m.depth)
        self.counter.of(m.name).bytes_delivered += len(d.payload)
        try:
            event = m.receive(d.payload)
        except (EpochError, WrongAttemptError, AttemptFailedError) as exc:
            if isinstance(exc, EpochError) and not any(t in str(exc) for t in _LOST):
                self.fail("delivery", f"{m.name} refused message {d.seq} from {d.sender}: {exc}")
            else:
                self.stale += 1  # a commit that lost the race for its epoch, or of a dropped attempt
            return
        except GroupChatError as exc:
            self.fail("delivery", f"{m.name} refused message {d.seq} from {d.sender}: {exc}")
            return
        if isinstance(event, RemovedFromGroup):
            m.keep()
            self.room.leave(m.name)
            self.removed[m.name] = Removed(m.name, event.epoch, m.attacker(f"{m.name} (removed)"))
        elif isinstance(event, EpochChanged):
            self.authenticators.setdefault(event.epoch, set()).add(event.epoch_authenticator)
            if event.epoch not in self.epochs:
                self._record(m.group)

    def _record(self, group: Group) -> None:
        """The public facts of ``group``'s epoch, and the ring traffic that led to it."""
        if group.epoch in self.epochs:
            return
        log = self.room.log
        traffic = tuple(d.payload for d in log[self._traffic_from :] if d.to is None)
        self._traffic_from = len(log)
        with self.counter.paused():
            self.epochs[group.epoch] = EpochRecord.of(group, traffic)

    def fail(self, check: str, detail: str) -> None:
        self.failures.append(Failure(check, detail))
