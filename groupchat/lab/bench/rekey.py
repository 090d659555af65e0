"""``groupchat bench rekey``: tree rekey, welcome and message costs as multiples of a measured floor.

What it measures, for each group size n (d = ceil(log2 n)):

* **update**, **remove** (one member) and **add** (one joiner) commits: the committer's
  ``Group.commit`` time, the committer applying its own echoed commit, and ``Group.receive`` at
  two receivers: the *worst case* (the sibling leaf of the leaf whose path changed, which must
  redo all d DH levels) and a *typical* receiver in the other half of the tree (one level, at the
  root). Half of all receivers are in the typical position, and almost none are in the worst.
* the new member's ``Group.join`` from the add's welcome, and the commit and welcome sizes;
* ``Group.encrypt`` and ``Group.receive`` of 100-byte application messages, timed in short
  batches back to back as the floor's primitives are;
* the joiner, which verifies every leaf's join request, against its own floor:
  n Ed25519 verifications + one HPKE open + d tree levels (target ≤ 1.3x);
* **taint re-keys** (issue 6): a removal of a member T that chose the secrets of k = 1, 4, 16
  other leaves, so the commit carries k re-keys besides the remove. Two variants: T had removed
  k members (the re-keyed leaves are vacated slots), or T had added k joiners that have not
  updated yet (each re-key seals the new leaf secret to the joiner's init key, one HPKE seal
  each). The committer pays k + 1 paths; every receiver still does one climb, so the worst
  receiver is judged against the one-climb floor.

Why floors: the machine is shared and noisy, so absolute numbers move ~30% between
runs, and even within one run. Every time is therefore also printed as a multiple of a floor built
from primitive costs measured with pyca/cryptography directly in the same run: once at the start
(the printed primitive table) and again, briefly, right before every sample round, so each sample is
divided by the floor measured next to it and load drift during the run cancels out of the ratios (an
untimed commit follows each such floor, so that no timed op starts on the caches the floor's tight
loops left cold, see ``tree._rewarm``):

* committer floor = d x (X25519 exchange + X25519 from_private_bytes/public_key) + 1 Ed25519 sign;
* receiver floor = L x (the same) + 1 Ed25519 verify, where L is the number of tree levels that
  receiver must recompute (L = d for the worst case, L = 1 for the typical receiver);
* commit bytes floor = 32·d + 64 (d public keys plus one signature);
* message floors: Ed25519 sign + AEAD seal, and Ed25519 verify + AEAD open.

Where the numbers come from: ``scene`` builds the live group (one creator adds everyone, only the
measured members are held), ``tree`` runs the samples on it (remove → add → update rounds, messages,
taint runs) and returns the raw samples, and this module turns them into the report and the CLI.
The ring bench (``--scheme ring|both``) is ``ring``; all of them share the floor model in ``floor``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, Final, TextIO

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ...core.group import GroupConfig
from .floor import CLOCKS as _CLOCKS
from .floor import MESSAGE_BYTES, Clock, Floor, measure_floor, per_op_us
from .floor import median as _median
from .targets import header, target, target_line
from .tree import OPS as _OPS
from .tree import SizeResult, bench_size

__all__ = [
    "DEFAULT_REPEAT",
    "DEFAULT_SIZES",
    "LARGE_SIZES",
    "Floor",
    "add_arguments",
    "main",
    "measure_floor",
    "print_beside",
    "run",
]

DEFAULT_SIZES: Final = (8, 16, 64, 256, 1024)
LARGE_SIZES: Final = (4096, 16384)  # --large: O(log n) hot paths shown at 4x and 16x the 1024 targets
DEFAULT_REPEAT: Final = 25
DEFAULT_MESSAGES: Final = 100
TARGET_N: Final = 1024  # the size most targets are stated at (targets.TARGETS)
_JOIN: Final = target("rekey.join.send")
_READ: Final = target("rekey.join.read")


# --- reporting -----------------------------------------------------------------------------------------


def _ratio(samples_ns: Sequence[int], floors_us: Sequence[float]) -> float:
    """Median of the per-sample ratios time / floor, each floor measured next to its sample."""
    return _median([ns / 1000 / fl for ns, fl in zip(samples_ns, floors_us, strict=True)])


@dataclasses.dataclass(slots=True)
class _Report:
    """Everything printed, kept as numbers for ``--json``."""

    floor: Floor
    clock: str
    repeat: int
    results: list[SizeResult]
    targets: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def size_summary(self, r: SizeResult) -> dict[str, Any]:
        """Medians, and medians of per-sample ratios to the floor measured next to each sample."""
        near = Floor.median_of(r.floors)
        out: dict[str, Any] = {
            "n": r.n,
            "d": r.d,
            "setup_s": r.setup_s,
            "floor_us": {  # medians of the floors measured next to this size's samples
                "tree_level": near.dh_level,
                "ed25519_sign": near.ed25519_sign,
                "ed25519_verify": near.ed25519_verify,
                "committer": near.committer_us(r.d),
                "receiver_worst": near.receiver_us(r.d),
            },
            "commit_bytes_floor": Floor.commit_bytes(r.d),
            "ops": {},
        }
        for op, s in r.ops.items():
            bytes_floor = Floor.commit_bytes(r.d)
            o: dict[str, Any] = {
                "create_us": _median(s.create_ns) / 1000,
                "create_x_floor": _ratio(s.create_ns, [f.committer_us(r.d) for f in r.floors]),
                "own_apply_us": _median(s.own_apply_ns) / 1000,
                "commit_bytes": _median(s.commit_bytes),
                "commit_bytes_x_floor": _median(s.commit_bytes) / bytes_floor,
                "process": {},
                "raw": {
                    "create_ns": s.create_ns,
                    "own_apply_ns": s.own_apply_ns,
                    "process_ns": s.process_ns,
                    "commit_bytes": s.commit_bytes,
                },
            }
            for role, xs in s.process_ns.items():
                lv = r.levels[op][role]
                o["process"][role] = {
                    "leaf": r.receivers[op][role],
                    "levels": lv,
                    "us": _median(xs) / 1000,
                    "floor_us": near.receiver_us(lv),
                    "x_floor": _ratio(xs, [f.receiver_us(lv) for f in r.floors]),
                }
            if op == "add":
                o["welcome_bytes"] = _median(s.welcome_bytes)
                o["join_us"] = _median(s.join_ns) / 1000
                o["raw"]["welcome_bytes"] = s.welcome_bytes
                o["raw"]["join_ns"] = s.join_ns
            out["ops"][op] = o
        mf = r.message_floors
        out["message"] = {
            "encrypt_us": _median(r.encrypt_ns) / 1000,
            "encrypt_x_floor": _ratio(r.encrypt_ns, [f.encrypt_us for f in mf]),
            "encrypt_floor_us": _median([f.encrypt_us for f in mf]),
            "decrypt_us": _median(r.decrypt_ns) / 1000,
            "decrypt_x_floor": _ratio(r.decrypt_ns, [f.decrypt_us for f in mf]),
            "decrypt_floor_us": _median([f.decrypt_us for f in mf]),
            "raw": {"encrypt_ns": r.encrypt_ns, "decrypt_ns": r.decrypt_ns},
        }
        out["raw_floors"] = [dataclasses.asdict(f) for f in r.floors]
        out["taint"] = {}
        for key, t in r.taint.items():
            lv = int(_median(t.typical_levels))
            out["taint"][key] = {
                "variant": t.variant,
                "k": t.k,
                "create_us": _median(t.create_ns) / 1000,
                "create_x_floor": _ratio(t.create_ns, [f.committer_us(r.d) for f in t.floors]),
                "own_apply_us": _median(t.own_apply_ns) / 1000,
                "worst_us": _median(t.worst_ns) / 1000,
                "worst_x_floor": _ratio(t.worst_ns, [f.receiver_us(r.d) for f in t.floors]),
                "typical_levels": lv,
                "typical_us": _median(t.typical_ns) / 1000,
                "typical_x_floor": _ratio(t.typical_ns, [f.receiver_us(lv) for f in t.floors]),
                "commit_bytes": _median(t.commit_bytes),
                "raw": {
                    "create_ns": t.create_ns,
                    "own_apply_ns": t.own_apply_ns,
                    "worst_ns": t.worst_ns,
                    "typical_ns": t.typical_ns,
                    "typical_levels": t.typical_levels,
                    "commit_bytes": t.commit_bytes,
                },
            }
        return out

    def evaluate_targets(self, summaries: list[dict[str, Any]], joiner: list[dict[str, Any]]) -> None:
        """Put each target of :data:`~.targets.TARGETS` this bench measures beside its figure; a
        target whose size was not run is "not measured". Never a failure: the exit status does not
        depend on them."""
        at = {s["n"]: s for s in summaries}
        s = at.get(TARGET_N)
        at_n = ""  # the heading says n = TARGET_N unless a row says otherwise

        def add(key: str, value: float | None, label: str = at_n) -> None:
            t = target(key)
            met = None if value is None else value <= t.limit
            self.targets.append(
                {
                    "key": key,
                    "target": t.describe(),
                    "label": label,
                    "value": value,
                    "unit": t.unit,
                    "limit": t.limit,
                    "met": met,
                }
            )

        for op in _OPS:
            add(f"rekey.{op}.commit", s["ops"][op]["create_x_floor"] if s else None)
        for op in _OPS:
            add(f"rekey.{op}.worst", s["ops"][op]["process"]["worst"]["x_floor"] if s else None)
        for op in ("update", "remove"):
            add(f"rekey.{op}.typical", s["ops"][op]["process"]["typical"]["x_floor"] if s else None)
        add(
            "rekey.commit_bytes",
            max(s["ops"][op]["commit_bytes_x_floor"] for op in _OPS) if s else None,
            "largest op",
        )
        taint = s["taint"].values() if s else ()
        for t in taint:
            add("rekey.taint.worst", t["worst_x_floor"], f"{t['variant']} k={t['k']}")
        if not taint:
            add("rekey.taint.worst", None)
        add("rekey.welcome", s["ops"]["add"]["welcome_bytes"] / 1000 if s else None)
        j = next((j for j in joiner if j["n"] == TARGET_N), None)
        add("rekey.join.read", j["read_x_floor"] if j else None)
        add("rekey.join.send", j["x_floor"] if j else None)
        # Messages do not depend much on n: judge the largest size measured.
        m = summaries[-1]["message"]
        largest = summaries[-1]["n"]
        where = "" if largest == TARGET_N else f"n = {largest}"
        for what in ("encrypt", "decrypt"):
            add(f"rekey.message.{what}", m[f"{what}_x_floor"], where)
        for big in (x for x in summaries if x["n"] > TARGET_N):
            for op in ("update", "remove"):
                add("rekey.large.commit", big["ops"][op]["create_x_floor"], f"n = {big['n']}, {op}")
                worst = big["ops"][op]["process"]["worst"]["x_floor"]
                add("rekey.large.worst", worst, f"n = {big['n']}, {op}")
        for big in (x for x in joiner if x["n"] > TARGET_N):
            add("rekey.large.join", big["x_floor"], f"n = {big['n']}")


def _print_report(rep: _Report, summaries: list[dict[str, Any]], out: TextIO) -> None:
    f = rep.floor

    def p(line: str = "") -> None:
        print(line, file=out)

    p(f"clock: {rep.clock}; medians of {rep.repeat} samples after one warm-up round")
    p("ratios (x fl) are medians of per-sample ratios to a floor re-measured next to each sample round")
    p()
    p("Primitive floor at the start of the run (pyca/cryptography, median µs/op)")
    for name, us in f.rows():
        p(f"  {name:<48} {us:8.2f}")
    p(f"  {'one tree level = exchange + key pair':<48} {f.dh_level:8.2f}")
    p()
    p("Floors next to each size's samples (medians): committer = d*level + sign;")
    p("worst receiver = d*level + verify; commit bytes = 32*d + 64")
    p(
        f"  {'n':>5} {'d':>3} {'level us':>9} {'sign us':>8} {'verify us':>10}"
        f" {'committer ms':>13} {'worst recv ms':>14} {'bytes':>6}"
    )
    for s in summaries:
        fl = s["floor_us"]
        p(
            f"  {s['n']:>5} {s['d']:>3} {fl['tree_level']:>9.1f} {fl['ed25519_sign']:>8.1f}"
            f" {fl['ed25519_verify']:>10.1f} {fl['committer'] / 1000:>13.3f}"
            f" {fl['receiver_worst'] / 1000:>14.3f} {s['commit_bytes_floor']:>6}"
        )
    p()
    p("Rekey commits (ms, and x floor). worst = sibling of the changed leaf (d levels);")
    p("typical = a leaf in the other half (L levels, floor = L*level + verify); own = committer applies echo")
    hdr = (
        f"  {'n':>5} {'op':<7}|{'create':>8} {'xfl':>5} |{'worst':>8} {'xfl':>5} |{'typical':>8} {'L':>2}"
        f" {'xfl':>5} |{'own':>7} |{'commit B':>9} {'xfl':>5}"
    )
    p(hdr)
    p("  " + "-" * (len(hdr) - 2))
    for s in summaries:
        for op in _OPS:
            o = s["ops"][op]
            w, t = o["process"]["worst"], o["process"]["typical"]
            p(
                f"  {s['n']:>5} {op:<7}|{o['create_us'] / 1000:>8.3f} {o['create_x_floor']:>5.2f}"
                f" |{w['us'] / 1000:>8.3f} {w['x_floor']:>5.2f} |{t['us'] / 1000:>8.3f} {t['levels']:>2}"
                f" {t['x_floor']:>5.2f} |{o['own_apply_us'] / 1000:>7.3f} |{o['commit_bytes']:>9.0f}"
                f" {o['commit_bytes_x_floor']:>5.2f}"
            )
    p("  (add commits also carry the joiner's signed join request, and every receiver verifies it;")
    p("   add 'create' includes building the welcome)")
    p()
    p("Welcome (one joiner) and Group.join of the new member")
    p(f"  {'n':>5} {'welcome B':>10} {'join ms':>9} {'join / add-commit':>18}")
    for s in summaries:
        a = s["ops"]["add"]
        p(
            f"  {s['n']:>5} {a['welcome_bytes']:>10.0f} {a['join_us'] / 1000:>9.3f}"
            f" {a['join_us'] / a['create_us']:>17.2f}x"
        )
    p()
    if any(s["taint"] for s in summaries):
        p("Taint re-keys: the committer removes a member that chose k other leaves' secrets (k vacated")
        p("slots, or k joiners not yet updated: sealed). create xfl = / committer floor (d*level + sign),")
        p("so about k + 1 is expected; worst = leaf 3 (d levels), xfl = / one-climb floor")
        p("(d*level + verify); typical = leaf n/2+1 (L levels)")
        hdr = (
            f"  {'n':>5} {'variant':<8} {'k':>3} |{'create':>8} {'xfl':>6} |{'worst':>8} {'xfl':>5}"
            f" |{'typical':>8} {'L':>2} {'xfl':>5} |{'own':>7} |{'commit B':>9}"
        )
        p(hdr)
        p("  " + "-" * (len(hdr) - 2))
        for s in summaries:
            for t in s["taint"].values():
                p(
                    f"  {s['n']:>5} {t['variant']:<8} {t['k']:>3} |{t['create_us'] / 1000:>8.3f}"
                    f" {t['create_x_floor']:>6.2f} |{t['worst_us'] / 1000:>8.3f} {t['worst_x_floor']:>5.2f}"
                    f" |{t['typical_us'] / 1000:>8.3f} {t['typical_levels']:>2}"
                    f" {t['typical_x_floor']:>5.2f}"
                    f" |{t['own_apply_us'] / 1000:>7.3f} |{t['commit_bytes']:>9.0f}"
                )
        p()
    p(f"Application messages ({MESSAGE_BYTES} B): encrypt floor = sign + seal, decrypt floor = verify")
    p("+ open; timed like the floor: each sample is the mean of a few messages back to back")
    p(f"  {'n':>5} {'encrypt us':>11} {'floor':>6} {'xfl':>5} {'decrypt us':>11} {'floor':>6} {'xfl':>5}")
    for s in summaries:
        m = s["message"]
        p(
            f"  {s['n']:>5} {m['encrypt_us']:>11.1f} {m['encrypt_floor_us']:>6.1f}"
            f" {m['encrypt_x_floor']:>5.2f} {m['decrypt_us']:>11.1f}"
            f" {m['decrypt_floor_us']:>6.1f} {m['decrypt_x_floor']:>5.2f}"
        )


def _print_targets(rep: _Report, summaries: list[dict[str, Any]], out: TextIO) -> None:
    """The targets of issue 16 this bench measures, each beside its figure: met or NOT met."""
    print(file=out)
    print(
        f"Targets (issue 16), each beside the figure measured in this run; at n = {TARGET_N} unless said.",
        file=out,
    )
    print(
        "Reported, never asserted: the exit status does not depend on them (timings on a shared machine",
        file=out,
    )
    print("move ~30% between runs).", file=out)
    print(header(), file=out)
    for t in rep.targets:
        print(target_line(target(t["key"]), t["value"], t["label"]), file=out)
    if not any(s["n"] == TARGET_N for s in summaries):
        print(f"  (the n = {TARGET_N} figures need {TARGET_N} in --sizes)", file=out)


# --- the joiner ------------------------------------------------------------------


def measure_hpke_open(clock: Clock, suite_id: int = 1, batch: int = 50, rounds: int = 9) -> float:
    """µs per HPKE base-mode open (DHKEM-X25519, HKDF-SHA256, the suite's AEAD) of a GroupSecrets-sized
    plaintext: the one public-key decryption a joiner does."""
    aead = hpke.AEAD.AES_128_GCM if suite_id == 1 else hpke.AEAD.CHACHA20_POLY1305
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, aead)
    sk = X25519PrivateKey.generate()
    info = os.urandom(64)
    sealed = suite.encrypt(os.urandom(70), sk.public_key(), info)
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        return per_op_us(lambda: suite.decrypt(sealed, sk, info), clock, batch, rounds)
    finally:
        if was_enabled:
            gc.enable()


def joiner_summary(results: Sequence[SizeResult], hpke_open_us: float) -> list[dict[str, Any]]:
    """The joiner at each size, as a multiple of two floors, the way a session joins.

    * Time to first read: ``Group.join(..., verify_roster=False)``; floor = one HPKE open + d
      levels + 2 verifies (the adder's join request and its GroupInfo signature). The join also
      decodes the whole tree and checks it against its signed hash: O(n) work the floor leaves out.
    * Time to first send: that join plus its roster check (every member's join request);
      floor = n verifies + one HPKE open + d levels.

    Each sample is divided by the floor built from the primitives measured right before its round
    (the HPKE open once per run).
    """
    out: list[dict[str, Any]] = []
    for r in results:
        add = r.ops["add"]
        sends = [r.n * f.ed25519_verify + hpke_open_us + r.d * f.dh_level for f in r.floors]
        reads = [2 * f.ed25519_verify + hpke_open_us + r.d * f.dh_level for f in r.floors]
        send_x, read_x = _ratio(add.join_ns, sends), _ratio(add.read_ns, reads)
        out.append(
            {
                "n": r.n,
                "d": r.d,
                "join_us": _median(add.join_ns) / 1000,
                "floor_us": _median(sends),
                "x_floor": send_x,
                "read_us": _median(add.read_ns) / 1000,
                "read_floor_us": _median(reads),
                "read_x_floor": read_x,
                "target": f"≤ {_JOIN.limit:g}x",
                "met": send_x <= _JOIN.limit,
            }
        )
    return out


def print_joiner(summary: Sequence[dict[str, Any]], hpke_open_us: float, out: TextIO) -> None:
    print(file=out)
    print(
        f"Joiner: first read = Group.join(verify_roster=False), floor = 1 HPKE open ({hpke_open_us:.1f} µs)"
        " + d levels + 2 verifies;",
        file=out,
    )
    print(
        "first send = that + the roster check, floor = n verifies + 1 HPKE open + d levels"
        f" (targets ≤ {_READ.limit:g}x, ≤ {_JOIN.limit:g}x)",
        file=out,
    )
    print(
        f"  {'n':>5} {'d':>3} {'read ms':>9} {'floor':>7} {'xfl':>6} {'send ms':>9} {'floor':>8} {'xfl':>5}",
        file=out,
    )
    for s in summary:
        print(
            f"  {s['n']:>5} {s['d']:>3} {s['read_us'] / 1000:>9.3f} {s['read_floor_us'] / 1000:>7.3f}"
            f" {s['read_x_floor']:>6.2f} {s['join_us'] / 1000:>9.3f} {s['floor_us'] / 1000:>8.3f}"
            f" {s['x_floor']:>5.2f}",
            file=out,
        )


# --- command line --------------------------------------------------------------------------------------


def _parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes wants comma-separated integers, got {text!r}") from None
    if not sizes or any(n < 8 for n in sizes):
        raise argparse.ArgumentTypeError("every size must be at least 8")
    return sizes


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``groupchat bench rekey`` flags: sizes, samples, clock, suite and an optional JSON dump."""
    parser.add_argument(
        "--sizes",
        type=_parse_sizes,
        default=",".join(map(str, DEFAULT_SIZES)),  # a string default goes through the type
        help="comma-separated group sizes",
    )
    parser.add_argument(
        "--large",
        action="store_true",
        help=f"also run n = {' and '.join(map(str, LARGE_SIZES))} (several minutes)",
    )
    parser.add_argument("--repeat", type=_positive, default=DEFAULT_REPEAT, help="samples per measurement")
    parser.add_argument(
        "--messages", type=_positive, default=DEFAULT_MESSAGES, help="application messages timed per size"
    )
    parser.add_argument(
        "--clock",
        choices=sorted(_CLOCKS),
        default="cpu",
        help="cpu = process CPU time (steadier on a shared machine), wall = perf_counter",
    )
    parser.add_argument("--suite", type=int, choices=[1, 3], default=1, help="cipher suite id")
    parser.add_argument("--json", metavar="PATH", help="also write every raw sample and summary as JSON")
    parser.add_argument(
        "--scheme",
        choices=("tree", "ring", "both"),
        default="tree",
        help="key agreement to time: the tree, the ring (groupchat.lab.bench.ring), or both, with the "
        "ring's per-member costs printed beside the tree's",
    )


def run(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed flags and print the report."""
    if args.scheme == "ring":
        from . import ring  # imported only when asked for, as the ring bench never needs the tree's

        ring.run(args, sys.stdout)
        return 0
    tree = _run_tree(args)
    if args.scheme == "both":
        from . import ring

        print(file=sys.stdout)
        ring_args = argparse.Namespace(**{**vars(args), "json": None})
        ring_summaries = ring.run(ring_args, sys.stdout)
        print_beside(tree, ring_summaries, sys.stdout)
    return 0


def print_beside(tree: Sequence[dict[str, Any]], ring: Sequence[dict[str, Any]], out: TextIO) -> None:
    """One rekey per scheme, side by side: a tree Remove (committer, slowest receiver) and a ring run."""
    rings = {s["n"]: s for s in ring}
    print("\nTree beside ring, one membership change (medians, µs and bytes)", file=out)
    print(
        "     n | tree commit | tree receive (worst) | tree commit bytes | ring per member "
        "| ring bytes sent/member | ring bytes delivered",
        file=out,
    )
    for s in tree:
        r = rings.get(s["n"])
        op = s["ops"].get("remove") or next(iter(s["ops"].values()))
        worst = max(p["us"] for p in op["process"].values())
        ring_cells = (
            f"{r['us']['whole']:15.0f} | {r['bytes_per_member']:22d} | {r['bytes_delivered']:20d}"
            if r is not None
            else f"{'-':>15} | {'-':>22} | {'-':>20}"
        )
        print(
            f"  {s['n']:4d} | {op['create_us']:11.0f} | {worst:20.0f} | {op['commit_bytes']:17.0f} | "
            + ring_cells,
            file=out,
        )
    print(
        "Tree: one commit, O(log n) X25519 at each member, one signature check. Ring: 3 rounds, every "
        "member signs three times and checks 3(n-1) signatures, and the relay delivers n x 3n messages.",
        file=out,
    )


def _run_tree(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The tree report; returns its per-size summaries."""

    sizes: list[int] = sorted(set(args.sizes) | (set(LARGE_SIZES) if args.large else set()))
    clock, clock_name = _CLOCKS[args.clock]
    config = GroupConfig(suite_id=args.suite)
    floor = measure_floor(clock, args.suite)
    hpke_open_us = measure_hpke_open(clock, args.suite)
    results: list[SizeResult] = []
    for n in sizes:
        print(f"[n = {n}] building the group and running {args.repeat} rounds…", file=sys.stderr, flush=True)
        results.append(bench_size(n, config, clock, args.repeat, args.messages))
    report = _Report(floor, clock_name, args.repeat, results)
    summaries = [report.size_summary(r) for r in results]
    joiner = joiner_summary(results, hpke_open_us)
    report.evaluate_targets(summaries, joiner)
    _print_report(report, summaries, sys.stdout)
    print_joiner(joiner, hpke_open_us, sys.stdout)
    _print_targets(report, summaries, sys.stdout)
    if args.json:
        doc = {
            "clock": clock_name,
            "repeat": args.repeat,
            "suite": args.suite,
            "primitives_us": {name: us for name, us in floor.rows()},
            "sizes": summaries,
            "targets": report.targets,
            "joiner": joiner,
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1)
    return summaries


def main(argv: list[str]) -> int:
    """``groupchat bench rekey [--sizes 8,64] [--large] [--repeat K] [--json PATH]``."""
    parser = argparse.ArgumentParser(
        prog="groupchat bench rekey",
        description="Time tree rekeys, welcomes and messages as multiples of a floor measured in this run.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
