"""One end-to-end test in a real terminal, as a person would use the chat.

tmux (on its own server socket, so no other tmux session is touched) runs a relay and two
``groupchat chat`` processes in 120x40 windows. A message typed in alice's window is read in bob's,
and so are a three-line paste, a line broken with ctrl+j and a draft written in $EDITOR (ctrl+o),
each as one message of several lines; bob quits and starts again on his store, in the same leaf
with his scrollback; ``/quit`` ends each process with status 0 and leaves nothing
on the terminal but what the app drew: no log line, warning or traceback. This catches what Pilot
cannot: the entry point, terminal setup and teardown, and logs leaking onto the screen
(design/tui.md, last section).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 40.0  # seconds for each wait; generous because the machine is shared


class Tmux:
    """A private tmux server (``-L <unique socket>``) killed at the end."""

    def __init__(self) -> None:
        self.socket = f"groupchat-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args: str) -> str:
        proc = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True, text=True, timeout=15,
        )
        if proc.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def screen(self, window: str) -> str:
        return self("capture-pane", "-p", "-t", f"gc:{window}")

    def wait_for(self, window: str, what: Callable[[str], bool], label: str,
                 status_file: Path | None = None) -> str:
        """Poll ``window``'s screen until ``what(screen)``; fail at once if its process ended."""
        deadline = time.monotonic() + DEADLINE
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen(window)
            if what(screen):
                return screen
            if status_file is not None and status_file.exists():
                raise AssertionError(f"{label}: {window} exited ({status_file.read_text().strip()}) "
                                     f"first; its screen:\n{screen}")
            time.sleep(0.2)
        raise AssertionError(f"{label}: not seen in {DEADLINE:g} s; {window}'s screen:\n{screen}")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=15)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is missing in CI: run .ci/install-deps")
        pytest.skip("tmux is not installed (run .ci/install-deps)")
    t = Tmux()
    try:
        yield t
    finally:
        t.kill()


def _chat_command(tmp_path: Path, name: str, port: int, *extra: str) -> tuple[str, Path]:
    """The shell command for ``name``'s window, and the file its exit status is written to.

    The status goes through a file because tmux may report a pane dead (its terminal closed) a
    while before it has reaped the process and knows the status."""
    home = tmp_path / name
    home.mkdir(exist_ok=True)  # a restart keeps the data directory (the store)
    config = home / "config.toml"
    config.write_text("# empty: everything comes from flags\n")
    editor = home / "editor.sh"  # an $EDITOR that adds two lines to the draft, as a person would
    editor.write_text("#!/bin/sh\nprintf 'from the editor\\nsecond line\\n' >> \"$1\"\n")
    editor.chmod(0o755)
    env = {
        "EDITOR": str(editor),
        "GROUPCHAT_CONFIG": str(config),
        "GROUPCHAT_DATA_DIR": str(home / "data"),
        "GROUPCHAT_LOG_DIR": str(home / "logs"),
        "TERM": "xterm-256color",
    }
    argv = [sys.executable, "-m", "groupchat.cli", "chat", "--relay", f"ws://127.0.0.1:{port}",
            "--room", "tmux-test", "--name", name, *extra]
    status = home / "exit-status"
    # -u COLUMNS -u LINES: tmux's environment can carry the 80x24 of the process that started its
    # server, and Textual (shutil.get_terminal_size) would take them over the window's real size.
    assigned = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    chat = f"env -u COLUMNS -u LINES {assigned} {shlex.join(argv)}"
    return f"{chat}; echo $? > {shlex.quote(str(status))}", status


def _app_only(screen: str) -> list[str]:
    """Lines on a dead pane that are not tmux's own "Pane is dead" note."""
    return [line for line in screen.splitlines() if line.strip() and not line.startswith("Pane is dead")]


