"""A ring group under attack: real core ``Group`` members, a malicious insider and a hostile relay.

The relay (:class:`Net`) sequences what members publish, keeping each sender's own order (one
connection each) but choosing how senders interleave, and hands each recipient that order, with
the damage the test asks for: a frame dropped for one recipient, a duplicate, a forged unsigned
frame, or (equivocation, with the insider's help) another version of an insider frame for some
recipients. The insider is a real member ``x`` whose own Group runs honestly; its signing key
makes the variants (:func:`resign`, :func:`insider_variant`) that the colluding relay gives to
whom it likes. Everything is driven through the public API of ``Group``; the only inspection
hooks read (:func:`public_state`) are the ones the issue's invariants name (missing members,
outbox length).

Used by ``test_ring_state_machine.py`` (the Hypothesis machine and its regression tests).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import os
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from ed25519_nonce import NonceKey

from groupchat.core import errors, events
from groupchat.core.epoch.machine import Phase
from groupchat.core.errors import GroupChatError, RemoteError, UsageError
from groupchat.core.events import Event, RekeyTimedOut
from groupchat.core.group import Group, GroupConfig
from groupchat.core.identity import Identity, JoinRequest
from groupchat.core.key_schedule import derive_epoch_secrets
from groupchat.core.outbox import ROOM, Outbound
from groupchat.core.peek import MessageKind, peek
from groupchat.core.schemes import ring_errors
from groupchat.core.schemes.ring_message import RingRound
from groupchat.lab.clock import ManualClock
from groupchat.lab.keeper import harvest

__all__ = [
    "BUGGY",
    "GROUP_ID",
    "KEYED",
    "LOW_ORDER",
    "TOLD_ERRORS",
    "TOLD_EVENTS",
    "Frame",
    "Net",
    "Told",
    "derives_epoch",
    "describe",
    "insider_variant",
    "is_kind",
    "keep",
    "public_state",
    "resign",
    "settle",
    "split_untold",
    "unchanged_on_raise",
]

GROUP_ID = b"ring-under-attack"
TIMEOUT = 30.0  # the ring's default round timeout (RingScheme's DEFAULT_TIMEOUT)
U32 = 2**32 - 1
P = 2**255 - 19
LOW_ORDER = [(0).to_bytes(32, "little"), (1).to_bytes(32, "little"), (P - 1).to_bytes(32, "little")]

#: The attacks today's code fails, by the issue 14 item each reproduces: the state machine mounts
#: them only when switched on, and each has an ``xfail(strict=True)`` regression test.
BUGGY: Final = {
    "vary_signature": "issue 14: signatures feed the key, so the fallback confirmation splits silently",
    "max_attempt": "issue 14: a round 1 claiming attempt 2^32-1 freezes the ring (tick raises)",
    "next_attempt_bad": "issue 14: a bad message of the next attempt abandons the running attempt",
    "forged_confirmation": "issue 14: the round-2 message completing the run raises after the state advanced",
    "encrypt_while_removing": "issue 14: encrypt works at an epoch whose successor removes someone",
    "commit_tag": (
        "issue 14 (found by the ring state machine): a ring commit's unsigned confirmation_tag "
        "is malleable, so the relay splits one member off the ring (it binds its run to other bytes)"
    ),
}

# Phases in which a member holds the keys of its current epoch (epoch_authenticator is readable).
KEYED = (Phase.MEMBER, Phase.COMMITTING, Phase.AGREEING, Phase.CONFIRMING)


def _error_classes(*names: str) -> tuple[type[BaseException], ...]:
    """Error classes by name, from the core's errors and the ring's, skipping names a rewrite dropped."""
    found = [getattr(errors, n, None) or getattr(ring_errors, n, None) for n in names]
    return tuple(c for c in found if isinstance(c, type))


# A raise of one of these tells a member that its view of the ring (or of the epoch it leads to)
# differs from someone's: invariant (a) excuses a split only where a member was told so.
TOLD_ERRORS = _error_classes(
    "ConfirmationError",  # DivergentViewError too
    "InconsistentPathError",  # RingInconsistentError too
    "EquivocationError",
    "RosterMismatchError",
)
# Events that say the same: the rewrite's RekeyFailed (an attempt that can never complete here).
TOLD_EVENTS: tuple[type, ...] = tuple(
    c for n in ("RekeyFailed",) if isinstance(c := getattr(events, n, None), type)
)


def is_kind(data: bytes, name: str) -> bool:
    """Whether ``data``'s public header claims the message kind ``name`` (a ``MessageKind`` name)."""
    kind = getattr(MessageKind, name, None)
    if kind is None:
        return False
    try:
        return peek(data).kind is kind
    except GroupChatError:
        return False


