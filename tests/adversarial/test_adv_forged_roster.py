"""A joining session reads at once and checks the welcome's roster before it sends (issue 16).

The attack, mounted for real: a member (alice) who lets carol in sends her, instead of the
honest welcome, one whose tree also lists a ghost (a real person's identity key under a join
request they never signed), with tree hash, signature and carol's path all genuine. Carol's
session opens it, reads what the forged group says (she joined: reading is safe, each sender is
verified before use), then checks the roster in the core's thread, finds the ghost, names alice,
drops that group and asks again; nothing of hers ever goes into it.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from expect import invited, notice_texts
from hostile_relay import HostileRoom, payload_kind, start_room
from session_room import Member

from groupchat.client.app_content import MSG_ID_LEN, AppContent
from groupchat.client.notices import ChatLine, RosterChanged, TrustState
from groupchat.client.room_payload import PayloadKind, RoomPayload
from groupchat.core.codec import Writer
from groupchat.core.errors import GroupChatError
from groupchat.core.events import EpochChanged
from groupchat.core.group import Group
from groupchat.core.identity import Identity, JoinRequest
from groupchat.core.outbox import OutboundKind
from groupchat.lab.clock import ManualClock
from groupchat.relay_protocol import Deliver, ServerFrame


def ghost_request(group: Group, victim: Identity, not_after: int) -> JoinRequest:
    """A join request under ``victim``'s identity key whose signature is made up."""
    init_key = X25519PrivateKey.generate().public_key().public_bytes_raw()
    tbs = JoinRequest.tbs(group.suite.id, group.group_id, victim.public_key, b"victim", init_key, not_after)
    return JoinRequest.decode(Writer().raw(tbs).opaque(os.urandom(64)).bytes())


class ForgingAdder:
    """alice's malicious copy of her group: built when she commits carol's add, it adds carol
    itself (and a ghost) and swaps alice's welcome to carol for its own."""

    def __init__(self, room: HostileRoom, alice: Member, carol: Member, victim: Identity) -> None:
        self.room, self.alice, self.carol, self.victim = room, alice, carol, victim
        self.mal: Group | None = None
        self.welcome: bytes | None = None
        self.swapped = False  # once: carol's next request is answered honestly
        room.on_publish.append(self._on_publish)
        room.policy.alter(self._swap_welcome)

    def _on_publish(self, sender: Member, frame: object) -> None:
        if sender is not self.alice or self.mal is not None:
            return
        group = self.alice.machine._group
        attempt = self.carol.machine._phase_data
        pending = getattr(attempt, "pending", None)
        if group is None or pending is None or not group.has_pending_commit:
            return
        # alice's state before her add commit: restore it, drop her own commit, build the fork.
        mal = Group.restore(group.export_state(), self.alice.machine.identity, self.room.config)
        mal.discard_pending_commit()
        ghost = ghost_request(mal, self.victim, pending.request.not_after)
        mal._tree.build_path(mal._tree.leftmost_free_leaf(), os.urandom(32), ghost, None)
        commit = mal.commit(add=[pending.request], update=True)
        assert isinstance(mal.receive(commit), EpochChanged)
        (item,) = [o for o in mal.data_to_send() if o.kind is OutboundKind.WELCOME]
        self.mal, self.welcome = mal, item.data
        # What the fork "says" before its welcome: carol keeps it for when she is in, then reads it.
        chat = AppContent.chat(os.urandom(MSG_ID_LEN), "hello from the forged group").encode()
        body = RoomPayload(PayloadKind.CORE, mal.encrypt(chat)).encode()
        self.room.forge(self.alice.mid, body, recipients=[self.carol], settle=False)

    def _swap_welcome(self, recipient: bytes, frame: ServerFrame) -> ServerFrame | None:
        if (
            recipient == self.carol.mid
            and isinstance(frame, Deliver)
            and frame.to == self.carol.mid
            and payload_kind(frame.payload) is PayloadKind.WELCOME
            and self.welcome is not None
            and not self.swapped
        ):
            self.swapped = True
            body = RoomPayload(PayloadKind.WELCOME, self.welcome).encode()
            return Deliver(frame.seq, frame.room, frame.sender, frame.to, body)
        return None


def carol_published(room: HostileRoom, carol: Member, kind: PayloadKind) -> list[bytes]:
    return [d.payload for d in room.log if d.sender == carol.mid and payload_kind(d.payload) is kind]


def test_a_welcome_listing_a_ghost_is_read_then_refused_naming_the_adder_and_nothing_is_sent(
    clock: ManualClock,
) -> None:
    room, (alice, _bob) = start_room(clock, "alice", "bob")
    carol = room.add("carol", **invited(room, alice, "carol"))
    victim = Identity.generate()
    adder = ForgingAdder(room, alice, carol, victim)
    asked_before = len(carol_published(room, carol, PayloadKind.JOIN_REQUEST))
    room.connect(carol)
    carol.machine.queue_text("carol's secret")  # queued before she is in: must not go to the fork
    for _ in range(20):
        clock.advance(0.5)
        room.tick()
    assert adder.welcome is not None, "alice never committed carol's add"
    texts = notice_texts(carol)
    # Read first: the forged group's message was shown (its sender, alice, verified).
    lines = [n for n in carol.notices() if isinstance(n, ChatLine)]
    assert any(n.sender.startswith("alice") and n.text == "hello from the forged group" for n in lines), lines
    # Then the check: the ghost found, alice named, the group dropped.
    refusal = [t for t in texts if "never asked to join" in t]
    assert refusal, texts
    assert "alice" in refusal[0] and victim.fingerprint in refusal[0], refusal[0]
    # Nothing of carol's went into the forged group: no chat, no commit (not even her first update).
    assert adder.mal is not None
    for payload in carol_published(room, carol, PayloadKind.CORE):
        body = RoomPayload.decode(payload).body
        try:
            adder.mal.receive(body)
        except GroupChatError:  # refused by the fork: not a message into it
            continue
        raise AssertionError("carol sent something the forged group reads")
    # She asked again with a fresh request, and the honest welcome that answered it let her in.
    assert adder.swapped
    assert len(carol_published(room, carol, PayloadKind.JOIN_REQUEST)) > asked_before + 1
    real = alice.machine._group
    assert real is not None and carol.machine._group is not None
    assert carol.machine._group.epoch_authenticator == real.epoch_authenticator
    assert carol.machine._group.phase.value == "member"


def test_the_ghost_never_reaches_the_trust_store_nor_shows_as_verified(clock: ManualClock) -> None:
    """carol once verified the victim (as "dave"): while her roster is checked the ghost's made-up
    name is not recorded under that key (eight forged welcomes would otherwise push "dave" out of
    the store's names) and the ghost is never shown as a verified member."""
    room, (alice, _bob) = start_room(clock, "alice", "bob")
    carol = room.add("carol", **invited(room, alice, "carol"))
    victim = Identity.generate()
    carol.machine._trust.trust(victim.public_key, "dave")
    adder = ForgingAdder(room, alice, carol, victim)
    room.connect(carol)
    for _ in range(20):
        clock.advance(0.5)
        room.tick()
    assert adder.welcome is not None and adder.swapped
    assert any("never asked to join" in t for t in notice_texts(carol))
    assert "victim" not in carol.machine._trust.names(victim.public_key)
    shown = [
        e
        for n in carol.notices()
        if isinstance(n, RosterChanged)
        for e in n.members
        if e.trust is TrustState.VERIFIED and not e.is_me
    ]
    assert shown == [], shown
    assert not [t for t in notice_texts(carol) if "dave" in t]  # no "victim was called dave before"
