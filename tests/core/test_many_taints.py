"""A member who added more members than one commit used to carry (64 operations), before any of
them sent its first Update, must still be able to update: the taint rule makes that Update re-key
every leaf it chose, and every receiver must read it (a commit nobody can decode would leave the
committer stuck with a commit in flight forever)."""

from __future__ import annotations

import pytest
from group_harness import welcome_for

from groupchat.core.commit import MAX_COMMIT_BODY, Commit, Operation, OpType
from groupchat.core.errors import UsageError
from groupchat.core.events import EpochChanged
from groupchat.core.group import Group
from groupchat.core.identity import Identity, JoinRequest

GROUP_ID = b"groupchat room:many"


def test_an_update_that_rekeys_seventy_tainted_leaves_is_read_by_everyone() -> None:
    creator = Group.create(Identity.generate(), GROUP_ID, "m0")
    members = [creator]
    for start in (1, 36):
        names = [f"m{i}" for i in range(start, start + 35)]
        pendings = [JoinRequest.create(creator.suite, Identity.generate(), GROUP_ID, n) for n in names]
        data = creator.commit(add=[p.request for p in pendings])
        for g in members:
            ev = g.receive(data)
            assert isinstance(ev, EpochChanged)
        welcome = welcome_for(creator, *pendings)
        members += [Group.join(p, welcome) for p in pendings]
    assert len(creator.taint_record()) == 70  # every joiner's leaf still chosen by the creator

    update = creator.commit(update=True)  # 70 re-keys and the update: 71 operations
    for g in members:
        ev = g.receive(update)
        assert isinstance(ev, EpochChanged) and ev.epoch == 3
    assert len({g.epoch_authenticator for g in members}) == 1


def test_a_commit_no_receiver_could_read_is_never_built() -> None:
    op = Operation(OpType.UPDATE, 1, (bytes(32),) * 17)
    too_big = Commit((op,) * (MAX_COMMIT_BODY // (6 + 17 * 32) + 1))
    with pytest.raises(UsageError, match="more than a receiver reads"):
        too_big.encode()
