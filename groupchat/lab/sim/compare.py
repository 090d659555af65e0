"""``groupchat sim --compare``: one rekey in the tree, the ring and a pairwise baseline, by group size.

Each point is one rekey (a member replaces the group key) in a group of n, counted with the same
:class:`~groupchat.lab.sim.counting.OpCounter` as the sim:

* **tree**: a real group of n leaves built as ``bench rekey`` builds it (the creator adds everyone
  in one commit; only the members measured call ``Group.join``): the committer (leaf 1) commits
  an update, and one receiver at each level of the tree takes it in. A receiver's cost depends only
  on the level where its path meets the committer's, and 2^(l-1) leaves meet it at level l, so the
  group's total is the committer's plus each level's receiver times its leaves: exact, not sampled.
* **ring**: a real ring group of n members (:class:`~groupchat.lab.sim.world.World`): one member
  commits an update and all n run the three rounds; every member is measured. A ring costs O(n²)
  signature checks in all, so a size whose estimate (from the last size run, growing as n²)
  exceeds ``ring_budget_s`` is not run, and the report says so.
* **pairwise** (sender keys): the committer draws a new 32-byte group key and sends each other
  member its own copy, sealed with HPKE (the project's suite, ``CipherSuite.encrypt_with_label``)
  and signed (Ed25519); each member checks the signature and opens its copy.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ...core.events import EpochChanged
from ...core.group import Group, GroupConfig
from ...core.identity import Identity, JoinRequest
from ..bench.scene import take_welcome
from .churn import initial_names
from .counting import Costs, OpCounter, since
from .world import World

__all__ = [
    "DEFAULT_RING_BUDGET_S",
    "DEFAULT_SIZES",
    "SCHEMES",
    "Point",
    "compare",
    "pairwise_point",
    "ring_point",
    "tree_point",
]

DEFAULT_SIZES: Final = (8, 64, 256, 1024)
DEFAULT_RING_BUDGET_S: Final = 30.0
SCHEMES: Final = ("tree", "ring", "pairwise")
_GROUP_ID: Final = b"groupchat-sim-compare"
_PAIRWISE_LABEL: Final = b"pairwise group key"
_HEADER: Final = 8  # the pairwise message's sender leaf and key generation


@dataclass
class Point:
    """One rekey at one size: the whole group's costs, the committer's, and the mean member's."""

    scheme: str
    n: int
    total: Costs = field(default_factory=Costs)
    committer: Costs = field(default_factory=Costs)
    rounds: int = 0
    seconds: float = 0.0  # to build and measure this point
    skipped: str = ""  # why it was not run (the ring above its budget)

    @property
    def per_member_ms(self) -> float:
        return self.total.cpu_ns / 1e6 / self.n

    @property
    def delivered_per_member(self) -> float:
        return self.total.bytes_delivered / self.n

    @property
    def public_key_ops(self) -> int:
        t = self.total
        return t.x25519 + t.sign + t.verify + t.hpke_seal + t.hpke_open

    def as_json(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "n": self.n,
            "run": not self.skipped,
            "skipped": self.skipped or None,
            "total": self.total.as_dict(),
            "committer": self.committer.as_dict(),
            "per_member_ms": self.per_member_ms if not self.skipped else None,
            "delivered_per_member": self.delivered_per_member if not self.skipped else None,
            "public_key_ops_per_member": self.public_key_ops / self.n if not self.skipped else None,
            "rounds": self.rounds,
            "seconds": self.seconds,
        }


def _scaled(c: Costs, k: int) -> Costs:
    return Costs(**{name: v * k for name, v in c.as_dict().items()})


def tree_point(n: int) -> Point:
    """One update by leaf 1 in an n-leaf tree group (see the module docstring)."""
    t0 = time.perf_counter()
    config = GroupConfig()
    suite = config.suite()
    depth = max(1, (n - 1).bit_length())
    # The receiver whose path meets leaf 1's at level l is leaf 1 ^ 2^(l-1): one per level.
    receivers = {lvl: 1 ^ (1 << (lvl - 1)) for lvl in range(1, depth + 1) if 1 ^ (1 << (lvl - 1)) < n}
    held: dict[int, Group] = {0: Group.create(Identity.generate(), _GROUP_ID, "m0", config)}
    if n == 1:
        return _lone("tree", t0)
    pjs = [JoinRequest.create(suite, Identity.generate(), _GROUP_ID, f"m{i}") for i in range(1, n)]
    creator = held[0]
    assert isinstance(creator.receive(creator.commit(add=[pj.request for pj in pjs])), EpochChanged)
    welcome = take_welcome(creator, n - 1)
    for leaf in {1, *receivers.values()} - {0}:
        held[leaf] = Group.join(pjs[leaf - 1], welcome, config)
    committer = held[1]
    _deliver(held, committer, committer.commit(update=True))  # its leaf was the creator's choice
    counter = OpCounter()
    with counter.counting():
        with counter.member("committer"):
            data = committer.commit(update=True)
        counter.of("committer").bytes_sent += len(data)
        for leaf, g in held.items():
            name = "committer" if leaf == 1 else f"leaf {leaf}"
            with counter.member(name):
                event = g.receive(data)
            assert isinstance(event, EpochChanged), event
            counter.of(name).bytes_delivered += len(data)
    costs = counter.snapshot()
    point = Point("tree", n, rounds=1)
    point.committer = costs["committer"]
    point.total.add(point.committer)
    for lvl, leaf in receivers.items():
        start = ((1 >> (lvl - 1)) ^ 1) << (lvl - 1)
        leaves = max(0, min(n, start + (1 << (lvl - 1))) - start)
        point.total.add(_scaled(costs[f"leaf {leaf}"], leaves))
    point.seconds = time.perf_counter() - t0
    return point


