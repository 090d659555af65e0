"""Telling members apart: name skeletons (UTS #39), display labels and the one command resolver.

Two names are *confusable* when they share a skeleton: NFKD, the Unicode confusables mapping
(``confusables.txt``, vendored data), case folding, the mapping again, whitespace runs made one
space, NFD; and the same after a case folding first (so "ALICE" is "alice" although "I" maps to
"l"). So "bob", "b\u043eb" (Cyrillic o), "b\u03bfb" (Greek omicron), fullwidth "bob", "b0b" and
"BOB" all look alike. A member whose name is confusable with another current member's, or with a
name our trust store holds under another key, is shown as ``name·3f2a``: the name, a middle dot
and the first hex digits of the fingerprint (at least 4, more until no look-alike shares them). The labels are
computed once per roster (or trust store) change, never per message (:class:`Labeler`).

Commands address one member with :func:`resolve`: a name, a label (``bob·3f2a``; ``bob#3f2a`` is
the same, for keyboards without ``·``), or a fingerprint prefix. Every reading of the query counts,
and more than one matching member is refused with the candidates' labels (:class:`AmbiguousMember`).
"""

from __future__ import annotations

import bisect
import functools
import unicodedata
from collections.abc import Collection, Iterable, Mapping
from importlib import resources
from typing import Final, Protocol, TypeVar

from ..core.errors import UsageError
from ..core.events import Member
from ..core.identity import fingerprint
from . import wording

__all__ = [
    "MIN_SUFFIX",
    "SEPARATOR",
    "AmbiguousMember",
    "KnownNames",
    "Labeler",
    "NameIndex",
    "Named",
    "NoSuchMember",
    "compact_fingerprint",
    "confusable",
    "label_members",
    "resolve",
    "skeletons",
]

SEPARATOR: Final = "·"  # between a name and its fingerprint suffix
_TYPED_SEPARATORS: Final = (SEPARATOR, "#")  # what a user may type instead
MIN_SUFFIX: Final = 4  # hex digits of the fingerprint in a label, at least
_FP_HEX: Final = 32  # hex digits in a compact fingerprint
_HEX: Final = frozenset("0123456789abcdef")
_KEEP_PREVIOUS: Final = 4096  # labels of members no longer in the roster, for the lines about them


class NoSuchMember(UsageError):
    """No current member matches what the user typed."""


class AmbiguousMember(UsageError):
    """More than one member matches; ``candidates`` are their labels, each of which is unambiguous."""

    def __init__(self, query: str, candidates: tuple[str, ...]) -> None:
        super().__init__(wording.ambiguous_member(query, candidates))
        self.candidates = candidates