def public_state(g: Group) -> tuple[object, ...]:
    """What a raise must not change (issue 14 invariant b): phase, epoch, the epoch authenticator
    when readable, roster, pending commit, the members the run waits for, and the outbox length."""
    phase = g.phase
    missing = getattr(g._scheme, "missing", None)
    return (
        phase,
        g.epoch,
        g.epoch_authenticator if phase in KEYED else None,
        tuple((m.leaf, m.identity_key) for m in g.members()) if phase is not Phase.REMOVED else (),
        g.has_pending_commit,
        g.joining,
        tuple(m.leaf for m in missing()) if callable(missing) else None,
        len(g._outbox),
    )


def keep(g: Group) -> Group:
    """A deep copy of ``g``: what a member could keep on disk (suite, identity and config shared)."""
    shared: dict[int, object] = {id(x): x for x in (g.suite, g._identity, g.config)}
    return copy.deepcopy(g, shared)


# --- the insider's tools -------------------------------------------------------------------------


def resign(data: bytes, key: Ed25519PrivateKey | NonceKey, suite: Any, **changes: object) -> bytes:
    """``data`` (a ring round message) with ``changes`` to its fields, signed again by ``key``.

    Field names are the decoded message's (``round``, ``attempt``, ``value``...); they are
    matched to ``RingRound.create``'s parameters, so a rewrite that adds fields keeps working.
    """
    msg = RingRound.decode(data)
    params = inspect.signature(RingRound.create).parameters
    kwargs: dict[str, object] = {}
    for f in dataclasses.fields(msg):
        value = changes.pop(f.name, getattr(msg, f.name))
        for name in (f.name, f.name + "_"):
            if name in params and name not in ("suite", "signing_key"):
                kwargs[name] = value
    assert not changes, f"unknown ring message fields {sorted(changes)}"
    return RingRound.create(suite, cast(Ed25519PrivateKey, key), **kwargs).encoded  # type: ignore[arg-type]


#: The round message's field signing the sender's view of the rounds before (renamed by round 3).
VIEW: Final = "view" if "view" in {f.name for f in dataclasses.fields(RingRound)} else "round1_hash"


def _fresh_key(rand: Callable[[int], bytes]) -> bytes:
    return X25519PrivateKey.from_private_bytes(rand(32)).public_key().public_bytes_raw()


def insider_variant(g: Group, data: bytes, how: str, salt: bytes = b"") -> bytes:
    """Another version of the insider's ring message ``data``, signed by the insider ``g``:

    * ``value``: the same round with another value (a fresh key in round 1, random bytes in 2);
    * ``signature``: the same content with other signature bytes (a chosen Ed25519 nonce);
    * ``attempt+1`` / ``attempt+2`` / ``attempt-max``: a round 1 with a fresh key for another attempt;
    * ``next-low-order``: a round 1 of the next attempt with a low-order key;
    * ``next-round2``: a round 2 of the next attempt (before any round 1 of it).
    """
    msg = RingRound.decode(data)
    key = g._identity.signing_key
    suite = g.suite
    salt = salt or os.urandom(8)
    if how == "value":
        value = _fresh_key(os.urandom) if msg.round == 1 else os.urandom(32)
        return resign(data, key, suite, value=value)
    if how == "signature":
        return resign(data, NonceKey(key, salt), suite)
    if how in ("attempt+1", "attempt+2", "attempt-max"):
        attempt = {"attempt+1": msg.attempt + 1, "attempt+2": msg.attempt + 2, "attempt-max": U32}[how]
        return resign(data, key, suite, attempt=min(attempt, U32), round=1, value=_fresh_key(os.urandom),
                      **{VIEW: b""})  # fmt: skip
    if how == "next-low-order":
        return resign(data, key, suite, attempt=min(msg.attempt + 1, U32), round=1, value=LOW_ORDER[1],
                      **{VIEW: b""})  # fmt: skip
    if how == "next-round2":
        return resign(data, key, suite, attempt=min(msg.attempt + 1, U32), round=2, value=os.urandom(32),
                      **{VIEW: os.urandom(32)})  # fmt: skip
    raise AssertionError(f"no insider variant {how!r}")


