"""Issue 15, ring wording between real sessions over a real relay: a lone member "agreed" nothing
("ring of 1 agreed in 3 rounds"), and a joiner was told "ring agreed in 15 ms (61.5 ms of it
computing)", a wall time shorter than the computing it contained."""

from __future__ import annotations

import re

from session_harness import agree, running_relay, start_peer, stop_all, wait_until


async def test_a_lone_ring_member_is_not_said_to_agree_and_the_joiner_line_reads_right() -> None:
    async with running_relay() as relay:
        alice = start_peer(relay.port, "ring1", "alice", scheme="ring")
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start_peer(relay.port, "ring1", "bob")
        try:
            await wait_until(lambda: agree(alice, bob), 20, what="bob in")
            joined = [t for t in bob.timeline() if t.startswith("you joined")]
            assert len(joined) == 1, bob.timeline()
            # One measure, the core's time: no wall time beside it that could read shorter.
            assert re.fullmatch(
                r"you joined · epoch \d+ · 2 members · ring agreed in 3 rounds, [\d.]+ ms of computing"
                r" · code [\d ]+", joined[0]), joined[0]
            assert "of it computing" not in joined[0]
            epoch = alice.epoch or 0
            await bob.stop(leave=True)
            await wait_until(lambda: (alice.epoch or 0) > epoch and len(alice.session.roster()) == 1, 20,
                             "bob removed")
            left = [t for t in alice.timeline() if t.startswith("bob left")]
            assert left, alice.timeline()
            assert "alone in the ring: fresh keys, nobody to agree with" in left[-1], left[-1]
            assert "ring of 1" not in " ".join(alice.timeline())
        finally:
            await stop_all(alice, bob)
