"""Round 3 is signed, so a flood of forged confirmations keeps nothing: each is refused with the
state unchanged (nothing is buffered), and the genuine messages still complete the ring. (Before,
confirmations were unsigned and buffered, and the round-2 message that completed a run could then
raise although the state had advanced.)"""

from __future__ import annotations

import os

import pytest
from ring_room import GROUP_ID, grown

from groupchat.core.errors import SignatureError
from groupchat.core.identity import Identity
from groupchat.core.schemes.ring_message import RingRound
from groupchat.core.suite import CipherSuite


def test_a_flood_of_forged_confirmations_keeps_nothing_and_the_ring_still_completes() -> None:
    room = grown(3)
    room.offline.add("m2")  # m1's run waits for m2's round message
    room.commit("m0", update=True)
    room.pump()
    m1 = room.members["m1"]
    run = m1._scheme._run  # type: ignore[attr-defined]
    assert m1._ring is not None and run is not None and run.round == 1
    template = RingRound.decode(next(d for d in reversed(room.log) if d[2:4] == b"\xf0\x01"))
    outsider = Identity.generate()
    suite = CipherSuite()
    fields = dict(
        group_id=GROUP_ID, epoch=template.epoch, attempt=template.attempt,
        roster_hash=template.roster_hash, context=template.context,
    )  # fmt: skip
    # Signed by someone outside the roster, claiming m0's leaf; and random bytes as the signature.
    forged = [
        RingRound.create(
            suite, outsider.signing_key, round_=3, sender=0, value=os.urandom(32), view=os.urandom(32),
            **fields,  # type: ignore[arg-type]
        ).encoded
        for _ in range(200)
    ]
    held = [list(r) for r in run._rounds.values()]
    for data in forged + forged[:10]:
        with pytest.raises(SignatureError):
            m1.receive(data)
    assert [list(r) for r in run._rounds.values()] == held  # nothing kept
    room.offline.clear()
    room.pump()
    room.assert_agreement()
