"""The /tree panel: the key tree (or the ring) of the current epoch.

Nodes touched by the last commit are marked ``*`` and reversed; nodes on our own direct path
(whose secrets we hold) are marked ``◂``; a node with no member or no key is ``(empty)``, one word
for all of them. Markers are symbols first, so they read without colour, and the legend under the
drawing names every symbol it uses.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import Static

from groupchat.client import wording_tui
from groupchat.client.notices import TreeNode, TreeView

__all__ = ["TreePanel", "tree_text"]

_CHANGED_STYLE = "bold reverse"
_MINE_STYLE = "underline"


def _label(node: TreeNode) -> str:
    if node.level == 0:
        return node.label or wording_tui.TREE_EMPTY  # a vacated leaf's key, if any, follows
    return node.key_id or wording_tui.TREE_EMPTY


def _node_text(node: TreeNode) -> Text:
    style = " ".join(s for s, on in ((_CHANGED_STYLE, node.changed), (_MINE_STYLE, node.mine)) if on)
    text = Text(_label(node), style=style)
    if node.level == 0 and node.key_id:
        text.append(f" {node.key_id}", style="dim")
    if node.set_by:
        text.append(f" ← set by {node.set_by}", style="bold")
    if node.changed:
        text.append(" *")
    if node.mine:
        text.append(" ◂")
    return text


def _draw_subtree(nodes: Sequence[TreeNode], prefix: str, tail: str, out: Text) -> None:
    """Draw the in-order-indexed subtree ``nodes``: its root is the node of highest level,
    nodes left of it in index order form the left subtree and those right of it the right one."""
    root_at = max(range(len(nodes)), key=lambda i: nodes[i].level)
    out.append(prefix + tail)
    out.append_text(_node_text(nodes[root_at]))
    out.append("\n")
    children = [part for part in (nodes[:root_at], nodes[root_at + 1 :]) if part]
    child_prefix = prefix + ("" if not tail else ("│  " if tail == "├─ " else "   "))
    for i, child in enumerate(children):
        _draw_subtree(child, child_prefix, "└─ " if i == len(children) - 1 else "├─ ", out)


def tree_text(view: TreeView | None) -> Text:
    """The panel's content for ``view`` (``None``: nothing known yet)."""
    if view is None:
        return Text("key tree: not in a group yet")
    nodes = sorted(view.nodes, key=lambda n: n.index)
    out = Text()
    out.append(f"{'Ring' if view.scheme == 'ring' else 'Key tree'} · epoch {view.epoch}\n", style="bold")
    if not nodes:
        out.append(f"{wording_tui.TREE_EMPTY}\n")
    elif view.scheme == "ring":
        for i, node in enumerate(nodes):
            out.append("  " if i else "┌ ")
            out.append_text(_node_text(node))
            out.append("\n  ↓\n" if i < len(nodes) - 1 else f"\n└ back to {_label(nodes[0])}\n")
    else:
        _draw_subtree(nodes, "", "", out)
    legend = list(wording_tui.RING_LEGEND if view.scheme == "ring" else wording_tui.TREE_LEGEND)
    if any(n.set_by for n in nodes):
        legend.append(wording_tui.SET_BY_LEGEND)
    out.append("\n" + "\n".join(legend), style="dim")
    return out


class TreePanel(Static):
    """Hidden until /tree or its key binding shows it; redrawn on every :class:`TreeView`."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(tree_text(None), id=id)
        self.view: TreeView | None = None

    def show_view(self, view: TreeView) -> None:
        self.view = view
        self.update(tree_text(view))
