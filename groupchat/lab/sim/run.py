"""One simulation: build the group, run the schedule, check every invariant after every step.

After the group is built (step 0: the creator adds everyone: in a tree group one at a time, in a
ring group in one commit) and after every step,
:func:`check_step` checks, and stops the run at the first step that breaks one:

* **agreement**: every member is in the same epoch with the same epoch authenticator, tree hash
  and roster, and every member that took in a commit got the same authenticator for its epoch;
* **everyone decrypts everyone**: each member encrypts a message that every other member opens,
  with the right text and sender (above :data:`FULL_MESH_MAX` members, a seeded sample of
  :data:`SAMPLED_SENDERS` senders, which the report says); the first of them is the epoch's probe;
* **removed members**: the attack of :mod:`.secrecy` from everything the member kept, on every
  later epoch (derive it; open its probe), after a control on the last epoch it was in;
* **joiners**: the same attack from everything the joiner holds on the epochs before it joined
  (the last :data:`JOINER_LOOKBACK`), plus the earlier probe re-framed into its live group; of
  more joiners in one step (the setup), a seeded sample of :data:`JOINERS_PER_STEP`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from ...core.epoch.machine import Phase
from ...core.errors import GroupChatError, UsageError
from ...core.events import MessageReceived
from .churn import Step
from .counting import Costs, since
from .secrecy import Attacker, Probe
from .world import Failure, World

__all__ = [
    "FULL_MESH_MAX",
    "JOINERS_PER_STEP",
    "JOINER_LOOKBACK",
    "SAMPLED_SENDERS",
    "Checks",
    "Fault",
    "SimResult",
    "StepResult",
    "check_step",
    "simulate",
]

FULL_MESH_MAX: Final = 64
SAMPLED_SENDERS: Final = 16
JOINER_LOOKBACK: Final = 4
JOINERS_PER_STEP: Final = 8


@dataclass
class Checks:
    """How much each invariant was tried (so a report shows the checks were not vacuous)."""

    agreement: int = 0  # member-epoch comparisons
    decrypts: int = 0  # (sender, reader) pairs opened
    removed_epochs: int = 0  # (removed member, later epoch) derivations attempted
    removed_reads: int = 0  # (removed member, later probe) reads attempted
    joiner_epochs: int = 0  # (joiner, earlier epoch) derivations attempted
    joiner_reads: int = 0  # (joiner, earlier probe) reads attempted, each also re-framed
    sampled: bool = False  # decrypts were sampled (a group above FULL_MESH_MAX)

    def add(self, other: Checks) -> None:
        for name in (
            "agreement",
            "decrypts",
            "removed_epochs",
            "removed_reads",
            "joiner_epochs",
            "joiner_reads",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.sampled = self.sampled or other.sampled


@dataclass
class StepResult:
    """One step: what it was, what it cost each member, and what the checks found."""

    index: int
    kind: str
    description: str
    epoch: int
    members: int
    rounds: int
    stale: int  # lost commits (and dropped ring attempts) the members dropped, as a session does
    costs: dict[str, Costs]
    checks: Checks
    failures: list[Failure] = field(default_factory=list)

    @property
    def total(self) -> Costs:
        return Costs.total(list(self.costs.values()))


@dataclass
class SimResult:
    scheme: str
    members: int
    seed: int
    churn: str
    setup: StepResult
    steps: list[StepResult]
    per_member: dict[str, Costs]  # the whole run after setup, by member
    wall_s: float
    checks: Checks

    @property
    def failed(self) -> StepResult | None:
        every = [self.setup, *self.steps]
        return next((s for s in every if s.failures), None)


@dataclass(frozen=True)
class Fault:
    """A fault a test injects at one step, so an invariant breaks for real.

    ``skip``: the ``target`` member does not take in the step's messages (it misses a rekey);
    ``leak``: after the step, the removed ``target`` is handed the current state of a live member
    (a secret from after its removal), so its attack derives a later epoch.
    """

    kind: str  # "skip" | "leak"
    step: int
    target: str


def check_step(world: World, rng: random.Random) -> Checks:
    """Every invariant on the world as it is now; failures go to ``world.failures``."""
    checks = Checks()
    live = world.live()
    if not live:
        world.fail("agreement", "the group has no members left")
        return checks
    _agreement(world, checks)
    if world.failures:
        return checks
    _decrypts(world, rng, checks)
    _removed(world, checks)
    _joiners(world, rng, checks)
    return checks


def _agreement(world: World, checks: Checks) -> None:
    groups = {n: m.group for n, m in world.live().items()}
    first = next(iter(groups.values()))
    roster = sorted((m.leaf, m.display_name, m.identity_key) for m in first.members())
    want = sorted((g.my_leaf, n, g._identity.public_key) for n, g in groups.items())
    for name, g in groups.items():
        checks.agreement += 1
        if g.phase is not Phase.MEMBER:
            world.fail(
                "agreement",
                f"{name} has not settled after the step: it is {g.phase.value} at epoch {g.epoch}",
            )
            return
        if (g.epoch, g.epoch_authenticator, g.tree_hash) != (
            first.epoch,
            first.epoch_authenticator,
            first.tree_hash,
        ):
            world.fail(
                "agreement",
                f"{name} is at epoch {g.epoch}, the others at {first.epoch}, or their authenticators differ",
            )
            return
        if sorted((m.leaf, m.display_name, m.identity_key) for m in g.members()) != want:
            world.fail("agreement", f"{name}'s roster is not the group's members")
            return
    if roster != want:
        world.fail("agreement", "the roster is not the group's members")
    for epoch, auths in world.authenticators.items():
        if len(auths) > 1:
            world.fail(
                "agreement", f"members took in epoch {epoch} with {len(auths)} different authenticators"
            )


def _decrypts(world: World, rng: random.Random, checks: Checks) -> None:
    live = world.live()
    names = sorted(live)
    senders = names if len(names) <= FULL_MESH_MAX else sorted(rng.sample(names, SAMPLED_SENDERS))
    checks.sampled = len(senders) < len(names)
    record = world.epochs[live[names[0]].group.epoch]
    with world.counter.paused():
        for s in senders:
            sender = live[s].group
            text = f"check from {s} at epoch {sender.epoch}".encode()
            data = sender.encrypt(text)
            if record.probe is None:
                record.probe = Probe.of(sender, data)
            for r in names:
                if r == s:
                    continue
                checks.decrypts += 1
                try:
                    ev = live[r].group.receive(data)
                except GroupChatError as exc:
                    world.fail("decrypt", f"{r} cannot read {s} at epoch {sender.epoch}: {exc}")
                    return
                if not (
                    isinstance(ev, MessageReceived) and ev.plaintext == text and ev.sender.display_name == s
                ):
                    world.fail("decrypt", f"{r} read something else than {s} sent at epoch {sender.epoch}")
                    return


def _removed(world: World, checks: Checks) -> None:
    with world.counter.paused():
        for r in world.removed.values():
            a = r.attacker
            if not a.tried:
                before = world.epochs.get(r.epoch - 1)
                why = a.control(before) if before is not None else None
                if why is not None:
                    world.fail("removed", why)
                    return
            for epoch in sorted(e for e in world.epochs if e >= r.epoch and e not in a.tried):
                record = world.epochs[epoch]
                checks.removed_epochs += 1
                route = a.derives(record, first=epoch == r.epoch)
                if route is not None:
                    world.fail(
                        "removed", f"{r.name}, removed at epoch {r.epoch}, derives epoch {epoch} ({route})"
                    )
                    return
                if record.probe is not None:
                    checks.removed_reads += 1
                    how = a.reads(record.probe, trial=r.reads_tried == 0)
                    r.reads_tried += 1
                    if how is not None:
                        world.fail(
                            "removed", f"{r.name}, removed at epoch {r.epoch}, reads epoch {epoch}: {how}"
                        )
                        return


def _joiners(world: World, rng: random.Random, checks: Checks) -> None:
    joined = world.joined
    if len(joined) > JOINERS_PER_STEP:  # the group's setup: every member but the creator joined
        joined = rng.sample(joined, JOINERS_PER_STEP)
    with world.counter.paused():
        for name, first in joined:
            m = world.members.get(name)
            if m is None:
                continue
            a: Attacker = m.attacker(f"{name} (joined at epoch {first})")
            now = world.epochs[m.group.epoch]
            why = a.control(now)
            if why is not None:
                world.fail("joiner", why)
                return
            earlier = sorted(e for e in world.epochs if e < first)[-JOINER_LOOKBACK:]
            for epoch in earlier:
                record = world.epochs[epoch]
                checks.joiner_epochs += 1
                route = a.derives(record, first=epoch == first - 1)
                if route is not None:
                    world.fail("joiner", f"{name}, joined at epoch {first}, derives epoch {epoch} ({route})")
                    return
                if record.probe is not None:
                    checks.joiner_reads += 1
                    how = a.reads(record.probe, trial=True) or Attacker.reframed(m.group, record.probe)
                    if how is not None:
                        world.fail("joiner", f"{name}, joined at epoch {first}, reads epoch {epoch}: {how}")
                        return


def _result(world: World, step: Step | None, before: dict[str, Costs], checks: Checks) -> StepResult:
    live = world.live()
    epoch = next(iter(live.values())).group.epoch if live else -1
    return StepResult(
        index=0 if step is None else step.index,
        kind="setup" if step is None else step.kind,
        description="setup" if step is None else step.describe(),
        epoch=epoch,
        members=len(live),
        rounds=world.rounds,
        stale=world.stale,
        costs=since(world.counter.snapshot(), before),
        checks=checks,
        failures=list(world.failures),
    )


def simulate(
    scheme: str,
    names: Sequence[str],
    steps: Sequence[Step],
    *,
    seed: int = 1,
    churn: str = "random",
    fault: Fault | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SimResult:
    """Build the group of ``names`` (the first creates it and adds the rest), run ``steps`` and
    check after each; stops at the first step that fails a check."""
    t0 = time.perf_counter()
    rng = random.Random(seed)
    world = World(scheme, list(names))
    results: list[StepResult] = []
    with world.counter.counting():
        before = world.counter.snapshot()
        world.rounds = world.stale = 0
        if scheme == "tree":
            # One add at a time: each joiner's first update then goes out alone. (Added in one
            # commit, all n - 1 first updates would race for each epoch: O(n²) lost commits.)
            for i, name in enumerate(names[1:], 1):
                world.commit(names[0], add=[name])
                world.pump()
                if progress is not None:
                    progress(i, len(names) - 1 + len(steps))
        elif len(names) > 1:  # a ring joiner commits no first update: one ring run for everyone
            world.commit(names[0], add=list(names[1:]))
            world.pump()
        setup = _finish(world, None, before, rng)
        baseline = world.counter.snapshot()
        for i, step in enumerate(steps if not setup.failures else ()):
            before = world.counter.snapshot()
            world.failures.clear()
            epoch = max(m.group.epoch for m in world.live().values())
            _run_step(world, step, fault)
            res = _finish(world, step, before, rng, fault, epoch)
            results.append(res)
            if progress is not None:
                done = (len(names) - 1 if scheme == "tree" else 0) + i + 1
                progress(done, done - i - 1 + len(steps))
            if res.failures:
                break
        per_member = since(world.counter.snapshot(), baseline)
    total = Checks()
    for r in [setup, *results]:
        total.add(r.checks)
    return SimResult(
        scheme, len(names), seed, churn, setup, results, per_member, time.perf_counter() - t0, total
    )


def _run_step(world: World, step: Step, fault: Fault | None) -> None:
    if fault is not None and fault.kind == "skip" and fault.step == step.index:
        target = fault.target
        if target not in world.members:
            raise UsageError(f"the fault's member {target!r} is not in the group at step {step.index}")
        world.withhold = lambda who, d: who == target  # it misses everything of this step
    try:
        world.apply(step)
    finally:
        world.withhold = None


def _finish(
    world: World,
    step: Step | None,
    before: dict[str, Costs],
    rng: random.Random,
    fault: Fault | None = None,
    epoch_before: int = -1,
) -> StepResult:
    for m in world.live().values():
        m.keep()
    if fault is not None and fault.kind == "leak" and step is not None and fault.step == step.index:
        leaked = world.removed.get(fault.target)
        if leaked is None:
            raise UsageError(f"the fault's member {fault.target!r} was not removed by step {step.index}")
        donor = next(iter(world.live().values()))
        with world.counter.paused():  # hand it a live member's state: a secret from after its removal
            donor.keeper.keep(donor.group)
            leaked.attacker = Attacker(
                leaked.attacker.label,
                leaked.attacker.deriver.held | donor.keeper.held(),
                leaked.attacker.inits,
                leaked.attacker.suite,
                leaked.attacker.scheme,
            )
    costs = since(world.counter.snapshot(), before)
    if step is not None and step.kind != "message" and not world.failures:
        now = max((m.group.epoch for m in world.live().values()), default=-1)
        if now <= epoch_before:
            world.fail("agreement", f"the {step.kind}'s commit did not make a new epoch (still {now})")
    checks = check_step(world, rng) if not world.failures else Checks()
    res = _result(world, step, before, checks)
    res.costs = costs
    return res
