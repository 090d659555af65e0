"""``groupchat bot``: script parsing, the transcript renderer, and bots chatting over a real relay."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from groupchat.client.bot import ScriptError, Step, parse_script
from groupchat.client.notices import (
    ChatLine,
    ConnectionState,
    MessageConfirmed,
    Placeholder,
    RosterChanged,
    StatusChanged,
    TimelineEvent,
    TimelineKind,
    TrustState,
    UnreadableReason,
)
from groupchat.client.transcript import Transcript, render
from groupchat.core.errors import UsageError
from server.config import RelayConfig
from server.relay import Relay

REPO = Path(__file__).resolve().parents[2]

# --- script parsing ------------------------------------------------------------------------------------


def test_script_commands_parse() -> None:
    steps = parse_script(
        "# a demo\n\nwait-members 2\nsay hello, # not a comment in a message\nsleep 0.5  # pause\n"
        "rekey\nkick carol\nleave\n"
    )
    assert steps == [
        Step("wait-members", "2", 3),
        Step("say", "hello, # not a comment in a message", 4),
        Step("sleep", "0.5", 5),
        Step("rekey", "", 6),
        Step("kick", "carol", 7),
        Step("leave", "", 8),
    ]
    assert steps[2].seconds == 0.5 and steps[0].count == 2


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("say hi\nshout hi\n", r"bob.txt line 2: unknown command 'shout'"),
        ("say\n", r"line 1: 'say' needs the text"),
        ("sleep soon\n", r"line 1: 'sleep' needs seconds"),
        ("sleep -1\n", r"line 1: 'sleep' needs seconds"),
        ("\n\nwait-members x\n", r"line 3: 'wait-members' needs a member count"),
        ("kick\n", r"line 1: 'kick' needs one member name"),
        ("kick a b\n", r"line 1: 'kick' needs one member name"),
        ("rekey now\n", r"line 1: 'rekey' takes no argument"),
    ],
)
def test_bad_script_lines_name_the_line(text: str, pattern: str) -> None:
    with pytest.raises(ScriptError, match=pattern):
        parse_script(text, "bob.txt")
    assert issubclass(ScriptError, UsageError)


def test_bot_cli_reports_a_bad_script_with_status_2(tmp_path: Path) -> None:
    script = tmp_path / "s.txt"
    script.write_text("say hi\nfly away\n")
    proc = subprocess.run(
        [sys.executable, "-m", "groupchat.cli", "bot", "--relay", "ws://127.0.0.1:9", "--room", "r",
         "--name", "bob", "--script", str(script)],
        capture_output=True, text=True, timeout=60, env=_env(tmp_path), cwd=REPO,
    )
    assert proc.returncode == 2
    assert f"{script} line 2: unknown command 'fly'" in proc.stderr
    assert proc.stdout == ""


# --- transcript -----------------------------------------------------------------------------------------


def test_render_each_notice_kind() -> None:
    assert render(ChatLine("carol", "hi", 3)) == "[epoch 3] <carol> hi"
    own = ChatLine("me", "yo", 3, own=True, pending=True, local_id=1)
    assert render(own) == "[epoch 3] <me> yo (sending)"
    ph = Placeholder(UnreadableReason.BEFORE_JOIN, 2, "carol")
    assert render(ph) == "⊘ 2 messages from carol cannot be shown: sent before you joined"
    assert render(TimelineEvent(TimelineKind.JOINED, "dave joined · epoch 4")) == "+ dave joined · epoch 4"
    assert render(TimelineEvent(TimelineKind.WARNING, "key changed")) == "⚠ key changed"
    # "!" means one thing, as in the TUI: the sender's key changed.
    changed = ChatLine("carol", "hi", 3, trust=TrustState.KEY_CHANGED)
    assert render(changed) == "! [epoch 3] <carol> hi"
    status = StatusChanged(ConnectionState.READY, "ws://x", "r", "tree", 2, 4, "12345")
    assert render(status) == "= ready · epoch 4 · code 12345"
    assert render(MessageConfirmed(1)) is None
    assert render(RosterChanged(())) is None


def test_transcript_writes_our_own_lines_on_their_echo() -> None:
    """Issue 15: the transcript left our own messages at "(sending)" for good. A line is written
    when the relay echoes it (in the room's order); one never echoed, when the session closes."""
    lines: list[str] = []
    t = Transcript(lines.append, clock=lambda: 0.0)
    t.notify(ChatLine("me", "first", 2, own=True, pending=True, local_id=1))
    t.notify(ChatLine("me", "second", 2, own=True, pending=True, local_id=2))
    t.notify(ChatLine("carol", "hi", 2))
    t.notify(MessageConfirmed(1))
    t.notify(StatusChanged(ConnectionState.CLOSED, "ws://x", "r", "tree", 2, 2, "c"))
    assert lines == [
        "   0.00s [epoch 2] <carol> hi",
        "   0.00s [epoch 2] <me> first",
        "   0.00s [epoch 2] <me> second (not confirmed by the relay)",
        "   0.00s = closed · epoch 2 · code c",
    ]


def test_transcript_keeps_the_lines_of_a_multi_line_message() -> None:
    """Issue 15: a three-line message was flattened into one line of the transcript."""
    lines: list[str] = []
    t = Transcript(lines.append, "bob", clock=lambda: 0.0)
    t.notify(ChatLine("alice", "one\ntwo \x1b[31mred\x1b[0m\nthree", 4))
    t.notify(ChatLine("me", "mine\nsecond", 4, own=True, pending=True, local_id=1))
    t.notify(StatusChanged(ConnectionState.CLOSED, "ws://x", "r", "tree", 2, 4, "c"))
    assert lines[:5] == [
        "   0.00s [bob] [epoch 4] <alice> one",
        "           | two red",  # under the entry, and no escape reaches the terminal
        "           | three",
        "   0.00s [bob] [epoch 4] <me> mine",
        "           | second (not confirmed by the relay)",
    ]


def test_transcript_prefixes_and_drops_repeated_status() -> None:
    lines: list[str] = []
    clock = iter([0.0, 1.5, 2.0, 3.25]).__next__
    t = Transcript(lines.append, "bob", clock=clock)
    ready = StatusChanged(ConnectionState.READY, "ws://x", "r", "tree", 2, 1, "c")
    t.notify(ready)
    t.notify(StatusChanged(ConnectionState.READY, "ws://x", "r", "tree", 2, 1, "c", latency_ms=3.0))
    t.notify(ChatLine("alice", "hi", 1))
    t.notify(MessageConfirmed(7))
    assert lines == ["   1.50s [bob] = ready · epoch 1 · code c", "   2.00s [bob] [epoch 1] <alice> hi"]
    assert len(t.notices) == 4


# --- bots over a real relay ---------------------------------------------------------------------------


def _env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "config.toml"
    config.write_text("")
    return os.environ | {
        "GROUPCHAT_CONFIG": str(config),
        "GROUPCHAT_DATA_DIR": str(tmp_path / "data"),
        "GROUPCHAT_LOG_DIR": str(tmp_path / "logs"),
    }


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    relay = Relay(RelayConfig(host="127.0.0.1", port=0))
    await relay.start()
    try:
        yield relay
    finally:
        await relay.stop()


async def _bot(tmp_path: Path, port: int, name: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "groupchat.cli", "bot", "--relay", f"ws://127.0.0.1:{port}", "--room", "bots",
        "--name", name, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=_env(tmp_path / name), cwd=REPO,
    )


async def test_two_bots_chat_over_a_real_relay(relay: Relay, tmp_path: Path) -> None:
    (tmp_path / "alice").mkdir()
    (tmp_path / "bob").mkdir()
    alice_script = tmp_path / "alice.txt"
    alice_script.write_text("wait-members 2\nsay hello bob\nsleep 3\nleave\n")
    bob_script = tmp_path / "bob.txt"
    bob_script.write_text("wait-members 2\nsleep 0.5\nsay hi alice\nrekey\nsleep 4\n")
    alice = await _bot(
        tmp_path, relay.port, "alice", "--script", str(alice_script), "--seconds", "30", "--open"
    )
    await asyncio.sleep(0.5)  # alice creates the group; bob joins it
    bob = await _bot(tmp_path, relay.port, "bob", "--script", str(bob_script))
    try:
        async with asyncio.timeout(60):
            (a_out, a_err), (b_out, b_err) = await asyncio.gather(alice.communicate(), bob.communicate())
    finally:
        for proc in (alice, bob):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    a_text, b_text = a_out.decode(), b_out.decode()
    assert alice.returncode == 0, a_text + a_err.decode()
    assert bob.returncode == 0, b_text + b_err.decode()
    assert a_err == b_err == b""
    # Each read the other's message, decrypted, in the same epoch.
    a_line = re.search(r"\[epoch (\d+)\] <bob> hi alice", a_text)
    b_line = re.search(r"\[epoch (\d+)\] <alice> hello bob", b_text)
    assert a_line and b_line, a_text + "\n---\n" + b_text
    # Bob's join, his rekey and alice's leave are in the timelines; no unreadable placeholders.
    assert re.search(r"\+ .*bob", a_text), a_text
    assert re.search(r"~ .*bob", a_text), a_text
    assert re.search(r"[-] .*alice", b_text), b_text
    assert "cannot be shown" not in a_text + b_text
    # Our own lines are written once echoed, never left at "(sending)" (issue 15).
    assert re.search(r"\[epoch \d+\] <alice> hello bob$", a_text, re.M), a_text
    assert re.search(r"\[epoch \d+\] <bob> hi alice$", b_text, re.M), b_text
    assert "(sending)" not in a_text + b_text
