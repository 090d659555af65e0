"""Every sentence the chat session shows a user, in one place (docs/session.md, "What the timeline says").

The session machine decides *that* something is said; this module says *how*. Keeping the words
here lets the TUI's snapshot pictures, the docs' table and the code agree, and lets a reviewer read
everything a user can be told in one sitting. Pure functions of plain values: no state, no I/O.
Nothing here ever formats key material; relay-provided text (an error's reason) is shown only where
the table says so, as the relay's claim.
"""

from __future__ import annotations

import time
from typing import Final

from ..core.admission import RemovalCode
from ..core.text import sanitise

__all__ = [
    "ALREADY_RUNNING",
    "BROKEN_CHANGE",
    "BROKEN_REKEY",
    "BROKEN_WELCOME",
    "EMPTY_MESSAGE",
    "LEFT_BEFORE_RING",
    "LEFT_EMPTY_GROUP",
    "LEFT_NO_CONFIRMATION",
    "LEFT_OFFLINE",
    "LEFT_ROOM",
    "LEFT_SESSION",
    "MISSED_FROM_LOG",
    "NOT_ECHOED",
    "NOT_RUNNING",
    "NO_MARKER_ECHO",
    "NO_REASON",
    "NO_SYNC_ECHO",
    "NO_WELCOME_YET",
    "RECONNECT_ORDER",
    "RELAY_RESTARTED",
    "REPLACED_STATUS",
    "STRANDED_CREATED",
    "UPDATE_EVERY_TOO_SMALL",
    "WELCOME_UNOPENED",
    "ambiguous_member",
    "asks_to_join",
    "at_epoch",
    "bad_display_name",
    "bad_invite",
    "bad_invite_options",
    "bad_relay_url",
    "bad_room_characters",
    "bad_room_name",
    "bad_scheme",
    "behind_reentering",
    "cannot_follow_change",
    "cannot_send_payload",
    "could_not_commit",
    "created",
    "creation_fallback",
    "describe_epoch",
    "disconnected",
    "epoch_code_hint",
    "evicted_coming_back",
    "fork_detail",
    "fresh_join_request",
    "gap_rejoin",
    "invalid_change",
    "invalid_ring_message",
    "invite_line",
    "invite_ready",
    "invites_changed",
    "joined_tree",
    "kick_self",
    "left_removed_by",
    "lookalike_member",
    "marked_unverified",
    "marked_verified",
    "member_renamed",
    "missed_commit",
    "more_asking",
    "no_member_named",
    "no_one_asking",
    "no_such_invite",
    "not_a_payload",
    "not_positive",
    "readded_unasked",
    "reconnected",
    "refused_room",
    "relay_said",
    "relay_text",
    "removal_reason",
    "removed_by",
    "removed_for_readd",
    "replaced_elsewhere",
    "sent_at_epoch",
    "signed_change_refused",
    "signed_ring_message_refused",
    "text_too_long",
    "too_large",
    "tree_cost",
    "unknown_content",
    "welcome_refused",
]

# --- settings and commands (UsageError messages) ------------------------------------------------

RECONNECT_ORDER: Final = "reconnect_min must not exceed reconnect_max"
UPDATE_EVERY_TOO_SMALL: Final = "update_every must be at least 1 message"
ALREADY_RUNNING: Final = "this session is already running"
NOT_RUNNING: Final = "the session is not running"
LEFT_SESSION: Final = "this session has left the room; nothing more can be sent"
EMPTY_MESSAGE: Final = "an empty message is not sent"


def bad_relay_url(url: str) -> str:
    return f"relay URL {url!r} must start with ws:// or wss:// and hold no control characters"


def bad_room_name(max_len: int) -> str:
    return f"room name must be 1 to {max_len} bytes of UTF-8"


def bad_room_characters(room: str) -> str:
    return f"room name {room!r} cannot be used: it must not contain control or formatting characters"


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


def still_checking(name: str) -> str:
    return f"{name}'s join request is still being checked (we just joined): try /trust again in a moment"


def marked_unverified(name: str) -> str:
    return f"{name} is no longer marked verified; /verify {name} to compare again"


# --- joining, creating, connection ------------------------------------------------------------


def created(room: str, code: str, reformed: str | None = None) -> str:
    """``reformed``: the scheme of the group ours takes the place of (the relay lost it)."""
    if reformed is not None:
        return (
            f"you re-formed the group in room {room} ({reformed}, as before): the group you were "
            f"in is gone from the relay and nobody else is here · epoch 0 · code {code}"
        )
    return f"you created the group in room {room} · epoch 0 · code {code}"


def joined_tree(epoch: int, members: int, ms: float, code: str) -> str:
    return f"you joined · epoch {epoch} · {members} members · welcome opened in {ms:.1f} ms · code {code}"


