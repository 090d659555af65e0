"""A join that defers its roster check (``Group.join(..., verify_roster=False)``, core/epoch/roster.py).

The joiner reads at once and sends only once every member's join request is verified. Each
attack is mounted for real: a welcome whose adder lists a ghost (a real person's identity key
under a request they never signed) is read from, the ghost tries to speak with that very
identity key, and the check is run; every refusal names the welcome's signer.
"""

from __future__ import annotations

import dataclasses
import os

import pytest
from group_harness import Harness, fingerprint, snapshot, welcome_for
from test_holes import NOW, harness, request, signed_request

from groupchat.core.codec import opaque
from groupchat.core.epoch.machine import Phase
from groupchat.core.epoch.roster import RosterVerified
from groupchat.core.errors import ForgedMemberError, GroupChatError, UsageError
from groupchat.core.events import EpochChanged, MessageReceived, RemovedFromGroup
from groupchat.core.group import Group
from groupchat.core.identity import Identity, JoinRequest, PendingJoin
from groupchat.core.message_protection import (
    ContentType,
    FramedContent,
    WireFormat,
    protect_application,
    sign_framed_content,
)


def deferred_join(h: Harness, adder: str = "m0", name: str = "joiner") -> tuple[Group, PendingJoin]:
    """Add ``name`` at ``adder``, deliver the commit to the room, and join without the roster check."""
    pj = h.join_request(name)
    h.deliver(h.members[adder].commit(add=[pj.request]))
    joined = Group.join(pj, welcome_for(h.members[adder], pj), h.config, verify_roster=False)
    return joined, pj


def read(joiner: Group, h: Harness, sender: str, text: bytes) -> MessageReceived:
    data, _ = h.send(sender, text)
    event = joiner.receive(data)
    assert isinstance(event, MessageReceived) and event.plaintext == text
    return event


def test_a_deferred_joiner_reads_at_once_and_sends_only_after_the_check() -> None:
    h = harness(5)
    joiner, pj = deferred_join(h)
    assert joiner.phase is Phase.CHECKING and joiner.checking_roster and pj.used
    # The welcome's signer (m0) and our own leaf are verified; the other three are the signer's claim.
    assert joiner.unchecked_leaves == {h.leaf(n) for n in ("m1", "m2", "m3", "m4")} - {h.leaf("m0")}
    assert joiner.epoch_authenticator == h.members["m0"].epoch_authenticator
    for name in ("m1", "m3"):
        assert read(joiner, h, name, f"hello from {name}".encode()).sender.display_name == name
    # A sender is verified before its message is used, and the check then skips it.
    check = joiner.roster_check()
    assert check is not None
    assert {leaf for leaf, _ in check.leaves} == {h.leaf("m2"), h.leaf("m4")}
    with pytest.raises(UsageError, match="still verifying the join requests"):
        joiner.encrypt(b"too early")
    with pytest.raises(UsageError, match="still verifying the join requests"):
        joiner.commit(update=True)
    assert joiner.data_to_send() == []  # not even the first update (our leaf is tainted by m0)
    joiner.roster_verified(check.run())
    assert joiner.phase is Phase.MEMBER and not joiner.checking_roster and joiner.roster_check() is None
    # Now the first update the taint rule asks for comes out, and our messages are read.
    (first,) = joiner.data_to_send()
    h.members["joiner"] = joiner
    h.deliver(first.data)
    h.check_send("joiner", b"now I can talk")


def test_a_commit_read_while_checking_moves_the_joiner_along_with_the_group() -> None:
    h = harness(4)
    joiner, _ = deferred_join(h)
    commit = h.members["m2"].commit(update=True)
    h.deliver(commit)
    event = joiner.receive(commit)
    assert isinstance(event, EpochChanged) and joiner.phase is Phase.CHECKING
    assert event.epoch_authenticator == h.members["m2"].epoch_authenticator
    read(joiner, h, "m1", b"after the update")
    joiner.verify_roster()
    assert joiner.phase is Phase.MEMBER


def test_a_stale_check_skips_a_leaf_removed_meanwhile() -> None:
    h = harness(4)
    joiner, _ = deferred_join(h)
    check = joiner.roster_check()
    assert check is not None
    gone = h.leaf("m3")
    commit = h.members["m1"].commit(remove=[gone])
    h.deliver(commit)
    del h.members["m3"]
    assert isinstance(joiner.receive(commit), EpochChanged)
    joiner.roster_verified(check.run())
    assert joiner.phase is Phase.MEMBER
    assert joiner.roster_check() is None
    assert not joiner._tree.is_verified(gone)  # an empty leaf is not marked


