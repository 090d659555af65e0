"""What ``groupchat sim`` prints: the table, the JSON for scripts, the plot, the progress bar.

Every sentence the sim shows a person is here (the failure details come from the checks in
:mod:`.run` and :mod:`.secrecy`). Times are process CPU time with the counting hook on.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, TextIO

from .churn import KINDS
from .compare import Point
from .counting import OPS, Costs
from .run import SimResult, StepResult

__all__ = [
    "PLOT_HINT",
    "TIME_NOTE",
    "Progress",
    "by_operation",
    "compare_json",
    "need_matplotlib",
    "plot_compare",
    "plot_loglog",
    "plot_sim",
    "print_compare",
    "print_sim",
    "sim_json",
]

PLOT_HINT: Final = "--plot needs matplotlib: pip install 'groupchat[lab]'"
TIME_NOTE: Final = "times are process CPU with the counting hook on (about 1.5x the plain cost)"


def need_matplotlib() -> str | None:
    """``None`` if matplotlib can be imported, else the one line that says how to get it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return PLOT_HINT
    return None


class Progress:
    """A one-line progress bar on ``stream``, only if it is a terminal and the run passed a second."""

    def __init__(self, label: str, stream: TextIO | None = None, after_s: float = 1.0) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.after_s = after_s
        self.t0 = time.perf_counter()
        self.shown = False
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, done: int, total: int) -> None:
        elapsed = time.perf_counter() - self.t0
        if not self.tty or elapsed < self.after_s or total <= 0:
            return
        width = 30
        filled = width * done // total
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done}/{total} {elapsed:5.1f} s")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


# --- numbers ---------------------------------------------------------------------------------------


def _row(costs: Costs, members: int) -> dict[str, float]:
    total = costs.as_dict()
    out: dict[str, float] = {k: float(v) for k, v in total.items()}
    out["ms"] = costs.cpu_ns / 1e6
    for k in (*OPS, "bytes_delivered"):
        out[f"{k}_per_member"] = total[k] / members if members else 0.0
    out["ms_per_member"] = out["ms"] / members if members else 0.0
    return out


def by_operation(steps: Sequence[StepResult]) -> dict[str, dict[str, float]]:
    """Mean per step of each kind: totals, per member of the group at that step, and rounds."""
    out: dict[str, dict[str, float]] = {}
    for kind in KINDS:
        mine = [s for s in steps if s.kind == kind]
        if not mine:
            continue
        rows = [_row(s.total, s.members) for s in mine]
        mean = {k: statistics.fmean(r[k] for r in rows) for k in rows[0]}
        mean["steps"] = len(mine)
        mean["rounds"] = statistics.fmean(s.rounds for s in mine)
        mean["members"] = statistics.fmean(s.members for s in mine)
        out[kind] = mean
    return out


def _step_json(s: StepResult) -> dict[str, Any]:
    return {
        "index": s.index,
        "kind": s.kind,
        "description": s.description,
        "epoch": s.epoch,
        "members": s.members,
        "rounds": s.rounds,
        "stale": s.stale,
        "total": s.total.as_dict(),
        "per_member": {n: c.as_dict() for n, c in sorted(s.costs.items())},
        "checks": _checks_json(s),
        "failures": [{"check": f.check, "detail": f.detail} for f in s.failures],
    }


def _checks_json(s: StepResult | SimResult) -> dict[str, Any]:
    c = s.checks
    return {
        "agreement": c.agreement,
        "decrypts": c.decrypts,
        "decrypts_sampled": c.sampled,
        "removed_epochs": c.removed_epochs,
        "removed_reads": c.removed_reads,
        "joiner_epochs": c.joiner_epochs,
        "joiner_reads": c.joiner_reads,
    }


def sim_json(results: Iterable[SimResult]) -> dict[str, Any]:
    """The whole run for scripts: ``{"ok", "runs": [...]}``, one run per scheme."""
    runs = []
    for r in results:
        failed = r.failed
        runs.append(
            {
                "scheme": r.scheme,
                "members": r.members,
                "seed": r.seed,
                "churn": r.churn,
                "wall_s": r.wall_s,
                "ok": failed is None,
                "failed_step": None
                if failed is None
                else {
                    "index": failed.index,
                    "description": failed.description,
                    "failures": [{"check": f.check, "detail": f.detail} for f in failed.failures],
                },
                "setup": _step_json(r.setup),
                "steps": [_step_json(s) for s in r.steps],
                "by_operation": by_operation(r.steps),
                "per_member": {n: c.as_dict() for n, c in sorted(r.per_member.items())},
                "checks": _checks_json(r),
                "time_note": TIME_NOTE,
            }
        )
    return {"ok": all(run["ok"] for run in runs), "runs": runs}


