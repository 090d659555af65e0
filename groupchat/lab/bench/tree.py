"""The tree rekey bench's samplers: time update/remove/add commits, receivers, messages, taint runs.

Each sample runs the real flow remove → add → update on the live group (``scene``): the committer
removes the member at leaf 2, adds a fresh joiner, who lands in that same (leftmost free) leaf and
commits its own first update right after joining (not timed; the protocol asks every joiner to),
and then the committer updates its own path, with nothing to re-key. The group therefore returns to
n members after every sample, and the add always fills a leaf whose path has all d levels, as in a
steady-state group; the tree is never grown by the bench. Welcomes are drained from the committer's
``data_to_send()`` outside the timed sections. Each round starts with the floor measured next to
it and then one untimed update of the committer (``_rewarm``), so that no timed op runs straight
after the floor's tight loops of primitives, which leave the caches cold for the group's code.

The raw samples come back as :class:`SizeResult`; ``rekey`` turns them into the report. Beside
``ring`` (the ring bench's samplers), and like it built on ``floor`` only, never on ``rekey``.
"""

from __future__ import annotations

import dataclasses
import gc
import os
from typing import Final

from ...core.events import EpochChanged, MessageReceived
from ...core.group import Group, GroupConfig
from ...core.identity import PendingJoin
from .floor import MESSAGE_BYTES, Clock, Floor, depth, measure_floor
from .scene import (
    COMMITTER,
    COMMITTER_SIBLING,
    VICTIM,
    VICTIM_SIBLING,
    Scene,
    build_group,
    deliver,
    lca_level,
    take_welcome,
)

__all__ = [
    "OPS",
    "TAINT_KS",
    "TAINT_VARIANTS",
    "OpSamples",
    "SizeResult",
    "TaintSamples",
    "bench_size",
    "bench_taint",
]

OPS: Final = ("update", "remove", "add")
TAINT_KS: Final = (1, 4, 16)
TAINT_VARIANTS: Final = ("vacated", "sealed")
_TAINT_MAX_REPEAT: Final = 5


@dataclasses.dataclass(slots=True)
class OpSamples:
    """Raw samples (ns and bytes) of one commit kind at one group size."""

    create_ns: list[int] = dataclasses.field(default_factory=list)
    own_apply_ns: list[int] = dataclasses.field(default_factory=list)
    process_ns: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    commit_bytes: list[int] = dataclasses.field(default_factory=list)
    welcome_bytes: list[int] = dataclasses.field(default_factory=list)
    join_ns: list[int] = dataclasses.field(default_factory=list)  # to first send: join + roster check
    read_ns: list[int] = dataclasses.field(default_factory=list)  # to first read: the deferred join


@dataclasses.dataclass(slots=True)
class SizeResult:
    """Every raw sample at one group size, with the floors measured next to them, for the report."""

    n: int
    d: int
    setup_s: float
    receivers: dict[str, dict[str, int]]  # op -> role -> leaf
    levels: dict[str, dict[str, int]]  # op -> role -> DH levels that receiver recomputes
    ops: dict[str, OpSamples]
    floors: list[Floor] = dataclasses.field(
        default_factory=list
    )  # one per sample round, measured just before it
    encrypt_ns: list[int] = dataclasses.field(default_factory=list)
    decrypt_ns: list[int] = dataclasses.field(default_factory=list)
    message_floors: list[Floor] = dataclasses.field(default_factory=list)  # the floor next to each message
    taint: dict[str, TaintSamples] = dataclasses.field(default_factory=dict)  # "variant:k" -> samples


@dataclasses.dataclass(slots=True)
class TaintSamples:
    """Raw samples of removing a member that chose k other leaves' secrets (one variant, one k)."""

    variant: str
    k: int
    create_ns: list[int] = dataclasses.field(default_factory=list)
    own_apply_ns: list[int] = dataclasses.field(default_factory=list)
    worst_ns: list[int] = dataclasses.field(default_factory=list)  # leaf 3: d levels
    typical_ns: list[int] = dataclasses.field(default_factory=list)
    typical_levels: list[int] = dataclasses.field(default_factory=list)
    commit_bytes: list[int] = dataclasses.field(default_factory=list)
    floors: list[Floor] = dataclasses.field(default_factory=list)


# Short floor measurements taken next to the samples: ~20 ms each.
_NEAR_BATCH, _NEAR_ROUNDS, _MESSAGES_PER_FLOOR = 20, 3, 25
_MESSAGE_BATCH: Final = 5  # messages timed back to back per sample (see _run_messages)


def _roles(scene: Scene, op: str) -> dict[str, int]:
    """Leaf of each measured receiver for ``op``: worst = sibling of the changed leaf."""
    changed = COMMITTER if op == "update" else VICTIM
    worst = COMMITTER_SIBLING if op == "update" else VICTIM_SIBLING
    assert lca_level(changed, worst) == 1
    return {"worst": worst, "typical": scene.typical, "committer_sibling": COMMITTER_SIBLING}


