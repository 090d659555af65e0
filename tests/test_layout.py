"""The shape of the source tree: no import cycle anywhere, and no module past the size a reader holds.

``lint-imports`` keeps the layer arrows pointing down; these two rules are what it cannot say. A
cycle means two modules cannot be read (or changed) one without the other; a module of a thousand
lines hides its phases. Both are checked on the import graph grimp builds (import-linter's own).
"""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest

import groupchat
import server

# "No module over about 600 lines" (issue 12): the cap leaves a little room, not a second module.
MAX_LINES = 640
ROOTS = (Path(groupchat.__file__).parent, Path(server.__file__).parent)


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively: the groups of modules that import each other in a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def _import_graph(*, type_checking: bool) -> dict[str, set[str]]:
    graph = grimp.build_graph(
        "groupchat", "server", exclude_type_checking_imports=not type_checking, cache_dir=None
    )
    ours = set(graph.modules)
    return {m: graph.find_modules_directly_imported_by(m) & ours for m in ours}


def test_tarjan_finds_a_planted_cycle() -> None:
    """The checker itself: a three-module circle and a self-contained tail."""
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert _strongly_connected(edges) == [["a", "b", "c"]]


@pytest.mark.parametrize("type_checking", [False, True], ids=["runtime", "with-type-checking"])
def test_no_import_cycle(type_checking: bool) -> None:
    cycles = _strongly_connected(_import_graph(type_checking=type_checking))
    assert cycles == [], f"modules that import each other in a circle: {cycles}"


def test_no_module_past_the_cap() -> None:
    sizes = {
        str(path.relative_to(root.parent)): sum(1 for _ in path.open(encoding="utf-8"))
        for root in ROOTS
        for path in root.rglob("*.py")
    }
    assert sizes, "found no source modules"
    too_long = {name: n for name, n in sorted(sizes.items()) if n > MAX_LINES}
    assert too_long == {}, f"modules over {MAX_LINES} lines (split them by responsibility): {too_long}"
