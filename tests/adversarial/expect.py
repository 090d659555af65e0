"""What the attack tests observe, in one place: the lead adapts these as issue 13's fixes land.

Every assumption about an API or a sentence that does not exist yet (beacons' reports, invites,
the approval prompt, bounds) lives here, so a test says *what* must hold and this module says
*how* it is seen through the machine (notices, ``machine.epoch``, the roster, frames sent).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Final

from session_room import Member

from groupchat.client.notices import Placeholder, TimelineEvent
from groupchat.client.session.bounds import MAX_BUFFERED_BYTES, MAX_PRESENT
from groupchat.client.session.inputs import ApproveRequested, InviteRequested
from groupchat.client.session.settings import member_id

__all__ = [
    "JOINER_BUFFER_MAX_BYTES",
    "MAX_COST_RATIO",
    "OPEN_ROOM",
    "PENDING_JOINERS_MAX",
    "PRESENCE_IDS_MAX",
    "approve",
    "asks_to_join",
    "foreign_control",
    "holds_group",
    "invited",
    "invited_peer",
    "joiner_buffer_bytes",
    "let_in",
    "notice_texts",
    "pending_joiners",
    "relay_ids_kept",
    "removal_sentence",
    "reports_fork",
    "reports_loss",
    "reports_not_heard",
    "reports_unconfirmed",
    "roster_keys",
    "roster_names",
    "says_open",
    "shown_names",
    "skeleton",
]

#: A waiting joiner keeps at most this many bytes of what the relay sends before its welcome.
JOINER_BUFFER_MAX_BYTES: Final = MAX_BUFFERED_BYTES
#: Ids of non-members a member keeps of what the relay says about presence.
PRESENCE_IDS_MAX: Final = MAX_PRESENT
#: Per-input cost with a huge relay-chosen set over the cost with a small one: "flat" means below.
MAX_COST_RATIO: Final = 3.0


# --- how an honest member gets in (today: it connects, and the member in line adds it) ---------


def _code_in(lines: list[str]) -> str | None:
    for line in reversed(lines):
        match = re.search(r"--invite (gci1-\S+)", line)
        if match is not None:
            return match.group(1)
    return None


def invited(room: Any, inviter: Member, name: str) -> dict[str, Any]:
    """``SessionSettings`` overrides for a newcomer ``name`` whom ``inviter`` let in out of band:
    ``/invite`` on ``inviter``, and the code its timeline shows once the group has the invite."""
    before = len(inviter.timeline())
    room.feed(inviter, InviteRequested(1, 3600.0, name, room.clock()))
    room.settle()
    for _ in range(120):  # the inviter may not be a member yet: its user waits until it is
        if _code_in(inviter.timeline()[before:]) is not None:
            break
        room.clock.advance(0.5)
        room.tick()
    code = _code_in(inviter.timeline()[before:])
    assert code is not None, f"{inviter.name} made no invite: {inviter.timeline()[before:]}"
    return {"invite": code}


def let_in(room: Any, inviter: Member, newcomer: Member) -> None:
    """Whatever else an honest admission takes once ``newcomer`` is connected: nothing (the
    invite does it, committed by the member in line)."""


async def invited_peer(inviter: Any, name: str) -> dict[str, Any]:
    """The loopback face's :func:`invited`: ``start_peer`` overrides for a newcomer that the
    running ``ChatSession`` of ``inviter`` (a ``session_harness.Peer``) invited."""
    from session_harness import wait_until

    before = len(inviter.timeline())
    inviter.session.invite(1, 1.0, name)
    await wait_until(lambda: _code_in(inviter.timeline()[before:]) is not None, 10, "an invite")
    code = _code_in(inviter.timeline()[before:])
    assert code is not None
    return {"invite": code}


def notice_texts(member: Member) -> list[str]:
    """Every sentence the member's UI was given (timeline lines and placeholders' words)."""
    out: list[str] = []
    for n in member.notices():
        if isinstance(n, TimelineEvent):
            out.append(n.text)
        elif isinstance(n, Placeholder):
            out.append(" ".join(x for x in (n.sender or "", n.detail, n.reason.value) if x))
    return out


def holds_group(member: Member) -> bool:
    return member.machine.epoch is not None and not member.stopped


def roster_names(member: Member) -> set[str]:
    return {e.name for e in member.machine.roster()}


def roster_keys(member: Member) -> set[bytes]:
    """The identity keys in the member's group (its roster)."""
    return {m.identity_key for m in member.machine._members.values()}