def disconnected(reason: str, retry_in: float | None) -> str:
    when = f"; reconnecting in {retry_in:.1f} s" if retry_in is not None else ""
    return f"{relay_text(reason)}{when}"


NOT_ECHOED: Final = "not confirmed by the relay"  # our message had no echo when the session closed


def reconnected(epoch: int) -> str:
    return f"reconnected · epoch {epoch}"


def refused_room(reason: str) -> str:
    """The relay's own reason, shown as its claim."""
    return f"the relay refused to let us into the room: {relay_text(reason)}"


def relay_said(reason: str) -> str:
    return f"relay: {relay_text(reason)}"


REPLACED_STATUS: Final = "another window took over"


def replaced_elsewhere(reason: str) -> str:
    """The relay said another connection joined as this member (the same identity run twice)."""
    return (
        "another window (or device) joined this room as you, so this one has stopped: nothing sent here "
        f"goes out any more; /join takes the room back here (relay: {relay_text(reason)})"
    )


def too_large(local_id: int) -> str:
    return f"message {local_id} is too large for the relay"


def cannot_send_payload(what: str, size: int, limit: int) -> str:
    return f"cannot send a {what} of {size} bytes: the relay accepts at most {limit}"


MISSED_FROM_LOG: Final = (
    "the relay had already dropped them from its log (every room message counts, not only chat)"
)
RELAY_RESTARTED: Final = (
    "the relay says it lost its log (a restart?): messages sent while you were offline cannot be "
    "read; we keep our group and read its new log from the start"
)


def gap_rejoin() -> str:
    return (
        "the relay says it no longer has the messages sent while you were offline (its log was "
        "trimmed); we keep our group, and ask to be re-added only if the others turn out to be ahead"
    )


# --- leaving and removal ------------------------------------------------------------------------

LEFT_OFFLINE: Final = "you left (offline: the others will remove you)"
LEFT_ROOM: Final = "you left the room"
LEFT_BEFORE_RING: Final = "you left before the rekey letting you in was done"
LEFT_EMPTY_GROUP: Final = "you left; the group is now empty"
LEFT_NO_CONFIRMATION: Final = "you left (no member confirmed your removal in time)"


def left_removed_by(by: str, epoch: int) -> str:
    return f"you left the group · removed by {by} at epoch {epoch}"


def evicted_coming_back(by: str, seconds: int) -> str:
    heard = f" (not heard from you for {seconds} s)" if seconds else ""
    return f"{by} removed you as offline{heard}; coming back in (no invite needed)"


def removed_by(by: str) -> str:
    return f"you were removed from the group by {by}"


# Why a member is being removed, as the epoch line shows it ("bob left", "bob was removed ...").
def removal_reason(code: RemovalCode | None, seconds: int, committer: str, readded: bool = True) -> str:
    """Why a member was removed, from the reason in the signed commit: every member shows the
    same sentence (only who committed it differs as "you" or a name). A rejoining member is
    ``readded`` in the same commit, or (removed by a ring restart, which only removes) next."""
    if code is RemovalCode.LEFT:
        return "left"
    if code is RemovalCode.REJOINING and not readded:
        return f"is rejoining (asked again with a new key; old keys removed by {committer}, added back next)"
    if code is RemovalCode.REJOINING:
        return f"is rejoining (asked again with a new key; re-added by {committer})"
    if code is RemovalCode.OFFLINE:
        return f"was removed by {committer}: not heard from for {seconds} s"
    if code is RemovalCode.UNRESPONSIVE:
        return f"was removed by {committer}: stalled a rekey for {seconds} s"
    return f"was removed by {committer}"


def invites_changed(who: str, created: int, revoked: int) -> tuple[str, ...]:
    """The epoch line's words for invites a commit created or withdrew."""
    out = []
    if created:
        out.append(f"{who} made {'an invite' if created == 1 else f'{created} invites'}")
    if revoked:
        out.append(f"{who} withdrew {'an invite' if revoked == 1 else f'{revoked} invites'}")
    return tuple(out)


def could_not_commit(exc: Exception) -> str:
    return f"could not commit a pending change: {exc}"


# --- epochs --------------------------------------------------------------------------------------


def describe_epoch(
    removed: list[tuple[str, str]],
    added: list[str],
    updater: str | None,
    epoch: int,
    cost: str,
    admission: tuple[str, ...] = (),
) -> str:
    """The epoch line: who left or was removed (name, why), who joined, or who refreshed keys
    (``updater``: "you" or a name, only when nothing else changed), then the epoch and its cost."""
    parts = [f"{name} {why}" for name, why in removed]
    parts.extend(f"{name} joined" for name in added)
    parts.extend(admission)
    if updater is not None and not parts:
        parts.append("you refreshed your keys" if updater == "you" else f"{updater} refreshed their keys")
    return f"{', '.join(parts)} · epoch {epoch} · {cost} · code changed"


