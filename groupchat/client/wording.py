"""Every sentence the chat session shows a user, in one place (docs/session.md, "What the timeline says").

The session machine decides *that* something is said; this module says *how*. Keeping the words
here lets the TUI's snapshot pictures, the docs' table and the code agree, and lets a reviewer read
everything a user can be told in one sitting. Pure functions of plain values: no state, no I/O.
Nothing here ever formats key material; relay-provided text (an error's reason) is shown only where
the table says so, as the relay's claim.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ALREADY_RUNNING",
    "EMPTY_MESSAGE",
    "LEFT_BEFORE_RING",
    "LEFT_EMPTY_GROUP",
    "LEFT_NO_CONFIRMATION",
    "LEFT_OFFLINE",
    "LEFT_ROOM",
    "LEFT_SESSION",
    "MISSED_FROM_LOG",
    "NOT_RUNNING",
    "REASON_LEFT",
    "REASON_REJOINING",
    "RECONNECT_ORDER",
    "RELAY_RESTARTED",
    "UNREACHABLE_EPOCH",
    "UPDATE_EVERY_TOO_SMALL",
    "at_epoch",
    "bad_display_name",
    "bad_relay_url",
    "bad_room_name",
    "bad_scheme",
    "cannot_follow_change",
    "cannot_follow_rekey",
    "cannot_send_payload",
    "could_not_commit",
    "could_not_restart_ring",
    "created",
    "describe_epoch",
    "disconnected",
    "ejected_while_away",
    "epoch_code_hint",
    "fork_detail",
    "gap_rejoin",
    "invalid_change",
    "invalid_ring_message",
    "joined_ring",
    "joined_tree",
    "key_changed",
    "kick_self",
    "left_removed_by",
    "marked_verified",
    "missed_commit",
    "no_member_named",
    "not_a_payload",
    "not_positive",
    "reason_evicted",
    "reason_evicted_in_ring",
    "reason_kicked",
    "reconnected",
    "refused_room",
    "relay_said",
    "removed_by",
    "ring_cost",
    "ring_timed_out",
    "sent_at_epoch",
    "text_too_long",
    "too_large",
    "tree_cost",
    "unknown_content",
    "welcome_ring",
]

# --- settings and commands (UsageError messages) ------------------------------------------------

RECONNECT_ORDER: Final = "reconnect_min must not exceed reconnect_max"
UPDATE_EVERY_TOO_SMALL: Final = "update_every must be at least 1 message"
ALREADY_RUNNING: Final = "this session is already running"
NOT_RUNNING: Final = "the session is not running"
LEFT_SESSION: Final = "this session has left the room; nothing more can be sent"
EMPTY_MESSAGE: Final = "an empty message is not sent"


def bad_relay_url(url: str) -> str:
    return f"relay URL {url!r} must start with ws:// or wss://"


def bad_room_name(max_len: int) -> str:
    return f"room name must be 1 to {max_len} bytes of UTF-8"


def bad_display_name(name: str, exc: Exception) -> str:
    return f"name {name!r} cannot be used: {exc}"


def bad_scheme(scheme: str) -> str:
    return f"unknown scheme {scheme!r}: choose tree or ring"


def not_positive(setting: str) -> str:
    return f"{setting} must be a positive number of seconds"


def text_too_long(max_bytes: int) -> str:
    return f"message is longer than {max_bytes} bytes; split it"


def kick_self() -> str:
    return "you cannot kick yourself; use /leave"


def no_member_named(name: str) -> str:
    return f"no member named {name!r} (see /who)"


def marked_verified(name: str) -> str:
    return f"{name} is now marked verified"


# --- joining, creating, connection ------------------------------------------------------------


def created(room: str, code: str) -> str:
    return f"you created the group in room {room} · epoch 0 · code {code}"


def joined_tree(epoch: int, members: int, ms: float, code: str) -> str:
    return f"you joined · epoch {epoch} · {members} members · welcome opened in {ms:.1f} ms · code {code}"


def welcome_ring(ms: float, epoch: int, members: int) -> str:
    return f"welcome opened in {ms:.1f} ms · agreeing epoch {epoch} with {members} members in a ring"


def joined_ring(epoch: int, members: int, wall_ms: float, core_ms: float, code: str) -> str:
    return (
        f"you joined · epoch {epoch} · {members} members · ring agreed in "
        f"{wall_ms:.0f} ms ({core_ms:.1f} ms of it computing) · code {code}"
    )


def disconnected(reason: str, retry_in: float | None) -> str:
    when = f"; reconnecting in {retry_in:.1f} s" if retry_in is not None else ""
    return f"{reason}{when}"


def reconnected(epoch: int) -> str:
    return f"reconnected · epoch {epoch}"


def refused_room(reason: str) -> str:
    """The relay's own reason, shown as its claim."""
    return f"the relay refused to let us into the room: {reason}"


def relay_said(reason: str) -> str:
    return f"relay: {reason}"


def too_large(local_id: int) -> str:
    return f"message {local_id} is too large for the relay"


def cannot_send_payload(what: str, size: int, limit: int) -> str:
    return f"cannot send a {what} of {size} bytes: the relay accepts at most {limit}"


MISSED_FROM_LOG: Final = (
    "the relay had already dropped them from its log (every room message counts, not only chat)"
)
RELAY_RESTARTED: Final = (
    "the relay restarted and lost its log: messages sent while you were offline cannot be read; "
    "re-forming the group"
)


