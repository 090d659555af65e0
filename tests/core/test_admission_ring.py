"""Admission changes in the ring scheme: the new epoch's GroupContext (built after the ring ends)
carries them, a ring joiner derives the same state from the commit in its Welcome, and a restart
gives its removals their reasons."""

from __future__ import annotations

import pytest
from ring_room import GROUP_ID, Room, grown

from groupchat.core.admission import (
    ADMISSION_EXTENSION,
    AdmissionChange,
    AdmissionOutcome,
    Admit,
    ChangeType,
    NewInvite,
    RemovalCode,
    RemovalReason,
    Returning,
)
from groupchat.core.commit import Commit, CommitMessage
from groupchat.core.errors import AdmissionChangeError, GroupChatError, InvalidInviteError, UsageError
from groupchat.core.events import EpochChanged, RekeyTimedOut, RemovedFromGroup
from groupchat.core.group import Group
from groupchat.core.invite import InviteSecret, prove
from groupchat.core.message_protection import ContentType, FramedContent, WireFormat, sign_framed_content
from groupchat.core.welcome import decode_extensions


def last_epoch(room: Room, name: str) -> EpochChanged:
    return [e for e in room.events[name] if isinstance(e, EpochChanged)][-1]


def agreed(room: Room) -> None:
    room.assert_agreement()
    assert len({g.admission for g in room.live().values()}) == 1
    assert len({g._ctx_bytes for g in room.live().values()}) == 1


def add_with_invite(room: Room, by: str, name: str, secret: InviteSecret) -> None:
    pj = room.request(name)
    admit = Admit(pj.request, secret.public_key, prove(secret, GROUP_ID, pj.request))
    data = room.members[by].commit(add=[admit])
    since = len(room.log) + 1
    room.relay.expect(name, pj.request.identity_key, room._joiner(pj, since))
    room.send(by, data)
    room.pump()


def test_invites_and_admits_reach_the_ring_epoch_and_its_joiner() -> None:
    room = grown(3)
    secret = InviteSecret(bytes([3]) * 16)
    room.send("m1", room.members["m1"].commit(invite=[NewInvite(secret.public_key, uses=2, label="ring")]))
    room.pump()
    agreed(room)
    g = room.members["m0"]
    assert [t for t, _ in decode_extensions(g._ctx.extensions)][-1] == ADMISSION_EXTENSION
    assert g.admission.invites[0].uses_left == 2
    assert last_epoch(room, "m2").invites_created == g.admission.invites
    add_with_invite(room, "m2", "ann", secret)
    agreed(room)
    assert room.members["ann"].admission.invites[0].uses_left == 1
    ev = last_epoch(room, "m0")
    assert ev.admitted_by_invite == {room.members["ann"]._identity.public_key: secret.public_key}
    add_with_invite(room, "ann", "bob", secret)
    agreed(room)
    assert room.members["bob"].admission.invites == ()
    assert [
        t for t, _ in decode_extensions(room.members["bob"]._ctx.extensions)
    ] != [] and ADMISSION_EXTENSION not in dict(decode_extensions(room.members["bob"]._ctx.extensions))


def cheat(group: Group) -> None:
    """Switch off a committer's own admission checks: it signs whatever it is asked to."""
    object.__setattr__(group, "_check_own_admission", lambda *a: None)
    real = group._admission_after

    def lenient(ops: object, changes: object, committer: bytes) -> AdmissionOutcome:
        try:
            return real(ops, changes, committer)  # type: ignore[arg-type]
        except GroupChatError:
            return AdmissionOutcome(group.admission)

    object.__setattr__(group, "_admission_after", lenient)