def tree_cost(changed: int, ms: float) -> str:
    return f"{'1 key' if changed == 1 else f'{changed} keys'} refreshed in {ms:.1f} ms"


# --- rejections (the table in docs/session.md, decided in session/rejections.py) -----------------


def missed_commit(epoch: int, ours: int) -> str:
    return (
        f"a change to the group claims epoch {epoch}, we are at {ours}: the relay may be withholding "
        "a commit, or the claim is forged; we keep our group and watch"
    )


def cannot_follow_change(exc: Exception) -> str:
    return (
        f"cannot follow the last change to the group ({exc}): altered on the way, or our view of "
        "the group keys differs from the others'; we keep our group and watch"
    )


def invalid_change(exc: Exception) -> str:
    return f"ignored an invalid change to the group: {exc}"


# What a signed refusal found wrong, in the words of signed_change_refused / welcome_refused.
BROKEN_REKEY: Final = "its re-keying breaks the rules"
BROKEN_CHANGE: Final = "it breaks the rules for changes"
BROKEN_WELCOME: Final = "it does not fit what it was signed with"


def signed_change_refused(who: str, problem: str, detail: str) -> str:
    """A change whose signature checked (``who`` is the committer's label) refused here (an
    inconsistent path is :func:`cut_off`)."""
    return (
        f"{who}'s change to the group could not be verified here: {problem} ({detail}); {who} may be "
        "faulty or malicious; ignored"
    )


def welcome_refused(who: str, fingerprint: str, problem: str, detail: str) -> str:
    """A welcome whose signature checked (by ``who``, fingerprint given: we hold no roster yet)."""
    return (
        f"a welcome for us from {who} ({fingerprint}) could not be opened: {problem} ({detail}); "
        f"{who} may be faulty or malicious"
    )


def signed_ring_message_refused(who: str, detail: str) -> str:
    """A ring message whose signature checked (``who`` is its sender's label) refused here."""
    return (
        f"{who}'s ring message could not be verified here ({detail}); {who} may be faulty or "
        "malicious; ignored"
    )


def invalid_ring_message(exc: Exception) -> str:
    return f"ignored an invalid ring message: {exc}"


def behind_reentering(epoch: int, seconds: float) -> str:
    return (
        f"traffic claiming epoch {epoch} has kept coming for {seconds:.0f} s and nothing readable "
        "has: we seem to be behind the group; asking to be re-added (we keep our group until a "
        "welcome comes)"
    )


def creation_fallback(seconds: float) -> str:
    return (
        f"no one let us into the group the relay said was created first (no welcome in "
        f"{seconds:.0f} s): keeping the group we created"
    )


def fresh_join_request(why: str) -> str:
    return f"{why}: asking again with a fresh join request"


WELCOME_UNOPENED: Final = "a welcome for us could not be opened"


def readded_unasked(by: str) -> str:
    """Removed to be re-added for a join request of ours we no longer hold (an old one, replayed)."""
    return (
        f"{by} re-added us for an old join request of ours (the relay may have replayed it); "
        "coming back in (no invite needed)"
    )


def removed_for_readd(by: str) -> str:
    return f"{by} removed our old place in the group to re-add us, as we asked; waiting for the welcome"


NO_WELCOME_YET: Final = "no welcome has come for our join request"
NO_MARKER_ECHO: Final = (
    "the relay has not echoed our group's creation in 10 s, and showed no other before it: our "
    "group stands"
)
NO_SYNC_ECHO: Final = (
    "the relay has not echoed our own marker in 10 s: going on with what it has shown us (it may "
    "be withholding our messages)"
)
STRANDED_CREATED: Final = (
    "the relay showed no one here and no welcome came: we made a group of our own, and keep asking "
    "to join the room's (if its members let us in, we move there)"
)


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


# --- admission ---------------------------------------------------------------------------------


def asks_to_join(name: str, fingerprint: str, problem: str) -> str:
    why = f" (their invite: {problem})" if problem else ""
    return f"{name} (fingerprint {fingerprint}) asks to join{why}: type /approve {name} to let them in"


def more_asking(n: int) -> str:
    return f" (and {n} more asked meanwhile: /approve takes a name or a fingerprint prefix)"


def no_one_asking(query: str) -> str:
    return f"no one waiting to join matches {query!r}: /approve takes a name or a fingerprint prefix"