def gap_rejoin() -> str:
    return (
        "the relay no longer has the messages sent while you were offline (its log was trimmed); "
        "rejoining the group"
    )


# --- leaving and removal ------------------------------------------------------------------------

LEFT_OFFLINE: Final = "you left (offline: the others will remove you)"
LEFT_ROOM: Final = "you left the room"
LEFT_BEFORE_RING: Final = "you left before the rekey letting you in was done"
LEFT_EMPTY_GROUP: Final = "you left; the group is now empty"
LEFT_NO_CONFIRMATION: Final = "you left (no member confirmed your removal in time)"


def left_removed_by(by: str, epoch: int) -> str:
    return f"you left the group · removed by {by} at epoch {epoch}"


def ejected_while_away(by: str) -> str:
    return f"{by} removed you while you were offline; asking to rejoin"


def removed_by(by: str) -> str:
    return f"you were removed from the group by {by}"


# Why a member is being removed, as the epoch line shows it ("bob left", "bob was removed ...").
REASON_LEFT: Final = "left"
REASON_REJOINING: Final = "is rejoining"


def reason_kicked(by: str) -> str:
    return f"was removed by {by}"


def reason_evicted(grace: float) -> str:
    return f"was removed after {grace:g} s offline"


def reason_evicted_in_ring(grace: float) -> str:
    return f"was removed after {grace:g} s offline, during a rekey"


def could_not_commit(exc: Exception) -> str:
    return f"could not commit a pending change: {exc}"


def could_not_restart_ring(exc: Exception) -> str:
    return f"could not restart the rekey without them: {exc}"


# --- epochs --------------------------------------------------------------------------------------


def describe_epoch(
    removed: list[tuple[str, str]],
    added: list[str],
    updater: str | None,
    epoch: int,
    cost: str,
) -> str:
    """The epoch line: who left or was removed (name, why), who joined, or who refreshed keys
    (``updater``: "you" or a name, only when nothing else changed), then the epoch and its cost."""
    parts = [f"{name} {why}" for name, why in removed]
    parts.extend(f"{name} joined" for name in added)
    if updater is not None and not parts:
        parts.append("you refreshed your keys" if updater == "you" else f"{updater} refreshed their keys")
    return f"{', '.join(parts)} · epoch {epoch} · {cost} · code changed"


def ring_cost(members: int, ms: float) -> str:
    return f"ring of {members} agreed in 2 rounds, {ms:.1f} ms"


def tree_cost(changed: int, ms: float) -> str:
    return f"{'1 key' if changed == 1 else f'{changed} keys'} refreshed in {ms:.1f} ms"


def ring_timed_out(epoch: int, names: str, round_: int, grace: float) -> str:
    return (
        f"the rekey to epoch {epoch} is waiting for {names} (round {round_} timed "
        f"out); trying again with fresh keys · offline members are removed after "
        f"{grace:g} s"
    )


def key_changed(name: str, fp: str) -> str:
    return (
        f"{name}'s key changed (fingerprint now {fp}): this may be a "
        f"new device or an impostor. Compare safety numbers with /verify {name}, "
        f"then /trust {name}"
    )


# --- rejections (the table in docs/session.md, decided in session/rejections.py) -----------------


def missed_commit(epoch: int, ours: int) -> str:
    return f"we missed a change to the group (a commit for epoch {epoch}, we are at {ours}); rejoining"


def cannot_follow_change(exc: Exception) -> str:
    return (
        f"cannot follow the last change to the group ({exc}); our view of the group keys differs "
        "from the others' (a fork or a malicious member); rejoining"
    )


def cannot_follow_rekey(exc: Exception) -> str:
    return (
        f"cannot follow the last rekey ({exc}); our view of the group keys differs from the "
        "others' (a fork or a malicious member); rejoining"
    )


def invalid_change(exc: Exception) -> str:
    return f"ignored an invalid change to the group: {exc}"


def invalid_ring_message(exc: Exception) -> str:
    return f"ignored an invalid ring message: {exc}"


UNREACHABLE_EPOCH: Final = "messages come from an epoch we never reached; rejoining"


def sent_at_epoch(epoch: int | None) -> str:
    return f"sent at epoch {epoch}"


def at_epoch(epoch: int | None) -> str:
    return f"epoch {epoch}"


def fork_detail(epoch: int, ours: int) -> str:
    return f"sent at epoch {epoch}, we are at {ours}"


def epoch_code_hint(epoch: int, code: str) -> str:
    return f"our epoch {epoch} code is {code}: compare it with the sender's"


def not_a_payload(exc: Exception) -> str:
    return f"not a groupchat payload: {exc}"


def unknown_content(exc: Exception) -> str:
    return f"unknown content: {exc}"


# --- beacons: loss, withholding and forks (session/beacons.py) -----------------------------------


def messages_lost(n: int, name: str) -> str:
    return f"{n} message{'s' if n != 1 else ''} from {name} did not reach you"


def messages_unconfirmed(n: int) -> str:
    if n == 1:
        return "nobody has confirmed your last message"
    return f"nobody has confirmed your last {n} messages"


def commit_unconfirmed(update: bool, seconds: float) -> str:
    what = "your update" if update else "your change to the group"
    return f"nobody has confirmed {what} after {seconds:g} s"


def fork_view(name: str) -> str:
    return f"fork: {name}'s view of the group differs from ours"


def not_heard(name: str, seconds: float) -> str:
    return f"not heard from {name} for {seconds:g} s; the relay may be withholding their messages"


def bad_beacon(exc: Exception) -> str:
    return f"a malformed beacon: {exc}"
