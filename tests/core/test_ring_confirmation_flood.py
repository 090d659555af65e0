"""Ring confirmations are unsigned, so the relay can send any number while a member's run is still
going: the member keeps only a few distinct ones (issue 13 item 6), and the ring still completes."""

from __future__ import annotations

import os

from ring_room import GROUP_ID, grown

from groupchat.core.epoch.wire import encode_confirmation
from groupchat.core.errors import ConfirmationError
from groupchat.core.events import RekeyProgress


def test_a_flood_of_forged_confirmations_is_bounded_and_the_ring_still_completes() -> None:
    room = grown(3)
    room.offline.add("m2")  # m1's run waits for m2's round message
    room.commit("m0", update=True)
    room.pump()
    m1 = room.members["m1"]
    ring = m1._ring
    assert ring is not None and ring.done is None
    junk = [encode_confirmation(GROUP_ID, m1.epoch + 1, os.urandom(32)) for _ in range(2000)]
    for data in junk + junk[:10]:  # repeats too
        assert isinstance(m1.receive(data), RekeyProgress)
    assert 1 <= len(ring.tags) <= 8
    assert len(set(ring.tags)) == len(ring.tags)
    # m2 comes back: every run completes and all agree. The forged tags, checked when m1's run is
    # done, match nothing (a mismatch is reported once); the committer's genuine one then counts.
    room.offline.clear()
    mismatches = 0
    for _ in range(10):
        try:
            room.pump()
            break
        except ConfirmationError:
            mismatches += 1
    assert mismatches <= 1
    room.assert_agreement()
