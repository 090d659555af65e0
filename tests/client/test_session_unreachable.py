"""Issue 15: a wrong relay URL left the screen at "connecting…" for good, the reason only in the log
file, and a relay outage wrote a timeline entry per reconnect attempt. Now the reason is in the
status (the status bar and the transcript show it) within a second, one line that updates with
each retry ("cannot reach the relay (connection refused); retry 5 in 0.3 s"), and an outage is
one timeline entry. Real sessions; real sockets on 127.0.0.1 (a port with nothing listening, an
HTTP server that is not a relay, a real relay that stops and comes back)."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from session_harness import running_relay, start_peer, stop_all, wait_until

from groupchat.client.notices import ConnectionState, StatusChanged, TimelineEvent, TimelineKind
from groupchat.client.session import SessionSettings
from groupchat.client.transcript import Transcript
from groupchat.core.errors import UsageError
from groupchat.tui.widgets.status_bar import status_text

_RETRY = re.compile(r"; retry (\d+) in [\d.]+ s$")


def _free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def _http_server(status: str) -> AsyncIterator[int]:
    """An HTTP/1.1 server on 127.0.0.1 that answers every request with ``status``: not a relay."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with_headers = b""
        while not with_headers.endswith(b"\r\n\r\n"):
            chunk = await reader.read(4096)
            if not chunk:
                break
            with_headers += chunk
        writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


def _problems(notices: list[object]) -> list[str]:
    return [n.problem_line for n in notices if isinstance(n, StatusChanged) and n.problem]


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("nothing listening", "cannot reach the relay (connection refused)"),
        ("an HTTP server", "that address is not a groupchat relay (it answered HTTP 404)"),
    ],
)
async def test_a_wrong_relay_shows_its_reason_and_one_updating_line(where: str, reason: str) -> None:
    async with _http_server("404 Not Found") as http_port:
        port = _free_port() if where == "nothing listening" else http_port
        peer = start_peer(port, "r", "alice")
        try:
            # Several attempts at 0.05..0.3 s: each updates the one status line, none adds an entry.
            await wait_until(lambda: len(_problems(peer.notices)) >= 4, 5, "the reason in the status")
            problems = _problems(peer.notices)
            assert all(p.startswith(f"{reason}; retry ") for p in problems), problems
            attempts = [int(m.group(1)) for p in problems if (m := _RETRY.search(p))]
            assert attempts == list(range(1, len(attempts) + 1)) and len(attempts) == len(problems)
            assert peer.session.status.connection is ConnectionState.CONNECTING
            assert not [n for n in peer.notices if isinstance(n, TimelineEvent)]  # no entry per attempt
            # The status bar draws it, beside the state.
            shown = status_text(peer.session.status).plain
            assert shown.startswith("◌ connecting ws://127.0.0.1:") and f"· {reason}; retry " in shown, shown
        finally:
            await stop_all(peer)


async def test_the_transcript_says_the_reason_once_not_per_retry() -> None:
    lines: list[str] = []
    transcript = Transcript(lines.append, clock=lambda: 0.0)
    peer = start_peer(_free_port(), "r", "alice")
    peer.session._notify = lambda n: (peer.notices.append(n), transcript.notify(n))  # type: ignore[method-assign]
    try:
        await wait_until(lambda: len(_problems(peer.notices)) >= 4, 5, "several attempts")
    finally:
        await stop_all(peer)
    reasons = [line for line in lines if "cannot reach the relay" in line]
    assert len(reasons) == 1, lines
    assert re.search(r"= connecting · cannot reach the relay \(connection refused\); retry 1 in 0\.[1-9] s$",
                     reasons[0]), reasons  # rounded up: never "in 0.0 s"
    assert lines[-1].endswith("= closed"), lines  # closed: no retry is coming


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ws://", "names no host"),
        ("ws://:8765", "names no host"),
        ("ws://127.0.0.1:99999", "has a port outside 0..65535"),
        ("http://127.0.0.1:8765", "must start with ws:// or wss://"),
        ("ws://127.0.0.1:8765/\x1b[2J", "must start with ws:// or wss:// and hold no control characters"),
    ],
)
def test_a_relay_url_that_cannot_work_is_refused_before_connecting(url: str, words: str) -> None:
    with pytest.raises(UsageError, match=re.escape(words)):
        SessionSettings(url, "r", "alice")