def test_a_result_cannot_be_made_without_running_the_check() -> None:
    h = harness(3)
    joiner, _ = deferred_join(h)
    check = joiner.roster_check()
    assert check is not None
    with pytest.raises(UsageError, match=r"only from RosterCheck\.run"):
        RosterVerified(check, object())
    assert joiner.phase is Phase.CHECKING


def test_a_member_with_nothing_to_check_takes_a_stale_result_and_a_removed_one_refuses() -> None:
    h = harness(3)
    joiner, _ = deferred_join(h)
    check = joiner.roster_check()
    assert check is not None
    result = check.run()
    joiner.roster_verified(result)
    joiner.roster_verified(result)  # stale: nothing left, nothing changes
    assert joiner.phase is Phase.MEMBER
    # A second joiner removed while its check runs: the result is refused, not applied.
    late, _ = deferred_join(h, name="late")
    pending = late.roster_check()
    assert pending is not None
    commit = h.members["m1"].commit(remove=[late.my_leaf])
    h.deliver(commit)
    assert isinstance(late.receive(commit), RemovedFromGroup) and late.phase is Phase.REMOVED
    with pytest.raises(UsageError, match="no longer a member"):
        late.roster_verified(pending.run())


def test_a_checking_joiner_is_not_stored_until_its_roster_is_verified() -> None:
    """Stored mid-check, a restart would resume a group whose roster nobody checked (and lose who
    signed the welcome, whom a failure must name): the state is refused until the check is done."""
    h = harness(4)
    joiner, pj = deferred_join(h)
    read(joiner, h, "m1", b"before the check")
    with pytest.raises(UsageError, match="still verifying the join requests"):
        joiner.export_state()
    joiner.verify_roster()
    restored = Group.restore(joiner.export_state(), pj.identity, h.config)
    assert restored.phase is Phase.MEMBER
    read(restored, h, "m2", b"after the restart")


def test_a_partial_result_leaves_the_joiner_checking_and_a_foreign_one_is_refused() -> None:
    h = harness(5)
    joiner, _ = deferred_join(h)
    check = joiner.roster_check()
    assert check is not None and len(check.leaves) == 4  # m1..m4: m0 signed the welcome
    first = dataclasses.replace(check, leaves=check.leaves[:1])
    joiner.roster_verified(first.run())
    assert joiner.phase is Phase.CHECKING
    assert joiner.unchecked_leaves == {leaf for leaf, _ in check.leaves[1:]}
    elsewhere = Harness(h.config, group_id=b"another-room")
    elsewhere.add("m0", 2)
    other, _ = deferred_join(elsewhere)
    foreign = other.roster_check()
    assert foreign is not None
    with pytest.raises(UsageError, match="made for another group"):
        joiner.roster_verified(foreign.run())
    assert joiner.unchecked_leaves == {leaf for leaf, _ in check.leaves[1:]}
    joiner.roster_verified(check.run())
    assert joiner.phase is Phase.MEMBER


def test_the_default_join_still_verifies_everything_at_once() -> None:
    h = harness(4)
    pj = h.join_request("joiner")
    h.deliver(h.members["m0"].commit(add=[pj.request]))
    joiner = Group.join(pj, welcome_for(h.members["m0"], pj), h.config)
    assert joiner.phase is Phase.MEMBER and joiner.roster_check() is None


# --- a ghost in the welcome ----------------------------------------------------------------------


def ghost_welcome(h: Harness, joiner: PendingJoin, ghost: JoinRequest) -> tuple[bytes, Group, int]:
    """m0's welcome whose tree also lists ``ghost`` (see test_holes.malicious_welcome); returns it
    with the adder's own copy of the group it describes and the ghost's leaf."""
    mal = snapshot(h.members["m0"])
    free = mal._tree.leftmost_free_leaf()
    mal._tree.build_path(free, os.urandom(32), ghost, None)
    commit = mal.commit(add=[joiner.request], update=True)
    assert isinstance(mal.receive(commit), EpochChanged)
    return welcome_for(mal, joiner), mal, free


