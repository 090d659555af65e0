"""The keeper adversary against the four leak scenarios of issue 6 (threats.md item 21).

Each scenario is played by real members through the in-process relay; one of them is a
:class:`~keeper.Keeper` (every random output and every state recorded). Two tests per scenario:

* the keeper derives **every** epoch from the one it entered up to the one before the event, and
  every commit epoch in between by climbing the tree from what it holds (route ``"tree"``): this
  proves the derivation works, so the second test would catch a leak;
* after the event (its removal, or the Update that heals a copied state) it derives **no** epoch
  by any route.

Before taint tracking the second test failed for every scenario in which the keeper chose a leaf
secret that stayed in the tree (it was written first, against that code, and reproduced each leak);
with the taint rules (``groupchat/core/schemes/tree/taint.py``) every scenario passes. The second
field of each ``SCENARIOS`` entry marks a scenario as a known leak (strict xfail); none is left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from group_harness import Harness, Sent, assert_cannot_derive_epoch, assert_cannot_read, keeper_of

from groupchat.core.group import GroupConfig
from groupchat.lab.keeper import Deriver, EpochView, Keeper

LEAK = "leak fixed by taint tracking (issue 6)"


@dataclass
class Story:
    """A harness whose named keepers are recorded after every step, and the public epoch log."""

    keepers: dict[str, Keeper]
    h: Harness
    views: dict[int, EpochView] = field(default_factory=dict)

    @classmethod
    def start(cls, creator: str, keepers: list[str]) -> Story:
        base = GroupConfig()
        ks = {name: Keeper(name, base) for name in keepers}
        story = cls(ks, Harness(base, creator=creator, configs={n: k.config for n, k in ks.items()}))
        story.step()
        return story

    def step(self) -> int:
        for name, keeper in self.keepers.items():
            if name in self.h.members:
                keeper.keep(self.h.members[name])
        some = next(iter(self.h.members.values()))
        self.views[some.epoch] = EpochView.of(some)
        return some.epoch

    def add(self, committer: str, *names: str) -> int:
        pjs = [self.h.join_request(n) for n in names]
        for pj in pjs:
            if pj.request.display_name in self.keepers:
                self.keepers[pj.request.display_name].keep(pj)  # its init private key
        self.h.commit(committer, add=pjs)
        return self.step()

    def remove(self, committer: str, *victims: str, add: tuple[str, ...] = ()) -> int:
        self.h.commit(committer, remove=victims, add=add)
        return self.step()

    def update(self, *names: str) -> int:
        for name in names:
            self.h.update(name)
            self.step()
        return self.h.epoch

    def chat(self) -> None:
        self.h.assert_consistent(sorted(self.h.members))
        self.step()


@dataclass
class Outcome:
    """What a keeper derived, and the epochs before and after its event."""

    deriver: Deriver
    derived: dict[int, str]
    entered: int  # first epoch the keeper was in
    event: int  # first epoch after the event
    last: int


def _finish(story: Story, deriver: Deriver, entered: int, event: int) -> Outcome:
    derived = deriver.attempt_all(story.views.values())
    return Outcome(deriver, derived, entered, event, story.h.epoch)


def removed_remover() -> Outcome:
    """C removes X and keeps the secret it put on X's old leaf; later B removes C; then every
    remaining member updates and a new member joins (into C's old slot, the leftmost free one)."""
    s = Story.start("A", ["C"])
    entered = s.add("A", "B", "C", "X")  # leaves A0 B1 C2 X3
    s.update("C", "B")
    s.remove("C", "X")  # C chose leaf 3's secret
    s.update("A")
    s.chat()
    event = s.remove("B", "C")
    s.update("A", "B")
    s.add("A", "N")  # takes leaf 2; X's old leaf 3 keeps C's secret today
    s.update("N")
    s.chat()
    return _finish(s, s.keepers["C"].frozen(), entered, event)


def removed_adder() -> Outcome:
    """A adds J and keeps J's leaf secret; B removes A before J's first Update."""
    s = Story.start("H", ["A"])
    entered = s.add("H", "A", "B")  # H0 A1 B2
    s.update("A")
    s.add("A", "J")  # J at leaf 3, its secret chosen by A
    s.chat()
    event = s.remove("B", "A")
    s.update("H", "B")
    s.chat()
    s.update("J")  # today this is what finally heals J's leaf
    s.chat()
    return _finish(s, s.keepers["A"].frozen(), entered, event)


def removed_former_remover() -> Outcome:
    """X removed W (and added K in the same commit) earlier; later C removes X."""
    s = Story.start("A", ["X"])
    entered = s.add("A", "X", "C", "W", "V")  # A0 X1 C2 W3 V4, capacity 8
    s.update("X")
    s.remove("X", "W", add=("K",))  # X chose leaf 3's and K's (leaf 5) secrets
    s.update("K")  # K heals its own leaf; leaf 3 stays X's today
    s.update("A")
    event = s.remove("C", "X")
    s.update("A", "C", "V")
    s.add("A", "N")  # takes X's old leaf 1
    s.update("N")
    s.chat()
    return _finish(s, s.keepers["X"].frozen(), entered, event)


def healed_copy(tainted: bool) -> Callable[[], Outcome]:
    """M's whole memory is copied at epoch e; M then commits an Update. With ``tainted``, M had
    removed W and added J (who has not updated) before the copy."""

    def play() -> Outcome:
        s = Story.start("A", ["M"])
        entered = s.add("A", "M", "B", "W")  # A0 M1 B2 W3
        s.update("M", "A")
        if tainted:
            s.remove("M", "W", add=("J",))  # M chose leaf 3's secret (J's leaf, J joins there)
            s.remove("M", "B")  # and leaf 2's
            s.chat()
        copy = s.keepers["M"].frozen("copy of M")
        event = s.update("M")  # heals the copy; M itself is never copied again
        s.update("A")
        s.add("A", "N")
        s.update("N")
        s.chat()
        return _finish(s, copy, entered, event)

    return play


SCENARIOS = {
    "removed-remover": (removed_remover, False),
    "removed-adder-before-joiner-update": (removed_adder, False),
    "removed-former-remover": (removed_former_remover, False),
    "healed-copy": (healed_copy(False), False),
    "healed-copy-after-remove-and-add": (healed_copy(True), False),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_keeper_derives_every_epoch_before_the_event(name: str) -> None:
    out = SCENARIOS[name][0]()
    before = range(out.entered, out.event)
    assert len(before) >= 3 and out.last - out.event >= 3, (before, out.last)
    missing = [e for e in before if e not in out.derived]
    assert not missing, f"{out.deriver.label} failed to derive epochs {missing} it was a member of"
    climbed = [e for e in before[1:] if out.derived[e] == "tree"]
    assert climbed == list(before[1:]), f"derived without climbing the tree: {out.derived}"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, raises=AssertionError, reason=LEAK))
        if leaks_today
        else n
        for n, (_, leaks_today) in sorted(SCENARIOS.items())
    ],
)
def test_keeper_derives_nothing_after_the_event(name: str) -> None:
    out = SCENARIOS[name][0]()
    after = {e: r for e, r in out.derived.items() if e >= out.event}
    assert not after, f"{out.deriver.label} derives epochs {after} after epoch {out.event - 1}"


def test_the_cannot_read_checks_catch_a_planted_leak() -> None:
    """``assert_cannot_derive_epoch`` / ``assert_cannot_read`` fail when the saved state does hold
    a current secret: plant one honest member's leaf secret in a removed member's memory."""
    h = Harness()
    h.add("m0", 3)
    res = h.commit("m1", remove=["m3"], keep_removed=True)
    retained = res.retained["m3"]
    member = h.members["m2"]
    sent = Sent.of(member, h.check_send("m2", b"after the removal"))
    honest = keeper_of(retained)
    assert_cannot_derive_epoch(retained, member, honest)
    assert_cannot_read(retained, sent, honest)
    leaked = member._path.secrets[2 * member.my_leaf]  # the leak we simulate
    planted = Deriver(honest.held | {leaked}, honest.prefix, "retained state + one leaked leaf secret")
    with pytest.raises(AssertionError, match="holds a private key"):
        assert_cannot_derive_epoch(retained, member, planted)
    planted = Deriver(honest.held | {leaked}, honest.prefix, "retained state + one leaked leaf secret")
    with pytest.raises(AssertionError, match="derives epoch"):
        assert_cannot_read(retained, sent, planted)