# --- the table ---------------------------------------------------------------------------------------


def _hpke(c: Costs) -> str:
    return f"{c.hpke_seal}/{c.hpke_open}"


def print_sim(results: Sequence[SimResult], out: TextIO, steps_table: bool = True) -> None:
    """The report: each run's steps, its costs by operation, per member, the checks, the verdict."""

    def p(line: str = "") -> None:
        print(line, file=out)

    for r in results:
        n_steps = len(r.steps)
        p(
            f"groupchat sim: {r.scheme}, {r.members} members, {n_steps} steps "
            f"({r.churn}, seed {r.seed}), {r.wall_s:.1f} s"
        )
        p()
        if steps_table:
            p(
                " step  operation                 epoch members rounds  X25519   sign verify  HPKE s/o"
                "  bytes sent  delivered      ms  checks"
            )
            for s in [r.setup, *r.steps]:
                c = s.total
                verdict = "ok" if not s.failures else "FAILED"
                p(
                    f" {s.index:4d}  {s.description[:24]:<24} {s.epoch:6d} {s.members:7d} {s.rounds:6d}"
                    f" {c.x25519:7d} {c.sign:6d} {c.verify:6d} {_hpke(c):>9} {c.bytes_sent:11d}"
                    f" {c.bytes_delivered:10d} {c.cpu_ns / 1e6:7.1f}  {verdict}"
                )
            p()
        ops = by_operation(r.steps)
        if ops:
            p("By operation: mean per step, total / per member of the group at that step")
            p(
                " operation steps members rounds    X25519 total/each    sign  verify/each  HPKE seal/open"
                "  delivered B/each     ms total/each"
            )
            for kind, o in ops.items():
                p(
                    f" {kind:<9} {int(o['steps']):5d} {o['members']:7.1f} {o['rounds']:6.1f}"
                    f" {o['x25519']:10.1f} / {o['x25519_per_member']:5.1f} {o['sign']:7.1f}"
                    f" {o['verify']:7.1f} / {o['verify_per_member']:3.1f}"
                    f" {o['hpke_seal']:6.1f} / {o['hpke_open']:5.1f}"
                    f" {o['bytes_delivered']:9.0f} / {o['bytes_delivered_per_member']:6.0f}"
                    f" {o['ms']:8.1f} / {o['ms_per_member']:5.2f}"
                )
            p()
        if r.per_member:
            p("Per member, whole run after setup: min / median / max over members")
            for key, label in (
                ("x25519", "X25519"),
                ("sign", "signatures made"),
                ("verify", "signatures checked"),
                ("hpke_seal", "HPKE seals"),
                ("hpke_open", "HPKE opens"),
                ("bytes_sent", "bytes sent"),
                ("bytes_delivered", "bytes delivered"),
                ("cpu_ns", "ms"),
            ):
                xs = [getattr(c, key) / (1e6 if key == "cpu_ns" else 1) for c in r.per_member.values()]
                p(f"  {label:<20} {min(xs):10.1f} {statistics.median(xs):10.1f} {max(xs):10.1f}")
            p()
        chk = r.checks
        sampled = f" (sampled: {chk.decrypts} pairs above 64 members)" if chk.sampled else ""
        p("Checks, after every step:")
        p(f"  agreement: {chk.agreement} member-epochs compared (epoch, authenticator, tree hash, roster)")
        p(f"  everyone decrypts everyone: {chk.decrypts} sender-reader pairs opened{sampled}")
        p(
            f"  removed members: {chk.removed_epochs} later epochs attacked, "
            f"{chk.removed_reads} later messages tried"
        )
        joiners = f"{chk.joiner_epochs} earlier epochs attacked, {chk.joiner_reads} earlier messages tried"
        p(f"  joiners: {joiners}")
        p(f"  ({TIME_NOTE})")
        failed = r.failed
        if failed is None:
            p("All invariants held.")
        else:
            p(f"FAILED at step {failed.index} ({failed.description}):")
            for f in failed.failures[:10]:
                p(f"  {f.check}: {f.detail}")
            if len(failed.failures) > 10:
                p(f"  ... and {len(failed.failures) - 10} more")
        p()


