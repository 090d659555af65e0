"""The ``groupchat`` command line: one argparse tree, own flags with defaults, --version, exit 2.

Help and usage errors go through :func:`groupchat.cli.main` in process (argparse exits through
SystemExit); one subprocess run checks the installed entry points themselves.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from groupchat import __version__
from groupchat.cli import COMMANDS, Command, main

# Each leaf command, a few of its own flags, a default its help must show, and another command's
# flag it must not show (``bench rekey --help`` used to print the bench chooser's help).
HELP_CASES = [
    (["relay"], ["--port", "--max-frame", "--idle-timeout", "--log-level"], "(default: 8765)", "--sizes"),
    (["demo"], ["--peers", "--churn", "--headless", "--keep-relay"], "(default: 4)", "--sizes"),
    (["bench", "rekey"], ["--sizes", "--repeat", "--clock", "--suite"], "(default: 8,16,64,256,1024)",
     "--clients"),
    (["bench", "relay"], ["--clients", "--deliveries", "--window", "--no-redis"], "(default: 100000)",
     "--sizes"),
]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else 1), out, err


@pytest.mark.parametrize(("path", "flags", "default", "foreign"), HELP_CASES, ids=lambda v: str(v))
def test_each_command_help_shows_its_own_flags_with_defaults(
    path: list[str], flags: list[str], default: str, foreign: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run([*path, "--help"], capsys)
    assert code == 0
    assert out.startswith(f"usage: groupchat {' '.join(path)} ")
    for flag in flags:
        assert flag in out
    assert default in " ".join(out.split())  # argparse wraps help to the terminal's width
    assert foreign not in out


def test_group_help_lists_its_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["bench", "--help"], capsys)
    assert code == 0 and "rekey" in out and "relay" in out
    code, out, _ = _run(["--help"], capsys)
    assert code == 0
    for name in ("relay", "demo", "bench"):
        assert f"    {name}" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["--version"], capsys)
    assert code == 0 and out.strip() == f"groupchat {__version__}"


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        ([], "required: COMMAND"),
        (["bogus"], "invalid choice: 'bogus'"),
        (["bench"], "required: COMMAND"),
        (["bench", "nope"], "invalid choice: 'nope'"),
        (["relay", "--port", "x"], "argument --port: a port is a number from 0 to 65535, not 'x'"),
        (["demo", "--scheme", "cone"], "argument --scheme: invalid choice: 'cone'"),
        (["bench", "rekey", "--sizes", "4"], "every size must be at least 8"),
        (["relay", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_bad_usage_exits_2_with_one_line(
    argv: list[str], reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(argv, capsys)
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("groupchat") and reason in lines[0]


def test_impossible_relay_limit_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["relay", "--max-frame", "10"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "max_frame" in err


def test_every_command_module_exists_and_has_the_interface() -> None:
    """Each table entry names a module with add_arguments and run (imported here on purpose)."""
    import importlib

    def leaves(cmds: tuple[Command, ...]) -> list[Command]:
        return [leaf for c in cmds for leaf in (leaves(c.children) if c.children else [c])]

    for cmd in leaves(COMMANDS):
        assert cmd.module is not None
        module = importlib.import_module(cmd.module)
        assert callable(module.add_arguments) and callable(module.run), cmd.module


def test_entry_points_run() -> None:
    """The installed scripts: ``groupchat --version`` and ``groupchat-relay --help``."""
    bindir = Path(sys.executable).parent
    done = subprocess.run([bindir / "groupchat", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"groupchat {__version__}"
    done = subprocess.run([bindir / "groupchat-relay", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "(default: 8765)" in " ".join(done.stdout.split())


def test_relay_command_loads_no_key_material_code() -> None:
    """``groupchat relay`` imports only what it needs: no cryptography, no protocol core crypto."""
    code = (
        "import sys\n"
        "from groupchat.cli import main\n"
        "try:\n    main(['relay', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('cryptography', 'groupchat.core.suite',"
        " 'groupchat.lab', 'textual'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


# --- issue 15: every CLI error is one line ---------------------------------------------------------


def _groupchat(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the installed ``groupchat`` script (a real process), with its files under no home."""
    bindir = Path(sys.executable).parent
    return subprocess.run([bindir / "groupchat", *argv], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_relay_port_out_of_range_is_one_line(port: str) -> None:
    """``groupchat relay --port 99999`` ended in a 33-line OverflowError traceback."""
    done = _groupchat("relay", "--port", port)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("groupchat relay: error: argument --port: a port is a number from 0 to 65535")


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["demo", "--port", "70000"], "argument --port: a port is a number from 0 to 65535"),
        (["relay", "--rate", "nan"], "argument --rate: wants a finite number"),
        (["bench", "relay", "--clients", "-1"], "argument --clients: wants a whole number of at least 1"),
        (["bench", "session", "--joins", "0"], "argument --joins: wants a whole number of at least 1"),
    ],
)
def test_out_of_range_flags_are_refused_by_argparse(
    argv: list[str], reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(argv, capsys)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and reason in err, err


def test_relay_port_in_use_is_one_line() -> None:
    """A relay that cannot listen (the port is taken, here by a socket of ours) says so in one line."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _groupchat("relay", "--port", str(port))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert [line for line in lines if not line.startswith("ts=")] == lines[-1:], done.stderr
    assert lines[-1].startswith(f"groupchat relay: error: cannot listen on 127.0.0.1:{port}: "), done.stderr
    assert "in use" in lines[-1]


def test_relay_bad_redis_url_is_one_line() -> None:
    """A setting checked only when used (the Redis URL's scheme) used to end in a traceback."""
    pytest.importorskip("redis")
    done = _groupchat("relay", "--port", "0", "--redis", "bogus://x")
    assert done.returncode == 2
    last = done.stderr.splitlines()[-1]
    assert "Traceback" not in done.stderr, done.stderr
    assert last.startswith("groupchat relay: error: Redis URL must specify"), done.stderr


def test_main_turns_an_escaping_startup_error_into_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The net in main(): an OSError or GroupChatError a command lets out is one line, 1 or 2."""
    import groupchat.client.bot as bot
    from groupchat.core.errors import ConfigError

    def fail_os(_args: object) -> int:
        raise FileNotFoundError(2, "No such file or directory", "/nowhere/x")

    monkeypatch.setattr(bot, "run", fail_os)
    assert main(["bot"]) == 1
    err = capsys.readouterr().err
    assert err == "groupchat bot: error: No such file or directory: /nowhere/x\n"

    def fail_config(_args: object) -> int:
        raise ConfigError("a bad\nsetting")

    monkeypatch.setattr(bot, "run", fail_config)
    assert main(["bot"]) == 2
    assert capsys.readouterr().err == "groupchat bot: error: a bad setting\n"


@pytest.mark.parametrize("content", [None, "not a certificate\n"])
def test_relay_bad_tls_file_is_one_line(content: str | None, tmp_path: Path) -> None:
    """A missing or unparsable --certfile: one line naming the file, status 2."""
    cert = tmp_path / "cert.pem"
    if content is not None:
        cert.write_text(content)
    done = _groupchat("relay", "--port", "0", "--certfile", str(cert))
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if not line.startswith("ts=")]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("groupchat relay: error: ") and str(cert) in lines[0]


def test_package_metadata_has_an_spdx_license_and_the_venv_step_is_quiet() -> None:
    """The first ``make demo`` printed ~60 lines of setuptools warnings (``project.license`` as a
    TOML table is deprecated): the license is an SPDX string, the installed metadata says so, and
    ``make venv`` keeps pip's chatter in a log file unless the install fails."""
    import importlib.metadata
    import tomllib

    root = Path(__file__).resolve().parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    assert project["build-system"]["requires"] == ["setuptools>=77"]  # PEP 639 support
    assert importlib.metadata.metadata("groupchat")["License-Expression"] == "MIT"
    recipe = (root / "Makefile").read_text().split("$(STAMP): pyproject.toml", 1)[1].split("\nvenv:", 1)[0]
    assert "> $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log" in recipe
    assert all(line.startswith("\t@") for line in recipe.splitlines() if line.startswith("\t") and
               not line.startswith("\t\t"))


@pytest.mark.parametrize("command", [["bot"], ["chat"], ["demo", "--headless", "--seconds", "1"]])
def test_a_room_name_with_an_escape_sequence_is_refused_in_one_line(
    command: list[str], tmp_path: Path
) -> None:
    """Issue 15: ``--room $'a\\e[31mred'`` was accepted and drawn coloured; now refused like a name."""
    import os

    env = os.environ | {"GROUPCHAT_LOG_DIR": str(tmp_path), "GROUPCHAT_DATA_DIR": str(tmp_path)}
    extra = [] if command[0] == "demo" else ["--relay", "ws://127.0.0.1:1", "--name", "alice"]
    bindir = Path(sys.executable).parent
    done = subprocess.run([bindir / "groupchat", *command, "--room", "a\x1b[31mred", *extra],
                          capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "must not contain control or formatting characters" in lines[0], done.stderr
    assert lines[0].startswith(f"groupchat {command[0]}: error: room name 'a\\x1b[31mred' cannot be used")


def test_bot_help_describes_the_script_format_it_refers_to(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 15: ``bot --help`` pointed to a --script format it never described. The epilog lists
    every command the parser knows, and its example is a script the parser accepts."""
    from groupchat.client.bot import _VERBS, SCRIPT_HELP, parse_script

    code, out, _ = _run(["bot", "--help"], capsys)
    assert code == 0
    assert "the format is described at the end of --help" in " ".join(out.split())
    assert SCRIPT_HELP.splitlines()[0] in out and out.rstrip().endswith(SCRIPT_HELP.splitlines()[-1])
    described = {line.split()[0] for line in SCRIPT_HELP.split("\n\n")[1].splitlines()}
    assert described == set(_VERBS)
    example = SCRIPT_HELP.split("example:\n", 1)[1].split("\n\n", 1)[0]
    assert [s.verb for s in parse_script(example)] == ["wait-members", "say", "sleep", "rekey", "leave"]


@pytest.mark.parametrize(
    ("table", "said"),
    [
        ('quit = "ctrl+t"', "ctrl+t would run both quit and toggle-tree"),
        ('qiut = "f10"', "no key binding is called 'qiut'"),
        ('quit = "ctrl+nope"', "is not a key Textual knows"),
        ("quit = 3", "[keys] quit must be a string of keys"),
    ],
)
def test_a_bad_keys_table_stops_chat_in_one_line_before_anything_starts(
    table: str, said: str, tmp_path: Path
) -> None:
    """The config file's ``[keys]`` is checked before the store, the relay or the screen."""
    import os

    config = tmp_path / "config.toml"
    config.write_text(f'relay = "ws://127.0.0.1:1"\nroom = "lobby"\nname = "alice"\n\n[keys]\n{table}\n')
    env = os.environ | {"GROUPCHAT_LOG_DIR": str(tmp_path), "GROUPCHAT_DATA_DIR": str(tmp_path / "data"),
                        "GROUPCHAT_CONFIG": str(config)}
    done = subprocess.run([Path(sys.executable).parent / "groupchat", "chat"], capture_output=True, text=True,
                          timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and said in lines[0], done.stderr
    assert not (tmp_path / "data" / "store.sqlite3").exists()  # refused before the store opened
