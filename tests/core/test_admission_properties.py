"""Hypothesis: random sequences of invites, revokes, admits, approvals and removals with reasons
keep every member's ``admission`` equal (joiners included, from their Welcome) and equal to a
plain model of the rules (uses, FIFO returning list)."""

from __future__ import annotations

import os

from group_harness import Harness
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ring_room import GROUP_ID, grown

from groupchat.core.admission import Admit, NewInvite, RemovalCode, RemovalReason
from groupchat.core.epoch.wire import admission_of
from groupchat.core.events import EpochChanged, RemovedFromGroup
from groupchat.core.group import GroupConfig
from groupchat.core.identity import JoinRequest, PendingJoin
from groupchat.core.invite import InviteSecret, prove

EXAMPLES = int(os.environ.get("GROUPCHAT_PROPERTY_EXAMPLES", "12"))
ACTIONS = ("invite", "revoke", "admit", "approve", "remove", "return")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), steps=st.integers(3, 12))
def test_members_agree_on_admission(data: st.DataObject, steps: int) -> None:
    clock = [1_800_000_000.0]
    h = Harness(GroupConfig(wall_clock=lambda: clock[0]))
    h.add("m0", 2)
    invites: dict[bytes, int] = {}  # the model: invite key -> uses left, in commit order
    returning: dict[bytes, int] = {}  # identity -> not_after, oldest first
    identities = {n: g._identity for n, g in h.members.items()}
    counter = [0]

    def fresh_secret() -> InviteSecret:
        counter[0] += 1
        return InviteSecret(counter[0].to_bytes(16, "big"))

    secrets: dict[bytes, InviteSecret] = {}
    for _ in range(steps):
        clock[0] += 1  # every request is newer than the last
        action = data.draw(st.sampled_from(ACTIONS))
        committer = data.draw(st.sampled_from(sorted(h.members)))
        group = h.members[committer]
        joins: list[PendingJoin] = []
        victims: list[str] = []
        kw: dict[str, object] = {}
        if action == "invite":
            secret = fresh_secret()
            secrets[secret.public_key] = secret
            uses = data.draw(st.integers(1, 3))
            kw["invite"] = [NewInvite(secret.public_key, uses=uses)]
            invites[secret.public_key] = uses
        elif action == "revoke" and invites:
            key = data.draw(st.sampled_from(sorted(invites)))
            kw["revoke"] = [key]
            del invites[key]
        elif action in ("admit", "approve") and len(h.members) < 8:
            name = h.fresh_name()
            pj = h.join_request(name)
            identities[name] = pj.identity
            joins.append(pj)
            if action == "admit" and invites:
                key = data.draw(st.sampled_from(sorted(invites)))
                kw["add"] = [Admit(pj.request, key, prove(secrets[key], h.group_id, pj.request, h.suite))]
                invites[key] -= 1
                if invites[key] == 0:
                    del invites[key]
            else:
                kw["add"] = [pj.request]
        elif action == "remove" and len(h.members) > 1:
            victim = data.draw(st.sampled_from(sorted(set(h.members) - {committer})))
            victims.append(victim)
            code = data.draw(st.sampled_from([*RemovalCode, None]))
            leaf = h.leaf(victim)
            kw["remove"] = [leaf]
            if code is not None:
                seconds = 60 if code in (RemovalCode.OFFLINE, RemovalCode.UNRESPONSIVE) else 0
                kw["reasons"] = {leaf: RemovalReason(code, seconds)}
                if code in (RemovalCode.OFFLINE, RemovalCode.REJOINING):  # both may come back
                    request = h.members[victim]._scheme.member(leaf)
                    assert request is not None
                    returning.pop(request.identity_key, None)
                    returning[request.identity_key] = request.not_after
        elif action == "return" and returning and len(h.members) < 8:
            identity_key = data.draw(st.sampled_from(sorted(returning)))
            name = next(n for n, i in identities.items() if i.public_key == identity_key)
            pj = JoinRequest.create(h.suite, identities[name], h.group_id, name, wall_clock=lambda: clock[0])
            assert (
                group.classify_request(pj.request, None, None, int(clock[0])).admissibility.value
                == "returning"
            )
            joins.append(pj)
            kw["add"] = [pj.request]
            del returning[identity_key]
        else:
            kw["update"] = True
        data_bytes = group.commit(**kw)  # type: ignore[arg-type]
        h.expect(joins)
        events = h.deliver(data_bytes)
        for v in victims:
            assert isinstance(events[v], RemovedFromGroup)
            del h.members[v]
        h.admit(committer, joins)
        assert all(isinstance(e, EpochChanged) for n, e in events.items() if n not in victims)
        h.assert_consistent()
        states = {g.admission for g in h.members.values()}
        assert len(states) == 1, states
        # Each member keeps the state its commit processing computed (not decoded back from the
        # GroupContext it encoded it into): it must equal the decoded one.
        assert all(g._admission == admission_of(g._ctx) for g in h.members.values())
        state = states.pop()
        assert {i.invite_key: i.uses_left for i in state.invites} == invites
        assert [i.invite_key for i in state.invites] == list(invites)
        assert [(e.identity_key, e.not_after) for e in state.returning] == list(returning.items())