def test_two_terminals_chat_and_quit_cleanly(tmux: Tmux, tmp_path: Path) -> None:
    relay_cmd = shlex.join([sys.executable, "-m", "server", "--port", "0", "--log-level", "info"])
    # -c REPO: `python -m` imports from the current directory first; it must be this checkout.
    tmux("new-session", "-d", "-s", "gc", "-x", "120", "-y", "40", "-c", str(REPO), "-n", "relay", relay_cmd)
    tmux("set-option", "-g", "remain-on-exit", "on")
    screen = tmux.wait_for("relay", lambda s: re.search(r"event=listening .*port=(\d+)", s) is not None,
                           "relay listening")
    m = re.search(r"event=listening .*port=(\d+)", screen)
    assert m is not None
    port = int(m.group(1))

    status: dict[str, Path] = {}
    # alice creates the group alone (invite-only, as every room is by default) and makes an
    # invite; bob joins with it, as the README's "Chat from two terminals" says.
    command, status["alice"] = _chat_command(tmp_path, "alice", port)
    tmux("new-window", "-d", "-c", str(REPO), "-n", "alice", command)
    tmux.wait_for("alice", lambda s: "● ready" in s, "alice ready", status["alice"])
    for keys in ("/invite", "Enter"):
        tmux("send-keys", "-t", "gc:alice", *(["-l", keys] if keys != "Enter" else [keys]))
    tmux.wait_for("alice", lambda s: "invite ready" in s, "alice's invite", status["alice"])
    for keys in ("/invites", "Enter"):
        tmux("send-keys", "-t", "gc:alice", *(["-l", keys] if keys != "Enter" else [keys]))
    screen = tmux.wait_for("alice", lambda s: re.search(r"code: (gci1-[a-z2-7]+)", s) is not None,
                           "the invite code", status["alice"])
    code = re.search(r"code: (gci1-[a-z2-7]+)", screen)
    assert code is not None
    command, status["bob"] = _chat_command(tmp_path, "bob", port, "--invite", code.group(1))
    tmux("new-window", "-d", "-c", str(REPO), "-n", "bob", command)
    tmux.wait_for("bob", lambda s: "● ready" in s, "bob ready", status["bob"])
    for who in ("alice", "bob"):
        tmux.wait_for(who, lambda s: "● ready" in s and "Members (2)" in s, f"{who} sees 2 members",
                      status[who])

    tmux("send-keys", "-t", "gc:alice", "-l", "hello from the alice terminal")
    tmux("send-keys", "-t", "gc:alice", "Enter")
    tmux.wait_for("bob", lambda s: "hello from the alice terminal" in s, "alice's message in bob's window",
                  status["bob"])
    # The title reaches the terminal (OSC 2), and a message naming bob rings his bell (tmux flags
    # the window), where one that does not name him did not.
    def bob_window(field: str) -> str:
        return tmux("display-message", "-p", "-t", "gc:bob", f"#{{{field}}}").strip()

    assert bob_window("pane_title") == "groupchat"
    assert bob_window("window_bell_flag") == "0"
    tmux("send-keys", "-t", "gc:alice", "-l", "Bob, are you there?")
    tmux("send-keys", "-t", "gc:alice", "Enter")
    tmux.wait_for("bob", lambda s: "Bob, are you there?" in s, "the mention in bob's window", status["bob"])
    deadline = time.monotonic() + 5
    while bob_window("window_bell_flag") != "1" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert bob_window("window_bell_flag") == "1", "no bell in bob's window for a message naming him"

    # A three-line paste, sent as a terminal sends one (bracketed, line ends as carriage returns),
    # is one message of three lines at bob; then ctrl+j, the newline key every terminal sends.
    tmux("set-buffer", "-b", "gc-paste", "pasted one\npasted two\npasted three")
    tmux("paste-buffer", "-p", "-d", "-b", "gc-paste", "-t", "gc:alice")
    tmux("send-keys", "-t", "gc:alice", "Enter")
    tmux("send-keys", "-t", "gc:alice", "-l", "typed one")
    tmux("send-keys", "-t", "gc:alice", "C-j")
    tmux("send-keys", "-t", "gc:alice", "-l", "typed two")
    tmux("send-keys", "-t", "gc:alice", "Enter")
    tmux.wait_for("alice", lambda s: "typed two" in s, "alice's own message", status["alice"])
    # ctrl+o hands the terminal to $EDITOR (App.suspend) and takes back what it saved.
    tmux("send-keys", "-t", "gc:alice", "-l", "draft ")
    tmux("send-keys", "-t", "gc:alice", "C-o")
    tmux.wait_for("alice", lambda s: "draft from the editor" in s, "the editor's draft", status["alice"])
    tmux("send-keys", "-t", "gc:alice", "Enter")
    screen = tmux.wait_for("bob", lambda s: "alice: draft from the editor" in s,
                           "alice's multi-line messages in bob's window",
                           status["bob"])
    rows = [row.split("▏")[0].strip() for row in screen.splitlines()]  # the timeline's side
    for first, more in (("pasted one", ["pasted two", "pasted three"]), ("typed one", ["typed two"]),
                        ("draft from the editor", ["second line"])):
        at = [i for i, row in enumerate(rows) if row.endswith(f"alice: {first}")]
        assert at, f"no line 'alice: {first}' in bob's window:\n{screen}"
        assert rows[at[0] + 1 : at[0] + 1 + len(more)] == [f"│ {m}" for m in more], screen

    # bob quits and starts again: the store keeps his leaf (no commit: alice sees no second join)
    # and shows his scrollback, his own lines as his.
    _quit(tmux, tmp_path, "bob", status["bob"])
    status["bob"].unlink()
    command, status["bob"] = _chat_command(tmp_path, "bob", port)
    tmux("new-window", "-d", "-c", str(REPO), "-n", "bob2", command)
    screen = tmux.wait_for("bob2", lambda s: "● ready" in s and "Members (2)" in s, "bob ready again",
                           status["bob"])
    assert "resumed from the stored group state" in screen, screen
    assert "alice: hello from the alice terminal" in screen and "alice: draft from the editor" in screen
    tmux("send-keys", "-t", "gc:bob2", "-l", "back from the restart")
    tmux("send-keys", "-t", "gc:bob2", "Enter")
    screen = tmux.wait_for("alice", lambda s: "bob: back from the restart" in s,
                           "bob's line after the restart", status["alice"])
    assert screen.count("bob joined") == 1, screen  # his first join only: the restart was no rejoin

    for who, window in (("bob", "bob2"), ("alice", "alice")):
        _quit(tmux, tmp_path, who, status[who], window)


