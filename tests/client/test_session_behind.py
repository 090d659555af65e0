"""Unsigned hints never reset a member (issue 13, item 3): a forged later-epoch header, a fake
creation marker, the relay's GAP or future_seq. The attacks are mounted in the in-memory room with
real session machines; the relay's forgeries are frames no member signed."""

from __future__ import annotations

from session_room import HELLO, Member, MemoryRoom

from groupchat.client.notices import ChatLine, Placeholder
from groupchat.client.room_payload import JoinAsk, PayloadKind, RoomPayload
from groupchat.client.session.inputs import Connected, FrameReceived
from groupchat.client.session.phases import Phase
from groupchat.core.codec import Writer
from groupchat.core.identity import Identity, JoinRequest
from groupchat.core.message_protection import WireFormat
from groupchat.core.version import PROTOCOL_VERSION
from groupchat.relay_protocol import Deliver

FORGER = b"f" * 32  # a member id the relay makes up: no machine, no key behind it


def _forged_application(group_id: bytes, epoch: int) -> bytes:
    """A PrivateMessage header claiming ``epoch``, with junk where the ciphertext would be."""
    return (
        Writer()
        .u16(PROTOCOL_VERSION)
        .u16(WireFormat.PRIVATE_MESSAGE)
        .opaque(group_id)
        .u64(epoch)
        .u8(1)  # application
        .opaque(b"")
        .opaque(b"\x00" * 28)
        .opaque(b"\x01" * 64)
        .bytes()
    )


def _deliver(room: MemoryRoom, to: Member, kind: PayloadKind, body: bytes, sender: bytes = FORGER) -> None:
    """The relay hands ``to`` a frame nobody published (it keeps no log entry for it)."""
    seq = len(room.log) + 1
    room.log.append(Deliver(seq, room.room, sender, None, b""))  # a seq nobody else will see
    d = Deliver(seq, room.room, sender, None, RoomPayload(kind, body).encode())
    room.feed(to, FrameReceived(d, room.clock()))
    room.settle()


def _chat_reaches(room: MemoryRoom, sender: Member, reader: Member, text: str) -> bool:
    sender.machine.queue_text(text)
    room.tick(sender)
    return any(isinstance(n, ChatLine) and n.text == text for n in reader.notices())


def test_one_forged_later_epoch_frame_changes_nothing(room: MemoryRoom, pair: tuple[Member, Member]) -> None:
    alice, bob = pair
    epoch = bob.machine.epoch
    assert epoch is not None
    sent = len(bob.sent())
    for _ in range(3):  # a burst at one moment: still one run of hints
        _deliver(room, bob, PayloadKind.CORE, _forged_application(bob.machine._group_id, epoch + 1))
    assert bob.machine.phase is Phase.MEMBER and bob.machine.epoch == epoch
    shown = [n for n in bob.notices() if isinstance(n, Placeholder)]
    assert len(shown) == 1  # the first hint is shown, the rest only counted
    room.clock.advance(120)
    room.tick()
    # No re-add request: the hints did not keep coming.
    assert not any(_is_join_request(f.frame) for f in bob.sent()[sent:])
    assert _chat_reaches(room, alice, bob, "still one group")


def test_forged_frames_to_everyone_leave_every_member_in_the_group(
    room: MemoryRoom, pair: tuple[Member, Member]
) -> None:
    alice, bob = pair
    carol = room.add("carol")
    room.connect(carol)
    room.tick()
    members = (alice, bob, carol)
    epochs = {m.name: m.machine.epoch for m in members}
    for m in members:
        e = m.machine.epoch
        assert e is not None
        _deliver(room, m, PayloadKind.CORE, _forged_application(m.machine._group_id, e + 5))
        _deliver(room, m, PayloadKind.GROUP_CREATED, b"\x07" * 16)
    room.clock.advance(10)
    room.tick()
    for m in members:
        assert m.machine.phase is Phase.MEMBER, m.name
        assert m.machine.epoch is not None and m.machine.epoch >= (epochs[m.name] or 0), m.name
    assert _chat_reaches(room, carol, alice, "we all still talk")


