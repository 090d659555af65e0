"""What happens to the simulated group: a seeded random schedule, or a churn script read from a file.

Both give a list of :class:`Step`, checked against the roster as it will be (a join of someone
already in, a kick of someone gone, removing the last member: refused before anything runs, with
the line number for a script). The format is in ``docs/lab.md`` ("groupchat sim") and in
:data:`CHURN_HELP`, one operation a line::

    # a comment; blank lines are skipped
    join NAME [by MEMBER]      MEMBER adds a new member NAME (default: the first member)
    leave NAME [by MEMBER]     NAME leaves: MEMBER commits its removal, reason "left"
    kick NAME [by MEMBER]      MEMBER removes NAME, reason "kicked"
    update NAME                NAME commits an update of its own leaf
    message NAME [TEXT...]     NAME sends an application message (default text: "message N")

"The first member" is the earliest-joined member still in the group other than NAME.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

from ...core.errors import UsageError

__all__ = ["CHURN_HELP", "KINDS", "ChurnError", "Step", "initial_names", "parse_churn", "random_schedule"]

#: The operations a step can be, in report order.
KINDS: Final = ("join", "leave", "kick", "update", "message")

CHURN_HELP: Final = """\
churn script, one operation a line ('#' starts a comment):
  join NAME [by MEMBER]     MEMBER (default: the first member) adds NAME
  leave NAME [by MEMBER]    NAME leaves; MEMBER commits its removal
  kick NAME [by MEMBER]     MEMBER removes NAME
  update NAME               NAME updates its own leaf
  message NAME [TEXT...]    NAME sends a message
the group starts as m0 .. m(N-1) (--members N)"""

# The random schedule's mix: messages and updates most, churn the rest.
_WEIGHTS: Final = {"message": 35, "update": 25, "join": 15, "leave": 10, "kick": 15}


class ChurnError(UsageError):
    """A churn script (or schedule) that cannot run: says which line and why."""


@dataclass(frozen=True, slots=True)
class Step:
    """One operation: ``kind`` done by ``actor`` (the committer or sender) to ``target``."""

    index: int  # 1-based step number, as reports name it
    kind: str
    actor: str
    target: str = ""  # the joiner, the leaver or the kicked member; empty for update and message
    text: str = ""
    line: int = 0  # the script line it came from (0: the random schedule)

    def describe(self) -> str:
        """The step as a churn-script line (what a report names)."""
        if self.kind == "join":
            return f"join {self.target} by {self.actor}"
        if self.kind in ("leave", "kick"):
            return f"{self.kind} {self.target} by {self.actor}"
        return f"{self.kind} {self.actor}"


def initial_names(members: int) -> list[str]:
    """The starting roster of ``--members N``: m0 (the creator) .. m(N-1)."""
    return [f"m{i}" for i in range(members)]


class _Roster:
    """The roster as the steps will leave it, to check each step before anything runs."""

    def __init__(self, names: list[str]) -> None:
        self.names = list(names)
        self.ever = set(names)

    def first_other(self, name: str) -> str | None:
        return next((n for n in self.names if n != name), None)

    def apply(self, kind: str, actor: str, target: str) -> None:
        if kind == "join":
            self.names.append(target)
            self.ever.add(target)
        elif kind in ("leave", "kick"):
            self.names.remove(target)


def _word(token: str) -> bool:
    return token.isprintable() and 0 < len(token) <= 64 and not token.startswith("#")


def parse_churn(text: str, members: int) -> list[Step]:
    """The steps of a churn script for a group that starts as ``initial_names(members)``.

    Raises :class:`ChurnError` naming the line of the first bad one (unknown operation, missing
    or extra names, a member not in the group at that point, a name used before, the last member
    removed).
    """
    roster = _Roster(initial_names(members))
    steps: list[Step] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        try:
            steps.append(_parse_line(words, roster, len(steps) + 1, number))
        except ChurnError as exc:
            raise ChurnError(f"churn script line {number}: {exc}") from None
    if not steps:
        raise ChurnError("churn script has no operations")
    return steps


def _parse_line(words: list[str], roster: _Roster, index: int, number: int) -> Step:
    kind, rest = words[0].lower(), words[1:]
    if kind not in KINDS:
        raise ChurnError(f"unknown operation {words[0]!r} (want {', '.join(KINDS[:-1])} or {KINDS[-1]})")
    if not rest:
        raise ChurnError(f"{kind} wants a member name")
    name = rest[0]
    if not _word(name):
        raise ChurnError(f"{name!r} is not a member name")
    if kind == "message":
        _present(roster, name)
        roster.apply(kind, name, "")
        return Step(index, kind, name, text=" ".join(rest[1:]), line=number)
    if kind == "update":
        if len(rest) > 1:
            raise ChurnError(f"update takes one name, got {' '.join(rest)!r}")
        _present(roster, name)
        return Step(index, kind, name, line=number)
    by: str | None = None
    if len(rest) == 3 and rest[1].lower() == "by":
        by = rest[2]
    elif len(rest) != 1:
        raise ChurnError(f"want '{kind} NAME' or '{kind} NAME by MEMBER', got {' '.join(words)!r}")
    if kind == "join":
        if name in roster.ever:
            raise ChurnError(f"{name!r} is or was in the group already: a joiner needs a new name")
    else:
        _present(roster, name)
        if len(roster.names) == 1:
            raise ChurnError(f"{name!r} is the last member: nobody is left to commit its removal")
    actor = by if by is not None else roster.first_other(name)
    assert actor is not None
    _present(roster, actor)
    if actor == name:
        raise ChurnError(f"{name!r} cannot commit its own {kind}: another member does")
    roster.apply(kind, actor, name)
    return Step(index, kind, actor, name, line=number)


def _present(roster: _Roster, name: str) -> None:
    if name not in roster.names:
        raise ChurnError(f"{name!r} is not in the group at this point")


def random_schedule(members: int, steps: int, seed: int) -> list[Step]:
    """``steps`` operations drawn with ``random.Random(seed)``: the same seed, the same run.

    The group stays between 2 and 2N members (no removal below 2, no join above 2N); the actor
    and target are drawn from the roster as it is at that step.
    """
    rng = random.Random(seed)
    roster = _Roster(initial_names(members))
    cap = max(2 * members, members + 2)
    out: list[Step] = []
    joined = 0
    kinds, weights = list(_WEIGHTS), list(_WEIGHTS.values())
    while len(out) < steps:
        kind = rng.choices(kinds, weights)[0]
        n = len(roster.names)
        if (kind in ("leave", "kick") and n <= 2) or (kind == "join" and n >= cap):
            continue
        index = len(out) + 1
        actor = rng.choice(roster.names)
        if kind == "join":
            joined += 1
            target = f"j{joined}"
        elif kind in ("leave", "kick"):
            target = rng.choice([x for x in roster.names if x != actor])
        else:
            target = ""
        roster.apply(kind, actor, target)
        text = f"message {index}" if kind == "message" else ""
        out.append(Step(index, kind, actor, target, text))
    return out