@functools.cache
def _table() -> dict[int, str]:
    """The confusables mapping, code point to prototype string, read once from the vendored data."""
    text = resources.files(__package__).joinpath("confusables.txt").read_text(encoding="utf-8")
    table: dict[int, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        source, _, target = line.partition(";")
        table[int(source, 16)] = "".join(chr(int(c, 16)) for c in target.split())
    return table


def _skeleton(name: str) -> str:
    """The UTS #39 skeleton of ``name``, then case-folded and mapped again."""
    table = _table()
    s = unicodedata.normalize("NFKD", name).translate(table)
    s = unicodedata.normalize("NFKD", s.casefold()).translate(table)
    return unicodedata.normalize("NFD", " ".join(s.split()))


@functools.lru_cache(maxsize=4096)
def skeletons(name: str) -> frozenset[str]:
    """The skeletons of ``name`` (see the module docstring): a shared one means a look-alike."""
    return frozenset((_skeleton(name), _skeleton(name.casefold())))


def confusable(a: str, b: str) -> bool:
    """``a`` and ``b`` look alike (or are equal)."""
    return not skeletons(a).isdisjoint(skeletons(b))


@functools.lru_cache(maxsize=4096)
def compact_fingerprint(identity_key: bytes) -> str:
    """The fingerprint as 32 hex digits without spaces (what labels and prefixes are cut from)."""
    return fingerprint(identity_key).replace(" ", "")


_SEPARATOR_SKELETONS: Final = frozenset().union(*(skeletons(s) for s in _TYPED_SEPARATORS))


def _hex_query(text: str) -> str | None:
    """``text`` as a fingerprint prefix (spaces allowed, any case), if it can be one."""
    compact = "".join(text.split()).lower()
    if MIN_SUFFIX <= len(compact) <= _FP_HEX and set(compact) <= _HEX:
        return compact
    return None


class NameIndex:
    """Who a typed query can mean among ``(name, identity key)`` pairs: by skeleton and by prefix."""

    def __init__(self, entries: Iterable[tuple[str, bytes]]) -> None:
        self.names: dict[bytes, str] = {}
        self._by_skeleton: dict[str, set[bytes]] = {}
        for name, key in entries:
            self.names[key] = name
            for skel in skeletons(name):
                self._by_skeleton.setdefault(skel, set()).add(key)
        self._hex = sorted((compact_fingerprint(k), k) for k in self.names)

    def add(self, name: str, key: bytes) -> None:
        """Index ``key`` (not indexed yet) under ``name``: what a fresh index of all would hold."""
        self.names[key] = name
        for skel in skeletons(name):
            self._by_skeleton.setdefault(skel, set()).add(key)
        bisect.insort(self._hex, (compact_fingerprint(key), key))

    def remove(self, key: bytes) -> str:
        """Forget ``key`` (indexed under one name); returns that name."""
        name = self.names.pop(key)
        for skel in skeletons(name):
            keys = self._by_skeleton[skel]
            keys.discard(key)
            if not keys:
                del self._by_skeleton[skel]
        del self._hex[bisect.bisect_left(self._hex, (compact_fingerprint(key), key))]
        return name

    def like(self, name: str) -> set[bytes]:
        """The keys whose name looks like ``name``."""
        return set().union(*(self._by_skeleton.get(s, ()) for s in skeletons(name)))

    def _prefixed(self, prefix: str, among: Collection[bytes] | None = None) -> set[bytes]:
        if among is not None:
            return {k for k in among if compact_fingerprint(k).startswith(prefix)}
        found = set()
        i = bisect.bisect_left(self._hex, (prefix, b""))
        while i < len(self._hex) and self._hex[i][0].startswith(prefix):
            found.add(self._hex[i][1])
            i += 1
        return found

    def matches(self, query: str) -> set[bytes]:
        """Every key ``query`` can mean: as a name, as ``name·prefix``, as a fingerprint prefix."""
        q = query.strip()
        found = self.like(q)
        prefix = _hex_query(q)
        if prefix is not None:
            found |= self._prefixed(prefix)
        for sep in _TYPED_SEPARATORS:
            name, found_sep, tail = q.rpartition(sep)
            tail_prefix = _hex_query(tail) if found_sep and name.strip() else None
            if tail_prefix is not None:
                found |= self._prefixed(tail_prefix, self.like(name.strip()))
        return found

    def unambiguous_label(self, key: bytes, rivals: Collection[bytes] = ()) -> str:
        """``name·prefix`` for ``key``: the shortest prefix (at least 4) that no rival's fingerprint
        shares and that this index resolves to ``key`` alone (32 digits if none does)."""
        name, hexfp = self.names[key], compact_fingerprint(key)
        rival_fps = [compact_fingerprint(r) for r in rivals if r != key]
        for n in range(MIN_SUFFIX, _FP_HEX + 1):
            if any(fp.startswith(hexfp[:n]) for fp in rival_fps):
                continue
            label = f"{name}{SEPARATOR}{hexfp[:n]}"
            if self.matches(label) == {key}:
                return label
        return f"{name}{SEPARATOR}{hexfp}"

    def needs_suffix(self, key: bytes, rivals: Collection[bytes]) -> bool:
        """A name shown alone would be ambiguous: it looks like a rival's, contains a separator (it
        could pass for a label), or a query of it would also mean someone else."""
        name = self.names[key]
        if any(r != key for r in rivals):
            return True
        if any(sep in skel for sep in _SEPARATOR_SKELETONS for skel in skeletons(name)):
            return True
        return self.matches(name) != {key}


class Named(Protocol):
    """Anyone a command can address: a :class:`~groupchat.core.events.Member`, or a joiner's
    :class:`~groupchat.core.identity.JoinRequest` (for ``/approve``)."""

    @property
    def display_name(self) -> str: ...
    @property
    def identity_key(self) -> bytes: ...


N = TypeVar("N", bound=Named)


class KnownNames(Protocol):
    """The names we met before, by key (the trust store): look-alikes count against them too."""

    @property
    def version(self) -> int: ...
    def keys_like(self, name: str) -> Collection[bytes]: ...


def label_members(entries: Iterable[tuple[str, bytes]], known: KnownNames | None = None) -> dict[bytes, str]:
    """The label of each ``(name, key)``: the name alone, or ``name·prefix`` when it needs one."""
    index = NameIndex(entries)
    return {key: _label_in(index, key, known) for key in index.names}


def _label_in(index: NameIndex, key: bytes, known: KnownNames | None) -> str:
    """The label of ``key`` among the members of ``index`` (see :func:`label_members`)."""
    name = index.names[key]
    rivals = index.like(name)
    if known is not None:
        rivals |= set(known.keys_like(name))
    rivals.discard(key)
    return index.unambiguous_label(key, rivals) if index.needs_suffix(key, rivals) else name


def _reads_beyond_lookalikes(name: str) -> bool:
    """Whether the label of a member called ``name`` can depend on members whose names do not look
    like it: a name that is a fingerprint prefix, contains a separator, or has spaces around it
    (a query of it is matched stripped, by prefix or as ``name·prefix``; :meth:`NameIndex.matches`)."""
    q = name.strip()
    return q != name or _hex_query(q) is not None or any(sep in name for sep in _TYPED_SEPARATORS)


def resolve(query: str, members: Iterable[N]) -> N:
    """The one member ``query`` means (a name, a label or a fingerprint prefix) among ``members``
    (current members, or joiners waiting for ``/approve``: anything :class:`Named`).

    Raises:
        NoSuchMember: nobody matches.
        AmbiguousMember: several do; the message lists an unambiguous label for each.
    """
    by_key = {m.identity_key: m for m in members}
    index = NameIndex((m.display_name, k) for k, m in by_key.items())
    found = index.matches(query)
    if not found:
        raise NoSuchMember(wording.no_member_named(query))
    if len(found) > 1:
        labels = tuple(sorted(index.unambiguous_label(k, found) for k in found))
        raise AmbiguousMember(query, labels)
    return by_key[found.pop()]


class Labeler:
    """Each member's label, recomputed only when the roster (a new members mapping) or the trust
    store changed; the previous roster's labels are kept for members who just left it.

    A roster change relabels only whom it can concern (the same labels as :func:`label_members`
    over the new roster, tested so): the members that came or were renamed, those whose names look
    like a name that came or went, and those whose labels can depend on anyone (a label with a
    suffix, a name :func:`_reads_beyond_lookalikes`). A joiner or a departure costs O(lookalikes),
    not O(members) at every member; a change of the trust store relabels everyone."""

    def __init__(self, known: KnownNames | None) -> None:
        self._known = known
        self._members: Mapping[int, Member] | None = None
        self._version = -1
        self._labels: dict[bytes, str] = {}
        self._index = NameIndex(())
        self._exact = True  # the index holds one name per key (no key at two leaves)
        self._wide: set[bytes] = set()  # members relabelled at every roster change (see above)
        self._previous: dict[bytes, str] = {}

    def labels(self, members: Mapping[int, Member]) -> Mapping[bytes, str]:
        """The labels for ``members`` (the very mapping the machine holds; compared by identity)."""
        version = self._known.version if self._known is not None else 0
        if members is self._members and version == self._version:
            return self._labels
        if self._members is not None and version == self._version and self._exact:
            self._relabel(members)
        else:
            self._relabel_all(members)
        self._members, self._version = members, version
        return self._labels

    def _relabel_all(self, members: Mapping[int, Member]) -> None:
        entries = [(m.display_name, m.identity_key) for m in members.values()]
        if members is not self._members:  # bounded: the labels of the last few rosters only
            keep = self._previous if len(self._previous) < _KEEP_PREVIOUS else {}
            self._previous = {**keep, **self._labels}
        index = self._index = NameIndex(entries)
        self._exact = len(index.names) == len(entries)
        self._labels = {key: _label_in(index, key, self._known) for key in index.names}
        self._wide = {k for k, label in self._labels.items() if self._is_wide(k, label)}

    def _relabel(self, members: Mapping[int, Member]) -> None:
        """Bring the index and the labels from the roster before to ``members``, relabelling only
        whom the change can concern (see the class docstring)."""
        index = self._index
        now = {m.identity_key: m.display_name for m in members.values()}
        if len(now) != len(members):
            self._relabel_all(members)  # a key at two leaves: the index would hold both names
            return
        gone = [k for k, name in index.names.items() if now.get(k) != name]
        came = [k for k, name in now.items() if index.names.get(k) != name]
        if not gone and not came:
            return  # an update-only epoch: a new mapping of the same members
        labels = dict(self._labels)  # a mapping handed out before never changes under its holder
        if len(self._previous) >= _KEEP_PREVIOUS:
            self._previous = {}
        names = []
        for key in gone:
            names.append(index.remove(key))
            label = labels.pop(key)
            self._wide.discard(key)
            if key not in now:
                self._previous[key] = label
        for key in came:
            index.add(now[key], key)
            names.append(now[key])
        concerned = set(came) | self._wide
        for name in names:
            concerned |= index.like(name)
        for key in concerned:
            label = labels[key] = _label_in(index, key, self._known)
            if self._is_wide(key, label):
                self._wide.add(key)
            else:
                self._wide.discard(key)
        self._labels = labels

    def _is_wide(self, key: bytes, label: str) -> bool:
        name = self._index.names[key]
        return label != name or _reads_beyond_lookalikes(name)

    def learned_roster(self, members: Mapping[int, Member], before: int) -> None:
        """The trust store moved on from version ``before`` only by learning the names the
        ``members`` go by now: their labels stand (each such key is in the roster's own index
        under that name already; a name the store then forgets can only take a rival away, and a
        label kept longer stays unambiguous), so they are not computed again (O(n) each time)."""
        if self._known is not None and members is self._members and self._version == before:
            self._version = self._known.version

    def lookalikes(self, members: Mapping[int, Member], member: Member) -> set[bytes]:
        """The keys of the other members in ``members`` whose name looks like ``member``'s (from
        the roster's index: no relabelling while the trust store learns the roster's keys)."""
        if members is not self._members:
            self.labels(members)
        return self._index.like(member.display_name) - {member.identity_key}

    def label(self, members: Mapping[int, Member], member: Member) -> str:
        """How ``member`` is shown: its label in ``members``, or in the roster before, or its name."""
        key = member.identity_key
        labels = self.labels(members)
        return labels.get(key) or self._previous.get(key) or member.display_name