# --- the relay -------------------------------------------------------------------------------------


@dataclass
class Frame:
    """One publish: ``data`` for everyone in ``to`` (``None``: the whole room, the sender included),
    with ``variants`` given instead to some recipients (equivocation)."""

    sender: str
    data: bytes
    to: frozenset[str] | None = None
    variants: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Told:
    """A member was told something about the ring: the error class it raised, at which epoch."""

    epoch: int
    what: str


@dataclass
class Net:
    """Members, the relay's held and sequenced frames, and each recipient's queue in its order."""

    clock: ManualClock = field(default_factory=ManualClock)
    members: dict[str, Group] = field(default_factory=dict)
    insider: str = "x"
    held: dict[str, deque[Frame]] = field(default_factory=dict)  # per sender, not yet sequenced
    queues: dict[str, deque[bytes]] = field(default_factory=dict)
    delivered: dict[str, list[bytes]] = field(default_factory=dict)
    log: list[Frame] = field(default_factory=list)
    told: dict[str, list[Told]] = field(default_factory=dict)
    raised: dict[str, list[str]] = field(default_factory=dict)  # every rejection, by error class
    unclean: set[str] = field(default_factory=set)  # honest members the relay hid or swapped a frame from
    events: dict[str, list[Event]] = field(default_factory=dict)
    removed: dict[str, Group] = field(default_factory=dict)
    tamper: Callable[[Net, Frame], None] | None = None  # the insider's hook on each of its frames

    @property
    def config(self) -> GroupConfig:
        return GroupConfig(clock=self.clock, wall_clock=self.clock.wall)

    @property
    def honest(self) -> list[str]:
        return sorted(n for n in self.members if n != self.insider)

    def live(self) -> dict[str, Group]:
        return {n: g for n, g in self.members.items() if g.phase is not Phase.REMOVED}

    # --- building the group (honestly) ---------------------------------------------------------

    @classmethod
    def grown(cls, honest: Iterable[str], insider: str = "x") -> Net:
        """A ring group of ``honest`` members and the insider, built over an honest relay."""
        net = cls(insider=insider)
        names = [*honest, insider]
        first = Group.create(Identity.generate(), GROUP_ID, names[0], net.config, scheme="ring")
        net._enrol(names[0], first)
        for name in names[1:]:
            pj = JoinRequest.create(
                net.config.suite(), Identity.generate(), GROUP_ID, name, wall_clock=net.clock.wall
            )
            net.publish(names[0], first.commit(add=[pj.request]))
            net.settle_honestly(joiners={pj.request.identity_key: (name, pj)})
        return net

    def _enrol(self, name: str, g: Group) -> None:
        self.members[name] = g
        self.queues.setdefault(name, deque())
        self.delivered.setdefault(name, [])
        self.held.setdefault(name, deque())

    # --- publishing and sequencing -----------------------------------------------------------

    def publish(self, sender: str, data: bytes, to: frozenset[str] | None = None) -> Frame:
        frame = Frame(sender, data, to)
        self.held.setdefault(sender, deque()).append(frame)
        return frame

    def drain(self, name: str, joiners: dict[bytes, tuple[str, Any]] | None = None) -> list[Outbound]:
        """Send what ``name``'s Group asks to send: room items are published (the insider's pass
        through ``tamper``), a Welcome goes straight to its joiner, who joins at once."""
        g = self.members[name]
        out = g.data_to_send() if g.phase is not Phase.REMOVED else []
        for item in out:
            if item.to is ROOM:
                frame = self.publish(name, item.data)
                if name == self.insider and self.tamper is not None:
                    self.tamper(self, frame)
            elif joiners and item.to.identity_key in joiners:  # type: ignore[union-attr]
                jname, pj = joiners.pop(item.to.identity_key)  # type: ignore[union-attr]
                joined = Group.join(pj, item.data, self.config)
                self._enrol(jname, joined)
                # The joiner reads the room from the commit that added it on.
                self.queues[jname].extend(self._room_since_last_commit())
                self.drain(jname)
        return out

    def _room_since_last_commit(self) -> list[bytes]:
        """Frames sequenced after the last commit (a ring joiner's relay resume point)."""
        tail: list[bytes] = []
        for frame in reversed(self.log):
            if is_kind(frame.data, "COMMIT"):
                break
            if frame.to is None:
                tail.append(frame.data)
        return tail[::-1]

    def sequence(self, sender: str) -> Frame | None:
        """The relay orders ``sender``'s oldest held frame next: every recipient's queue gets it
        (or its variant for that recipient)."""
        queue = self.held.get(sender)
        if not queue:
            return None
        frame = queue.popleft()
        self.log.append(frame)
        got = {
            n: frame.variants.get(n, frame.data) for n in self.members if frame.to is None or n in frame.to
        }
        for name, data in got.items():
            self.queues[name].append(data)
        # Honest members given different versions are no longer in step with the rest; one
        # version for every honest member is just what the insider said.
        if len({d for n, d in got.items() if n != self.insider}) > 1:
            self.unclean.update(n for n, d in got.items() if n != self.insider and d != frame.data)
        return frame

    def sequence_all(self) -> None:
        while any(self.held.values()):
            for sender in sorted(self.held):
                self.sequence(sender)

    # --- delivering ----------------------------------------------------------------------------

    def deliver(
        self, name: str, *, check: Callable[[str, Group, tuple[object, ...]], None] | None = None
    ) -> bool:
        """Hand ``name`` the next frame of its queue; record a rejection; send what it must.

        ``check`` is called after a rejection with the state before it (invariant b)."""
        queue = self.queues[name]
        g = self.members.get(name)
        if not queue or g is None or g.phase is Phase.REMOVED:
            return False
        data = queue.popleft()
        self.delivered[name].append(data)
        before = public_state(g)
        epoch = g.epoch
        try:
            ev = g.receive(data)
        except RemoteError as exc:
            self.raised.setdefault(name, []).append(type(exc).__name__)
            if isinstance(exc, TOLD_ERRORS):
                self.told.setdefault(name, []).append(Told(epoch, type(exc).__name__))
            if check is not None:
                check(name, g, before)
            return True
        self.events.setdefault(name, []).append(ev)
        if TOLD_EVENTS and isinstance(ev, TOLD_EVENTS):
            self.told.setdefault(name, []).append(Told(epoch, type(ev).__name__))
        if g.state.value == "removed":
            self.removed[name] = g
        self.drain(name)
        return True

    def pump(self, *, check: Callable[[str, Group, tuple[object, ...]], None] | None = None,
             limit: int = 5000) -> None:  # fmt: skip
        """Sequence everything held and deliver every queue until nothing moves (bounded)."""
        for _ in range(limit):
            self.sequence_all()
            moved = False
            for name in sorted(self.members):
                while self.deliver(name, check=check):
                    moved = True
            if not moved and not any(self.held.values()):
                return
        raise AssertionError("the room did not settle")

    def settle_honestly(self, joiners: dict[bytes, tuple[str, Any]] | None = None) -> None:
        """Deliver everything, sending Welcomes to ``joiners`` (building the group)."""
        for _ in range(100):
            self.sequence_all()
            moved = False
            for name in sorted(self.members):
                while self.queues[name]:
                    g = self.members[name]
                    g.receive(self.queues[name].popleft())
                    self.drain(name, joiners)
                    moved = True
            if not moved and not any(self.held.values()):
                return
        raise AssertionError("the room did not settle")

    def tick(self, name: str) -> RekeyTimedOut | None:
        """The session's timer for one member: ``Group.tick`` must never raise (invariant c)."""
        g = self.members[name]
        if g.phase is Phase.REMOVED:
            return None
        ev = g.tick()
        self.drain(name)
        return ev

    def all_tick(self) -> dict[str, RekeyTimedOut | None]:
        return {name: self.tick(name) for name in sorted(self.members)}