def _deliver(held: dict[int, Group], author: Group, data: bytes) -> None:
    for g in held.values():
        assert isinstance(g.receive(data), EpochChanged)


def _lone(scheme: str, t0: float) -> Point:
    return Point(
        scheme, 1, seconds=time.perf_counter() - t0, skipped="a group of one has no one to rekey with"
    )


def ring_point(n: int) -> Point:
    """One update by m1 in a ring group of n real members, every member measured."""
    t0 = time.perf_counter()
    if n == 1:
        return _lone("ring", t0)
    names = initial_names(n)
    world = World("ring", names)
    world.commit(names[0], add=names[1:])
    world.pump()
    epoch = world.members[names[0]].group.epoch
    world.rounds = world.stale = 0
    world.room.depth.clear()
    with world.counter.counting():
        before = world.counter.snapshot()
        world.commit(names[1], update=True)
        world.pump()
        costs = since(world.counter.snapshot(), before)
    if world.failures or any(m.group.epoch != epoch + 1 for m in world.members.values()):
        raise RuntimeError(f"the ring of {n} did not agree on the next epoch: {world.failures[:1]}")
    point = Point("ring", n, rounds=world.rounds)
    point.committer = costs.get(names[1], Costs())
    point.total = Costs.total(list(costs.values()))
    point.seconds = time.perf_counter() - t0
    return point


def pairwise_point(n: int) -> Point:
    """Sender keys: a new group key sealed to each other member pairwise (HPKE), each copy signed."""
    t0 = time.perf_counter()
    if n == 1:
        return _lone("pairwise", t0)
    suite = GroupConfig().suite()
    sender = Identity.generate()
    inits = [suite.derive_key_pair(os.urandom(32)) for _ in range(n - 1)]  # each member's HPKE key
    counter = OpCounter()
    with counter.counting():
        with counter.member("committer") as mine:
            key = os.urandom(32)
            copies: list[tuple[bytes, bytes, bytes]] = []
            for j, (_, pk) in enumerate(inits):
                kem, ct = suite.encrypt_with_label(pk, _PAIRWISE_LABEL, j.to_bytes(4, "big"), key)
                sig = suite.sign_with_label(sender.signing_key, _PAIRWISE_LABEL, kem + ct)
                copies.append((kem, ct, sig))
                mine.bytes_sent += _HEADER + len(kem) + len(ct) + len(sig)
        for j, ((sk, _), (kem, ct, sig)) in enumerate(zip(inits, copies, strict=True)):
            with counter.member(f"m{j + 1}") as theirs:
                suite.verify_with_label(sender.public_key, _PAIRWISE_LABEL, kem + ct, sig, "pairwise key")
                got = suite.decrypt_with_label(sk, _PAIRWISE_LABEL, j.to_bytes(4, "big"), kem, ct)
                theirs.bytes_delivered += _HEADER + len(kem) + len(ct) + len(sig)
            if got != key:
                raise RuntimeError("a pairwise copy of the group key did not open to the key")
    costs = counter.snapshot()
    point = Point("pairwise", n, rounds=1)
    point.committer = costs["committer"]
    point.total = Costs.total(list(costs.values()))
    point.seconds = time.perf_counter() - t0
    return point


_POINTS: Final[dict[str, Callable[[int], Point]]] = {
    "tree": tree_point,
    "ring": ring_point,
    "pairwise": pairwise_point,
}


def compare(
    sizes: Sequence[int],
    schemes: Sequence[str] = SCHEMES,
    ring_budget_s: float = DEFAULT_RING_BUDGET_S,
    progress: Callable[[int, int], None] | None = None,
) -> list[Point]:
    """Every scheme at every size (ascending); a ring size whose n² estimate exceeds the budget is
    reported as not run, with the estimate."""
    points: list[Point] = []
    todo = [(s, n) for s in schemes for n in sorted(sizes)]
    last_ring: Point | None = None
    for i, (scheme, n) in enumerate(todo):
        if scheme == "ring" and last_ring is not None and not last_ring.skipped:
            estimate = last_ring.seconds * (n / last_ring.n) ** 2
            if estimate > ring_budget_s:
                points.append(
                    Point(
                        "ring",
                        n,
                        skipped=(
                            f"not run: a ring of {n} real members would take about {estimate:.0f} s here "
                            f"(n² from {last_ring.seconds:.1f} s at n = {last_ring.n}; "
                            f"budget {ring_budget_s:.0f} s)"
                        ),
                    )
                )
                if progress is not None:
                    progress(i + 1, len(todo))
                continue
        point = _POINTS[scheme](n)
        if scheme == "ring":
            last_ring = point
        points.append(point)
        if progress is not None:
            progress(i + 1, len(todo))
    return points