def _said(member: Member, *words: str) -> list[str]:
    return [t for t in notice_texts(member) if all(w.lower() in t.lower() for w in words)]


def reports_loss(member: Member, sender: str) -> bool:
    """'3 messages from bob did not reach you' (a beacon or a generation gap)."""
    return bool(_said(member, sender, "did not reach"))


def reports_unconfirmed(member: Member) -> bool:
    """'nobody has confirmed your last 2 messages / your update after 15 s'."""
    return bool(_said(member, "nobody has confirmed"))


def reports_not_heard(member: Member, name: str) -> bool:
    """'not heard from bob for 60 s; the relay may be withholding his messages'."""
    return bool(_said(member, "not heard from", name))


def reports_fork(member: Member, name: str) -> bool:
    """'fork: bob's view of the group differs from ours'."""
    return bool(_said(member, "fork", name))


def removal_sentence(member: Member, name: str) -> str | None:
    """The member's timeline sentence for ``name``'s removal, without the epoch and cost tail."""
    for t in notice_texts(member):
        if t.startswith(f"{name} ") and ("removed" in t or "left" in t):
            return t.split(" · ")[0]
    return None


def foreign_control(text: str) -> list[str]:
    """Control, escape and bidi-format characters (category Cc/Cf) left in ``text``, but newline."""
    return [c for c in text if c != "\n" and unicodedata.category(c) in ("Cc", "Cf")]


def joiner_buffer_bytes(member: Member) -> int:
    """Bytes a waiting joiner keeps of what the relay sent before its welcome."""
    return sum(len(x) for x in member.machine._arrival.buffer)


def relay_ids_kept(member: Member) -> int:
    """How many ids of non-members the machine keeps on the relay's word (present, offline since):
    the group's members are bounded by the signed roster, not by the relay."""
    m = member.machine
    members = {member_id(x.identity_key) for x in m._members.values()} | {m._me}
    return len(set(m._present) - members) + len(set(m._offline_since) - members)


#: Join requests a member keeps waiting for an invite check or an approval.
PENDING_JOINERS_MAX: Final = 256


def pending_joiners(member: Member) -> int:
    """How many join requests the member keeps (waiting to be added, checked or approved)."""
    return len(member.machine._duties.adds)


def asks_to_join(member: Member, name: str, fingerprint: str) -> bool:
    """'mallory (fingerprint 1a2b …) asks to join: /approve mallory': shown, with its fingerprint."""
    short = fingerprint.split()[0]
    return bool(_said(member, name, "asks to join", short))


def approve(room: Any, member: Member, name: str) -> None:
    """``/approve NAME`` on ``member``."""
    key = member.machine.approval_for(name).identity_key
    room.feed(member, ApproveRequested(key, room.clock()))
    room.settle()


# A few Cyrillic and Greek letters that look like Latin ones: enough for the tests' names. The real
# check (Unicode's confusables skeleton) belongs to the fix; this only has to catch the attack.
_CONFUSABLE = str.maketrans("аеорсхуіјѕԁһοαρντκ", "aeopcxyijsdhoapvtk")


def skeleton(name: str) -> str:
    """A crude confusable skeleton of ``name`` (NFKC, look-alike letters mapped; case is kept,
    as in Unicode's skeleton)."""
    return unicodedata.normalize("NFKC", name).translate(_CONFUSABLE)


def shown_names(member: Member) -> list[str]:
    """Every member's name as the roster shows it (with a fingerprint suffix, if the fix adds
    one to the displayed name; adapt here if the suffix lives elsewhere)."""
    return [e.name for e in member.machine.roster()]


#: ``SessionSettings`` overrides for a room created ``--open`` (admits anyone who knows its name).
OPEN_ROOM: Final[dict[str, Any]] = {"open_room": True}


def says_open(member: Member) -> bool:
    """The status bar shows the room is open (chosen on purpose, shown as such)."""
    return member.machine.status.open_room
