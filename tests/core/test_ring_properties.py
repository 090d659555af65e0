"""The tree's group invariants, run on a ring group: a Hypothesis state machine over adds, removes,
self-updates, members vanishing mid-ring and restarted out, and messages (the ring reruns on
each), checking after every step that everyone agrees
and everyone decrypts everyone, and that no removed member, holding every 32-byte value its state
ever had and every window of the room's traffic, derives the epoch that removed it.

CI-sized; ``GROUPCHAT_RING_EXAMPLES`` / ``GROUPCHAT_RING_STEPS`` make it longer.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from ring_room import Room

from groupchat.core.events import EpochChanged
from groupchat.core.group import Group
from groupchat.core.key_schedule import derive_epoch_secrets
from groupchat.lab.keeper import harvest

MAX_MEMBERS = 5
EXAMPLES = int(os.environ.get("GROUPCHAT_RING_EXAMPLES", "8"))
STEPS = int(os.environ.get("GROUPCHAT_RING_STEPS", "8"))


@dataclass
class Removed:
    """What a removed member kept: every 32-byte value of every state it had, and the init secret
    the epoch that removed it starts from; ``epoch`` is that epoch."""

    name: str
    kept: set[bytes]
    init_secret: bytes
    epoch: int


def _keep(group: Group) -> set[bytes]:
    shared: dict[int, object] = {id(x): x for x in (group.suite, group._identity, group.config)}
    return harvest(copy.deepcopy(group, shared))


class RingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.room = Room()
        self.room.create("m0")
        self.names = iter(f"m{i}" for i in range(1, 1000))
        self.kept: dict[str, set[bytes]] = {"m0": _keep(self.room.members["m0"])}
        self.room.watch = self._watch
        self.removed: list[Removed] = []
        self.checked: dict[str, bytes] = {}  # removed member -> the real authenticator it must miss

    def _watch(self, name: str) -> None:
        group = self.room.members[name]
        if group.state.value == "member":
            self.kept.setdefault(name, set()).update(_keep(group))

    def live(self) -> list[str]:
        return sorted(self.room.live())

    @precondition(lambda self: len(self.room.live()) < MAX_MEMBERS)
    @rule(data=st.data())
    def add(self, data: st.DataObject) -> None:
        committer = data.draw(st.sampled_from(self.live()))
        self.room.commit(committer, add=[next(self.names)])
        self.room.pump()

    @precondition(lambda self: len(self.room.live()) >= 2)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        names = self.live()
        committer = data.draw(st.sampled_from(names))
        victim = data.draw(st.sampled_from([n for n in names if n != committer]))
        group = self.room.members[victim]
        self.kept[victim].update(_keep(group))
        record = Removed(victim, self.kept.pop(victim), group._secrets.init_secret, group.epoch + 1)
        self.room.commit(committer, remove=[victim])
        self.room.pump()
        self.removed.append(record)

    @precondition(lambda self: len(self.room.live()) >= 3)
    @rule(data=st.data())
    def vanish_during_a_ring_and_be_restarted_out(self, data: st.DataObject) -> None:
        """A member goes silent during a ring rekey (after its round 1, or before anything) and
        never comes back; another member's restart commit removes it (docs/protocol.md §8.3)."""
        names = self.live()
        committer = data.draw(st.sampled_from(names))
        silent = data.draw(st.sampled_from(names))  # may be the ring's own committer
        restarter = data.draw(st.sampled_from([n for n in names if n != silent]))
        spoke = data.draw(st.booleans())
        group = self.room.members[silent]
        self.room.commit(committer, update=True)
        if spoke:  # it takes the commit and sends its round 1, then goes silent
            while self.room.cursor[silent] < len(self.room.log):
                group.receive(self.room.log[self.room.cursor[silent]])
                self.room.cursor[silent] += 1
                self.room.drain(silent)
                self._watch(silent)
        self.room.offline.add(silent)
        self.room.pump()
        self.kept[silent].update(_keep(group))
        record = Removed(silent, self.kept.pop(silent), group._secrets.init_secret, group.epoch + 1)
        restart = self.room.members[restarter].commit(remove=[group.my_leaf])
        self.room.send(restarter, restart)
        del self.room.members[silent]
        self.room.offline.discard(silent)
        self.room.pump()
        last = [e for e in self.room.events[restarter] if isinstance(e, EpochChanged)][-1]
        assert last.committer.display_name == restarter and silent in [m.display_name for m in last.removed]
        self.removed.append(record)

    @rule(data=st.data())
    def update(self, data: st.DataObject) -> None:
        self.room.commit(data.draw(st.sampled_from(self.live())), update=True)
        self.room.pump()

    @invariant()
    def agreement_and_everyone_reads_everyone(self) -> None:
        self.room.assert_agreement()

    @invariant()
    def a_removed_member_derives_nothing(self) -> None:
        alive = next(iter(self.room.live().values()))
        for record in self.removed:
            if record.name in self.checked or alive.epoch != record.epoch:
                continue  # each removal is attacked once, at the epoch it created
            # Control: the keeper really holds the init secret the attacked epoch starts from.
            assert record.init_secret in record.kept
            traffic = {d[i : i + 32] for d in self.room.log for i in range(len(d) - 31)}
            real = alive.epoch_authenticator
            for secret in record.kept | traffic:
                derived = derive_epoch_secrets(alive.suite, record.init_secret, secret, alive._ctx_bytes)
                assert derived.epoch_authenticator != real, f"{record.name} derives epoch {record.epoch}"
            self.checked[record.name] = real


RingMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestRingMachine = RingMachine.TestCase