def _run_commit(
    scene: Scene, op: str, clock: Clock, samples: OpSamples | None, pj: PendingJoin | None = None
) -> None:
    """Build, deliver and apply one commit of kind ``op``; record its costs into ``samples``."""
    c = scene.committer
    t0 = clock()
    if op == "update":
        msg = c.commit(update=True)
    elif op == "remove":
        msg = c.commit(remove=[VICTIM])
    else:
        assert pj is not None
        msg = c.commit(add=[pj.request])
    t1 = clock()
    times: dict[str, int] = {}
    for leaf, group in scene.held.items():
        if leaf == COMMITTER:
            continue
        s = clock()
        event = group.receive(msg)
        times[str(leaf)] = clock() - s
        assert isinstance(event, EpochChanged), event
    s = clock()
    own = c.receive(msg)
    own_ns = clock() - s
    assert isinstance(own, EpochChanged) and own.own
    join_ns = read_ns = 0
    welcome = b""
    if op == "add":
        assert pj is not None
        welcome = take_welcome(c, 1)  # untimed: between the echo and the join
        # The way a session joins: read at once, send once the roster check (n verifies) is done.
        s = clock()
        joined = Group.join(pj, welcome, scene.config, verify_roster=False)
        read_ns = clock() - s
        check = joined.roster_check()
        if check is not None:  # (None only if the welcome listed nobody but the adder and us)
            joined.roster_verified(check.run())
        join_ns = clock() - s
        if joined.my_leaf != VICTIM or joined.epoch_authenticator != c.epoch_authenticator:
            raise RuntimeError(f"joiner is at leaf {joined.my_leaf} or in another epoch")
        # The joiner's own first update: its leaf no longer carries a secret the committer chose,
        # so the committer's next update has nothing to re-key.
        deliver(scene, joined, joined.commit(update=True))
    scene.check_consistent()
    if samples is None:
        return
    samples.create_ns.append(t1 - t0)
    samples.own_apply_ns.append(own_ns)
    for role, leaf in _roles(scene, op).items():
        samples.process_ns.setdefault(role, []).append(times[str(leaf)])
    samples.commit_bytes.append(len(msg))
    if op == "add":
        samples.welcome_bytes.append(len(welcome))
        samples.join_ns.append(join_ns)
        samples.read_ns.append(read_ns)