RING_ACTIONS = ("invite", "revoke", "admit", "approve", "remove")


@settings(max_examples=max(1, EXAMPLES // 3), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), steps=st.integers(2, 6))
def test_ring_members_agree_on_admission(data: st.DataObject, steps: int) -> None:
    """The same in the ring, where the new epoch's GroupContext is built when the ring ends."""
    room = grown(3)
    counter = [0]
    secrets: dict[bytes, InviteSecret] = {}
    for _ in range(steps):
        action = data.draw(st.sampled_from(RING_ACTIONS))
        live = room.live()
        committer = data.draw(st.sampled_from(sorted(live)))
        group = live[committer]
        state = group.admission
        kw: dict[str, object] = {}
        joiner: PendingJoin | None = None
        if action == "invite":
            counter[0] += 1
            secret = InviteSecret(counter[0].to_bytes(16, "big"))
            secrets[secret.public_key] = secret
            kw["invite"] = [NewInvite(secret.public_key, uses=data.draw(st.integers(1, 2)))]
        elif action == "revoke" and state.invites:
            kw["revoke"] = [data.draw(st.sampled_from([i.invite_key for i in state.invites]))]
        elif action in ("admit", "approve") and len(live) < 6:
            counter[0] += 1
            joiner = room.request(f"j{counter[0]}")
            if action == "admit" and state.invites:
                key = data.draw(st.sampled_from([i.invite_key for i in state.invites]))
                kw["add"] = [Admit(joiner.request, key, prove(secrets[key], GROUP_ID, joiner.request))]
            else:
                kw["add"] = [joiner.request]
        elif action == "remove" and len(live) > 2:
            victim = data.draw(st.sampled_from(sorted(set(live) - {committer})))
            leaf = live[victim].my_leaf
            code = data.draw(st.sampled_from([RemovalCode.OFFLINE, RemovalCode.KICKED, RemovalCode.LEFT]))
            kw["remove"] = [leaf]
            kw["reasons"] = {leaf: RemovalReason(code, 60 if code is RemovalCode.OFFLINE else 0)}
        else:
            kw["update"] = True
        message = group.commit(**kw)  # type: ignore[arg-type]
        if joiner is not None:
            name = joiner.request.display_name
            room.relay.expect(name, joiner.request.identity_key, room._joiner(joiner, len(room.log) + 1))
        room.send(committer, message)
        room.pump()
        for name in [n for n, g in room.members.items() if g.state.value != "member"]:
            room.members.pop(name)
        room.assert_agreement()
        assert len({g.admission for g in room.live().values()}) == 1
        assert len({g._ctx_bytes for g in room.live().values()}) == 1
