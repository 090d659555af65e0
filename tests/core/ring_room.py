"""The ring tests' room: a Group per member on the lab's relay order, each member reading it from its
own cursor, and the session's only job (send what ``data_to_send()`` returns) is ``Room.pump``.

Shared by the ``test_ring_*`` modules (none imports another test module).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from groupchat.core.errors import EpochError
from groupchat.core.events import Event, MessageReceived
from groupchat.core.group import Group, GroupConfig
from groupchat.core.identity import Identity, JoinRequest, PendingJoin
from groupchat.core.outbox import OutboundKind
from groupchat.core.schemes.ring_errors import AttemptFailedError, WrongAttemptError
from groupchat.core.schemes.ring_message import RING_WIRE_FORMAT, RingRound
from groupchat.lab.clock import ManualClock
from groupchat.lab.room import Room as LabRoom

__all__ = ["GROUP_ID", "Room", "forge", "grown", "rounds"]

GROUP_ID = b"ring-room"


@dataclass
class Room:
    """Members, the room's log, and each member's read position in it.

    The order and the log are the lab's :class:`~groupchat.lab.room.Room` (``relay``), which also
    drains each member's outbox; this room only adds the cursors (members read the order lazily,
    some of them offline) and what the session drops.
    """

    clock: ManualClock = field(default_factory=ManualClock)
    relay: LabRoom[str, Group] = field(default_factory=LabRoom)
    cursor: dict[str, int] = field(default_factory=dict)
    offline: set[str] = field(default_factory=set)
    events: dict[str, list[Event]] = field(default_factory=dict)
    stale: int = 0
    watch: Callable[[str], object] | None = None  # called after each message a member takes in
    _log: list[bytes] = field(default_factory=list)  # the room-wide payloads, read by cursor
    _seen: int = 0  # how much of the relay's log _log covers
    ring_round_timeout: float = 30.0  # every member's GroupConfig.ring_round_timeout

    @property
    def members(self) -> dict[str, Group]:
        return self.relay.members

    @property
    def log(self) -> list[bytes]:
        """Everything sent to the whole room, in order (a Welcome goes to its joiner only)."""
        if self._seen < self.relay.head:  # extend the view by what the relay sequenced since
            self._log.extend(d.payload for d in self.relay.since(self._seen) if d.to is None)
            self._seen = self.relay.head
        return self._log

    @property
    def config(self) -> GroupConfig:
        return GroupConfig(clock=self.clock, ring_round_timeout=self.ring_round_timeout)

    def create(self, name: str) -> Group:
        g = Group.create(Identity.generate(), GROUP_ID, name, self.config, scheme="ring")
        self.relay.join(name, g)
        self.cursor[name] = 0
        return g

    def request(self, name: str) -> PendingJoin:
        pj = JoinRequest.create(self.config.suite(), Identity.generate(), GROUP_ID, name)
        return pj

    def send(self, name: str, data: bytes) -> None:
        self.relay.publish(data, name)
        self.drain(name)

    def post(self, sender: str, *payloads: bytes) -> None:
        """Sequence ``payloads`` from ``sender`` in order and nothing else (no outbox drained)."""
        for data in payloads:
            self.relay.publish(data, sender)

    def drain(self, name: str) -> None:
        """What the session does after each call: send the outbox (a joiner, once its Welcome is
        out, joins and sends its own at once); members take it in from their cursors."""
        for f in self.relay.flush(name, hand_over=False, cascade=True):
            assert f.delivery.to is None or f.outbound.kind is OutboundKind.WELCOME, f

    def _joiner(self, pj: PendingJoin, since: int) -> Callable[[bytes], Group]:
        def join(welcome: bytes) -> Group:
            # The joiner reads the room from the commit that added it (relay resume).
            self.cursor[pj.request.display_name] = since
            return Group.join(pj, welcome, self.config)

        return join

    def commit(self, name: str, *, add: list[str] = (), remove: list[str] = (), update: bool = False) -> None:  # type: ignore[assignment]
        pjs = [self.request(a) for a in add]
        data = self.members[name].commit(
            add=[pj.request for pj in pjs], remove=[self.members[r].my_leaf for r in remove], update=update
        )
        since = len(self.log) + 1  # the joiner reads from just after this commit
        for pj in pjs:
            self.relay.expect(pj.request.display_name, pj.request.identity_key, self._joiner(pj, since))
        self.send(name, data)

    def pump(self, limit: int = 10_000) -> None:
        """Deliver the log to every online member until nobody has anything new (bounded)."""
        for _ in range(limit):
            progress = False
            for name in list(self.members):
                if name in self.offline or self.members[name].state.value != "member":
                    continue
                while self.cursor[name] < len(self.log) and self.members[name].state.value == "member":
                    data = self.log[self.cursor[name]]
                    self.cursor[name] += 1
                    progress = True
                    try:
                        ev = self.members[name].receive(data)
                    except WrongAttemptError as exc:
                        # A message of an attempt we already gave up: the session drops it.
                        assert "earlier attempt" in str(exc)
                        self.stale += 1
                        continue
                    except AttemptFailedError:
                        # Of a run a restart replaced, or of an attempt that failed: dropped too.
                        self.stale += 1
                        continue
                    except EpochError as exc:
                        # A proposed retry ordered after its ring finished: the session drops it.
                        # Or a commit that lost the race to the ring's (or a restart's) commit.
                        wire = int.from_bytes(data[2:4], "big")
                        text = str(exc)
                        lost = "already won this epoch" in text or "another commit won that epoch" in text
                        assert wire == RING_WIRE_FORMAT or lost, exc
                        self.stale += 1
                        continue
                    self.events.setdefault(name, []).append(ev)
                    self.drain(name)
                    if self.watch is not None:
                        self.watch(name)
            if not progress:
                return
        raise AssertionError("the room did not settle")

    def live(self) -> dict[str, Group]:
        return {n: g for n, g in self.members.items() if g.state.value == "member"}

    def assert_agreement(self) -> None:
        groups = list(self.live().values())
        assert len({g.epoch for g in groups}) == 1
        assert len({g.epoch_authenticator for g in groups}) == 1
        assert len({g.tree_hash for g in groups}) == 1
        for sender in groups:
            data = sender.encrypt(b"hello from " + str(sender.my_leaf).encode())
            for reader in groups:
                if reader is not sender:
                    ev = reader.receive(data)
                    assert isinstance(ev, MessageReceived) and ev.sender.leaf == sender.my_leaf


def grown(n: int) -> Room:
    room = Room()
    room.create("m0")
    for i in range(1, n):
        room.commit("m0", add=[f"m{i}"])
        room.pump()
    room.assert_agreement()
    return room


def rounds(room: Room, epoch: int) -> list[RingRound]:
    """The ring round messages on the room's log for the run creating ``epoch``."""
    return [
        RingRound.decode(d)
        for d in room.log
        if int.from_bytes(d[2:4], "big") == RING_WIRE_FORMAT and RingRound.decode(d).epoch == epoch
    ]


def forge(room: Room, signer: str, like: RingRound, **changes: object) -> bytes:
    """A message ``signer`` (a real member, so it verifies) signs, bound like ``like``."""
    g = room.members[signer]
    fields: dict[str, object] = {
        "group_id": like.group_id, "epoch": like.epoch, "attempt": like.attempt,
        "roster_hash": like.roster_hash, "context": like.context, "round_": 1,
        "sender": g.my_leaf, "value": X25519PrivateKey.generate().public_key().public_bytes_raw(),
        "view": b"",
    }  # fmt: skip
    fields.update(changes)
    return RingRound.create(g.suite, g._identity.signing_key, **fields).encoded  # type: ignore[arg-type]
