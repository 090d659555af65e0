"""A timed-out ring attempt is replaced where the relay's order puts the first message of the next
attempt, not at a member's local deadline (docs/protocol.md §8.3), so members whose clocks differ
still agree: late messages ordered before the retry still complete the attempt, and everyone
switches at the same point when the retry comes first."""

from __future__ import annotations

from ring_room import Room, grown

from groupchat.core.events import EpochChanged, RekeyTimedOut


def _m2_sends_round1_then_goes_silent() -> Room:
    """m0 commits an update; m2 takes the commit and sends its round 1, then goes silent before
    round 2; m0 and m1 finish round 1 and wait for m2's round 2."""
    room = grown(3)
    room.commit("m0", update=True)
    m2 = room.members["m2"]
    while room.cursor["m2"] < len(room.log):  # up to the commit, nothing more
        m2.receive(room.log[room.cursor["m2"]])
        room.cursor["m2"] += 1
        room.drain("m2")
    room.offline.add("m2")
    room.pump()
    assert [m.display_name for m in room.members["m0"].members()] == ["m0", "m1", "m2"]
    assert room.members["m0"].epoch == 2 and room.members["m1"].epoch == 2  # waiting for m2
    return room


def _m0_times_out() -> Room:
    room = _m2_sends_round1_then_goes_silent()
    room.clock.now += 31  # m0 notices; m1 has not polled yet
    timed_out = room.members["m0"].tick()
    assert isinstance(timed_out, RekeyTimedOut)
    assert (timed_out.round, timed_out.attempt) == (2, 0)
    assert [m.display_name for m in timed_out.missing] == ["m2"]
    assert room.members["m0"].tick() is None  # once per attempt: the proposal is on its way
    return room


def test_late_messages_ordered_before_the_retry_still_complete_the_attempt() -> None:
    room = _m0_times_out()
    proposal = room.members["m0"].data_to_send()  # m0's retry, still on its way to the relay
    room.offline.clear()
    room.pump()  # m2's late round 2 is ordered first: attempt 0 completes for everyone
    room.post("m0", *(item.data for item in proposal))
    room.pump()  # then the retry arrives, moot: dropped by all
    room.assert_agreement()
    assert room.members["m2"].epoch == 3 and room.stale >= 2
    assert all(isinstance(room.events[n][-1], EpochChanged) or n == "m0" for n in room.members)


def test_a_retry_ordered_first_is_in_force_for_everyone() -> None:
    room = _m0_times_out()
    room.drain("m0")  # the retry is ordered before anything m2 sends now
    room.pump()  # m1 switches to attempt 1 at m0's message; both wait for m2 again
    assert room.members["m1"].epoch == 2
    room.offline.clear()
    room.pump()  # m2 reads attempt 0's round 1, sends its (now stale) round 2, switches, completes
    room.assert_agreement()
    assert room.members["m0"].epoch == 3 and room.stale >= 1