def forged_message(mal: Group, leaf: int, signer: Identity, text: bytes) -> bytes:
    """A message from ``leaf`` of the adder's group, signed by ``signer``: what the ghost's own
    identity could send if it spoke there (its keys come from the adder's secret tree)."""
    content = FramedContent(mal.group_id, mal.epoch, leaf, b"", ContentType.APPLICATION, opaque(text))
    signature = sign_framed_content(
        mal.suite, signer.signing_key, WireFormat.PRIVATE_MESSAGE, content, mal._ctx_bytes
    )
    return protect_application(
        mal.suite,
        content=content,
        signature=signature,
        secret_tree=mal._keys.secret_tree,
        sender_data_secret=mal._keys.sender_data_secret,
        padding_block=mal.config.padding_block,
        rand=mal.config.rand,
    )


def test_a_ghost_is_found_by_the_check_which_names_the_adder_and_the_joiner_never_sends() -> None:
    h = harness(3)
    victim = Identity.generate()  # someone who never asked to join this group
    ghost = signed_request(h, victim, "victim", int(NOW) + 3600, signature=os.urandom(64))
    joiner = request(h, "joiner")
    welcome, mal, ghost_leaf = ghost_welcome(h, joiner, ghost)
    group = Group.join(joiner, welcome, h.config, verify_roster=False)
    assert group.phase is Phase.CHECKING and ghost_leaf in group.unchecked_leaves
    # Real members, in the adder's copy of the group, are read.
    event = group.receive(mal.encrypt(b"from the adder"))
    assert isinstance(event, MessageReceived) and event.sender.display_name == "m0"
    check = group.roster_check()
    assert check is not None
    with pytest.raises(GroupChatError) as info:
        check.run()
    err = info.value
    assert type(err) is ForgedMemberError and err.leaf == ghost_leaf
    assert err.signer == h.leaf("m0") and err.signer_name == "m0"
    text = str(err)
    assert "'victim'" in text and victim.fingerprint in text and "never asked to join" in text
    # Nothing changed: the joiner stays checking for good and can never send into this group.
    assert group.phase is Phase.CHECKING
    with pytest.raises(UsageError, match="still verifying"):
        group.encrypt(b"into a group with a ghost")


def test_a_ghost_cannot_speak_even_with_its_real_identity_key() -> None:
    """The victim's real identity signs a message from the ghost's leaf: the joiner verifies the
    sender's join request first, refuses the message as the adder's forgery, and changes nothing."""
    h = harness(3)
    victim = Identity.generate()
    ghost = signed_request(h, victim, "victim", int(NOW) + 3600, signature=os.urandom(64))
    joiner = request(h, "joiner")
    welcome, mal, ghost_leaf = ghost_welcome(h, joiner, ghost)
    group = Group.join(joiner, welcome, h.config, verify_roster=False)
    data = forged_message(mal, ghost_leaf, victim, b"I am here, trust me")
    before = fingerprint(group)
    with pytest.raises(GroupChatError) as info:
        group.receive(data)
    assert type(info.value) is ForgedMemberError and info.value.leaf == ghost_leaf
    assert info.value.signer_name == "m0"
    assert fingerprint(group) == before and group.phase is Phase.CHECKING


def test_control_a_validly_signed_extra_member_speaks_and_passes_the_check() -> None:
    """Same construction with a request its identity really signed: read, then verified."""
    h = harness(3)
    real = Identity.generate()
    extra = signed_request(h, real, "real", int(NOW) + 3600)
    joiner = request(h, "joiner")
    welcome, mal, leaf = ghost_welcome(h, joiner, extra)
    group = Group.join(joiner, welcome, h.config, verify_roster=False)
    event = group.receive(forged_message(mal, leaf, real, b"I did ask to join"))
    assert isinstance(event, MessageReceived) and event.sender.display_name == "real"
    group.verify_roster()
    assert group.phase is Phase.MEMBER


def test_a_stored_removal_in_flight_restores_a_member_with_every_leaf_verified() -> None:
    """Building a commit drafts the tree and rolls it back: the removed leaf's verified mark
    comes back with its member (no leaf is left for a lazy check to find)."""
    h = harness(4)
    committer = h.members["m1"]
    committer.commit(remove=[h.leaf("m2")])
    assert all(committer._tree.is_verified(leaf) for leaf, _ in committer._tree.members())
    restored = Group.restore(committer.export_state(), committer._identity, h.config)
    assert restored.phase is Phase.COMMITTING
    assert all(restored._tree.is_verified(leaf) for leaf, _ in restored._tree.members())