SETTLE_CYCLES = 8  # timeouts settle() allows for the run to complete or restart


# --- the invariants (issue 14), shared by the machine and the regression tests ------------------


def split_untold(net: Net) -> list[tuple[str, str, int]]:
    """Invariant (a): pairs of honest members at one epoch with different keys, neither told."""
    keyed = [(n, g) for n, g in net.live().items() if n != net.insider and g.phase in KEYED]
    out = []
    for i, (a, ga) in enumerate(keyed):
        for b, gb in keyed[i + 1 :]:
            if ga.epoch != gb.epoch or ga.epoch_authenticator == gb.epoch_authenticator:
                continue
            told = [t for n in (a, b) for t in net.told.get(n, []) if t.epoch >= ga.epoch - 1]
            if not told:
                out.append((a, b, ga.epoch))
    return out


def unchanged_on_raise(name: str, g: Group, before: tuple[object, ...]) -> None:
    """Invariant (b), the ``check`` of ``Net.deliver``."""
    after = public_state(g)
    assert after == before, f"{name} raised {g!r} and its state changed: {before} -> {after}"


def settle(net: Net, cycles: int = SETTLE_CYCLES) -> None:
    """Invariant (c): the relay behaves and the insider stops; within ``cycles`` timeouts every
    member the relay never hid a frame from is at one epoch with one key, with no ring running.

    On a timeout the session would retry (the core's proposal is in the outbox) and, from the
    second one on, remove whom the ring waits for by a restart commit: done here for it."""
    net.tamper = None
    timeouts = 0
    for _ in range(cycles):
        net.pump(check=unchanged_on_raise)
        if _settled(net):
            return
        net.clock.advance(TIMEOUT + 1)
        ticked = net.all_tick()  # raises if tick does: the test fails there (no freeze)
        if any(isinstance(ev, RekeyTimedOut) for ev in ticked.values()):
            timeouts += 1
        if timeouts >= 2:
            _restart(net, ticked)
    net.pump(check=unchanged_on_raise)
    assert _settled(net), describe(net)


