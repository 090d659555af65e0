"""A realistic, deterministic conversation for the snapshot test and the README screenshot.

The notices are what a session sends (``groupchat/client/notices.py``); the app renders them for
real. Regenerate the committed pictures after an intended UI change with::

    GROUPCHAT_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest -q tests/tui/test_tui_snapshot.py
    .venv/bin/python tests/tui/tui_scene.py docs/screenshot.svg
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from pathlib import Path

from textual.pilot import Pilot

from groupchat.client.notices import (
    ChatLine,
    ConnectionState,
    MessageConfirmed,
    Notice,
    Placeholder,
    RosterChanged,
    RosterEntry,
    StatusChanged,
    TimelineEvent,
    TimelineKind,
    TreeNode,
    TreeView,
    TrustState,
    UnreadableReason,
)
from groupchat.tui.app import ChatApp

FROZEN_NOW = datetime(2026, 11, 22, 9, 41)

_FP = {
    "alice": "3f1c 9a02 77be 41d0 c2e9 5b6a 0f13 8d24",
    "bob": "a7e0 11c4 9d3b 62f8 4e05 b9a1 7c6d 02ef",
    "carol": "5d92 e6a1 08bf 3c47 f1d0 6e28 9ab3 c415",
    "dave": "0c6b 4f8e a213 97d5 6b0c e48f 1a72 d39e",
}


def _roster(dave_trust: TrustState, dave_online: bool = True) -> RosterChanged:
    return RosterChanged((
        RosterEntry("alice", _FP["alice"], True, TrustState.VERIFIED, is_me=True),
        RosterEntry("bob", _FP["bob"], True, TrustState.VERIFIED),
        RosterEntry("carol", _FP["carol"], True, TrustState.UNVERIFIED),
        RosterEntry("dave", _FP["dave"], dave_online, dave_trust),
    ))


def _status(epoch: int, code: str, members: int) -> StatusChanged:
    return StatusChanged(
        ConnectionState.READY, "ws://127.0.0.1:8765", "lobby", "tree", members, epoch, code, 3.2
    )


TREE = TreeView("tree", 9, (
    TreeNode(0, 0, "alice", "3f1c9a02", changed=True, mine=True),
    TreeNode(1, 1, "", "8e27d4c1", changed=True, mine=True),
    TreeNode(2, 0, "bob", "a7e011c4", changed=False, mine=False),
    TreeNode(3, 2, "", "41b9f0e3", changed=True, mine=True),
    TreeNode(4, 0, "carol", "5d92e6a1", changed=False, mine=False),
    TreeNode(5, 1, "", "c03a7b52", changed=False, mine=False),
    TreeNode(6, 0, "dave", "0c6b4f8e", changed=False, mine=False),
))

# The session's own phrasing (groupchat/client/wording.py), so the pictures show what users read.
SCENE: tuple[Notice, ...] = (
    _status(6, "7d1e 02a9", 3),
    RosterChanged(_roster(TrustState.UNVERIFIED).members[:3]),
    Placeholder(UnreadableReason.BEFORE_JOIN, count=12),
    TimelineEvent(TimelineKind.JOINED, "you joined the group · epoch 6 · code 7d1e 02a9"),
    ChatLine("bob", "morning! the relay is up again", 6, trust=TrustState.VERIFIED),
    ChatLine("alice", "great, thanks bob", 6, own=True, pending=True, local_id=1),
    MessageConfirmed(1),
    TimelineEvent(TimelineKind.JOINED, "dave joined · epoch 7 · 3 keys refreshed in 0.4 ms · code changed"),
    _status(7, "b04c 9f31", 4),
    _roster(TrustState.UNVERIFIED),
    TimelineEvent(
        TimelineKind.WARNING,
        f"dave's key changed (fingerprint now {_FP['dave']}): this may be a new device or an impostor. "
        "Compare safety numbers with /verify dave, then /trust dave",
    ),
    _roster(TrustState.KEY_CHANGED),
    ChatLine("dave", "hi all, new phone", 7, trust=TrustState.KEY_CHANGED),
    TimelineEvent(
        TimelineKind.UPDATED,
        "carol refreshed their keys · epoch 8 · 2 keys refreshed in 0.6 ms · code changed",
    ),
    Placeholder(UnreadableReason.TAMPERED, sender="dave", detail="unknown content"),
    ChatLine("carol", "dave, can you read out your safety number?", 8),
    TimelineEvent(
        TimelineKind.UPDATED, "you refreshed your keys · epoch 9 · 2 keys refreshed in 0.3 ms · code changed"
    ),
    _status(9, "e2f8 5a10", 4),
    TREE,
    ChatLine("alice", "comparing the codes now", 9, own=True, pending=True, local_id=2),
)


async def play(app: ChatApp, pilot: Pilot[int]) -> None:
    """Deliver the scene and let the app settle."""
    for notice in SCENE:
        app.deliver(notice)
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()


def make_app() -> ChatApp:
    return ChatApp(now=lambda: FROZEN_NOW, cursor_blink=False)


async def screenshot(size: tuple[int, int], *, tree: bool) -> str:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await play(app, pilot)
        if tree:
            await pilot.press("ctrl+t")
        app.input.value = "/verify dave"
        await pilot.pause()
        return app.export_screenshot(title="groupchat")


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "docs/screenshot.svg")
    out.write_text(asyncio.run(screenshot((132, 32), tree=True)))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
