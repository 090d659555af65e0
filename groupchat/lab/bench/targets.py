"""The speed targets of issue 16, as data: every bench prints the ones it measures, met or not.

Each :class:`Target` says what is measured, what it is divided by (its floor or baseline, measured
in the same run) and the limit. A bench prints each target beside its measured figure with
:func:`target_line`; a figure over its limit is marked "NOT met". Targets never decide a bench's
exit status (timings on a shared machine move ~30% between runs), except where a bench says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

__all__ = ["TARGETS", "Target", "header", "target", "target_line", "verdict"]


@dataclass(frozen=True, slots=True)
class Target:
    """One speed or size target: ``what`` ≤ ``limit`` (times ``against``, or in ``unit``)."""

    key: str  # stable name, e.g. "rekey.update.commit"
    bench: str  # the command that measures it
    what: str  # the measured figure, in words
    limit: float
    unit: str  # "x" for a ratio, else the unit of an absolute figure ("KB")
    against: str  # what a ratio divides by, measured in the same run ("" for an absolute figure)

    def describe(self) -> str:
        """``what ≤ limit x against``, the way the reports print it."""
        if self.unit == "x":
            return f"{self.what} ≤ {self.limit:g}x {self.against}"
        return f"{self.what} ≤ {self.limit:g} {self.unit}"


_ONE_CLIMB = "its floor (d levels + 1 verify)"
_ONE_LEVEL = "its floor (1 level + 1 verify)"
_COMMITTER = "committer floor (d levels + 1 sign)"

TARGETS: Final[tuple[Target, ...]] = (
    # groupchat bench rekey, at n = 1024 (the tree scheme)
    Target("rekey.update.commit", "rekey", "update commit", 1.5, "x", _COMMITTER),
    Target("rekey.remove.commit", "rekey", "remove commit", 1.5, "x", _COMMITTER),
    Target("rekey.add.commit", "rekey", "add commit with its welcome", 3.0, "x", _COMMITTER),
    Target("rekey.update.worst", "rekey", "update, worst receiver", 1.5, "x", _ONE_CLIMB),
    Target("rekey.remove.worst", "rekey", "remove, worst receiver", 1.5, "x", _ONE_CLIMB),
    Target("rekey.add.worst", "rekey", "add, worst receiver", 1.5, "x", _ONE_CLIMB),
    Target("rekey.update.typical", "rekey", "update, typical receiver", 1.5, "x", _ONE_LEVEL),
    Target("rekey.remove.typical", "rekey", "remove, typical receiver", 1.5, "x", _ONE_LEVEL),
    Target("rekey.commit_bytes", "rekey", "commit bytes", 1.5, "x", "bytes floor (32·d + 64)"),
    Target("rekey.taint.worst", "rekey", "k-leaf re-key, worst receiver", 1.5, "x",
           "one climb (d levels + 1 verify)"),
    Target("rekey.welcome", "rekey", "welcome", 190.0, "KB", ""),
    Target("rekey.join.read", "rekey", "joiner, time to first read", 1.3, "x",
           "1 HPKE open + d levels + 2 verifies (the adder)"),
    Target("rekey.join.send", "rekey", "joiner, time to first send", 1.3, "x",
           "n verifies + 1 HPKE open + d levels"),
    Target("rekey.message.encrypt", "rekey", "message encrypt", 1.5, "x", "Ed25519 sign + AEAD seal"),
    Target("rekey.message.decrypt", "rekey", "message decrypt", 1.3, "x", "Ed25519 verify + AEAD open"),
    # groupchat bench rekey --large (n = 4096 and more)
    Target("rekey.large.commit", "rekey", "commit (n > 1024)", 1.6, "x", _COMMITTER),
    Target("rekey.large.worst", "rekey", "worst receiver (n > 1024)", 1.6, "x", _ONE_CLIMB),
    Target("rekey.large.join", "rekey", "joiner, first send (n > 1024)", 1.3, "x",
           "n verifies + 1 HPKE open + d levels"),
    # groupchat bench session, at N = 8, 32, 128
    Target("session.join", "session", "join to ready", 1.5, "x", "the core's join"),
    Target("session.rekey", "session", "rekey, all in the new epoch", 1.5, "x", "the core's rekey"),
    Target("session.fanout", "session", "fan-out p50", 1.5, "x", "the core's fan-out p50"),
    # groupchat bench relay
    Target("relay.cpu", "relay", "relay CPU per delivery", 1.25, "x", "a bare websockets broadcast server"),
    Target("relay.redis", "relay", "Redis relay CPU per delivery", 1.3, "x",
           "the in-memory relay (redis-server's CPU included)"),
)

_BY_KEY: Final = {t.key: t for t in TARGETS}


def target(key: str) -> Target:
    """The target named ``key`` (a KeyError names a bench bug, not a user's mistake)."""
    return _BY_KEY[key]


def verdict(value: float, t: Target) -> str:
    """``"met"`` if ``value`` is within ``t``'s limit, else ``"NOT met"``."""
    return "met" if value <= t.limit else "NOT met"


def header(width: int = 44) -> str:
    """The column heads of :func:`target_line` rows."""
    return f"  {'figure':<{width}} {'measured':>9} {'target':>8}  {'verdict':<12} against"


def target_line(t: Target, value: float | None, label: str = "", width: int = 44) -> str:
    """One report row: the figure, its measured value, the limit, met / NOT met (or "not
    measured") and what a ratio is measured against."""
    name = t.what + (f" ({label})" if label else "")
    unit = "x" if t.unit == "x" else f" {t.unit}"
    limit = f"≤ {t.limit:g}{unit}"
    if value is None or not math.isfinite(value):
        measured, mark = "-", "not measured"
    else:
        measured, mark = f"{value:.2f}{unit}", verdict(value, t)
    return f"  {name:<{width}} {measured:>9} {limit:>8}  {mark:<12} {t.against}".rstrip()
