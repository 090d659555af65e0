"""A member that signs a wrong ring value in every attempt: the values do not add up, the blame
round (every member reveals the dead attempt's ephemeral key) proves whose value it was, and the
session removes the liar with a restart, as it removes a member that stalls the ring. Before, the
ring failed for ever and nobody could be named."""

from __future__ import annotations

import pytest
from session_room import MemoryRoom

from groupchat.client.session.phases import Phase
from groupchat.core.schemes.ring import RingRekey
from groupchat.core.schemes.ring_message import RingRound


def test_a_member_that_lies_in_every_ring_is_named_and_removed(
    room: MemoryRoom, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = room.add("alice", scheme="ring")
    room.connect(alice)
    bob = room.add("bob")
    room.connect(bob)
    mallory = room.add("mallory")
    room.connect(mallory)
    for _ in range(10):
        room.clock.advance(0.5)
        room.tick()
    assert {m.machine.phase for m in (alice, bob, mallory)} == {Phase.MEMBER}
    epoch = alice.machine.epoch
    assert epoch is not None
    liar = mallory.machine.identity.public_key
    sign = RingRekey._sign

    def lying_sign(self: RingRekey, round_: int, value: bytes, view: bytes) -> RingRound:
        if round_ == 2 and self._identity.public_key == liar:
            value = bytes([value[0] ^ 1]) + value[1:]  # one flipped bit, signed
        return sign(self, round_, value, view)

    monkeypatch.setattr(RingRekey, "_sign", lying_sign)
    bob.machine._duties.want_update = room.clock()  # bob asks for a /rekey: a ring with mallory
    for _ in range(200):
        room.clock.advance(0.5)
        room.tick()
        if alice.machine.epoch != epoch and bob.machine.epoch == alice.machine.epoch:
            break
    group = alice.machine._group
    assert group is not None
    assert sorted(m.display_name for m in group.members()) == ["alice", "bob"]
    assert alice.machine.epoch == bob.machine.epoch and alice.machine.epoch != epoch
    warned = [t for t in alice.timeline() if "mallory signed a ring value its own revealed key" in t]
    assert warned, alice.timeline()
    assert any("mallory was removed by" in t for t in bob.timeline()), bob.timeline()
    # Removed as a kick (it proved itself a liar), not as "stalled": it does not come back alone.
    assert not any("could not restart" in t for t in alice.timeline()), alice.timeline()
    for _ in range(120):
        room.clock.advance(0.5)
        room.tick()
    assert sorted(m.display_name for m in group.members()) == ["alice", "bob"]
