"""The sans-I/O room (session_room.py) with the store's glue, and kills at any frame.

:class:`StoredRoom` drives a member that has a :class:`SessionStore` exactly as ``ChatSession``
does (``asyncio_session._drive`` / ``_perform``): the history is kept after each effect, the
state is stored before every ``Publish``/``SendTo`` (durable) and after every step. A member can
be *killed* right after its N-th frame reached the relay (``kill_after``), or with that frame
lost on the way (``lose_it``): the step is abandoned there, as SIGKILL would, nothing after it
runs. :meth:`StoredRoom.restart` builds a new machine for the same identity from the store.
:class:`SendLog` records every ratchet key our senders took (``SecretTree.next_send``), so a
generation used twice across a restart is seen even if no receiver got both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from session_room import Member, MemoryRoom

from groupchat.client.session import SessionSettings
from groupchat.client.session.actions import CallCore, Reply, SendFrame, Stop, resume
from groupchat.client.session.inputs import Input
from groupchat.client.session.machine import SessionMachine
from groupchat.client.session_store import SessionStore
from groupchat.client.trust import TrustStore
from groupchat.core.errors import GroupChatError
from groupchat.core.group import GroupConfig
from groupchat.core.identity import Identity
from groupchat.core.secret_tree import SecretTree
from groupchat.core.suite import CipherSuite
from groupchat.relay_protocol import Join, Publish, SendTo


class Killed(Exception):
    """The member's process died here (nothing after this point runs)."""


class SendLog:
    """Every (key, nonce) a sender's ratchet handed out, with how often."""

    def __init__(self) -> None:
        self.keys: dict[bytes, int] = {}
        self.sealed: dict[tuple[bytes, bytes, bytes], int] = {}  # HPKE: (public key, label, secret)

    def reused(self) -> list[bytes]:
        """Ratchet keys handed out twice, and HPKE plaintexts (path secrets, a Welcome's group
        secrets) sealed twice to one key: a secret of one commit used again in another."""
        twice = [k for k, n in self.keys.items() if n > 1]
        return twice + [pk + label for (pk, label, _), n in self.sealed.items() if n > 1]


@contextmanager
def send_log() -> Iterator[SendLog]:
    """Record every ``SecretTree.next_send`` while the block runs."""
    book = SendLog()
    original = SecretTree.next_send

    def spy(self: SecretTree, leaf: int, kind: Any) -> tuple[int, bytes, bytes]:
        gen, key, nonce = original(self, leaf, kind)
        book.keys[key + nonce] = book.keys.get(key + nonce, 0) + 1
        return gen, key, nonce

    sealing = CipherSuite.encrypt_with_label

    def seal_spy(
        self: CipherSuite, pk: bytes, label: bytes, context: bytes, plain: bytes
    ) -> tuple[bytes, bytes]:
        place = (pk, label, plain)
        book.sealed[place] = book.sealed.get(place, 0) + 1
        return sealing(self, pk, label, context, plain)

    SecretTree.next_send = spy  # type: ignore[method-assign]
    CipherSuite.encrypt_with_label = seal_spy  # type: ignore[method-assign]
    try:
        yield book
    finally:
        SecretTree.next_send = original  # type: ignore[method-assign]
        CipherSuite.encrypt_with_label = sealing  # type: ignore[method-assign]


