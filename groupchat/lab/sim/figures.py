"""``make lab-docs``: the tables and plots of docs/lab.md, measured again in this run.

Three figures, each counted with the sim's :class:`~groupchat.lab.sim.counting.OpCounter` (pyca
calls and process time, so the times carry the counter's overhead, about 1.5x; the counts do not):

* **compare**: one rekey in the tree, the ring and the pairwise baseline at 8 ... 1024 members
  (:mod:`.compare`): CPU and public-key operations per member, bytes delivered, rounds;
* **join**: one joiner added to a tree group of n: the adder's commit and Welcome, the Welcome's
  size, the joiner's ``Group.join`` (it verifies every leaf's signed request), one member's receive;
* **taint**: removing a member that chose the leaf secrets of k members who have not updated since
  (it added them): the commit re-keys those k leaves besides the path (docs/protocol.md, taint).

Each table is written into docs/lab.md between ``<!-- lab-docs: NAME -->`` and ``<!-- /lab-docs -->``;
each plot to ``docs/lab/NAME.svg``. Without matplotlib the tables are still written and the run
says which plots it left as they were.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ...core.events import EpochChanged
from ...core.group import Group, GroupConfig
from ...core.identity import Identity, JoinRequest, PendingJoin
from ..bench.scene import take_welcome
from .compare import DEFAULT_SIZES, Point, compare
from .counting import Costs, OpCounter
from .report import need_matplotlib, plot_compare, plot_loglog

__all__ = [
    "JOIN_SIZES",
    "TAINT_KS",
    "JoinPoint",
    "TaintPoint",
    "join_point",
    "main",
    "render_tables",
    "replace_section",
    "taint_point",
]

JOIN_SIZES: Final = (8, 64, 256, 1024)
TAINT_KS: Final = (0, 1, 4, 16)
TAINT_N: Final = 64
_GROUP_ID: Final = b"groupchat-lab-figures"
_SECTION: Final = re.compile(r"(<!-- lab-docs: (\w+) -->\n).*?(<!-- /lab-docs -->)", re.S)


@dataclass(frozen=True, slots=True)
class JoinPoint:
    """One add at size n (the group has n members before it)."""

    n: int
    adder: Costs
    joiner: Costs
    receiver: Costs
    commit_bytes: int
    welcome_bytes: int


@dataclass(frozen=True, slots=True)
class TaintPoint:
    """The removal of a member that chose k others' leaf secrets, in a group of ``TAINT_N + k``."""

    k: int
    committer: Costs
    receiver: Costs
    commit_bytes: int


def _requests(suite_config: GroupConfig, names: Sequence[str]) -> list[PendingJoin]:
    suite = suite_config.suite()
    return [JoinRequest.create(suite, Identity.generate(), _GROUP_ID, name) for name in names]


def join_point(n: int) -> JoinPoint:
    """A tree group of n built as the bench builds it; the creator adds one more member."""
    config = GroupConfig()
    creator = Group.create(Identity.generate(), _GROUP_ID, "m0", config)
    if n > 1:
        pjs = _requests(config, [f"m{i}" for i in range(1, n)])
        assert isinstance(creator.receive(creator.commit(add=[p.request for p in pjs])), EpochChanged)
        welcome = take_welcome(creator, n - 1)
        other = Group.join(pjs[-1], welcome, config)
    (newcomer,) = _requests(config, ["newcomer"])
    counter = OpCounter()
    with counter.counting():
        with counter.member("adder"):
            commit = creator.commit(add=[newcomer.request])
            creator.receive(commit)
            welcome = take_welcome(creator, 1)
        with counter.member("joiner"):
            Group.join(newcomer, welcome, config)
        if n > 1:
            with counter.member("receiver"):
                other.receive(commit)
    costs = counter.snapshot()
    receiver = costs.get("receiver", Costs())
    return JoinPoint(n, costs["adder"], costs["joiner"], receiver, len(commit), len(welcome))


def taint_point(k: int, n: int = TAINT_N) -> TaintPoint:
    """n members who all updated (no taint), then member 1 adds k joiners that do not update, and
    member 2 removes member 1: its commit re-keys the k leaves member 1 chose."""
    config = GroupConfig()
    creator = Group.create(Identity.generate(), _GROUP_ID, "m0", config)
    pjs = _requests(config, [f"m{i}" for i in range(1, n)])
    assert isinstance(creator.receive(creator.commit(add=[p.request for p in pjs])), EpochChanged)
    welcome = take_welcome(creator, n - 1)
    members = [creator, *(Group.join(p, welcome, config) for p in pjs)]

    def everyone(data: bytes) -> None:
        for g in members:
            g.receive(data)

    for g in members:  # each member replaces the leaf secret the creator chose for it
        everyone(g.commit(update=True))
    assert all(g.tainted_by(g.my_leaf) is None for g in members)
    chooser, committer, receiver = members[1], members[2], members[3]
    if k:
        joiners = _requests(config, [f"j{i}" for i in range(k)])
        everyone(chooser.commit(add=[p.request for p in joiners]))
        take_welcome(chooser, k)
    assert len(committer.taint_record()) == k
    counter = OpCounter()
    with counter.counting():
        with counter.member("committer"):
            commit = committer.commit(remove=[chooser.my_leaf])
            committer.receive(commit)
        with counter.member("receiver"):
            receiver.receive(commit)
    costs = counter.snapshot()
    return TaintPoint(k, costs["committer"], costs["receiver"], len(commit))


