"""Parse what the user typed: a chat message or one of the slash commands.

Parsing is pure (no session, no Textual) so every error a user can make is tested in isolation and
reported as a :class:`CommandError` with a message that says what to type instead.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from groupchat.client import wording_tui
from groupchat.core.errors import UsageError

__all__ = [
    "COMMANDS",
    "Command",
    "CommandError",
    "CommandName",
    "SendText",
    "help_lines",
    "invite_options",
    "parse_input",
    "usage",
]


class CommandError(UsageError):
    """The line starts with ``/`` but is not a valid command; nothing was sent."""


class CommandName(enum.Enum):
    HELP = "help"
    ME = "me"
    WHO = "who"
    VERIFY = "verify"
    TRUST = "trust"
    UNTRUST = "untrust"
    REKEY = "rekey"
    KICK = "kick"
    INVITE = "invite"
    INVITES = "invites"
    REVOKE = "revoke"
    APPROVE = "approve"
    LEAVE = "leave"
    JOIN = "join"
    TREE = "tree"
    SEARCH = "search"
    EDIT = "edit"
    QUIT = "quit"


@dataclass(frozen=True, slots=True)
class _Spec:
    arg: str | None  # the argument's name in the usage line, None if the command takes none
    help: str
    optional: bool = False  # the argument may be left out


COMMANDS: dict[CommandName, _Spec] = {
    CommandName.HELP: _Spec(None, "list the commands"),
    CommandName.ME: _Spec("ACTION", "send an action: the others read * YOURNAME ACTION"),
    CommandName.WHO: _Spec(None, "list the members, their fingerprints and trust"),
    CommandName.VERIFY: _Spec("NAME", "show the safety number to compare with NAME out of band"),
    CommandName.TRUST: _Spec("NAME", "mark NAME's key verified (after comparing the safety number)"),
    CommandName.UNTRUST: _Spec("NAME", "withdraw NAME's verified mark (compare again before /trust)"),
    CommandName.REKEY: _Spec(None, "refresh your own keys now (self-update)"),
    CommandName.KICK: _Spec("NAME", "remove NAME from the group (rekeys)"),
    CommandName.INVITE: _Spec(
        "[USES] [HOURS]",
        "make an invite (default: once, for 24 h; 0 hours: no expiry) to pass on privately",
        True,
    ),
    CommandName.INVITES: _Spec(None, "list the group's live invites"),
    CommandName.REVOKE: _Spec("N", "withdraw live invite number N (see /invites)"),
    CommandName.APPROVE: _Spec("NAME", "let in someone who asked to join without an invite"),
    CommandName.LEAVE: _Spec(None, "leave the group (the others rekey)"),
    CommandName.JOIN: _Spec(None, "join the room again after /leave, a removal or a takeover (also /rejoin)"),
    CommandName.TREE: _Spec(None, "show or hide the key tree panel"),
    CommandName.SEARCH: _Spec(
        "[WORD]", "highlight WORD in the scrollback, jump to it (ctrl+f: the one before); alone: clear", True
    ),
    CommandName.EDIT: _Spec(None, "write the message in $EDITOR (also ctrl+o); ctrl+j starts a new line"),
    CommandName.QUIT: _Spec(None, "exit (stored: you stay in the group; --ephemeral: you leave it)"),
}


_ALIASES = {"rejoin": "join"}


def usage(name: CommandName) -> str:
    """``/verify NAME`` style usage line."""
    spec = COMMANDS[name]
    return f"/{name.value}" + (f" {spec.arg}" if spec.arg else "")


@dataclass(frozen=True, slots=True)
class Command:
    name: CommandName
    arg: str | None = None


@dataclass(frozen=True, slots=True)
class SendText:
    """A chat message to send as typed (``//text`` sends ``/text``)."""

    text: str


def parse_input(line: str) -> Command | SendText | None:
    """Parse one submitted input line. Blank input gives ``None`` (nothing to do).

    Raises:
        CommandError: an unknown command, a missing argument or an unexpected one.
    """
    stripped = line.strip()
    if not stripped:
        return None
    if "\n" in stripped:
        # A message of several lines: drop the blank lines around it, keep each line's indent.
        body = "\n".join(row.rstrip() for row in line.split("\n")).strip("\n")
        if body.startswith("//"):
            return SendText(body[1:])
        if body.startswith("/"):
            raise CommandError(wording_tui.COMMAND_ONE_LINE)
        return SendText(body)
    if stripped.startswith("//"):
        return SendText(stripped[1:])
    if not stripped.startswith("/"):
        return SendText(stripped)
    word, _, rest = stripped[1:].partition(" ")
    rest = rest.strip()
    try:
        name = CommandName(_ALIASES.get(word.lower(), word.lower()))
    except ValueError:
        raise CommandError(
            f"unknown command /{word}: type /help for the list, or // to send a line starting with /"
        ) from None
    spec = COMMANDS[name]
    if spec.arg is None:
        if rest:
            raise CommandError(f"/{name.value} takes no argument: type {usage(name)}")
        return Command(name)
    if not rest:
        if spec.optional:
            return Command(name)
        raise CommandError(f"/{name.value} needs a {spec.arg}: type {usage(name)}")
    # Display names may contain spaces and every command takes at most one name, so the name is
    # everything after the command word: no quoting rules to get wrong.
    return Command(name, rest)


def help_lines() -> list[str]:
    """One line per command for /help, then what each of the three numbers to compare is for."""
    width = max(len(usage(n)) for n in COMMANDS)
    lines = [f"{usage(n):<{width}}  {spec.help}" for n, spec in COMMANDS.items()]
    lines.append(f"{'//text':<{width}}  send a line that starts with /")
    lines.append("numbers to compare:")
    lines += ["  " + means for means in (wording_tui.GROUP_CODE_MEANS, wording_tui.FINGERPRINT_MEANS,
                                         wording_tui.SAFETY_NUMBER_MEANS)]
    return lines


def invite_options(arg: str | None) -> tuple[int, float]:
    """``/invite [USES] [HOURS]`` as (uses, hours); a CommandError says what to type instead."""
    words = (arg or "").split()
    if len(words) > 2:
        raise CommandError(f"/invite takes at most two numbers: type {usage(CommandName.INVITE)}")
    try:
        uses = int(words[0]) if words else 1
        hours = float(words[1]) if len(words) > 1 else 24.0
    except ValueError:
        raise CommandError(
            f"/invite takes numbers: type {usage(CommandName.INVITE)}, e.g. /invite 3 48"
        ) from None
    return uses, hours