async def test_an_outage_is_one_timeline_entry_and_the_status_clears_when_back() -> None:
    async with running_relay() as relay:
        port = relay.port
        alice = start_peer(port, "r", "alice")
        await wait_until(lambda: alice.ready, what="alice ready")
    # The relay is gone: alice retries every 0.05..0.3 s.
    try:
        await wait_until(lambda: len(_problems(alice.notices)) >= 5, 5, "several failed reconnects")
        lost = [n for n in alice.notices
                if isinstance(n, TimelineEvent) and n.kind is TimelineKind.DISCONNECTED]
        assert len(lost) == 1, [n.text for n in lost]  # the loss, once; the retries only in the status
        assert alice.session.status.connection is ConnectionState.RECONNECTING
        assert _problems(alice.notices)[-1].startswith("cannot reach the relay (connection refused); retry ")
        async with running_relay(port=port):
            await wait_until(lambda: alice.ready, 10, "alice back")
            assert alice.session.status.problem == ""
            assert "· cannot reach" not in status_text(alice.session.status).plain
    finally:
        await stop_all(alice)


# --- issue 15 item: one rule for everything shown ----------------------------------------------


@pytest.mark.parametrize("room", ["a\x1b[31mred", "tab\there", "rtl\u202eoverride", "bell\x07"])
def test_a_room_name_is_refused_for_what_a_display_name_is_refused_for(room: str) -> None:
    """A room name with an escape sequence was accepted and drawn coloured in the status bar,
    while a display name with a control character was refused: now both are refused, alike."""
    from groupchat.core.errors import InvalidValueError
    from groupchat.core.identity import validate_display_name

    with pytest.raises(InvalidValueError):
        validate_display_name(room)
    with pytest.raises(UsageError, match="must not contain control or formatting characters"):
        SessionSettings("ws://127.0.0.1:8765", room, "alice")


def test_the_status_bar_never_draws_an_escape_sequence() -> None:
    """Defence in depth: whatever reaches a StatusChanged (relay, room, problem) is sanitised."""
    status = StatusChanged(ConnectionState.CONNECTING, "ws://h/\x1b]0;title\x07", "a\x1b[31mred", "tree",
                           0, problem="cannot reach\x1b[2J the relay")
    assert (status.relay, status.room, status.problem) == ("ws://h/", "ared", "cannot reach the relay")
    text = status_text(status)
    assert "\x1b" not in text.plain and "#ared" in text.plain
    room_styles = {str(span.style) for span in text.spans if text.plain[span.start:span.end] == "#ared"}
    assert room_styles == {"bold"}  # our own style only: nothing the name carried


def test_a_bot_that_cannot_reach_the_relay_says_why_it_gives_up(tmp_path: object) -> None:
    """The real ``groupchat bot`` against a port with nothing listening: the reason is printed,
    once, and the giving-up line repeats it (it used to say only "not a member after 30 s")."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    home = Path(str(tmp_path))
    env = os.environ | {"GROUPCHAT_DATA_DIR": str(home), "GROUPCHAT_LOG_DIR": str(home),
                        "GROUPCHAT_CONFIG": str(home / "none.toml")}
    (home / "none.toml").write_text("")
    done = subprocess.run(
        [Path(sys.executable).parent / "groupchat", "bot", "--relay", f"ws://127.0.0.1:{_free_port()}",
         "--room", "r", "--name", "bob", "--join-timeout", "1.5"],
        capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert out.count("= connecting · cannot reach the relay (connection refused); retry 1 in ") == 1, out
    assert "giving up (cannot reach the relay (connection refused))" in out, out