def invite_ready(code: str, relay: str, room: str, uses: int, not_after: int) -> str:
    expiry = "never expires" if not not_after else f"valid until {_utc(not_after)}"
    times = "once" if uses == 1 else f"{uses} times"
    return (
        f"invite ready (usable {times}, {expiry}); pass this on privately, the relay never sees it: "
        f"groupchat chat --relay {relay} --room {room} --invite {code}"
    )


def bad_invite(exc: Exception) -> str:
    return f"that invite code cannot be used: {exc}"


def _utc(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def no_such_invite(query: str, live: int) -> str:
    if not live:
        return "there are no live invites to revoke (/invite makes one)"
    return f"no live invite is numbered or labelled {query!r}: /invites lists them (1..{live})"


def bad_invite_options(uses: int, hours: float, most: int) -> str:
    return (
        f"an invite is good for 1..{most} uses and 0 (never expires) or more hours, "
        f"not {uses} uses, {hours:g} hours"
    )


def invite_line(number: int, label: str, uses_left: int, not_after: int, inviter: str) -> str:
    expiry = "no expiry" if not not_after else f"until {_utc(not_after)}"
    name = f" “{label}”" if label else ""
    return f"{number}.{name} {uses_left} use{'s' if uses_left != 1 else ''} left · {expiry} · by {inviter}"
# --- telling members apart (client/names.py) ------------------------------------------------------


def ambiguous_member(query: str, candidates: tuple[str, ...]) -> str:
    return (
        f"{query!r} could be any of {len(candidates)} members: {', '.join(candidates)}. "
        "Type one of these (# works for ·), or a fingerprint prefix (see /who)"
    )


def lookalike_member(label: str, others: tuple[str, ...]) -> str:
    return (
        f"{label} is a new member whose name looks like {', '.join(others)}, with another key: "
        f"a different person or device, shown with a fingerprint suffix. Compare safety numbers "
        f"with /verify {label} before trusting them"
    )


def member_renamed(label: str, earlier: tuple[str, ...]) -> str:
    return f"{label} was called {', '.join(earlier)} before (same key)"


# --- issue 13 item 7: text the relay chose -------------------------------------------------------

NO_REASON: Final = "no reason given"


def relay_text(reason: str) -> str:
    """A reason the relay (or the connection) gave, without escapes, bidi or control characters."""
    return sanitise(reason).strip() or NO_REASON
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


def commit_not_echoed(update: bool, seconds: float) -> str:
    what = "your update" if update else "your change to the group"
    return (
        f"nobody has confirmed {what} after {seconds:g} s: the relay took it but never delivered it "
        "back (it may be withholding it); trying again"
    )


def messages_not_echoed(n: int, seconds: float) -> str:
    what = "your last message" if n == 1 else f"your last {n} messages"
    return (
        f"nobody has confirmed {what} after {seconds:g} s: the relay took them but never delivered "
        "them back (it may be withholding them); sending again"
    )


def fork_view(name: str) -> str:
    return f"fork: {name}'s view of the group differs from ours"


def not_heard(name: str, seconds: float) -> str:
    return f"not heard from {name} for {seconds:g} s; the relay may be withholding their messages"


def bad_beacon(exc: Exception) -> str:
    return f"a malformed beacon: {exc}"


# --- a split by an inconsistent path (session/behind.py Split, session/beacons.py) -------------


def cut_off(by: str, exc: Exception) -> str:
    """We could not follow a signed commit at our epoch: the members above its lie moved on."""
    return (
        f"{by}'s change to the group cannot be followed here: their update is inconsistent for our "
        f"part of the group's keys ({exc}; they may be faulty or malicious). The members it is "
        "consistent for have moved on without us: asking to be re-added (we keep our group until a "
        "welcome comes; what you type waits until then)"
    )


def cut_off_over(by: str, seconds: float) -> str:
    return (
        f"no welcome {seconds:.0f} s after {by}'s change we could not follow: nobody else seems to "
        "have taken it; going on in the group we hold"
    )


def split_seen(name: str, by: str | None, epoch: int) -> str:
    """``name``'s beacon at the epoch before ours: it processed the commit that took us on and
    could not follow it (``by``: its committer; "" ours; None not known)."""
    whose = "the last change" if by is None else "your change" if not by else f"{by}'s change"
    blame = "" if not by else f" ({by} may be faulty or malicious)"
    return (
        f"split: {name} could not follow {whose} to epoch {epoch}{blame} and is cut off from the "
        f"group: {name} cannot read what is sent now until re-added, which their session asks for"
    )


SENT_WHILE_CUT_OFF: Final = (
    "sent while we were cut off by a change we could not follow (those keys never reached us)"
)
SENT_BEFORE_READDED: Final = (
    "sent at an epoch whose keys never reached us, before we were re-added in place of our leaf"
)