def describe(net: Net) -> str:
    """Each member's phase, epoch, key (a prefix) and what it was told, for failure messages."""
    rows = []
    for n, g in sorted(net.members.items()):
        key = g.epoch_authenticator.hex()[:8] if g.phase in KEYED else "-"
        flags = ("unclean " if n in net.unclean else "") + ("insider " if n == net.insider else "")
        told = [f"{t.what}@{t.epoch}" for t in net.told.get(n, [])]
        rows.append(
            f"{n}: {g.phase.value} epoch {g.epoch} key {key} {flags}told {told} "
            f"raised {net.raised.get(n, [])}"
        )
    return "\n".join(rows)


def _settled(net: Net) -> bool:
    clean = [g for n, g in net.live().items() if n != net.insider and n not in net.unclean]
    if not clean or any(g.phase is not Phase.MEMBER for g in clean):
        return False
    return len({(g.epoch, g.epoch_authenticator) for g in clean}) == 1


def _restart(net: Net, ticked: dict[str, RekeyTimedOut | None]) -> None:
    for name, ev in ticked.items():
        g = net.members[name]
        if name == net.insider or name in net.unclean or not isinstance(ev, RekeyTimedOut):
            continue
        missing = [m.leaf for m in ev.missing if m.leaf != g.my_leaf]
        if missing and g.phase is Phase.AGREEING and not g.has_pending_commit:
            try:
                net.publish(name, g.commit(remove=missing))
            except UsageError:
                continue
            return  # one restarter; the others follow it


def derives_epoch(kept: Group, member: Group, traffic: Iterable[bytes]) -> bool:
    """Invariant (d), the keeper's attack (``groupchat/lab/keeper.py``): does a removed member's kept
    state derive ``member``'s current epoch (the one its removal created)? Every 32-byte value it
    kept, and every 32-byte window of ``traffic``, is tried as the commit secret on top of the init
    secret it kept of the epoch before."""
    held = harvest(kept)
    init_secret = kept._secrets.init_secret
    assert init_secret in held, "control: the keeper holds the init secret the attacked epoch starts from"
    windows = {d[i : i + 32] for d in traffic for i in range(len(d) - 31)}
    real = member.epoch_authenticator
    ctx = member._ctx_bytes
    return any(
        derive_epoch_secrets(member.suite, init_secret, secret, ctx).epoch_authenticator == real
        for secret in held | windows
    )
