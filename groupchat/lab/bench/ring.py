"""``groupchat bench rekey --scheme ring``: one member's cost of a ring rekey, as multiples of a floor.

For each group size n, one measured member (leaf 0) runs a real :class:`RingRekey` against n - 1
peers, and we time, per sample:

* **round 1**: ``start()``: one X25519 key generation and one signature;
* **round 2**: the ``receive`` that completes round 1: a verification, 2 X25519, 2 edge KDFs, the
  round-1 hash and the round-2 signature;
* **derive**: the ``receive`` that completes round 2: a verification, the XOR check, the walk
  around the ring, the transcript hash and the commit secret;
* **whole**: ``start()``, all 3(n - 1) receives and our confirmation (round 3, signed): everything
  the member pays for the rekey.

Floors are built from primitive costs measured with pyca/cryptography in the same run, right
before each sample (so load drift cancels out of the ratios, as in ``bench rekey``):

* round 1 = X25519 key pair + Ed25519 sign;
* round 2 = Ed25519 verify + 2 X25519 exchanges + Ed25519 sign;
* derive = Ed25519 verify;
* whole = X25519 key pair + 3 Ed25519 sign + 3(n - 1) Ed25519 verify + 2 X25519 exchanges.

Bytes are exact: every member broadcasts one message per round; the rekey puts 3n messages on the
relay, which delivers each to all n members (echo included).

How the peers are played: running n full members costs O(n^2) signature checks, so the n - 1
peers do not run :class:`RingRekey`. Their random sources are recorded, and their round-2 values
are computed with the scheme's own public functions from their ephemeral keys, then signed with
their identities: the measured member sees exactly the bytes honest peers would send. Each sample
checks the measured member's secret against the secret recomputed from every ephemeral key.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import sys
import time
from typing import Any, Final, TextIO

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ...core.events import Member
from ...core.identity import Identity
from ...core.schemes.ring import (
    RingRekey,
    commit_secret,
    edge_key,
    message_size,
    round1_hash,
    transcript_hash,
    xor,
)
from ...core.schemes.ring_message import RingRound
from ...core.suite import CipherSuite
from .floor import CLOCKS as _CLOCKS
from .floor import Clock, Floor, measure_floor
from .floor import median as _median

__all__ = ["DEFAULT_REPEAT", "DEFAULT_SIZES", "RingFloors", "main", "ring_floors", "run"]

DEFAULT_SIZES: Final = (8, 64, 256)
DEFAULT_REPEAT: Final = 7
_GROUP_ID: Final = b"bench-ring"
_CONTEXT: Final = bytes(32)  # what the epoch machine binds: a 32-byte hash
_PHASES: Final = ("round1", "round2", "derive", "whole")
# Short floor measurements taken next to each sample: ~20 ms each.
_NEAR_BATCH, _NEAR_ROUNDS = 20, 3

@dataclasses.dataclass(frozen=True, slots=True)
class RingFloors:
    """The floor of each phase for one member of an n-member ring, in µs."""

    round1: float
    round2: float
    derive: float
    whole: float


def ring_floors(floor: Floor, n: int) -> RingFloors:
    """The primitive work each phase cannot avoid (see the module docstring)."""
    exchanges = 1 if n == 2 else 2  # two members share one DH for both edges
    return RingFloors(
        round1=floor.x25519_keypair + floor.ed25519_sign,
        round2=floor.ed25519_verify + exchanges * floor.x25519_exchange + floor.ed25519_sign,
        derive=floor.ed25519_verify,
        whole=floor.x25519_keypair
        + 3 * floor.ed25519_sign
        + 3 * (n - 1) * floor.ed25519_verify
        + exchanges * floor.x25519_exchange,
    )


class _Recorder:
    """A random source that remembers its last output (a peer's ephemeral private key)."""

    def __init__(self) -> None:
        self.last = b""

    def __call__(self, k: int) -> bytes:
        self.last = os.urandom(k)
        return self.last


@dataclasses.dataclass(slots=True)
class _Cast:
    suite: CipherSuite
    identities: list[Identity]
    roster: list[Member]


def _cast(n: int, suite: CipherSuite) -> _Cast:
    ids = [Identity.generate() for _ in range(n)]
    return _Cast(suite, ids, [Member(i, f"m{i}", idn.public_key) for i, idn in enumerate(ids)])


def _run(cast: _Cast, attempt: int, rand: _Recorder, leaf: int) -> RingRekey:
    return RingRekey(
        suite=cast.suite,
        identity=cast.identities[leaf],
        group_id=_GROUP_ID,
        epoch=1,
        roster=cast.roster,
        rand=rand,
        clock=time.monotonic,
        attempt=attempt,
        context=_CONTEXT,
    )


def _sample(cast: _Cast, attempt: int, clock: Clock) -> dict[str, int]:
    """One rekey at the measured member (leaf 0); returns ns per phase."""
    n, suite = len(cast.roster), cast.suite
    rands = [_Recorder() for _ in range(n)]
    me = _run(cast, attempt, rands[0], 0)
    peers = [_run(cast, attempt, rands[j], j) for j in range(1, n)]
    round1 = [b""] + [p.start().outbound[0] for p in peers]
    publics = [b""] + [RingRound.decode(m).value for m in round1[1:]]

    times: dict[str, int] = {}
    t0 = clock()
    step = me.start()
    times["round1"] = clock() - t0
    round1[0] = step.outbound[0]
    publics[0] = RingRound.decode(round1[0]).value
    whole = times["round1"]
    for j in range(1, n):
        t0 = clock()
        step = me.receive(round1[j])
        spent = clock() - t0
        whole += spent
    times["round2"] = spent  # the last round-1 message completes round 1
    mine = step.outbound[0]

    # The peers' round-2 messages, computed from their recorded ephemeral keys.
    rid = me.ring_id
    r1_hash = round1_hash(suite, rid, [RingRound.decode(m).content for m in round1])
    edges = []
    for j in range(n):
        right = (j + 1) % n
        sk = X25519PrivateKey.from_private_bytes(rands[j].last)
        dh = sk.exchange(X25519PublicKey.from_public_bytes(publics[right]))
        edges.append(edge_key(suite, rid, j, dh, publics[j], publics[right]))
    round2 = [mine] + [
        RingRound.create(
            suite,
            cast.identities[j].signing_key,
            group_id=_GROUP_ID,
            epoch=1,
            attempt=attempt,
            roster_hash=me.roster_hash,
            context=_CONTEXT,
            round_=2,
            sender=j,
            value=xor(edges[j - 1], edges[j]),
            view=r1_hash,
        ).encoded
        for j in range(1, n)
    ]
    me.receive(mine)  # the relay's echo of our round 2 (ordered first here): completion needs it
    for j in range(1, n):
        t0 = clock()
        step = me.receive(round2[j])
        spent = clock() - t0
        whole += spent
    times["derive"] = spent
    transcript = transcript_hash(suite, r1_hash, [RingRound.decode(m).content for m in round2])
    expected = commit_secret(suite, rid, edges, transcript)
    if step.result is None or step.result.commit_secret != expected:
        raise RuntimeError(f"the measured member derived a wrong secret at n={n}")

    # Round 3: every member signs the same confirmation (the epoch machine's tag) over round 2.
    tag = suite.hash(expected)
    t0 = clock()
    (own3,) = me.confirm(tag).outbound
    whole += clock() - t0
    round3 = [
        RingRound.create(
            suite,
            cast.identities[j].signing_key,
            group_id=_GROUP_ID,
            epoch=1,
            attempt=attempt,
            roster_hash=me.roster_hash,
            context=_CONTEXT,
            round_=3,
            sender=j,
            value=tag,
            view=transcript,
        ).encoded
        for j in range(1, n)
    ]
    me.receive(own3)
    for data in round3:
        t0 = clock()
        step = me.receive(data)
        whole += clock() - t0
    if not step.confirmed:
        raise RuntimeError(f"the measured member did not confirm at n={n}")
    times["whole"] = whole
    return times


@dataclasses.dataclass(slots=True)
class SizeResult:
    n: int
    samples: list[dict[str, int]]
    floors: list[Floor]

    def summary(self) -> dict[str, Any]:
        ratios = {
            phase: _median(
                [
                    s[phase] / 1000 / getattr(ring_floors(f, self.n), phase)
                    for s, f in zip(self.samples, self.floors, strict=True)
                ]
            )
            for phase in _PHASES
        }
        r1, r2, r3 = (message_size(len(_GROUP_ID), len(_CONTEXT), r) for r in (1, 2, 3))
        return {
            "n": self.n,
            "us": {phase: _median([s[phase] / 1000 for s in self.samples]) for phase in _PHASES},
            "x_floor": ratios,
            "bytes_per_member": r1 + r2 + r3,
            "bytes_broadcast": self.n * (r1 + r2 + r3),
            "bytes_delivered": self.n * self.n * (r1 + r2 + r3),
        }


def bench_size(n: int, suite: CipherSuite, clock: Clock, repeat: int) -> SizeResult:
    """``repeat`` rekeys at size n after one warm-up, each paired with a floor measured next to it."""
    if n < 2:
        raise ValueError("the ring bench needs n ≥ 2 (a lone member sends nothing)")
    cast = _cast(n, suite)
    _sample(cast, 0, clock)  # warm-up
    result = SizeResult(n, [], [])
    was_enabled = gc.isenabled()
    try:
        for attempt in range(1, repeat + 1):
            result.floors.append(measure_floor(clock, suite.id, _NEAR_BATCH, _NEAR_ROUNDS))
            gc.collect()
            gc.disable()
            result.samples.append(_sample(cast, attempt, clock))
            if was_enabled:
                gc.enable()
    finally:
        if was_enabled:
            gc.enable()
    return result


def _print_report(
    floor: Floor, clock_name: str, repeat: int, summaries: list[dict[str, Any]], out: TextIO
) -> None:
    def p(line: str = "") -> None:
        print(line, file=out)

    p(f"groupchat bench rekey --scheme ring  ({clock_name}, {repeat} samples per size, medians)")
    p()
    p("Floor: primitive costs measured with pyca/cryptography in this run (µs)")
    for name, value in floor.rows()[:4]:
        p(f"  {name:<42} {value:8.1f}")
    p()
    p("Ring rekey, one member (µs, and x the floor measured next to each sample)")
    p("     n | " + " | ".join(f"{name:>15}" for name in ("round 1", "round 2", "derive", "whole rekey")))
    for s in summaries:
        cells = [f"{s['us'][ph]:8.0f} {s['x_floor'][ph]:5.2f}x" for ph in _PHASES]
        p(f"  {s['n']:4d} | " + " | ".join(cells))
    p()
    p("Ring rekey bytes (exact)")
    p("     n | sent per member | broadcast (3n msgs) | delivered by the relay (n x 3n)")
    for s in summaries:
        per, total, fanout = s["bytes_per_member"], s["bytes_broadcast"], s["bytes_delivered"]
        p(f"  {s['n']:4d} | {per:15d} | {total:18d} | {fanout:20d}")
    p()
    p("Floors: round 1 = keypair + sign; round 2 = verify + 2 X25519 + sign; derive = verify;")
    p("whole = keypair + 3 sign + 3(n-1) verify + 2 X25519. Ratios near 1 mean the Python around the")
    p("primitives costs little; 'whole' grows with n only through the 3(n-1) signature checks.")


def _parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes must be comma-separated integers, not {text!r}") from None
    if not sizes or any(n < 2 for n in sizes):
        raise argparse.ArgumentTypeError("every size must be at least 2")
    return sizes


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: list[str]) -> int:
    """``groupchat bench rekey --scheme ring [--sizes 8,64,256] [--repeat K] [--clock C] [--json PATH]``."""
    parser = argparse.ArgumentParser(
        prog="groupchat bench rekey --scheme ring",
        description="Time one member's ring rekey as multiples of a floor measured in this run.",
    )
    parser.add_argument(
        "--sizes",
        type=_parse_sizes,
        default=list(DEFAULT_SIZES),
        help="comma-separated group sizes (default: 8,64,256)",
    )
    parser.add_argument(
        "--repeat",
        type=_positive,
        default=DEFAULT_REPEAT,
        help=f"samples per size (default {DEFAULT_REPEAT})",
    )
    parser.add_argument(
        "--clock",
        choices=sorted(_CLOCKS),
        default="cpu",
        help="cpu = process CPU time (default; steadier on a shared machine), wall = perf_counter",
    )
    parser.add_argument("--suite", type=int, choices=[1, 3], default=1, help="cipher suite id (default 1)")
    parser.add_argument("--json", metavar="PATH", help="also write every raw sample and summary as JSON")
    args = parser.parse_args(argv)
    run(args, sys.stdout)
    return 0


def run(args: argparse.Namespace, out: TextIO) -> list[dict[str, Any]]:
    """Measure and print the ring report (flags: sizes, repeat, clock, suite, json); return the summaries.

    Shared with ``groupchat bench rekey --scheme ring|both``, whose flags carry the same names.
    """
    clock, clock_name = _CLOCKS[args.clock]
    suite = CipherSuite(args.suite)
    floor = measure_floor(clock, args.suite)
    results = [bench_size(n, suite, clock, args.repeat) for n in sorted(set(args.sizes))]
    summaries = [r.summary() for r in results]
    _print_report(floor, clock_name, args.repeat, summaries, out)
    if args.json:
        data = {
            "clock": args.clock,
            "repeat": args.repeat,
            "floor": dataclasses.asdict(floor),
            "sizes": summaries,
            "samples": {
                str(r.n): {"ns": r.samples, "floors": [dataclasses.asdict(f) for f in r.floors]}
                for r in results
            },
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
    return summaries


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
