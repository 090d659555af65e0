"""The sentences about ring rekeys: their cost, timeouts, failures and who caused them, joiners
that never got in, forks. Part of :mod:`.wording` (every sentence a user reads), kept in its own
module for size; the same rules: pure functions of plain values.
"""

from __future__ import annotations

__all__ = [
    "could_not_restart_ring",
    "joined_ring",
    "late_restart",
    "not_admitted",
    "ring_cost",
    "ring_failed",
    "ring_retried_early",
    "ring_timed_out",
    "welcome_ring",
]


def ring_cost(members: int, ms: float) -> str:
    if members <= 1:  # a lone member agrees with nobody: it only takes fresh keys
        return f"alone in the ring: fresh keys, nobody to agree with, {ms:.1f} ms"
    return f"ring of {members} agreed in 3 rounds, {ms:.1f} ms"


def ring_timed_out(epoch: int, names: str, round_: int, grace: float) -> str:
    if not names:  # the attempt had failed (every message came, and showed it cannot complete)
        return (
            f"the rekey to epoch {epoch}: round {round_} timed out after the attempt failed; "
            "trying again with fresh keys"
        )
    return (
        f"the rekey to epoch {epoch} is waiting for {names} (round {round_} timed "
        f"out); trying again with fresh keys · offline members are removed after "
        f"{grace:g} s"
    )


def ring_failed(epoch: int, kind: str, who: str | None) -> str:
    """A ring attempt that a signed message showed can never complete (core RekeyFailed)."""
    reasons = {
        "round 1 diverged": f"{who} signed over other round-1 messages than we got",
        "round 2 diverged": f"{who} confirmed other round-2 messages than we got",
        "values inconsistent": "the ring values do not add up (who sent a wrong one cannot be known)",
        "confirmation mismatch": f"{who} confirmed another group state than ours",
        "wrong value": f"{who} signed a ring value its own revealed key does not give: {who} lied",
    }
    return (
        f"the rekey to epoch {epoch} cannot complete ({reasons[kind]}): a member or the relay "
        "showed members different messages, or a member is faulty; nobody enters that epoch "
        "from this attempt · trying again with fresh keys when it times out"
    )


def ring_retried_early(epoch: int, who: str) -> str:
    return (
        f"{who} started the rekey to epoch {epoch} over before its deadline (its signed message); "
        "the attempt under way is dropped · a member that keeps doing this stalls the group: /kick it"
    )


def late_restart(who: str, epoch: int) -> str:
    return (
        f"fork: {who} restarted the rekey to epoch {epoch} after we entered it (the relay kept the "
        f"last confirmation from {who}), so {who} holds another epoch {epoch}: {who} cannot read us "
        "until re-added; our group stands"
    )


def not_admitted(seconds: int, committer: str) -> str:
    """A joiner of a ring rekey that a restart dropped before it was ever in."""
    return f"was not let in by {committer}: stalled the rekey for {seconds} s (may ask again)"


def joined_ring(epoch: int, members: int, core_ms: float, code: str) -> str:
    """The core's time over the welcome and the ring's rounds, as ring_cost says it for the others
    (a wall time beside it was measured otherwise and could read shorter than the computing)."""
    return (
        f"you joined · epoch {epoch} · {members} members · ring agreed in 3 rounds, "
        f"{core_ms:.1f} ms of computing · code {code}"
    )


def could_not_restart_ring(exc: Exception) -> str:
    return f"could not restart the rekey without them: {exc}"


def welcome_ring(ms: float, epoch: int, members: int) -> str:
    return f"welcome opened in {ms:.1f} ms · agreeing epoch {epoch} with {members} members in a ring"
