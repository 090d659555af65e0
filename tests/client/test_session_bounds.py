"""Whatever the relay sends, the session's memory is bounded and one input costs what it always
costs (issue 13 item 6): fake presence ids, fake join requests, a flood of frames for a joiner.

Real session machines in the in-memory room (session_room.py); the relay's frames are fed as the
glue would feed them. Costs are compared between a small and a large flood, not against a clock.
"""

from __future__ import annotations

import os
import time

from session_room import HELLO, Member, MemoryRoom

from groupchat.client.notices import Placeholder, UnreadableReason
from groupchat.client.room_payload import JoinAsk, PayloadKind, RoomPayload
from groupchat.client.session.bounds import (
    MAX_BUFFERED_BYTES,
    MAX_PENDING_ACKS,
    MAX_PENDING_JOINERS,
    MAX_PRESENT,
)
from groupchat.client.session.inputs import Connected, FrameReceived, Tick
from groupchat.core.group import GroupConfig
from groupchat.core.identity import Identity, JoinRequest
from groupchat.relay_protocol import Ack, Deliver, Joined, Presence, PresenceEvent

FACTOR = 5.0  # generous: a sorted 10,000-id set made each input ~100x dearer


def _fake(n: int) -> bytes:
    return b"%032x" % (n + 1)


def _presence(room: MemoryRoom, member: Member, mid: bytes, event: PresenceEvent) -> None:
    room.feed(member, FrameReceived(Presence(room.room, mid, event), room.clock()))
    member.machine.next_wakeup(room.clock())  # the glue arms its timer after every input


def _cost_of_inputs(room: MemoryRoom, member: Member, start: int, n: int = 300) -> float:
    """Seconds for ``n`` presence changes (a new fake id comes, an old one goes), best of 3."""
    best = float("inf")
    for rep in range(3):
        t0 = time.perf_counter()
        for k in range(n):
            _presence(room, member, _fake(10_000_000 + rep * n + k + start), PresenceEvent.JOINED)
            _presence(room, member, _fake(k), PresenceEvent.LEFT)
        best = min(best, time.perf_counter() - t0)
    return best


def _flood_presence(room: MemoryRoom, member: Member, count: int) -> None:
    for n in range(count):
        _presence(room, member, _fake(n), PresenceEvent.JOINED)


def test_fake_presence_ids_are_bounded_and_cost_nothing_per_input_for_a_newcomer(room: MemoryRoom) -> None:
    # A newcomer in an empty room with no traffic waits its turn to create, ranked among the
    # present ids: the input that stalled the loop for 10 s with 7,000 fake ids.
    me = room.add("zed")
    me.connected = True
    room.feed(me, Connected(HELLO, room.clock()))
    ((_, joined),) = room.inbox
    assert isinstance(joined, Joined)
    room.inbox[0] = (me, Joined(joined.req_id, room.room, 0, tuple(_fake(n) for n in range(10))))
    room.settle()
    assert me.machine._hold is None and me.machine._present.below_me == 10  # it waits its turn
    small = _cost_of_inputs(room, me, 0)
    _flood_presence(room, me, 10_000)
    large = _cost_of_inputs(room, me, 1_000_000)
    assert large < FACTOR * small, (small, large)
    assert me.machine._hold is None  # still waiting: nothing of this made it create or join
    assert len(me.machine._present) <= MAX_PRESENT + 1  # ourselves
    assert me.machine._present.ignored > 0
    assert not me.machine._offline_since  # nobody's absence is remembered but members'


def test_fake_presence_costs_a_member_nothing_per_input(
    pair: tuple[Member, Member], room: MemoryRoom
) -> None:
    alice, bob = pair
    _flood_presence(room, alice, 10)
    small = _cost_of_inputs(room, alice, 0)
    _flood_presence(room, alice, 10_000)
    large = _cost_of_inputs(room, alice, 1_000_000)
    assert large < FACTOR * small, (small, large)
    assert len(alice.machine._present) <= MAX_PRESENT + 2
    assert set(alice.machine._offline_since) <= {bob.mid}
    # Members are still seen coming and going past the cap.
    room.disconnect(bob)
    assert bob.mid not in alice.machine._present
    room.connect(bob)
    assert bob.mid in alice.machine._present


def test_fake_join_requests_are_bounded(pair: tuple[Member, Member], room: MemoryRoom) -> None:
    alice, _ = pair
    suite = GroupConfig().suite()
    gid = alice.machine._group_id
    for k in range(MAX_PENDING_JOINERS + 100):
        req = JoinRequest.create(
            suite, Identity.generate(), gid, f"fake{k}", wall_clock=room.clock.wall
        ).request
        body = RoomPayload(PayloadKind.JOIN_REQUEST, JoinAsk(req.encoded).encode()).encode()
        d = Deliver(len(room.log) + 1, room.room, _fake(k), None, body)
        room.log.append(d)
        room.feed(alice, FrameReceived(d, room.clock()))
    adds = alice.machine._duties.adds
    assert len(adds) == MAX_PENDING_JOINERS
    assert alice.machine._joiners_dropped == 100
    assert [a.request.display_name for a in adds.values()][-1] == f"fake{MAX_PENDING_JOINERS + 99}"


def test_a_waiting_joiner_keeps_at_most_16_mib_and_counts_the_rest(room: MemoryRoom) -> None:
    alice = room.add("alice")
    room.connect(alice)  # creates the group: the room has traffic
    room.disconnect(alice)  # nobody to welcome bob for now
    bob = room.add("bob")
    room.connect(bob)
    room.tick()
    assert bob.machine.epoch is None  # waiting for a welcome
    junk = RoomPayload(PayloadKind.CORE, b"\x00\x01" + os.urandom(1 << 20)).encode()  # ~1 MiB
    n = 40
    for _ in range(n):
        d = Deliver(len(room.log) + 1, room.room, alice.mid, None, junk)
        room.log.append(d)  # in the room's order, as the relay would have logged it
        room.feed(bob, FrameReceived(d, room.clock()))
    arrival = bob.machine._arrival
    assert arrival.buffered_bytes == sum(len(b) for b in arrival.buffer) <= MAX_BUFFERED_BYTES
    kept = len(arrival.buffer)
    assert kept == MAX_BUFFERED_BYTES // len(junk[1:])  # the core bytes, without the kind octet
    assert bob.machine._buffer_dropped == n - kept
    # alice is back and welcomes bob: the dropped ones are counted as "cannot be shown".
    room.connect(alice)
    room.tick()
    room.clock.advance(2.0)
    room.tick()
    assert bob.machine._hold is not None
    shown = sum(
        p.count
        for p in bob.notices()
        if isinstance(p, Placeholder) and p.reason is UnreadableReason.BEFORE_JOIN
    )
    assert shown >= n - kept
    room.feed(bob, Tick(room.clock()))


def test_a_relay_that_never_acks_costs_a_bounded_table(pair: tuple[Member, Member], room: MemoryRoom) -> None:
    alice, _ = pair
    for k in range(MAX_PENDING_ACKS + 200):
        alice.machine.queue_text(f"m{k}")
        room.feed(alice, Tick(room.clock()))
        room.inbox = [(m, f) for m, f in room.inbox if not isinstance(f, Ack)]  # never acked
        room.settle()
    link = alice.machine._link
    assert link is not None and len(link.pending_acks) == MAX_PENDING_ACKS
