"""A removed member's Group refuses every operation with ``UsageError`` and changes nothing.

After ``RemovedFromGroup`` the state holds no epoch secret (see test_group_rejections), so the
API must say so plainly instead of encrypting under an erased key, building a commit on a tree
it no longer belongs to, or exporting a secret of an epoch it left.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from group_harness import Harness, fingerprint

from groupchat.core.errors import GroupChatError, UsageError
from groupchat.core.events import RemovedFromGroup
from groupchat.core.group import Group, GroupState

NOT_A_MEMBER = "no longer a member"


@pytest.fixture
def removed() -> tuple[Harness, Group]:
    h = Harness()
    h.add("m0", 3)
    gone = h.members["m3"]
    res = h.remove("m1", "m3")
    assert isinstance(res.events["m3"], RemovedFromGroup) and gone.state is GroupState.REMOVED
    return h, gone


CALLS: dict[str, Callable[[Group, Harness], object]] = {
    "encrypt": lambda g, h: g.encrypt(b"am I still here?"),
    "encrypt-empty": lambda g, h: g.encrypt(b""),
    "commit-update": lambda g, h: g.commit(update=True),
    "commit-add": lambda g, h: g.commit(add=[h.join_request("friend").request]),
    "commit-remove": lambda g, h: g.commit(remove=[h.leaf("m0")]),
    "export_secret": lambda g, h: g.export_secret(b"label", b"context", 32),
    "epoch_authenticator": lambda g, h: g.epoch_authenticator,
    "receive-message": lambda g, h: g.receive(h.members["m0"].encrypt(b"after you left")),
    "receive-commit": lambda g, h: g.receive(h.members["m0"].commit(update=True)),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_removed_member_gets_a_usage_error(
    removed: tuple[Harness, Group], call: Callable[[Group, Harness], object]
) -> None:
    h, gone = removed
    before = fingerprint(gone)
    with pytest.raises(GroupChatError) as info:
        call(gone, h)
    assert type(info.value) is UsageError and NOT_A_MEMBER in str(info.value), repr(info.value)
    assert fingerprint(gone) == before and gone.state is GroupState.REMOVED
    assert not gone.has_pending_commit


def test_control_the_same_calls_work_for_a_member(removed: tuple[Harness, Group]) -> None:
    h, _ = removed
    member = h.members["m2"]
    assert member.encrypt(b"hi") and member.export_secret(b"label", b"context", 32)
    h.update("m2")
    h.assert_consistent(["m0", "m2"])
