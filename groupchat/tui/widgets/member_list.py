"""The member list: online state and a trust badge per member, with a legend for the badges.

Each name has its member's colour (:func:`~groupchat.tui.highlight.member_colour`), as in the timeline."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from groupchat.client import wording_tui
from groupchat.client.notices import RosterEntry, TrustState

from ..highlight import member_colour, own_names

__all__ = ["BADGE", "MemberList", "roster_text"]

# Symbols, not only colours, so that the badges survive NO_COLOR and a monochrome terminal.
BADGE: dict[TrustState, str] = {
    TrustState.VERIFIED: "✓",
    TrustState.UNVERIFIED: "?",
    TrustState.KEY_CHANGED: "!",
}
_BADGE_STYLE: dict[TrustState, str] = {
    TrustState.VERIFIED: "bold green",
    TrustState.UNVERIFIED: "",
    TrustState.KEY_CHANGED: "bold reverse red",
}
_LEGEND = "● online ○ away\n✓ verified ? unverified\n! key changed"


def roster_text(members: tuple[RosterEntry, ...]) -> Text:
    """One line per member (us first, then by name), then the legend."""
    ordered = sorted(members, key=lambda m: (not m.is_me, m.name.casefold()))
    text = Text()
    text.append(f"Members ({len(members)})\n", style="bold")
    for m in ordered:
        text.append("● " if m.online else "○ ")
        text.append(BADGE[m.trust], style=_BADGE_STYLE[m.trust])
        text.append(" ")
        colour = member_colour(m.fingerprint)  # from the identity key, as in the timeline
        text.append(m.name, style=f"bold {colour}" if m.is_me else colour)
        if m.is_me:
            text.append(" (you)")
        if m.trust is TrustState.KEY_CHANGED:
            text.append(" key changed", style=_BADGE_STYLE[m.trust])
        text.append("\n")
    text.append("\n")
    text.append(_LEGEND, style="dim")
    return text


class MemberList(Static):
    """Renders the last :class:`RosterChanged`."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(roster_text(()), id=id)
        self.members: tuple[RosterEntry, ...] = ()

    def show(self, members: tuple[RosterEntry, ...]) -> None:
        self.members = members
        self.update(roster_text(members))

    def my_names(self) -> set[str]:
        """The words that name you in a message (your label and the display name in it)."""
        me = next((m for m in self.members if m.is_me), None)
        return own_names(me.name) if me is not None else set()

    def colour_of(self, label: str) -> str | None:
        """The colour of the member shown as ``label``, from their identity key (None: not known)."""
        member = next((m for m in self.members if m.name == label), None)
        return member_colour(member.fingerprint) if member is not None else None
    def show_ended(self) -> None:
        """The session has ended: we are in no group, so no one is shown (nor shown online)."""
        self.members = ()
        text = Text("Members\n", style="bold")
        text.append(wording_tui.CLOSED_STATUS)
        self.update(text)
