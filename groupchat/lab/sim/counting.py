"""Counting the primitives each member pays for: X25519, Ed25519 and HPKE calls, by who made them.

:class:`OpCounter` counts at the boundary with pyca/cryptography, not inside groupchat: while it is
on, a profile hook (``sys.setprofile``, C calls only) sees every call of a pyca method by the name
pyca gives it, whatever groupchat code path made it, so an optimised or rewritten call site is still
counted. The sim says whose turn it is (:meth:`OpCounter.member`), and every count and every
nanosecond of process time goes to that member. The hook costs time (about 1.5x on the core's
Python), so times measured with it on are marked as such.

What counts as one operation:

* ``x25519``: an X25519 exchange, or a key pair made from a private key (scalar times the base);
* ``sign`` / ``verify``: one Ed25519 signature made / checked;
* ``hpke_seal`` / ``hpke_open``: one HPKE base-mode seal / open (its own X25519 inside pyca is not
  counted again).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from types import FrameType
from typing import Any, Final

__all__ = ["OPS", "Costs", "OpCounter", "since"]

#: The counted operations, in report order.
OPS: Final = ("x25519", "sign", "verify", "hpke_seal", "hpke_open")

# pyca's qualified names of the methods behind each operation (cryptography 42+, Rust bindings).
_QUALNAMES: Final = {
    "X25519PrivateKey.exchange": "x25519",
    "X25519PrivateKey.public_key": "x25519",
    "Ed25519PrivateKey.sign": "sign",
    "Ed25519PublicKey.verify": "verify",
    "Suite.encrypt": "hpke_seal",
    "Suite.decrypt": "hpke_open",
}


@dataclass(slots=True)
class Costs:
    """What one member (or one operation, or a whole run) cost: counts, bytes and process time."""

    x25519: int = 0
    sign: int = 0
    verify: int = 0
    hpke_seal: int = 0
    hpke_open: int = 0
    bytes_sent: int = 0  # payload bytes this member handed to the relay
    bytes_delivered: int = 0  # payload bytes the relay handed to this member
    cpu_ns: int = 0

    def add(self, other: Costs) -> None:
        """Add ``other`` into this one, field by field."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def total(cls, parts: Iterator[Costs] | list[Costs]) -> Costs:
        out = cls()
        for p in parts:
            out.add(p)
        return out


@dataclass
class OpCounter:
    """Counts of each member's pyca calls and its process time, while :meth:`counting` is on."""

    by_member: dict[str, Costs] = field(default_factory=dict)
    _who: str | None = None
    _since: int = 0
    _on: bool = False

    @contextmanager
    def counting(self) -> Iterator[OpCounter]:
        """Turn the hook on for the ``with`` block (nested use keeps the outer hook)."""
        if self._on:
            yield self
            return
        previous = sys.getprofile()
        self._on = True
        sys.setprofile(self._hook)
        try:
            yield self
        finally:
            sys.setprofile(previous)
            self._on = False

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No counting in the block (the sim's own checks and attacks are not the group's cost)."""
        if not self._on:
            yield
            return
        who = self._who
        self._switch(None)
        sys.setprofile(None)
        try:
            yield
        finally:
            sys.setprofile(self._hook)
            self._switch(who)

    @contextmanager
    def member(self, name: str) -> Iterator[Costs]:
        """Everything done in the block is ``name``'s (nested: the inner member's, then back)."""
        outer = self._who
        self._switch(name)
        try:
            yield self.of(name)
        finally:
            self._switch(outer)

    def of(self, name: str) -> Costs:
        costs = self.by_member.get(name)
        if costs is None:
            costs = self.by_member[name] = Costs()
        return costs

    def snapshot(self) -> dict[str, Costs]:
        """A copy of every member's costs so far (subtract two to get one operation's)."""
        out: dict[str, Costs] = {}
        for name, c in self.by_member.items():
            copy = Costs()
            copy.add(c)
            out[name] = copy
        return out

    def _switch(self, who: str | None) -> None:
        now = time.process_time_ns()
        if self._who is not None:
            self.of(self._who).cpu_ns += now - self._since
        self._who, self._since = who, now

    def _hook(self, frame: FrameType, event: str, arg: Any) -> None:
        if event != "c_call" or self._who is None:
            return
        op = _QUALNAMES.get(getattr(arg, "__qualname__", ""))
        if op is not None:
            costs = self.of(self._who)
            setattr(costs, op, getattr(costs, op) + 1)


def since(after: dict[str, Costs], before: dict[str, Costs]) -> dict[str, Costs]:
    """Each member's costs between two :meth:`OpCounter.snapshot` calls (members with any)."""
    out: dict[str, Costs] = {}
    for name, a in after.items():
        b = before.get(name, Costs())
        d = Costs(**{f.name: getattr(a, f.name) - getattr(b, f.name) for f in fields(a)})
        if any(d.as_dict().values()):
            out[name] = d
    return out
