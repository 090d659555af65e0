"""``Group.classify_request``: the request is verified first, then judged from the agreed state only."""

from __future__ import annotations

import dataclasses

import pytest
from group_harness import Harness

from groupchat.core.admission import Admissibility, Admit, NewInvite, RemovalCode, RemovalReason
from groupchat.core.codec import Writer
from groupchat.core.errors import (
    ExpiredJoinRequestError,
    InvalidInviteError,
    InvalidValueError,
    SignatureError,
    WrongGroupError,
)
from groupchat.core.group import Group, GroupConfig
from groupchat.core.identity import Identity, JoinRequest
from groupchat.core.invite import InviteSecret, prove

NOW = 1_800_000_000


def at(seconds: int) -> GroupConfig:
    return GroupConfig(wall_clock=lambda: float(seconds))


def request(
    h: Harness, name: str, *, identity: Identity | None = None, when: int = NOW, group_id: bytes | None = None
) -> JoinRequest:
    return JoinRequest.create(
        h.suite, identity or Identity.generate(), group_id or h.group_id, name, wall_clock=lambda: when
    ).request


def forged(req: JoinRequest) -> JoinRequest:
    """``req`` re-encoded with a later expiry and its old signature: anyone can make this."""
    tbs = JoinRequest.tbs(
        req.cipher_suite,
        req.group_id,
        req.identity_key,
        req.display_name.encode(),
        req.init_key,
        req.not_after + 60,
    )
    return JoinRequest.decode(Writer().raw(tbs).opaque(req.signature).bytes())


@pytest.fixture
def h3() -> Harness:
    h = Harness(at(NOW))
    h.add("m0", 2)
    return h


def kind(
    g: Group, req: JoinRequest, proof: bytes | None = None, key: bytes | None = None, now: int = NOW
) -> Admissibility:
    return g.classify_request(req, proof, key, now).admissibility


def test_a_forged_or_expired_request_raises_before_any_classification(h3: Harness) -> None:
    g = h3.members["m1"]
    member = g._scheme.member(h3.leaf("m2"))
    assert member is not None
    with pytest.raises(SignatureError):  # a relay's forged "rejoin" of a current member
        g.classify_request(forged(member), None, None, NOW)
    with pytest.raises(SignatureError):
        g.classify_request(forged(request(h3, "x")), None, None, NOW)
    with pytest.raises(WrongGroupError):
        g.classify_request(request(h3, "x", group_id=b"elsewhere"), None, None, NOW)
    old = request(h3, "x", when=NOW - 30 * 86400)
    with pytest.raises(ExpiredJoinRequestError):
        g.classify_request(old, None, None, NOW)
    with pytest.raises(ExpiredJoinRequestError):  # valid for far too long from now
        g.classify_request(request(h3, "x", when=NOW + 365 * 86400), None, None, NOW)
    other_suite = dataclasses.replace(request(h3, "x"), cipher_suite=3)
    with pytest.raises(InvalidValueError):
        g.classify_request(other_suite, None, None, NOW)


def test_members_rejoining_replays_and_requests_already_in(h3: Harness) -> None:
    g, m2 = h3.members["m1"], h3.members["m2"]
    current = g._scheme.member(m2.my_leaf)
    assert current is not None
    assert g.classify_request(current, None, None, NOW).admissibility is Admissibility.ALREADY_IN
    newer = request(h3, "m2", identity=m2._identity, when=NOW + 10)
    result = g.classify_request(newer, None, None, NOW)
    assert result.admissibility is Admissibility.REJOINING and result.leaf == m2.my_leaf
    older = request(h3, "m2", identity=m2._identity, when=NOW - 10)  # a replayed older request
    assert kind(g, older) is Admissibility.STALE
    equal = request(h3, "m2", identity=m2._identity, when=NOW)  # same lifetime from the same second
    assert equal.not_after == current.not_after and equal.init_key != current.init_key
    assert kind(g, equal) is Admissibility.STALE


def test_invited_open_and_needs_approval(h3: Harness) -> None:
    secret, spent = InviteSecret(bytes([1]) * 16), InviteSecret(bytes([2]) * 16)
    m0 = h3.members["m0"]
    data = m0.commit(invite=[NewInvite(secret.public_key, not_after=NOW + 100), NewInvite(spent.public_key)])
    h3.deliver(data)
    g = h3.members["m2"]
    ann = request(h3, "ann")
    proof = prove(secret, h3.group_id, ann, h3.suite)
    result = g.classify_request(ann, proof, secret.public_key, NOW)
    assert result.admissibility is Admissibility.INVITED and result.invite == g.admission.invite(
        secret.public_key
    )
    late = g.classify_request(ann, proof, secret.public_key, NOW + 101)  # expired by the caller's clock
    assert late.admissibility is Admissibility.NEEDS_APPROVAL and "expired" in late.invite_problem
    with pytest.raises(InvalidInviteError):  # a proof for another request
        g.classify_request(request(h3, "bob"), proof, secret.public_key, NOW)
    with pytest.raises(InvalidInviteError):  # no proof at all
        g.classify_request(ann, None, secret.public_key, NOW)
    unknown = g.classify_request(ann, proof, bytes(32), NOW)
    assert unknown.admissibility is Admissibility.NEEDS_APPROVAL and "not live" in unknown.invite_problem
    assert kind(g, ann) is Admissibility.NEEDS_APPROVAL
    # Use the other invite up: a request offering it now needs approval.
    bob = request(h3, "bob")
    pj_data = m0.commit(add=[Admit(bob, spent.public_key, prove(spent, h3.group_id, bob, h3.suite))])
    h3.deliver(pj_data)
    m0.data_to_send()
    carl = request(h3, "carl")
    used = g.classify_request(carl, prove(spent, h3.group_id, carl, h3.suite), spent.public_key, NOW)
    assert used.admissibility is Admissibility.NEEDS_APPROVAL
    # An open room admits anyone with a valid request.
    room = Group.create(Identity.generate(), h3.group_id, "host", at(NOW), open_room=True)
    assert kind(room, ann) is Admissibility.OPEN
    with pytest.raises(SignatureError):
        room.classify_request(forged(ann), None, None, NOW)


def test_a_returning_member_and_a_replay_of_its_old_request() -> None:
    clock = [NOW]
    h = Harness(GroupConfig(wall_clock=lambda: float(clock[0])))
    h.add("m0", 2)
    gone = h.members["m2"]
    old = gone._scheme.member(gone.my_leaf)
    assert old is not None
    h.deliver(
        h.members["m0"].commit(
            remove=[gone.my_leaf], reasons={gone.my_leaf: RemovalReason(RemovalCode.OFFLINE, 120)}
        )
    )
    del h.members["m2"]
    g = h.members["m1"]
    assert kind(g, old) is Admissibility.STALE  # its old request replayed (its init key was used)
    clock[0] = NOW + 60
    back = request(h, "m2", identity=gone._identity, when=NOW + 60)
    assert kind(g, back, now=NOW + 60) is Admissibility.RETURNING
    # A kicked member is not returning: it needs a new invite or an approval.
    kicked = h.members["m1"]
    h.deliver(
        h.members["m0"].commit(
            remove=[kicked.my_leaf], reasons={kicked.my_leaf: RemovalReason(RemovalCode.KICKED)}
        )
    )
    del h.members["m1"]
    again = request(h, "m1", identity=kicked._identity, when=NOW + 60)
    assert kind(h.members["m0"], again, now=NOW + 60) is Admissibility.NEEDS_APPROVAL