class StoredRoom(MemoryRoom):
    """A :class:`MemoryRoom` whose members may have a store (and may be killed)."""

    def __init__(self, clock: Any) -> None:
        super().__init__(clock)
        self.stores: dict[bytes, SessionStore] = {}
        self.kill_after: dict[bytes, int] = {}  # member id -> frames it may still send
        self.lose_it: set[bytes] = set()  # the frame that kills is lost (the relay never got it)
        self.identities: dict[bytes, Identity] = {}
        self.settings: dict[bytes, dict[str, Any]] = {}
        self.withhold_own: set[bytes] = set()  # a lying relay: a resume skips the joiner's own frames

    def add_stored(self, name: str, store: SessionStore, identity: Identity, **settings: Any) -> Member:
        member = self.add(name, identity, **settings)
        self.stores[member.mid] = store
        self.identities[member.mid] = identity
        self.settings[member.mid] = settings
        return member

    def restart(self, old: Member) -> tuple[Member, list[Any]]:
        """A new process for ``old``'s identity: scrollback, then the stored state (as
        ``ChatSession._resume_stored``), then connect. Returns it and the scrollback."""
        store = self.stores[old.mid]
        self.kill_after.pop(old.mid, None)
        self.lose_it.discard(old.mid)
        defaults: dict[str, Any] = {"add_timeout": 0.5, "open_room": True}
        s = SessionSettings("ws://memory", "room", old.name, **{**defaults, **self.settings[old.mid]})
        config = GroupConfig(clock=self.clock, wall_clock=self.clock.wall, rand=os.urandom)
        m = SessionMachine(
            s, self.identities[old.mid], TrustStore(None), config=config, rand=os.urandom, now=self.clock()
        )
        member = Member(old.name, m)
        self.members[member.mid] = member
        scrollback = store.scrollback()
        m.remember_seen(store.seen())
        restored = store.restore(config)
        unsent = store.unsent()
        assert not isinstance(unsent, str), unsent
        if isinstance(restored, tuple):
            m.resume_stored(*restored, unsent)
        else:
            m.carry_unsent(unsent)
        member.restored = restored  # type: ignore[attr-defined]
        self.connect(member)
        return member, scrollback

    def kill(self, member: Member) -> None:
        member.stopped, member.connected = True, False
        self._gone(member)

    def _route(self, sender: Member, frame: Any) -> None:
        if isinstance(frame, Join) and sender.mid in self.withhold_own:
            log, self.log = self.log, [d for d in self.log if d.sender != sender.mid]
            try:
                super()._route(sender, frame)
            finally:
                self.log = log
            return
        super()._route(sender, frame)

    def feed(self, member: Member, item: Input) -> list[Any]:
        store = self.stores.get(member.mid)
        if store is None:
            return super().feed(member, item)
        if member.stopped:
            return []
        try:
            return self._feed_stored(member, store, item)
        except Killed:
            self.kill(member)
            return []

    def _feed_stored(self, member: Member, store: SessionStore, item: Input) -> list[Any]:
        machine = member.machine
        out: list[Any] = []
        step = machine.step(item)
        reply: Reply | None = None
        error: GroupChatError | None = None
        while True:
            try:
                effect = resume(step, reply, error)
            finally:
                store.keep(machine)
                out.extend(machine.take_actions())
            if effect is None:
                break
            out.append(effect)
            error, value = None, None
            if isinstance(effect, CallCore):
                try:
                    value = effect.call.run()
                except GroupChatError as exc:
                    error = exc
                    continue
            elif isinstance(effect, SendFrame):
                if isinstance(effect.frame, Publish | SendTo):
                    store.persist(machine, before_send=True)
                    if store.hold_sends:  # as ChatSession._perform: not over a stale stored state
                        reply = Reply(False, self.clock())
                        continue
                left = self.kill_after.get(member.mid)
                if left is not None and isinstance(effect.frame, Publish | SendTo):
                    if left <= 0:
                        raise Killed
                    self.kill_after[member.mid] = left - 1
                    if left == 1 and member.mid in self.lose_it:
                        member.actions.extend(out)
                        raise Killed
                self._route(member, effect.frame)
                if left == 1:
                    member.actions.extend(out)
                    raise Killed  # the frame reached the relay; we die before anything else
                value = True
            reply = Reply(value, self.clock())
        store.keep(machine)
        out.extend(machine.take_actions())
        store.persist(machine)
        member.actions.extend(out)
        for action in out:
            if isinstance(action, Stop):
                member.stopped = True
                self._gone(member)
        return out
