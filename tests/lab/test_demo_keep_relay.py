"""``groupchat demo --keep-relay`` with the TUI, in a real pseudo-terminal: the join command it prints
names an executable that exists and carries an invite that still lets a new member in after the
user's own window has closed (issue 15: the new client stayed at "joining" for good)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_COMMAND = re.compile(
    rb"^  (\S+) chat --relay (ws://127\.0\.0\.1:\d+) --room (\S+) --name NAME"
    rb" --invite (gci1-[a-z2-7]+)\r?$",
    re.M,
)


def _read_until(fd: int, pattern: bytes, seen: bytearray, timeout: float) -> bool:
    """Read the pty into ``seen`` until ``pattern`` appears or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while pattern not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                return pattern in seen
            if not chunk:
                break
            seen.extend(chunk)
    return pattern in seen


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
@pytest.mark.parametrize("mode", [[], ["--headless"]], ids=["tui", "headless"])
def test_keep_relay_join_command_works_after_the_run(mode: list[str], tmp_path: Path) -> None:
    env = os.environ | {"GROUPCHAT_LOG_DIR": str(tmp_path / "logs"),
                        "GROUPCHAT_DATA_DIR": str(tmp_path / "data"), "TERM": "xterm-256color"}
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 110, 0, 0))
    demo = subprocess.Popen(
        [sys.executable, "-m", "groupchat.cli", "demo", "--keep-relay", "--peers", "2", "--churn", "0",
         "--seconds", "4", *mode],
        stdin=slave, stdout=slave, stderr=slave, env=env, cwd=REPO, start_new_session=True,
    )
    os.close(slave)
    seen = bytearray()
    try:
        # The TUI runs for 4 s and quits by itself; then the demo says the relay stays.
        assert _read_until(master, b"Ctrl-C to stop", seen, 60), seen.decode(errors="replace")[-2000:]
        match = _COMMAND.search(bytes(seen))
        assert match is not None, seen.decode(errors="replace")[-2000:]
        exe, url, room, code = (g.decode() for g in match.groups())
        assert Path(exe).is_absolute() and os.access(exe, os.X_OK), exe  # not a bare "groupchat"
        # The printed command's session (the same flags, headless): it must become a member.
        done = subprocess.run(
            [exe, "bot", "--relay", url, "--room", room, "--name", "zed", "--invite", code,
             "--seconds", "3", "--join-timeout", "20"],
            capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert re.search(r"= ready · epoch \d+", done.stdout), done.stdout
        assert "+ you joined" in done.stdout, done.stdout
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)
            try:
                demo.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
                demo.wait(10)
        os.close(master)
