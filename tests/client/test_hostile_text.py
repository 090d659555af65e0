"""A relay that writes escape sequences, bidi overrides and C1 controls into every string it chooses
(its name, error reasons, close reasons) paints nothing: the timeline, the bot's stdout and the log
file show the words without them (issue 13 item 7).

The relay here is a tiny hostile websocket server on 127.0.0.1 port 0 speaking the relay protocol:
it welcomes, lets the member in, echoes its sync marker (so the session is caught up), then sends
an error with a hostile reason and closes with a hostile close reason; on the next connection it
refuses the join with a hostile reason.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import unicodedata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from session_harness import start_peer, wait_until
from websockets.asyncio.server import ServerConnection, serve

from groupchat.client.logging_setup import SanitisingFormatter
from groupchat.client.notices import ChatLine, TimelineEvent, TimelineKind
from groupchat.client.transcript import Transcript
from groupchat.core.text import UNSAFE_CATEGORIES
from groupchat.relay_protocol import (
    ENVELOPE_VERSION,
    Deliver,
    Error,
    ErrorCode,
    Join,
    Joined,
    SendTo,
    ServerHello,
    ServerLimits,
    decode_client,
    encode,
)

REPO = Path(__file__).resolve().parents[2]

# Clear screen and home, set the window title (OSC, BEL-terminated), a C1 CSI, a right-to-left
# override, an isolate, the Arabic letter mark, a fake second line.
NASTY = "\x1b[2J\x1b[H\x1b]0;owned\x07\x9b31m\u202eevil\u2066\u061c\x85\n* fake"
CLOSE_NASTY = "\x1b[2J\u202ebye\x9d0;t\x9c"  # a close reason is at most 123 bytes

LIMITS = ServerLimits(
    max_frame=1 << 20,
    max_payload=(1 << 20) - 300,
    max_rooms_per_connection=4,
    max_members_per_room=64,
    rate_per_second=100,
    burst=200,
    log_max_count=1000,
    log_max_bytes=1 << 24,
    log_max_age_seconds=3600,
    idle_timeout_seconds=300,
)


def _clean(text: str) -> bool:
    return not any(unicodedata.category(c) in UNSAFE_CATEGORIES for c in text)


@asynccontextmanager
async def hostile_relay() -> AsyncIterator[int]:
    connections = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        await ws.recv()  # Hello
        await ws.send(encode(ServerHello(ENVELOPE_VERSION, LIMITS, "relay" + NASTY[:40])))
        join = decode_client(await ws.recv())  # type: ignore[arg-type]
        assert isinstance(join, Join)
        if connections > 1:
            await ws.send(encode(Error(ErrorCode.REPLACED, "no" + NASTY, join.req_id, join.room)))
            await ws.wait_closed()
            return
        await ws.send(encode(Joined(join.req_id, join.room, 0, (join.member,))))
        seq = 0
        async for raw in ws:
            frame = decode_client(raw)  # type: ignore[arg-type]
            if isinstance(frame, SendTo) and frame.to == join.member:  # the sync marker: echo it
                seq += 1
                await ws.send(encode(Deliver(seq, join.room, join.member, join.member, frame.payload)))
                await asyncio.sleep(0.2)
                await ws.send(encode(Error(ErrorCode.SHUTTING_DOWN, "going" + NASTY, 0, join.room)))
                await asyncio.sleep(0.2)
                await ws.close(4000, CLOSE_NASTY)
                return

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        yield next(iter(server.sockets)).getsockname()[1]


async def test_relay_chosen_text_reaches_the_timeline_without_escapes_or_bidi() -> None:
    async with hostile_relay() as port:
        me = start_peer(port, "r", "alice")
        try:

            def warnings() -> list[str]:
                return [n.text for n in me.notices if isinstance(n, TimelineEvent)]

            await wait_until(lambda: any("refused" in t for t in warnings()), 20, "the refusal")
        finally:
            await me.stop()
    events = [n for n in me.notices if isinstance(n, TimelineEvent)]
    texts = [e.text for e in events]
    relay_said = next(t for t in texts if t.startswith("relay: "))
    closed = next(e.text for e in events if e.kind is TimelineKind.DISCONNECTED)
    refused = next(t for t in texts if "refused" in t)
    for text in (relay_said, closed, refused):
        assert _clean(text), repr(text)
        assert "owned" not in text and "2J" not in text and "31m" not in text, repr(text)
    # ... and the words survive.
    assert relay_said.startswith("relay: goingevil") and relay_said.endswith("* fake"), relay_said
    assert "bye" in closed and "4000" in closed, closed
    assert "noevil" in refused, refused
    assert all(_clean(t) for t in texts)


def test_log_records_are_sanitised_as_they_are_formatted() -> None:
    formatter = SanitisingFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "relay error: %s", (NASTY,), None)
    line = formatter.format(record)
    assert _clean(line) and "\n" not in line and "owned" not in line, repr(line)
    assert line.startswith("WARNING relay error: evil"), line
    try:
        raise ValueError(NASTY)
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    text = formatter.format(record)
    assert "Traceback" in text and "\n" in text  # our own traceback keeps its lines
    assert _clean(text.replace("\n", "")) and "owned" not in text, repr(text)


async def test_the_bot_prints_no_escape_to_stdout(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("")
    env = os.environ | {
        "GROUPCHAT_CONFIG": str(config),
        "GROUPCHAT_DATA_DIR": str(tmp_path / "data"),
        "GROUPCHAT_LOG_DIR": str(tmp_path / "logs"),
    }
    script = tmp_path / "s.txt"
    script.write_text("sleep 3\n")
    async with hostile_relay() as port:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "groupchat.cli",
            "bot",
            "--relay",
            f"ws://127.0.0.1:{port}",
            "--room",
            "r",
            "--name",
            "bob",
            "--script",
            str(script),
            "--seconds",
            "6",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=REPO,
        )
        try:
            async with asyncio.timeout(60):
                out, err = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()  # only the process this test started
                await proc.wait()
    text = out.decode()
    assert "relay: goingevil" in text and "refused" in text, text + err.decode()
    assert "bye" in text, text
    for line in text.splitlines():
        assert _clean(line) and "owned" not in line, repr(line)
    logs = "".join(p.read_text() for p in (tmp_path / "logs").rglob("*.log"))
    assert "relay error" in logs and _clean(logs.replace("\n", "")), repr(logs)  # %r escapes show as text


@pytest.mark.parametrize("markup", ["[red]x[/red]", "[bold]bob[/]", "[link=http://e]y[/link]"])
def test_peer_text_is_not_rich_markup(markup: str) -> None:
    """The TUI builds rich Text objects from plain strings: a bracket in a name or a line is text."""
    from groupchat.client.notices import RosterEntry, TrustState
    from groupchat.tui.widgets.member_list import roster_text
    from groupchat.tui.widgets.message_log import MessageLog

    text = MessageLog._chat_text(ChatLine(markup, markup, 1), pending=False)
    assert text.plain == f"{markup}: {markup}"
    assert not any(span.style for span in text.spans if span.start >= len(markup))
    roster = roster_text((RosterEntry(markup, "fp", True, TrustState.UNVERIFIED),))
    assert markup in roster.plain


def test_a_multi_line_message_keeps_its_lines_only_where_they_are_marked() -> None:
    """The TUI marks the rows after a message's first ("│ "), the transcript indents them after
    "| ", so a line written to look like another message ("<bob> …") never starts a line there."""
    line = ChatLine("carol", "hi\n[epoch 3] <bob> send me your key\x1b[2J", 3)
    assert line.body == "hi\n[epoch 3] <bob> send me your key"
    assert line.text == "hi [epoch 3] <bob> send me your key"
    written: list[str] = []
    Transcript(written.append, clock=lambda: 1.0, start=0.0).notify(line)
    assert written == ["   1.00s [epoch 3] <carol> hi", "           | [epoch 3] <bob> send me your key"]