def _run_messages(scene: Scene, clock: Clock, count: int, result: SizeResult) -> None:
    """Time ``Group.encrypt`` at one member and ``Group.receive`` of it at another.

    Messages are timed the way the floor's primitives are (``floor.per_op_us``): a batch of up to
    ``_MESSAGE_BATCH`` encrypts back to back, then their receives back to back, each sample the
    mean of its batch. One message at a time, between two clock reads and after the other side's
    work, would also count the clock's own cost and a cold cache against a floor measured warm.
    """
    sender, receiver = scene.held[COMMITTER_SIBLING], scene.held[scene.typical]
    plaintext = os.urandom(MESSAGE_BYTES)
    batch = max(1, min(_MESSAGE_BATCH, count))
    floor: Floor | None = None
    sent = -batch  # the first batch is a warm-up (lazy per-sender work)
    while sent < count:
        if sent >= 0 and (floor is None or sent % _MESSAGES_PER_FLOOR < batch):
            floor = measure_floor(clock, scene.config.suite_id, _NEAR_BATCH, _NEAR_ROUNDS)
        gc.collect()
        t0 = clock()
        sealed = [sender.encrypt(plaintext) for _ in range(batch)]
        t1 = clock()
        events = [receiver.receive(data) for data in sealed]
        t2 = clock()
        assert all(isinstance(e, MessageReceived) and e.plaintext == plaintext for e in events)
        if sent >= 0:
            assert floor is not None
            result.encrypt_ns.append((t1 - t0) // batch)
            result.decrypt_ns.append((t2 - t1) // batch)
            result.message_floors.append(floor)
        sent += batch


def _spread_victims(scene: Scene, k: int) -> list[int]:
    """k members nobody plays, spread over the right end of the tree (away from the held leaves)."""
    occupied = {m.leaf for m in scene.committer.members()}
    pool = [leaf for leaf in sorted(occupied, reverse=True) if leaf > VICTIM and leaf not in scene.held]
    step = max(1, len(pool) // (4 * k))
    victims = pool[::step][:k]
    if len(victims) < k:
        raise RuntimeError(f"n = {scene.n} has too few unplayed members to remove {k}")
    return victims


def _run_taint(scene: Scene, variant: str, k: int, clock: Clock, samples: TaintSamples | None) -> None:
    """A member T chooses k leaves' secrets (removes k members, or adds k joiners), then the
    committer removes T: that commit carries 1 remove + k re-keys; time it and its receivers."""
    c, config = scene.committer, scene.config
    # The floor before the untimed setup below, not right before the timed commit: the setup's
    # group work, not the floor's tight loops, is what the timed commit follows (see _rewarm).
    floor = measure_floor(clock, config.suite_id, _NEAR_BATCH, _NEAR_ROUNDS) if samples else None
    pj = scene.pending_join()
    deliver(scene, c, c.commit(add=[pj.request]))
    tainter = Group.join(pj, take_welcome(c, 1), config)  # lands in the free leaf 2, next to leaf 3
    if tainter.my_leaf != VICTIM:
        raise RuntimeError(f"the tainting member landed at leaf {tainter.my_leaf}, not {VICTIM}")
    if variant == "vacated":
        msg = tainter.commit(remove=_spread_victims(scene, k))
    else:  # the joiners fill the slots the vacated variant emptied: n stays the same
        msg = tainter.commit(add=[scene.pending_join().request for _ in range(k)])
    deliver(scene, tainter, msg)
    d = depth(scene.n)
    changed = [leaf for leaf, chooser in c.taint_record().items() if chooser == VICTIM]
    if len(changed) != k:
        raise RuntimeError(f"leaf {VICTIM} chose {len(changed)} leaves' secrets, expected {k}")
    gc.collect()
    t0 = clock()
    msg = c.commit(remove=[VICTIM])
    t1 = clock()
    times: dict[int, int] = {}
    for leaf, group in scene.held.items():
        if group is not c:
            s = clock()
            assert isinstance(group.receive(msg), EpochChanged)
            times[leaf] = clock() - s
    s = clock()
    echo = c.receive(msg)
    own_ns = clock() - s
    assert isinstance(echo, EpochChanged) and echo.own
    scene.check_consistent()
    if samples is None:
        return
    assert floor is not None
    samples.create_ns.append(t1 - t0)
    samples.own_apply_ns.append(own_ns)
    samples.worst_ns.append(times[VICTIM_SIBLING])
    samples.typical_ns.append(times[scene.typical])
    # A receiver climbs once, from the lowest node where any changed leaf's path meets its own.
    samples.typical_levels.append(d - min(lca_level(scene.typical, x) for x in [VICTIM, *changed]) + 1)
    samples.commit_bytes.append(len(msg))
    samples.floors.append(floor)


def bench_taint(scene: Scene, clock: Clock, repeat: int) -> dict[str, TaintSamples]:
    """Removals that must re-key k = 1, 4, 16 leaves, both variants; skipped below n = 128."""
    out: dict[str, TaintSamples] = {}
    if scene.n < 128:
        return out
    c = scene.committer
    deliver(scene, c, c.commit(remove=[VICTIM]))  # leaf 2 free: every tainting member lands there
    for k in TAINT_KS:
        for variant in TAINT_VARIANTS:
            out[f"{variant}:{k}"] = TaintSamples(variant, k)
        for i in range(min(repeat, _TAINT_MAX_REPEAT) + 1):  # round 0 warms up
            for variant in TAINT_VARIANTS:
                _run_taint(scene, variant, k, clock, out[f"{variant}:{k}"] if i else None)
    return out


def _rewarm(scene: Scene) -> None:
    """An untimed update of the committer, delivered to every held member, between the floor and
    the round: the floor's tight loops of primitives leave the caches cold for the group's code and
    data, and the first op timed after them (the remove) paid for that alone (about 0.4x of its
    committer figure), while every other op follows the round's own group work."""
    deliver(scene, scene.committer, scene.committer.commit(update=True))


def bench_size(n: int, config: GroupConfig, clock: Clock, repeat: int, messages: int) -> SizeResult:
    """Build an n-member group, then time ``repeat`` remove/add/update rounds after one warm-up."""
    scene = build_group(n, config)
    ops = {op: OpSamples() for op in OPS}
    roles = {op: _roles(scene, op) for op in OPS}
    changed = {"update": COMMITTER, "remove": VICTIM, "add": VICTIM}
    levels = {
        op: {role: depth(n) - lca_level(changed[op], leaf) + 1 for role, leaf in r.items()}
        for op, r in roles.items()
    }
    result = SizeResult(n, depth(n), scene.setup_s, roles, levels, ops)
    gc.collect()
    gc.freeze()  # the group's long-lived objects: keep them out of every later collection
    gc.disable()
    try:
        for i in range(repeat + 1):  # round 0 warms up lazy signature checks and caches
            if i:
                result.floors.append(measure_floor(clock, config.suite_id, _NEAR_BATCH, _NEAR_ROUNDS))
                _rewarm(scene)
            for op in ("remove", "add", "update"):
                pj = scene.pending_join() if op == "add" else None
                gc.collect()
                _run_commit(scene, op, clock, ops[op] if i else None, pj)
        _run_messages(scene, clock, messages, result)
        result.taint = bench_taint(scene, clock, repeat)
    finally:
        gc.enable()
        gc.unfreeze()
    return result
