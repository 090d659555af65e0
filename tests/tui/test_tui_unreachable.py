"""Issue 15: a wrong relay URL left the screen at "connecting…" for good. The ChatApp with a real
session pointed at a port on 127.0.0.1 with nothing listening shows the reason in its status bar
within 5 s, one line that updates with each retry, and adds nothing to the timeline per attempt."""

from __future__ import annotations

import socket

from tui_peers import Peer

from groupchat.tui.app import ChatApp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_wrong_relay_url_shows_its_reason_in_the_status_bar() -> None:
    alice = await Peer(_free_port(), "alice").start()
    try:

        def shown(app: ChatApp) -> str:
            return str(app.status_bar.render())  # what the widget draws

        reason = "cannot reach the relay (connection refused); retry 2 in "  # the line updated once
        await alice.wait_until("the reason on screen", lambda app: reason in shown(app), timeout=5.0)
        text = await alice.read(shown)
        assert text.startswith("◌ connecting ws://127.0.0.1:"), text
        assert not [line for line in await alice.lines() if "cannot reach" in line or "✕" in line]
    finally:
        await alice.stop()