def test_hints_that_keep_coming_make_a_member_ask_for_signs_of_life_and_an_answer_ends_them(
    room: MemoryRoom, pair: tuple[Member, Member]
) -> None:
    # Forged later-epoch frames in an idle room: after behind_after, bob first asks everyone for
    # signs of life (a beacon with ask); alice's signed answer is readable, so bob is not behind
    # and asks nobody to re-add him. (When nothing readable answers, he does:
    # tests/adversarial/test_adv_resets.py::
    # test_concurrent_commits_in_per_member_orders_end_in_one_group_once_members_talk.)
    alice, bob = pair
    m = bob.machine
    epoch = m.epoch
    assert epoch is not None
    sent = len(bob.sent())
    _deliver(room, bob, PayloadKind.CORE, _forged_application(m._group_id, epoch + 1))
    room.clock.advance(m.settings.behind_after + 1)
    _deliver(room, bob, PayloadKind.CORE, _forged_application(m._group_id, epoch + 1))
    assert m._hold is not None and m._hold.behind is not None and m._hold.behind.probed_at is not None
    for _ in range(10):
        room.clock.advance(1)
        room.tick()
    assert m._hold.behind is None  # alice's answer was readable
    assert not any(_is_join_request(f.frame) for f in bob.sent()[sent:])
    assert m.phase is Phase.MEMBER and m.epoch == alice.machine.epoch
    assert _chat_reaches(room, alice, bob, "still here")


def test_readable_traffic_ends_a_run_of_hints(room: MemoryRoom, pair: tuple[Member, Member]) -> None:
    alice, bob = pair
    m = bob.machine
    epoch = m.epoch
    assert epoch is not None
    _deliver(room, bob, PayloadKind.CORE, _forged_application(m._group_id, epoch + 1))
    assert m._hold is not None and m._hold.behind is not None
    assert _chat_reaches(room, alice, bob, "hello")
    assert m._hold.behind is None
    room.clock.advance(m.settings.behind_after + 1)
    _deliver(room, bob, PayloadKind.CORE, _forged_application(m._group_id, epoch + 1))
    assert m._hold.reentry is None  # a new run started: one hint, no re-add


def test_a_forged_creation_marker_cannot_strand_the_creator(room: MemoryRoom) -> None:
    alice = room.add("alice")
    alice.connected = True
    room.feed(alice, Connected(HELLO, room.clock()))
    # The relay shows alice an empty room; she creates. Before her own marker comes back, the
    # relay slips in a marker "from" a member that does not exist.
    while alice.machine.phase is not Phase.CREATING:
        member, frame = room.inbox.pop(0)
        room.feed(member, FrameReceived(frame, room.clock()))
    fake = RoomPayload(PayloadKind.GROUP_CREATED, b"\x01" * 16).encode()
    room.log.append(Deliver(len(room.log) + 1, room.room, FORGER, None, b""))
    room.inbox.insert(0, (alice, Deliver(len(room.log), room.room, FORGER, None, fake)))
    room.settle()
    assert alice.machine.phase is Phase.JOINING  # the relay's order says another was first...
    room.clock.advance(alice.machine.settings.creation_fallback + 1)
    room.tick(alice)
    # ... but no welcome came: the group alice made stands, and others can join it.
    assert alice.machine.phase is Phase.MEMBER and alice.machine.epoch == 0
    assert any("keeping the group we created" in t for t in alice.timeline())
    bob = room.add("bob")
    room.connect(bob)
    room.tick()
    assert bob.machine.epoch is not None and bob.machine.epoch == alice.machine.epoch


def test_a_forged_join_request_removes_nobody(room: MemoryRoom, pair: tuple[Member, Member]) -> None:
    alice, bob = pair
    epoch = alice.machine.epoch
    # A request naming bob's public identity key, signed by someone else.
    impostor = Identity.generate()
    real = JoinRequest.create(alice.machine._suite, impostor, alice.machine._group_id, "bob").request
    forged = JoinRequest.decode(real.encoded)
    body = bytearray(forged.encoded)
    at = bytes(body).index(impostor.public_key)
    body[at : at + 32] = bob.machine.identity.public_key
    _deliver(room, alice, PayloadKind.JOIN_REQUEST, JoinAsk(bytes(body)).encode())
    for _ in range(4):
        room.clock.advance(2)
        room.tick()
    assert alice.machine.epoch == epoch
    assert bob.machine.phase is Phase.MEMBER
    assert not any("rejoining" in t for t in alice.timeline())


def _is_join_request(frame: object) -> bool:
    payload = getattr(frame, "payload", None)
    if payload is None:
        return False
    return bool(RoomPayload.decode(payload).kind is PayloadKind.JOIN_REQUEST)
