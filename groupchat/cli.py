"""Command line: one argparse tree, ``groupchat chat | relay | demo | bot | history export | bench ...``.

Every command lives in a module that exposes ``add_arguments(parser)`` and ``run(args) -> int``;
:data:`COMMANDS` is the one table that registers them. Only the module of the command being run
(or asked for ``--help``) is imported, so ``groupchat --help`` stays fast and ``groupchat relay``
never loads key-material code. Every ``--help`` shows that command's own flags with their defaults;
bad usage exits with status 2 and a one-line reason on stderr. So does every error a command lets
out while it reads its arguments or starts (a :class:`~groupchat.core.errors.GroupChatError`, an
``OSError`` such as a port in use, a ``ValueError``): one line, status 2 for a bad setting and 1 for
a failure to start, never a traceback (issue 15). :func:`port_number` and :func:`positive_int` are
argparse types that refuse an out-of-range value before anything starts.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn, Protocol, cast

from . import __version__

__all__ = [
    "COMMANDS",
    "Command",
    "CommandModule",
    "build_parser",
    "error_line",
    "main",
    "port_number",
    "positive_int",
]


class CommandModule(Protocol):
    """What a command's module provides."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


@dataclass(frozen=True, slots=True)
class Command:
    """One node of the command tree: a leaf names its module, a group has children."""

    name: str
    help: str
    module: str | None = None
    children: tuple[Command, ...] = ()


#: The one table of commands. Adding a command is one line here plus its module.
COMMANDS: tuple[Command, ...] = (
    Command("chat", "open the chat in the terminal UI", "groupchat.tui.command"),
    Command("relay", "run the relay server", "server.__main__"),
    Command("demo", "a relay, bot peers that chat and churn, and your own chat window", "groupchat.lab.demo"),
    Command("bot", "run a headless bot member", "groupchat.client.bot"),
    Command("sim", "a whole group in one process: invariants and costs", "groupchat.lab.sim.command"),
    Command(
        "history",
        "the chat history kept in the local store",
        children=(
            Command("export", "write the decrypted history, text or JSON", "groupchat.client.history_export"),
        ),
    ),
    Command(
        "store",
        "the local store's key",
        children=(
            Command("passphrase", "set, change or remove its passphrase", "groupchat.client.store_command"),
        ),
    ),
    Command(
        "bench",
        "run a benchmark",
        children=(
            Command("rekey", "time rekeys, welcomes and messages vs a floor", "groupchat.lab.bench.rekey"),
            Command("relay", "relay CPU per delivery vs bare websockets", "groupchat.lab.bench.relay"),
            Command("session", "chat sessions over a relay vs the core alone", "groupchat.lab.bench.session"),
        ),
    ),
)


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free one) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a port is a number from 0 to 65535, not {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 0 to 65535, not {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"wants a whole number of at least 1, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"wants a whole number of at least 1, not {value}")
    return value


def error_line(exc: BaseException) -> str:
    """``exc`` as one line a user can read: an OSError's reason and file, nothing multi-line."""
    from .core.text import sanitise

    if isinstance(exc, OSError) and exc.strerror:
        where = exc.filename if exc.filename is not None else None
        text = f"{exc.strerror}: {where}" if where is not None else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(sanitise(text).split())


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Show every flag's default; keep descriptions and epilogs as written (a command's epilog
    may hold an example file, line by line).

    A flag whose help already names its default (``"(default: $GROUPCHAT_CONFIG or …)"``, where the
    real default is resolved later) and a flag without a meaningful one (None, False) is left as is.
    """

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr, then exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _chosen_path(argv: Sequence[str]) -> list[str]:
    """The command names at the start of ``argv`` (options before them are top-level flags)."""
    path: list[str] = []
    level = COMMANDS
    for token in argv:
        if token.startswith("-"):
            continue
        node = next((c for c in level if c.name == token), None)
        if node is None:
            break
        path.append(token)
        if not node.children:
            break
        level = node.children
    return path


def _add_commands(
    parser: argparse.ArgumentParser, commands: Sequence[Command], chosen: Sequence[str], depth: int
) -> None:
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", dest=f"_command{depth}", required=True)
    for cmd in commands:
        child = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help, formatter_class=_Formatter)
        on_path = len(chosen) > depth and chosen[depth] == cmd.name
        if cmd.children:
            _add_commands(child, cmd.children, chosen if on_path else (), depth + 1)
        elif on_path:
            # Import only the command actually chosen: its flags are needed, the others' are not.
            assert cmd.module is not None
            module = cast(CommandModule, importlib.import_module(cmd.module))
            module.add_arguments(child)
            child.set_defaults(_run=module.run, _prog=child.prog)


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser for ``argv``: the whole tree, with the flags of the command ``argv`` names."""
    parser = _Parser(
        prog="groupchat",
        description="End-to-end encrypted terminal group chat.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"groupchat {__version__}")
    _add_commands(parser, COMMANDS, _chosen_path(argv), 0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``groupchat``; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(args_list).parse_args(args_list)
    # Subcommands are required at every level, so parsing succeeded only on a leaf, which set _run.
    from .core.errors import GroupChatError, LocalError  # light: no crypto behind it

    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        return 130
    except (GroupChatError, OSError, ValueError) as exc:
        # What a command did not turn into its own line: still one line, never a traceback.
        bad_setting = isinstance(exc, LocalError | ValueError) and not isinstance(exc, OSError)
        print(f"{args._prog}: error: {error_line(exc)}", file=sys.stderr)
        return 2 if bad_setting else 1


if __name__ == "__main__":
    raise SystemExit(main())
