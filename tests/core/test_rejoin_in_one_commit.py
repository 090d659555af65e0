"""A member who lost its state asks again (a strictly newer request): one commit removes its old
leaf and adds the new request, and every member applies it; the same Add without that Remove is
refused, by the committer and by every receiver."""

from __future__ import annotations

import pytest
from group_harness import Harness

from groupchat.core.admission import Admissibility
from groupchat.core.errors import DuplicateKeyError
from groupchat.core.events import EpochChanged
from groupchat.core.group import GroupConfig
from groupchat.core.identity import Identity
from groupchat.lab.clock import ManualClock


def test_a_member_who_lost_its_state_is_replaced_in_one_commit() -> None:
    clock = ManualClock()
    h = Harness(GroupConfig(clock=clock, wall_clock=clock.wall))
    h.add("m0", 1)
    bob = Identity.generate()
    h.commit("m0", add=[h.join_request("bob", identity=bob)])
    clock.advance(5)  # bob's machine is gone; he runs the client again, later
    again = h.join_request("bob", identity=bob)
    c = h.members["m0"].classify_request(again.request, None, None, clock.wall())
    assert c.admissibility is Admissibility.REJOINING and c.leaf == h.leaf("bob")
    with pytest.raises(DuplicateKeyError, match="already a member"):
        h.members["m0"].commit(add=[again.request])  # not without removing the old leaf
    message = h.members["m1"].commit(add=[again.request], remove=[h.leaf("bob")])
    del h.members["bob"]  # its state is gone: it reads nothing of this commit
    events = h.deliver(message)
    assert len({e.epoch_authenticator for e in events.values() if isinstance(e, EpochChanged)}) == 1
    h.expect([again])
    h.admit("m1", [again])
    assert [m.display_name for m in h.members["m0"].members()].count("bob") == 1
    h.assert_consistent(["m0", "m1", "bob"])
