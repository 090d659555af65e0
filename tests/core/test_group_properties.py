"""Stateful property tests of the Group state machine over real crypto (Hypothesis).

A :class:`~hypothesis.stateful.RuleBasedStateMachine` runs random sequences of adds, removes,
self-updates, multi-operation commits (several removes + adds + an update in one commit),
application messages and *concurrent* commits over groups of up to 64 members. Any member may
commit. Every message goes through the in-process relay of ``group_harness`` (one total order,
sender included).

After every step it checks:

1. every member has the same epoch, epoch authenticator, tree hash and roster;
2. everyone decrypts everyone: a message from each of a few random members reaches every other
   member as ``MessageReceived`` with the right plaintext and sender, and the sender gets
   ``MessageEchoed``;
3. a removed member's retained state (a deep copy taken just before the removing commit was
   delivered) cannot process that commit into the new epoch (it gets ``RemovedFromGroup`` or a
   ``GroupChatError``, never ``EpochChanged``); the keeper adversary holding every value of that
   state derives neither the new epoch nor any later one, and cannot read any later message
   (``group_harness.assert_cannot_read``: no held or derived secret is the message's sender-data
   secret, and the message re-framed at the state's own epoch fails with ``DecryptionError``);
4. a joiner cannot read application messages sent before it joined (same check) nor process
   earlier commits (``GroupChatError``).

The concurrent rule has two members build commits on the same epoch; the relay delivers one first:
it wins for everyone, the loser sees ``EpochChanged(superseded_own_commit=True)``, and the stale
commit is then rejected by every member with ``EpochError`` leaving their state untouched.

Runtime is bounded by ``GROUPCHAT_PROPERTY_EXAMPLES`` / ``GROUPCHAT_PROPERTY_STEPS`` (defaults are
CI-sized); raise them for a longer soak.
"""

from __future__ import annotations

import os
import random

import pytest
from group_harness import (
    Harness,
    Sent,
    assert_cannot_derive_epoch,
    assert_cannot_read,
    fingerprint,
    keeper_of,
    snapshot,
)
from hypothesis import HealthCheck, event, settings, target
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from groupchat.core.errors import EpochError, GroupChatError
from groupchat.core.events import EpochChanged, RemovedFromGroup
from groupchat.core.group import Group
from groupchat.lab.keeper import Deriver

MAX_MEMBERS = 64
_RETAINED = 4  # removed members' states kept for invariant 3
_HISTORY = 12  # recent application messages kept for invariant 4

EXAMPLES = int(os.environ.get("GROUPCHAT_PROPERTY_EXAMPLES", "12"))
STEPS = int(os.environ.get("GROUPCHAT_PROPERTY_STEPS", "30"))


class GroupMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.h = Harness()
        self.retained: list[tuple[str, Group, Deriver]] = []
        self.history: list[Sent] = []  # application messages, oldest first
        self.commits: list[bytes] = []  # commits, oldest first
        self.fresh_joiners: list[str] = []
        self.max_members = 1
        self.rng = random.Random(0)

    @initialize(rng=st.randoms(use_true_random=False))
    def seed_sender_choice(self, rng: random.Random) -> None:
        self.rng = rng  # picks the senders of the consistency check (shrinkable, replayable)

    # --- helpers ------------------------------------------------------------------------------

    def pick(self, data: st.DataObject, exclude: set[str] | frozenset[str] = frozenset()) -> str:
        return data.draw(st.sampled_from(sorted(set(self.h.members) - exclude)))

    def pick_many(self, data: st.DataObject, n: int, exclude: set[str]) -> list[str]:
        pool = sorted(set(self.h.members) - exclude)
        n = min(n, len(pool))
        if n == 0:
            return []
        return data.draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n, unique=True))

    def room(self) -> int:
        return MAX_MEMBERS - len(self.h.members)

    def run_commit(
        self, data: st.DataObject, committer: str, adds: int, victims: list[str], update: bool
    ) -> None:
        before = list(self.history)
        before_commits = list(self.commits)
        names = [self.h.fresh_name() for _ in range(adds)]
        c = self.h.members[committer]
        # A joiner that has not updated yet must include its own update in every commit.
        tainted = c.tainted_by(c.my_leaf) is not None
        res = self.h.commit(committer, add=names, remove=victims, update=update, keep_removed=True)
        self.commits.append(res.message)
        own = res.events[committer]
        assert isinstance(own, EpochChanged)
        assert own.updated == (update or tainted or not (adds or victims))
        assert {m.display_name for m in own.added} == set(names)
        assert {m.display_name for m in own.removed} == set(victims)
        for name, ev in res.events.items():
            if name not in victims:
                assert isinstance(ev, EpochChanged) and not ev.superseded_own_commit
                assert ev.own == (name == committer)
        member = self.h.members[committer]
        for victim, retained in res.retained.items():
            # Invariant 3a: the retained state cannot follow the commit into the new epoch.
            try:
                ev = snapshot(retained).receive(res.message)
            except GroupChatError:
                pass
            else:
                assert isinstance(ev, RemovedFromGroup), ev
            deriver = keeper_of(retained, f"{victim}'s retained state")
            assert_cannot_derive_epoch(retained, member, deriver)
            self.retained.append((victim, retained, deriver))
        del self.retained[:-_RETAINED]
        # Invariant 4: the joiners cannot read anything from before they joined.
        for i, name in enumerate(res.joined):
            joiner = self.h.members[name]
            if i < 2:  # joiners of one commit hold alike secrets; the keeper check is not free
                reader = keeper_of(joiner, f"joiner {name}")
                for sent in before[-_HISTORY:]:
                    assert_cannot_read(joiner, sent, reader)
            for old in [*before_commits[-3:], res.message]:
                with pytest.raises(GroupChatError):
                    joiner.receive(old)
        self.fresh_joiners = res.joined

    # --- rules ----------------------------------------------------------------------------------

    @precondition(lambda self: self.room() > 0)
    @rule(data=st.data(), count=st.integers(1, 12))
    def add(self, data: st.DataObject, count: int) -> None:
        self.run_commit(data, self.pick(data), min(count, self.room()), [], False)

    @precondition(lambda self: len(self.h.members) >= 2)
    @rule(data=st.data(), count=st.integers(1, 4))
    def remove(self, data: st.DataObject, count: int) -> None:
        committer = self.pick(data)
        self.run_commit(data, committer, 0, self.pick_many(data, count, {committer}), False)

    @rule(data=st.data())
    def update(self, data: st.DataObject) -> None:
        self.run_commit(data, self.pick(data), 0, [], True)

    @rule(data=st.data(), adds=st.integers(0, 4), removes=st.integers(0, 4), update=st.booleans())
    def multi(self, data: st.DataObject, adds: int, removes: int, update: bool) -> None:
        committer = self.pick(data)
        victims = self.pick_many(data, removes, {committer})
        adds = max(0, min(adds, self.room() + len(victims)))
        self.run_commit(data, committer, adds, victims, update)

    @rule(data=st.data(), text=st.binary(max_size=80))
    def send(self, data: st.DataObject, text: bytes) -> None:
        sender = self.pick(data)
        self.history.append(Sent.of(self.h.members[sender], self.h.check_send(sender, text)))
        del self.history[:-_HISTORY]

    @precondition(lambda self: len(self.h.members) >= 2)
    @rule(data=st.data(), winner_kind=st.sampled_from(["update", "add", "remove"]), loser_adds=st.booleans())
    def concurrent(self, data: st.DataObject, winner_kind: str, loser_adds: bool) -> None:
        """Two commits on the same epoch; the relay delivers the winner's first."""
        winner = self.pick(data)
        loser = self.pick(data, {winner})
        others = sorted(set(self.h.members) - {winner, loser})
        if winner_kind == "remove" and not others:
            winner_kind = "update"
        if winner_kind == "add" and self.room() == 0:
            winner_kind = "update"
        lose_group = self.h.members[loser]
        epoch = lose_group.epoch
        if loser_adds and self.room() > 0:
            stale = lose_group.commit(add=[self.h.join_request().request])
        else:
            stale = lose_group.commit(update=True)
        assert lose_group.has_pending_commit
        if winner_kind == "add":
            res = self.h.commit(winner, add=[self.h.fresh_name()], keep_removed=True)
        elif winner_kind == "remove":
            res = self.h.commit(winner, remove=[data.draw(st.sampled_from(others))], keep_removed=True)
        else:
            res = self.h.commit(winner, update=True)
        self.commits.append(res.message)
        for name, ev in res.events.items():
            if name in res.removed:
                continue
            assert isinstance(ev, EpochChanged) and ev.epoch == epoch + 1
            assert ev.superseded_own_commit == (name == loser), (name, ev)
            assert ev.own == (name == winner)
        assert not lose_group.has_pending_commit
        for victim, retained in res.retained.items():
            deriver = keeper_of(retained, f"{victim}'s retained state")
            assert_cannot_derive_epoch(retained, self.h.members[winner], deriver)
            self.retained.append((victim, retained, deriver))
        del self.retained[:-_RETAINED]
        # The relay now delivers the losing commit: everyone rejects it and changes nothing.
        before = {n: fingerprint(g) for n, g in self.h.members.items()}
        for name, group in self.h.members.items():
            with pytest.raises(EpochError):
                group.receive(stale)
            assert fingerprint(group) == before[name], name
        self.fresh_joiners = res.joined

    # --- invariants -----------------------------------------------------------------------------

    @invariant()
    def everyone_agrees_and_decrypts_everyone(self) -> None:
        names = sorted(self.h.members)
        self.max_members = max(self.max_members, len(names))
        # A few random senders, plus whoever just joined.
        senders = sorted({*self.rng.sample(names, min(3, len(names))), *self.fresh_joiners[:2]})
        raw = self.h.assert_consistent(senders)
        sent = [Sent.of(self.h.members[n], m) for n, m in zip(senders, raw, strict=True)]
        self.fresh_joiners = []
        self.history.extend(sent)
        del self.history[:-_HISTORY]
        # Invariant 3b: removed members' retained states derive no later epoch and read nothing.
        member = self.h.members[names[0]]
        for _victim, retained, deriver in self.retained:
            assert_cannot_derive_epoch(retained, member, deriver)
            for msg in sent:
                assert_cannot_read(retained, msg, deriver)


    def teardown(self) -> None:
        # Steer generation towards large groups and report the sizes reached.
        target(float(self.max_members), label="largest group")
        low = 16 * (self.max_members // 16)
        event(f"largest group in {low}..{low + 15} members")


GroupMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestGroupMachine = GroupMachine.TestCase


def test_sixty_four_members_multi_operation_commits() -> None:
    """Deterministic companion: fill the group to exactly 64, then mix removes, adds and updates."""
    h = Harness()
    while len(h.members) < MAX_MEMBERS:
        h.add("m0", min(9, MAX_MEMBERS - len(h.members)))
    h.assert_consistent(["m0", "m33", sorted(h.members)[-1]])
    assert h.members["m0"]._tree.capacity == 64
    old = Sent.of(h.members["m12"], h.check_send("m12", b"before the big commit"))
    adds = [h.fresh_name(), h.fresh_name()]
    res = h.commit("m40", remove=["m1", "m20", "m63"], add=adds, update=True, keep_removed=True)
    assert len(h.members) == 63
    for name in res.joined:
        assert_cannot_read(h.members[name], old)
    senders = ["m40", *res.joined, "m2"]
    sent = [Sent.of(h.members[n], m) for n, m in zip(senders, h.assert_consistent(senders), strict=True)]
    for retained in res.retained.values():
        deriver = keeper_of(retained)
        assert_cannot_derive_epoch(retained, h.members["m0"], deriver)
        for msg in sent:
            assert_cannot_read(retained, msg, deriver)
    # Grow beyond 64 leaves once: the tree doubles and everyone follows.
    h.add("m5", 2)
    assert h.members["m0"]._tree.capacity == 128
    h.assert_consistent(["m5", sorted(h.members)[-1]])