# --- the plot ------------------------------------------------------------------------------------------


def plot_sim(results: Sequence[SimResult], path: str) -> None:
    """Per step: X25519 operations per member and bytes delivered per member, one line per scheme."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for r in results:
        xs = [s.index for s in r.steps]
        axes[0].plot(xs, [s.total.x25519 / max(1, s.members) for s in r.steps], marker=".", label=r.scheme)
        axes[1].plot(
            xs, [s.total.bytes_delivered / max(1, s.members) for s in r.steps], marker=".", label=r.scheme
        )
    axes[0].set_ylabel("X25519 per member")
    axes[1].set_ylabel("bytes delivered per member")
    axes[1].set_xlabel("step")
    axes[0].legend()
    axes[0].set_title(f"groupchat sim, {results[0].members} members at the start")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --- the comparison --------------------------------------------------------------------------------


def compare_json(points: Sequence[Point]) -> dict[str, Any]:
    return {"points": [p.as_json() for p in points], "time_note": TIME_NOTE}


def print_compare(points: Sequence[Point], out: TextIO) -> None:
    """One rekey by scheme and size: per member and whole-group costs, and what was not run."""

    def p(line: str = "") -> None:
        print(line, file=out)

    p("groupchat sim --compare: one rekey (a member replaces the group key) in a group of n")
    p()
    p(
        " scheme        n  ms/member  committer ms  PK ops/member  X25519  sign  verify  HPKE s/o"
        "  delivered B/member  rounds  run s"
    )
    for pt in points:
        if pt.skipped:
            continue
        t = pt.total
        p(
            f" {pt.scheme:<9} {pt.n:5d} {pt.per_member_ms:10.3f} {pt.committer.cpu_ns / 1e6:13.2f}"
            f" {pt.public_key_ops / pt.n:14.1f} {t.x25519:7d} {t.sign:5d} {t.verify:7d}"
            f" {f'{t.hpke_seal}/{t.hpke_open}':>9} {pt.delivered_per_member:19.0f}"
            f" {pt.rounds:7d} {pt.seconds:6.1f}"
        )
    skipped = [pt for pt in points if pt.skipped]
    if skipped:
        p()
        for pt in skipped:
            p(f" {pt.scheme} at n = {pt.n}: {pt.skipped}")
    p()
    p(" PK ops = X25519 + signatures made and checked + HPKE seals and opens, over the whole group.")
    p(
        " tree: the group total is exact from one receiver per tree level;"
        " ring and pairwise: every member run."
    )
    p(f" ({TIME_NOTE})")


def plot_loglog(
    series: Mapping[str, Sequence[tuple[int, Sequence[float]]]],
    panels: Sequence[str],
    title: str,
    path: str,
    size: tuple[float, float],
) -> None:
    """One log-log panel per name in ``panels`` against group size n, one line per series
    (``series[name]`` = [(n, one value per panel)]), saved to ``path`` (svg or png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=size)
    for i, (ax, label) in enumerate(zip(axes, panels, strict=True)):
        for name, points in series.items():
            if points:
                ax.plot([n for n, _ in points], [max(v[i], 1e-6) for _, v in points], marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("group size n")
        ax.set_title(label)
        ax.grid(True, which="both", alpha=0.3)
    if len(series) > 1:
        axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_compare(points: Sequence[Point], path: str) -> None:
    """Log-log against group size: CPU per member and the committer's, public-key operations and
    bytes delivered per member."""
    panels: tuple[tuple[str, Callable[[Point], float]], ...] = (
        ("CPU per member (ms)", lambda pt: pt.per_member_ms),
        ("the committer's CPU (ms)", lambda pt: pt.committer.cpu_ns / 1e6),
        ("public-key ops per member", lambda pt: pt.public_key_ops / pt.n),
        ("bytes delivered per member", lambda pt: pt.delivered_per_member),
    )
    series: dict[str, list[tuple[int, list[float]]]] = {}
    for pt in points:
        run = series.setdefault(pt.scheme, [])
        if not pt.skipped:
            run.append((pt.n, [value(pt) for _, value in panels]))
    title = "one rekey: tree vs ring vs pairwise (sender keys)"
    plot_loglog(series, [label for label, _ in panels], title, path, (16, 4))
