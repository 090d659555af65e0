"""docs/tui.md quotes the screen: each quoted line below is drawn by the real widgets from the
real wording functions, and must appear in the docs word for word (a quote ending in "…" stands
for the beginning of the line)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from groupchat.client import wording, wording_tui
from groupchat.client.notices import (
    ConnectionState,
    StatusChanged,
    TimelineEvent,
    TimelineKind,
    TreeNode,
    TreeView,
)
from groupchat.core.admission import RemovalCode
from groupchat.tui.app import ChatApp
from groupchat.tui.widgets.status_bar import status_text
from groupchat.tui.widgets.tree_panel import tree_text

DOCS = Path(__file__).parents[2] / "docs" / "tui.md"
STAMP = "09:30 "

# (kind, text) of each timeline line the docs quote, built as the session builds it.
TIMELINE = [
    (TimelineKind.JOINED, wording.describe_epoch([], ["dave"], None, 7, wording.tree_cost(3, 0.4))),
    (TimelineKind.LEFT, wording.describe_epoch(
        [("carol", wording.removal_reason(RemovalCode.LEFT, 0, "bob"))], [], None, 8,
        wording.tree_cost(2, 0.3))),
    (TimelineKind.REMOVED, wording.describe_epoch(
        [("carol", wording.removal_reason(RemovalCode.OFFLINE, 60, "bob"))], [], None, 9,
        wording.tree_cost(2, 0.3))),
    (TimelineKind.REMOVED, wording.describe_epoch(
        [("carol", wording.removal_reason(None, 0, "bob"))], [], None, 9, wording.tree_cost(2, 0.3))),
    (TimelineKind.UPDATED, wording.describe_epoch([], [], "you", 10, wording.tree_cost(1, 0.2))),
    (TimelineKind.DISCONNECTED,
     wording.disconnected("the relay closed the connection (1001 going away)", 0.4)),
    (TimelineKind.RECONNECTED, wording.reconnected(10)),
    (TimelineKind.LEFT, wording.left_removed_by("bob", 11)),
    (TimelineKind.REMOVED, wording.removed_by("bob")),
    (TimelineKind.WARNING, wording.replaced_elsewhere("another connection joined as this member")),
]


def _quoted(docs: str, line: str) -> bool:
    """``line`` is quoted in ``docs`` whole, or as a beginning that ends in "…"."""
    if f"`{line}`" in docs:
        return True
    return any(line.startswith(q[:-1].rstrip()) for q in _quotes(docs) if q.endswith("…") and len(q) > 20)


def _quotes(docs: str) -> list[str]:
    return docs.split("`")[1::2]


async def test_the_documented_timeline_lines_are_what_the_screen_draws() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    app = ChatApp(now=lambda: datetime(2026, 11, 22, 9, 30), cursor_blink=False)
    async with app.run_test(size=(200, 40)) as pilot:
        for kind, text in TIMELINE:
            app.deliver(TimelineEvent(kind, text))
        await pilot.pause()
        drawn = [line.removeprefix(STAMP) for line in app.message_log.plain_lines()]
    assert len(drawn) == len(TIMELINE)
    missing = [line for line in drawn if not _quoted(docs, line)]
    assert missing == [], "docs/tui.md does not quote these lines as drawn:\n" + "\n".join(missing)
    # Words the docs once showed and the screen never drew.
    for stale in ("`✕ disconnected …`", "(empty slot)", "(blank)", "was removed after"):
        assert stale not in docs, stale


def test_the_documented_status_lines_tree_words_and_session_end() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    closed = StatusChanged(ConnectionState.CLOSED, "ws://127.0.0.1:8765", "lobby", "tree", 0)
    taken = StatusChanged(ConnectionState.CLOSED, "ws://127.0.0.1:8765", "lobby", "tree", 0,
                          problem=wording.REPLACED_STATUS)
    narrow = StatusChanged(ConnectionState.READY, "ws://127.0.0.1:8765", "lobby", "tree", 3, epoch=7,
                           epoch_code="4f2a 91c0", latency_ms=12.0)
    lines = [status_text(closed).plain, status_text(taken).plain,
             status_text(narrow, 78).plain, status_text(narrow, 60).plain,
             wording_tui.SESSION_ENDED, wording_tui.LEFT_GROUP, wording_tui.NOT_SENT_MARK.strip(),
             wording_tui.TREE_EMPTY, wording_tui.CLOSED_STATUS]
    missing = [line for line in lines if not _quoted(docs, line)]
    assert missing == [], missing
    # The legend block in the docs is the tree panel's legend, line for line.
    view = TreeView("tree", 1, (TreeNode(0, 0, "alice", "a1f0", False, True),))
    legend = tree_text(view).plain.split("\n\n", 1)[1]
    assert f"```\n{legend}\n```" in docs
    assert f"`{wording_tui.RING_LEGEND[1]}`" in docs