def test_a_ring_commit_with_a_used_up_invite_is_refused_by_the_members() -> None:
    room = grown(3)
    secret = InviteSecret(bytes([4]) * 16)
    room.send("m0", room.members["m0"].commit(invite=[NewInvite(secret.public_key)]))
    room.pump()
    add_with_invite(room, "m0", "ann", secret)
    honest = room.members["m2"]
    pj = room.request("bob")
    with pytest.raises(UsageError, match="not live"):
        honest.commit(add=[Admit(pj.request, secret.public_key, prove(secret, GROUP_ID, pj.request))])
    cheater = room.members["m1"]
    cheat(cheater)
    data = cheater.commit(add=[Admit(pj.request, secret.public_key, prove(secret, GROUP_ID, pj.request))])
    for name in ("m0", "m2", "ann"):
        g = room.members[name]
        before = (g._ctx_bytes, g.admission, g._ring, g.members())
        with pytest.raises(InvalidInviteError):
            g.receive(data)
        assert (g._ctx_bytes, g.admission, g._ring, g.members()) == before
    cheater.discard_pending_commit()
    room.send("m2", room.members["m2"].commit(update=True))  # the next valid commit applies
    room.pump()
    agreed(room)


def test_reasons_and_the_returning_list_in_the_ring() -> None:
    room = grown(4)
    gone = room.members["m3"]
    old = gone._scheme.member(gone.my_leaf)
    assert old is not None
    data = room.members["m0"].commit(
        remove=[gone.my_leaf], reasons={gone.my_leaf: RemovalReason(RemovalCode.OFFLINE, 75)}
    )
    room.send("m0", data)
    room.pump()
    room.members.pop("m3")
    agreed(room)
    assert room.members["m1"].admission.returning == (Returning(gone._identity.public_key, old.not_after),)
    assert last_epoch(room, "m2").removal_reasons == {
        gone._identity.public_key: RemovalReason(RemovalCode.OFFLINE, 75)
    }
    removed = [e for e in room.events["m3"] if isinstance(e, RemovedFromGroup)]
    assert removed and removed[-1].reason == RemovalReason(RemovalCode.OFFLINE, 75)


def test_a_restart_gives_its_removal_a_reason() -> None:
    room = grown(4)
    room.offline.add("m3")
    room.commit("m0", update=True)
    room.pump()
    room.clock.now += 31
    for name, group in room.live().items():
        if name != "m3":
            assert isinstance(group.tick(), RekeyTimedOut)
            room.drain(name)
    room.pump()
    m1 = room.members["m1"]
    silent = room.members["m3"]
    with pytest.raises(UsageError):  # a restart removes and gives reasons, nothing else
        m1.commit(remove=[silent.my_leaf], invite=[NewInvite(bytes(32))])
    reason = RemovalReason(RemovalCode.UNRESPONSIVE, 31)
    room.send("m1", m1.commit(remove=[silent.my_leaf], reasons={silent.my_leaf: reason}))
    room.members.pop("m3")
    room.pump()
    agreed(room)
    for name in ("m0", "m1", "m2"):
        assert last_epoch(room, name).removal_reasons == {silent._identity.public_key: reason}
    assert room.members["m0"].admission.returning == ()  # unresponsive is not offline


def test_a_restart_with_another_change_is_refused() -> None:
    room = grown(3)
    room.offline.add("m2")
    room.commit("m0", update=True)
    room.pump()
    m1, silent = room.members["m1"], room.members["m2"]
    ring = m1._ring
    assert ring is not None
    honest = m1.commit(remove=[silent.my_leaf])
    msg = CommitMessage.decode(honest)
    body = Commit(msg.commit.operations, (AdmissionChange(ChangeType.INVITE, invite_key=bytes(32), uses=1),))
    c = msg.content
    content = FramedContent(
        c.group_id, c.epoch, c.sender, c.authenticated_data, ContentType.COMMIT, body.encode()
    )
    signature = sign_framed_content(
        m1.suite, m1._identity.signing_key, WireFormat.PUBLIC_MESSAGE, content, m1._restart_context(ring)
    )
    forged = CommitMessage(content, body, signature, msg.confirmation_tag).encode()
    m0 = room.members["m0"]
    before = (m0._ctx_bytes, m0.admission, m0.members(), m0._ring)
    with pytest.raises(AdmissionChangeError, match="restarts"):
        m0.receive(forged)
    assert (m0._ctx_bytes, m0.admission, m0.members(), m0._ring) == before
