"""Left-balanced array-tree arithmetic (RFC 9420 Appendix C).

Leaf ``i`` sits at node ``2i``; parent nodes have odd indices and ``level(x)`` is the number of
trailing one bits. Our trees always hold a power-of-two number of leaves, as in RFC 9420 §4.1,
so every function here takes the leaf count ``n`` only where the root depends on it.
"""

from __future__ import annotations

import functools

__all__ = [
    "bottom_up",
    "copath",
    "direct_path",
    "is_leaf",
    "leaf_path",
    "left",
    "level",
    "levels",
    "lowest_common_ancestor",
    "node_width",
    "parent",
    "parents_bottom_up",
    "right",
    "root",
    "sibling",
]


def level(x: int) -> int:
    """Number of trailing 1-bits of ``x``: 0 for leaves."""
    return ((x ^ (x + 1)).bit_length()) - 1


def is_leaf(x: int) -> bool:
    return x & 1 == 0


def node_width(n: int) -> int:
    """Number of array slots for ``n`` leaves."""
    return 0 if n == 0 else 2 * (n - 1) + 1


def root(n: int) -> int:
    w = node_width(n)
    return (1 << (w.bit_length() - 1)) - 1


def left(x: int) -> int:
    k = level(x)
    if k == 0:
        raise ValueError(f"node {x} is a leaf and has no children")
    return x ^ (1 << (k - 1))


def right(x: int) -> int:
    k = level(x)
    if k == 0:
        raise ValueError(f"node {x} is a leaf and has no children")
    return x ^ (3 << (k - 1))


def parent(x: int, n: int) -> int:
    if x == root(n):
        raise ValueError(f"node {x} is the root and has no parent")
    k = level(x)
    b = (x >> (k + 1)) & 1
    return (x | (1 << k)) ^ (b << (k + 1))


def sibling(x: int, n: int) -> int:
    p = parent(x, n)
    return right(p) if x < p else left(p)


def direct_path(x: int, n: int) -> list[int]:
    """Parent, grandparent, …, root of ``x`` (empty for the root)."""
    r = root(n)
    out: list[int] = []
    while x != r:
        x = parent(x, n)
        out.append(x)
    return out


def copath(x: int, n: int) -> list[int]:
    """Sibling of each node on ``[x] + direct_path(x)`` minus the root."""
    r = root(n)
    out: list[int] = []
    while x != r:
        out.append(sibling(x, n))
        x = parent(x, n)
    return out


# --- precomputed forms for the commit hot path (issue 16) -----------------------------------------
# A commit's receiver asks for the same few paths and levels thousands of times per commit; these
# are the functions above, computed once per tree size (public arithmetic, nothing secret).


@functools.cache
def parents_bottom_up(n: int) -> tuple[tuple[int, int, int], ...]:
    """``(parent, left, right)`` for every parent of an ``n``-leaf tree, level 1 first, left to
    right within a level: children always come before their parent."""
    top = level(root(n))
    width = node_width(n)
    return tuple(
        (x, left(x), right(x))
        for lvl in range(1, top + 1)
        for x in range((1 << lvl) - 1, width, 1 << (lvl + 1))
    )


@functools.cache
def bottom_up(n: int) -> tuple[int, ...]:
    """Every node of an ``n``-leaf tree, the leaves first, then :func:`parents_bottom_up`."""
    return (*range(0, node_width(n), 2), *(x for x, _, _ in parents_bottom_up(n)))


@functools.cache
def levels(n: int) -> tuple[int, ...]:
    """``level(x)`` for every node ``x`` of an ``n``-leaf tree, indexed by node."""
    return tuple(level(x) for x in range(node_width(n)))


@functools.lru_cache(maxsize=1 << 12)
def leaf_path(leaf: int, n: int) -> tuple[int, ...]:
    """``direct_path(2 * leaf, n)`` as a tuple: parent, grandparent, …, root of ``leaf``."""
    return tuple(direct_path(2 * leaf, n))


def lowest_common_ancestor(a: int, b: int) -> int:
    """Lowest common ancestor of two distinct *leaf* nodes of a perfect array tree.

    Leaves 2i and 2j first share the bits above bit k = bit_length(a ^ b) - 1; their ancestor
    at level k keeps those bits and sets the k low bits.
    """
    k = (a ^ b).bit_length() - 1
    return ((a >> (k + 1)) << (k + 1)) | ((1 << k) - 1)
