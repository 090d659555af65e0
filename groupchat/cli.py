"""Command line: one argparse tree, ``groupchat chat | relay | demo | bot | bench rekey|relay``.

Every command lives in a module that exposes ``add_arguments(parser)`` and ``run(args) -> int``;
:data:`COMMANDS` is the one table that registers them. Only the module of the command being run
(or asked for ``--help``) is imported, so ``groupchat --help`` stays fast and ``groupchat relay``
never loads key-material code. Every ``--help`` shows that command's own flags with their defaults;
bad usage exits with status 2 and a one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn, Protocol, cast

from . import __version__

__all__ = ["COMMANDS", "Command", "CommandModule", "build_parser", "main"]


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


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show every flag's default; keep descriptions as written.

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
            child.set_defaults(_run=module.run)


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
    return int(args._run(args))


if __name__ == "__main__":
    raise SystemExit(main())
