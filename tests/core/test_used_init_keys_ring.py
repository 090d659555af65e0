"""The init keys of departed members in the ring scheme (docs/protocol.md §4.5, issue 14).

A ring commit's removals (and a restart's) enter the agreed state that the GroupContext built
when the ring ends carries; a ring joiner derives the same state from its Welcome; a member who
joined after Bob left refuses Bob's old request like everyone else, naming the committer.
"""

from __future__ import annotations

import dataclasses

import pytest
from ring_room import Room, grown

from groupchat.core.admission import AdmissionChange, ChangeType, init_key_ref
from groupchat.core.commit import Commit, CommitMessage
from groupchat.core.errors import AdmissionChangeError, DuplicateKeyError, GroupChatError
from groupchat.core.events import RekeyTimedOut
from groupchat.core.group import Group
from groupchat.core.identity import JoinRequest
from groupchat.core.message_protection import ContentType, FramedContent, WireFormat, sign_framed_content
from groupchat.core.outbox import OutboundKind


def agreed(room: Room) -> None:
    room.assert_agreement()
    assert len({g.admission for g in room.live().values()}) == 1
    assert len({g._ctx_bytes for g in room.live().values()}) == 1


def request_of(group: Group) -> JoinRequest:
    req = group._scheme.member(group.my_leaf)
    assert req is not None
    return req


def forget(group: Group) -> None:
    """A malicious member: it builds commits as if no departed member's init key were known."""
    group._admission = dataclasses.replace(group._admission, used_init_keys=())


def refuses_naming(group: Group, data: bytes, signer: str) -> None:
    before = (group._ctx_bytes, group.admission, group._ring, group.members())
    with pytest.raises(GroupChatError) as info:
        group.receive(data)
    assert type(info.value) is DuplicateKeyError, repr(info.value)
    assert info.value.signer_name == signer
    assert (group._ctx_bytes, group.admission, group._ring, group.members()) == before


def bob_left_and_carol_joined() -> tuple[Room, JoinRequest]:
    room = grown(3)
    room.commit("m0", add=["bob"])
    room.pump()
    bob = room.members["bob"]
    old = request_of(bob)
    room.commit("m1", remove=["bob"])
    room.pump()
    room.members.pop("bob")
    room.commit("m2", add=["carol"])
    room.pump()
    agreed(room)
    return room, old


def test_carol_who_joined_a_ring_after_bob_left_refuses_his_old_request_like_everyone() -> None:
    room, old = bob_left_and_carol_joined()
    carol = room.members["carol"]
    assert carol.admission.init_key_used(carol.suite, old.init_key)  # from the commit in her Welcome
    with pytest.raises(DuplicateKeyError, match="joined and left"):
        carol.commit(add=[old])
    forget(carol)
    data = carol.commit(add=[old])
    for name in ("m0", "m1", "m2"):
        refuses_naming(room.members[name], data, "carol")
    carol.discard_pending_commit()
    carol._admission = room.members["m0"].admission  # back to honest
    room.send("m0", room.members["m0"].commit(update=True))  # no split: the next commit applies
    room.pump()
    agreed(room)


def test_carol_refuses_an_old_ring_members_commit_of_bobs_request() -> None:
    room, old = bob_left_and_carol_joined()
    mal = room.members["m1"]
    honest = mal.admission
    forget(mal)
    data = mal.commit(add=[old])
    for name in ("m0", "m2", "carol"):
        refuses_naming(room.members[name], data, "m1")
    mal.discard_pending_commit()
    mal._admission = honest
    room.send("carol", room.members["carol"].commit(update=True))
    room.pump()
    agreed(room)


def test_a_restart_records_the_removed_members_init_key_for_everyone() -> None:
    room = grown(4)
    silent = room.members["m3"]
    old = request_of(silent)
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
    assert m1._ring is not None  # the ring waits for m3: this commit is a restart (§8.3)
    room.send("m1", m1.commit(remove=[silent.my_leaf]))
    room.members.pop("m3")
    room.pump()
    agreed(room)
    ref = init_key_ref(m1.suite, old.init_key)
    for g in room.live().values():
        assert [e.ref for e in g.admission.used_init_keys] == [ref]
    with pytest.raises(DuplicateKeyError):
        room.members["m2"].commit(add=[old])


def test_a_ring_joiner_refuses_a_welcome_whose_commit_re_adds_a_departed_request() -> None:
    """A malicious committer adds Bob's old request and a genuine joiner in one ring commit: the
    members refuse it, and so does the joiner, from its Welcome's state, naming the committer."""
    room, old = bob_left_and_carol_joined()
    mal = room.members["m2"]
    forget(mal)
    dan = room.request("dan")
    data = mal.commit(add=[old, dan.request])
    for name in ("m0", "m1", "carol"):
        refuses_naming(room.members[name], data, "m2")
    mal.receive(data)  # the malicious committer takes its own echo: the Welcome goes out
    welcomes = [o for o in mal.data_to_send() if o.kind is OutboundKind.WELCOME]
    assert welcomes
    with pytest.raises(DuplicateKeyError) as info:
        Group.join(dan, welcomes[0].data, room.config)
    assert info.value.signer_name == "m2"
    assert not dan.used  # a refused Welcome does not use the request up


def test_a_restart_carrying_a_prune_is_refused_naming_its_signer() -> None:
    """A restart may only give reasons: a prune in one (re-signed by a malicious restarter) is
    refused by every member, naming it, and changes nothing."""
    room, _ = bob_left_and_carol_joined()
    room.offline.add("m2")
    room.commit("m0", update=True)
    room.pump()
    m1, silent = room.members["m1"], room.members["m2"]
    ring = m1._ring
    assert ring is not None
    msg = CommitMessage.decode(m1.commit(remove=[silent.my_leaf]))
    body = Commit(msg.commit.operations, (AdmissionChange(ChangeType.PRUNE, not_after=1 << 40),))
    c = msg.content
    content = FramedContent(
        c.group_id, c.epoch, c.sender, c.authenticated_data, ContentType.COMMIT, body.encode()
    )
    signature = sign_framed_content(
        m1.suite, m1._identity.signing_key, WireFormat.PUBLIC_MESSAGE, content, m1._restart_context(ring)
    )
    forged = CommitMessage(content, body, signature, msg.confirmation_tag).encode()
    for name in ("m0", "carol"):
        g = room.members[name]
        before = (g._ctx_bytes, g.admission, g.members(), g._ring)
        with pytest.raises(AdmissionChangeError, match="restarts") as info:
            g.receive(forged)
        assert info.value.signer_name == "m1"
        assert (g._ctx_bytes, g.admission, g.members(), g._ring) == before