def _ms(c: Costs) -> str:
    return f"{c.cpu_ns / 1e6:.2f}"


def _compare_table(points: Sequence[Point]) -> str:
    rows = [
        "| scheme | n | CPU per member (ms) | the committer's CPU (ms) | public-key ops per member "
        "| bytes delivered per member | rounds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for pt in points:
        if pt.skipped:
            rows.append(f"| {pt.scheme} | {pt.n} | {pt.skipped} | | | | |")
            continue
        rows.append(
            f"| {pt.scheme} | {pt.n} | {pt.per_member_ms:.3f} | {pt.committer.cpu_ns / 1e6:.2f} "
            f"| {pt.public_key_ops / pt.n:.1f} | {pt.delivered_per_member:.0f} | {pt.rounds} |"
        )
    return "\n".join(rows)


def _join_table(points: Sequence[JoinPoint]) -> str:
    rows = [
        "| n | the adder's CPU (ms) | commit (B) | Welcome (KB) | the joiner's CPU (ms) | joiner: verify "
        "| joiner: HPKE open | a member's receive (ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        rows.append(
            f"| {p.n} | {_ms(p.adder)} | {p.commit_bytes} | {p.welcome_bytes / 1000:.1f} | {_ms(p.joiner)} "
            f"| {p.joiner.verify} | {p.joiner.hpke_open} | {_ms(p.receiver)} |"
        )
    return "\n".join(rows)


def _taint_table(points: Sequence[TaintPoint]) -> str:
    rows = [
        "| k (leaves the removed member chose) | the committer's CPU (ms) | its HPKE seals | its X25519 "
        "| commit (B) | a receiver's CPU (ms) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        rows.append(
            f"| {p.k} | {_ms(p.committer)} | {p.committer.hpke_seal} | {p.committer.x25519} "
            f"| {p.commit_bytes} | {_ms(p.receiver)} |"
        )
    return "\n".join(rows)


def render_tables(
    points: Sequence[Point], joins: Sequence[JoinPoint], taints: Sequence[TaintPoint]
) -> dict[str, str]:
    """Each section's Markdown table, by the name its markers carry in docs/lab.md."""
    return {"compare": _compare_table(points), "join": _join_table(joins), "taint": _taint_table(taints)}


def replace_section(doc: str, name: str, body: str) -> str:
    """``doc`` with the text between ``name``'s markers replaced by ``body``; ``ValueError`` if
    the markers are missing (the page and this module must agree)."""
    found = False

    def swap(m: re.Match[str]) -> str:
        nonlocal found
        if m.group(2) != name:
            return m.group(0)
        found = True
        return f"{m.group(1)}{body}\n{m.group(3)}"

    out = _SECTION.sub(swap, doc)
    if not found:
        raise ValueError(f"docs/lab.md has no <!-- lab-docs: {name} --> section")
    return out


def _plot_joins(points: Sequence[JoinPoint], path: Path) -> None:
    panels: tuple[tuple[str, Callable[[JoinPoint], float]], ...] = (
        ("the adder's CPU (ms)", lambda p: p.adder.cpu_ns / 1e6),
        ("the joiner's CPU (ms)", lambda p: p.joiner.cpu_ns / 1e6),
        ("Welcome size (KB)", lambda p: p.welcome_bytes / 1000),
    )
    series = {"tree": [(p.n, [value(p) for _, value in panels]) for p in points]}
    plot_loglog(series, [label for label, _ in panels], "one join in a tree group", str(path), (12, 3.6))


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, rewrite docs/lab.md's tables and (with matplotlib) docs/lab/*.svg."""
    parser = argparse.ArgumentParser(prog="python -m groupchat.lab.sim.figures", description="make lab-docs")
    parser.add_argument("docs", type=Path, nargs="?", default=Path("docs"), help="the docs directory")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=list(DEFAULT_SIZES),
                        help="compare and join sizes (default 8,64,256,1024)")
    args = parser.parse_args(argv)
    page = args.docs / "lab.md"
    doc = page.read_text()
    t0 = time.perf_counter()
    points = compare(args.sizes)
    joins = [join_point(n) for n in args.sizes]
    taints = [taint_point(k) for k in TAINT_KS]
    for name, table in render_tables(points, joins, taints).items():
        doc = replace_section(doc, name, table)
    page.write_text(doc)
    print(f"{page}: compare, join and taint tables measured again ({time.perf_counter() - t0:.0f} s)")
    missing = need_matplotlib()
    if missing is not None:
        print(f"plots left as they were: {missing}")
        return 0
    images = args.docs / "lab"
    images.mkdir(exist_ok=True)
    plot_compare(points, str(images / "compare.svg"))
    _plot_joins(joins, images / "join.svg")
    print(f"{images}/compare.svg, {images}/join.svg: drawn")
    return 0


if __name__ == "__main__":
    sys.exit(main())
