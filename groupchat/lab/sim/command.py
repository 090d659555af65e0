"""``groupchat sim``: the command line of the simulator (``add_arguments`` and ``run``, see cli.py).

``groupchat sim --members N --scheme tree|ring|both --churn random|FILE --steps K --seed S`` runs
one group per scheme and checks every invariant after every step (:mod:`.run`); ``--compare
--sizes ...`` runs one rekey per scheme and size (:mod:`.compare`). Exit status: 0 when every
invariant held, 1 when one failed (the report names the step), 2 for bad input (one line).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Final

from ...cli import error_line, positive_int
from ...core.errors import GroupChatError
from .churn import CHURN_HELP, ChurnError, initial_names, parse_churn, random_schedule
from .compare import DEFAULT_RING_BUDGET_S, DEFAULT_SIZES, SCHEMES, compare
from .report import (
    Progress,
    compare_json,
    need_matplotlib,
    plot_compare,
    plot_sim,
    print_compare,
    print_sim,
    sim_json,
)
from .run import Fault, SimResult, simulate

__all__ = ["MAX_MEMBERS", "add_arguments", "parse_fault", "parse_sizes", "run"]

MAX_MEMBERS: Final = 256  # every member is a full Group checked against every other: O(n²) a step
_MAX_SIZE: Final = 1 << 16
_PLOT_SUFFIXES: Final = (".svg", ".png")


def parse_sizes(text: str) -> list[int]:
    """An argparse type: comma-separated group sizes, each 1..65536."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            n = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"sizes are whole numbers separated by commas, not {part!r}"
            ) from None
        if not 1 <= n <= _MAX_SIZE:
            raise argparse.ArgumentTypeError(f"a group size is 1 to {_MAX_SIZE}, not {n}")
        out.append(n)
    return sorted(set(out))


def parse_fault(text: str) -> Fault:
    """A test hook: ``skip:STEP:NAME`` (NAME misses that step's messages) or ``leak:STEP:NAME``
    (after that step the removed NAME is handed a live member's state)."""
    parts = text.split(":")
    if len(parts) != 3 or parts[0] not in ("skip", "leak") or not parts[1].isdigit():
        raise argparse.ArgumentTypeError(f"a fault is skip:STEP:NAME or leak:STEP:NAME, not {text!r}")
    return Fault(parts[0], int(parts[1]), parts[2])


def _plot_path(text: str) -> str:
    if Path(text).suffix.lower() not in _PLOT_SUFFIXES:
        raise argparse.ArgumentTypeError(f"the plot is written as .svg or .png, not {text!r}")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = CHURN_HELP
    parser.add_argument(
        "--members",
        type=positive_int,
        default=8,
        metavar="N",
        help=f"members at the start (1 to {MAX_MEMBERS})",
    )
    parser.add_argument(
        "--scheme",
        choices=("tree", "ring", "both"),
        default="tree",
        help="the key agreement: the ratchet tree, the ring, or both side by side",
    )
    parser.add_argument(
        "--churn",
        default="random",
        metavar="random|FILE",
        help="a seeded random schedule, or a churn script (format below)",
    )
    parser.add_argument(
        "--steps",
        type=positive_int,
        default=40,
        metavar="K",
        help="steps of the random schedule (a script runs all its lines)",
    )
    parser.add_argument("--seed", type=int, default=1, metavar="S", help="seed of the random schedule")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts instead of the table")
    parser.add_argument(
        "--plot",
        type=_plot_path,
        metavar="FILE.svg|png",
        help="also draw the costs (needs matplotlib: pip install 'groupchat[lab]')",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="one rekey in the tree, the ring and a pairwise baseline at each of --sizes",
    )
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=list(DEFAULT_SIZES),
        metavar="N,N,...",
        help="group sizes for --compare (default: 8,64,256,1024)",
    )
    parser.add_argument(
        "--ring-budget",
        type=float,
        default=DEFAULT_RING_BUDGET_S,
        metavar="SECONDS",
        help="--compare skips a ring size whose estimated time is above this",
    )
    parser.add_argument(
        "--inject-fault", type=parse_fault, default=None, help=argparse.SUPPRESS
    )  # tests only


def _error(args: argparse.Namespace, message: str) -> int:
    print(f"{getattr(args, '_prog', 'groupchat sim')}: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    if args.plot is not None:
        hint = need_matplotlib()
        if hint is not None:
            return _error(args, hint)
    if args.compare:
        return _run_compare(args)
    if args.members > MAX_MEMBERS:
        return _error(
            args, f"--members is at most {MAX_MEMBERS} (every member checks every other, every step)"
        )
    try:
        if args.churn == "random":
            steps, churn = random_schedule(args.members, args.steps, args.seed), "random churn"
        else:
            text = Path(args.churn).read_text(encoding="utf-8")
            steps, churn = parse_churn(text, args.members), f"churn script {args.churn}"
    except (ChurnError, OSError, UnicodeDecodeError) as exc:
        return _error(args, error_line(exc) if not isinstance(exc, ChurnError) else str(exc))
    schemes = ("tree", "ring") if args.scheme == "both" else (args.scheme,)
    results: list[SimResult] = []
    for scheme in schemes:
        bar = Progress(f"sim {scheme}")
        try:
            results.append(
                simulate(
                    scheme,
                    initial_names(args.members),
                    steps,
                    seed=args.seed,
                    churn=churn,
                    fault=args.inject_fault,
                    progress=bar,
                )
            )
        except GroupChatError as exc:
            bar.close()
            return _error(args, error_line(exc))
        bar.close()
    if args.json:
        print(json.dumps(sim_json(results), indent=1))
    else:
        print_sim(results, sys.stdout)
    if args.plot is not None:
        plot_sim(results, args.plot)
    status = 0
    for r in results:
        failed = r.failed
        if failed is not None:
            first = failed.failures[0]
            print(
                f"{getattr(args, '_prog', 'groupchat sim')}: {r.scheme}: an invariant failed at step "
                f"{failed.index} ({failed.description}): {first.check}: {first.detail}",
                file=sys.stderr,
            )
            status = 1
    return status


def _run_compare(args: argparse.Namespace) -> int:
    if args.ring_budget <= 0:
        return _error(args, "--ring-budget wants a number of seconds above 0")
    bar = Progress("compare")
    try:
        points = compare(args.sizes, SCHEMES, args.ring_budget, progress=bar)
    finally:
        bar.close()
    if args.json:
        print(json.dumps(compare_json(points), indent=1))
    else:
        print_compare(points, sys.stdout)
    if args.plot is not None:
        plot_compare(points, args.plot)
    return 0