def _quit(tmux: Tmux, tmp_path: Path, who: str, status: Path, window: str | None = None,
          before: tuple[str, ...] = ()) -> None:
    """/quit in ``who``'s window: status 0, nothing left on the terminal but the lines ``before``
    the app started (a prompt), a log without tracebacks."""
    window = window or who
    tmux("send-keys", "-t", f"gc:{window}", "-l", "/quit")
    tmux("send-keys", "-t", f"gc:{window}", "Enter")
    deadline = time.monotonic() + DEADLINE
    while not status.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    screen = tmux("capture-pane", "-p", "-S", "-200", "-t", f"gc:{window}")
    assert status.exists(), f"{who} still runs {DEADLINE:g} s after /quit; screen:\n{screen}"
    code = status.read_text().strip()
    assert code == "0", f"{who} exited with status {code}; screen:\n{screen}"
    # Textual restored the terminal: nothing else was printed (no logs, warnings, tracebacks).
    assert _app_only(screen) == list(before), f"{who} left output on the terminal:\n{screen}"
    logs = list((tmp_path / who / "logs").glob("*.log"))
    assert logs, f"{who} wrote no log file"
    assert "Traceback" not in logs[0].read_text()


def test_a_wrong_relay_url_shows_its_reason_on_screen_within_5_s(tmux: Tmux, tmp_path: Path) -> None:
    """Issue 15: nothing listening left the screen at "connecting…" with the reason only in the log."""
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command, status = _chat_command(tmp_path, "alice", port)
    tmux("new-session", "-d", "-s", "gc", "-x", "120", "-y", "40", "-c", str(REPO), "-n", "alice", command)
    tmux("set-option", "-g", "remain-on-exit", "on")
    start = time.monotonic()
    reason = re.compile(r"◌ connecting ws://127\.0\.0\.1:\d+ · cannot reach the relay "
                        r"\(connection refused\); retry \d+ in [\d.]+ s │ #tmux-test *$")
    tmux.wait_for("alice", lambda s: reason.match(s.splitlines()[0].strip()) is not None,
                  "the reason, whole, on the status bar", status)
    assert time.monotonic() - start < 5 + 2, "the reason took longer than 5 s (2 s allowed for tmux)"
    _quit(tmux, tmp_path, "alice", status)


def test_a_sealed_store_asks_for_its_passphrase_on_the_terminal(tmux: Tmux, tmp_path: Path) -> None:
    """`groupchat store passphrase` seals the store key; `groupchat chat` then asks for it on the
    terminal (not echoed) before the screen opens, and a wrong one ends it in one line."""
    command, status = _chat_command(tmp_path, "alice", 1)  # nothing listens on port 1
    env = os.environ | {"GROUPCHAT_DATA_DIR": str(tmp_path / "alice" / "data"),
                        "GROUPCHAT_CONFIG": str(tmp_path / "alice" / "config.toml"),
                        "GROUPCHAT_STORE_NEW_PASSPHRASE": "open sesame"}
    done = subprocess.run([sys.executable, "-m", "groupchat.cli", "store", "passphrase"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0 and "sealed under the passphrase" in done.stdout, done.stderr
    tmux("new-session", "-d", "-s", "gc", "-x", "120", "-y", "40", "-c", str(REPO), "-n", "alice", command)
    tmux("set-option", "-g", "remain-on-exit", "on")
    tmux.wait_for("alice", lambda s: "store passphrase:" in s, "the passphrase prompt", status)
    tmux("send-keys", "-t", "gc:alice", "-l", "open sesame")
    tmux("send-keys", "-t", "gc:alice", "Enter")
    screen = tmux.wait_for("alice", lambda s: "cannot reach the relay" in s, "the chat screen", status)
    assert "open sesame" not in screen
    _quit(tmux, tmp_path, "alice", status, before=("store passphrase:",))  # typed, never echoed

    status.unlink()
    command, status = _chat_command(tmp_path, "alice", 1)
    tmux("new-window", "-d", "-c", str(REPO), "-n", "again", command)
    tmux.wait_for("again", lambda s: "store passphrase:" in s, "the prompt again", status)
    tmux("send-keys", "-t", "gc:again", "-l", "open barley")
    tmux("send-keys", "-t", "gc:again", "Enter")
    deadline = time.monotonic() + DEADLINE
    while not status.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status.exists() and status.read_text().strip() == "2", tmux.screen("again")
    shown = "".join(_app_only(tmux.screen("again")))  # one line, wrapped at 120 columns
    assert "groupchat chat: error: wrong passphrase for the store key" in shown, shown
    assert "Traceback" not in shown and "open barley" not in shown, shown
