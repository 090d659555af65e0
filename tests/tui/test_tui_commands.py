"""Parsing what the user types: chat text, each command, and every kind of mistake."""

from __future__ import annotations

import pytest

from groupchat.core.errors import UsageError
from groupchat.tui.commands import (
    COMMANDS,
    Command,
    CommandError,
    CommandName,
    SendText,
    help_lines,
    parse_input,
)


def test_plain_text_is_sent_as_typed() -> None:
    assert parse_input("hello there") == SendText("hello there")
    assert parse_input("  padded  ") == SendText("padded")


def test_blank_input_does_nothing() -> None:
    assert parse_input("") is None
    assert parse_input("   ") is None


def test_double_slash_sends_a_line_starting_with_a_slash() -> None:
    assert parse_input("//shrug") == SendText("/shrug")


@pytest.mark.parametrize("name", [n for n, spec in COMMANDS.items() if spec.arg is None])
def test_commands_without_argument(name: CommandName) -> None:
    assert parse_input(f"/{name.value}") == Command(name)
    assert parse_input(f"/{name.value.upper()}") == Command(name)


@pytest.mark.parametrize("name", [n for n, spec in COMMANDS.items() if spec.arg is not None])
def test_commands_with_a_name(name: CommandName) -> None:
    assert parse_input(f"/{name.value} bob") == Command(name, "bob")
    # A display name may contain spaces: the name is everything after the command word.
    assert parse_input(f"/{name.value}   Bob Smith ") == Command(name, "Bob Smith")


def test_unknown_command_says_what_to_type() -> None:
    with pytest.raises(CommandError, match=r"unknown command /frobnicate: type /help"):
        parse_input("/frobnicate now")
    with pytest.raises(CommandError, match=r"unknown command /: type /help"):
        parse_input("/")


@pytest.mark.parametrize(
    "name", [n for n, spec in COMMANDS.items() if spec.arg is not None and not spec.optional]
)
def test_missing_argument_is_refused_with_usage(name: CommandName) -> None:
    arg = COMMANDS[name].arg
    with pytest.raises(CommandError, match=rf"/{name.value} needs a {arg}: type /{name.value} {arg}"):
        parse_input(f"/{name.value}")


def test_unexpected_argument_is_refused() -> None:
    with pytest.raises(CommandError, match=r"/rekey takes no argument"):
        parse_input("/rekey now")


def test_command_errors_are_usage_errors() -> None:
    # The app shows every UsageError as it is; a mistyped command must be one of them.
    assert issubclass(CommandError, UsageError)


def test_help_lists_every_command() -> None:
    text = "\n".join(help_lines())
    for name in CommandName:
        assert f"/{name.value}" in text
