"""The demo's end-of-run checks, as pure functions over what each peer saw (no sockets, no time):
every peer agreed on every epoch, and every message reached every member of its epoch."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["PeerView", "SentMessage", "find_problems"]


@dataclass(frozen=True, slots=True)
class PeerView:
    """What one peer saw during the run, as plain data for :func:`find_problems`."""

    name: str
    epoch_codes: Mapping[int, str]
    departed: bool  # left the group (or its session ended) before the check
    state: str  # connection state; "ready" for a member
    epoch: int | None
    received: Mapping[tuple[str, str], int]  # (sender, text) -> epoch it was read in
    confirmed: frozenset[int] = frozenset()  # local ids of our own messages the relay echoed
    own_epochs: Mapping[int, int] = field(default_factory=dict)  # local id -> epoch of our own line


@dataclass(frozen=True, slots=True)
class SentMessage:
    sender: str
    local_id: int
    text: str


def find_problems(peers: Sequence[PeerView], sent: Sequence[SentMessage]) -> list[str]:
    """Every way the run went wrong, in words; empty when it checks out.

    - a peer still in the run that is not a member;
    - two peers with different epoch codes for an epoch both saw (a fork);
    - members still in the group on different epochs at the end;
    - a message the relay never echoed to its sender, read in different epochs, or not read by a
      peer that was a member of its epoch. A peer that departed with that epoch as its last is
      excused: the commit removing it may have been ordered before the message.
    """
    problems: list[str] = []
    by_name = {p.name: p for p in peers}
    for p in peers:
        if not p.departed and p.state != "ready":
            problems.append(f"{p.name} is not a member ({p.state})")
    for a, b in itertools.combinations(peers, 2):
        for shared in sorted(a.epoch_codes.keys() & b.epoch_codes.keys()):
            if a.epoch_codes[shared] != b.epoch_codes[shared]:
                problems.append(f"epoch {shared}: {a.name} has code {a.epoch_codes[shared]}, "
                                f"{b.name} has {b.epoch_codes[shared]}")
    members = [p for p in peers if not p.departed and p.state == "ready"]
    if len({p.epoch for p in members}) > 1:
        problems.append("the members still in the group are on different epochs: "
                        + ", ".join(f"{p.name} at {p.epoch}" for p in members))
    for m in sent:
        sender = by_name[m.sender]
        if m.local_id not in sender.confirmed:
            problems.append(f"{m.sender}'s {m.text!r} was never echoed by the relay")
            continue
        seen = {p.name: p.received[(m.sender, m.text)] for p in peers if (m.sender, m.text) in p.received}
        if len(set(seen.values())) > 1:
            problems.append(f"{m.sender}'s {m.text!r} was read in different epochs: {seen}")
            continue
        epoch = next(iter(seen.values())) if seen else sender.own_epochs.get(m.local_id)
        if epoch is None:
            continue
        expected = {
            p.name for p in peers
            if p is not sender and epoch in p.epoch_codes
            and not (p.departed and max(p.epoch_codes) == epoch)
        }
        missing = sorted(expected - seen.keys())
        if missing:
            problems.append(f"{m.sender}'s {m.text!r} (epoch {epoch}) did not reach {', '.join(missing)}")
    return problems
