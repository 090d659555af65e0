"""Exhaustive single-bit tampering of every byte of a commit, a welcome and an application message.

For each message, every byte is flipped in turn with XOR 0x01 (low bit) and XOR 0x80 (high bit),
and each flipped version is fed to a real receiver:

* (a) a commit carrying an add, a remove and the committer's update, received by another member
  and by the committer itself (a tampered "echo" must not be mistaken for its pending commit);
* (b) the welcome that commit produced, given to ``Group.join`` with the joiner's PendingJoin;
* (c) an application message, received by another member.

Every flipped version must be rejected with a ``GroupChatError`` subclass (never another exception
and never accepted), and the receiver's state must be untouched: its fingerprint (epoch, secrets,
tree, transcript, pending commit, ...) is unchanged after every attempt, and the original message
still processes correctly after all of them (for welcomes: ``Group.join`` with the original works,
the PendingJoin is reusable because join does not consume it).
"""

from __future__ import annotations

from collections import Counter

import pytest
from group_harness import Harness, fingerprint, snapshot, welcome_for

from groupchat.core.errors import GroupChatError
from groupchat.core.events import EpochChanged, MessageEchoed, MessageReceived, RemovedFromGroup
from groupchat.core.group import Group
from groupchat.core.identity import PendingJoin

MASKS = (0x01, 0x80)


def flips(data: bytes):
    for i in range(len(data)):
        for mask in MASKS:
            yield i, mask, data[:i] + bytes([data[i] ^ mask]) + data[i + 1 :]


def reject_all_flips(receive, data: bytes, state=None) -> Counter[str]:
    """Feed every flipped version of ``data``; each must raise a GroupChatError, state unchanged."""
    before = state() if state else None
    seen: Counter[str] = Counter()
    for i, mask, bad in flips(data):
        try:
            result = receive(bad)
        except GroupChatError as exc:
            seen[type(exc).__name__] += 1
        else:
            pytest.fail(f"byte {i} ^ {mask:#04x} was accepted: {result!r}")
        if state:
            assert state() == before, f"byte {i} ^ {mask:#04x} changed the receiver's state"
    return seen


def unused_copy(pj: PendingJoin) -> PendingJoin:
    """The harness already joined with ``pj`` (which consumed it): a new handle on the same request
    stands for the joiner before its join, so that every flipped welcome gets a fresh attempt."""
    return PendingJoin(pj.identity, pj.request, pj.init_private)


@pytest.fixture
def group() -> Harness:
    h = Harness()
    h.add("m0", 3)  # m0..m3, capacity 4
    return h


def test_every_flipped_commit_byte_is_rejected(group: Harness) -> None:
    h = group
    pj = h.join_request("newcomer")
    committer, receiver = h.members["m1"], h.members["m2"]
    commit = committer.commit(add=[pj.request], remove=[h.leaf("m3")], update=True)

    seen = reject_all_flips(receiver.receive, commit, lambda: fingerprint(receiver))
    assert sum(seen.values()) == 2 * len(commit)
    # Sanity on coverage: decoding, signature and the confirmation tag all did some rejecting.
    assert {"SignatureError", "ConfirmationError"} <= set(seen), seen

    events = h.deliver(commit)
    own = events["m1"]
    assert isinstance(own, EpochChanged) and own.own
    assert isinstance(events["m3"], RemovedFromGroup)
    for name in ("m0", "m2"):
        ev = events[name]
        assert isinstance(ev, EpochChanged) and ev.epoch_authenticator == own.epoch_authenticator
    del h.members["m3"]
    h.members["newcomer"] = Group.join(pj, welcome_for(h.members["m1"], pj), h.config)
    h.assert_consistent(["m1", "m2", "newcomer"])


def test_every_flipped_byte_of_our_own_echo_is_rejected(group: Harness) -> None:
    """A tampered echo of our own commit must neither apply nor drop the pending commit.

    Regression: flips in the confirmation tag used to reach lowest_common_ancestor(2*me, 2*me) and
    raise ValueError; now a commit signed by our leaf that is not our pending one is refused."""
    h = group
    committer = h.members["m1"]
    commit = committer.commit(add=[h.join_request().request], remove=[h.leaf("m3")], update=True)
    seen = reject_all_flips(committer.receive, commit, lambda: fingerprint(committer))
    assert committer.has_pending_commit
    assert sum(seen.values()) == 2 * len(commit)
    assert seen["InvalidCommitError"] == 2 * 32, seen  # the 32 tag bytes: validly signed by us
    ev = committer.receive(commit)
    assert isinstance(ev, EpochChanged) and ev.own


def test_every_flipped_welcome_byte_is_rejected(group: Harness) -> None:
    h = group
    pj = h.join_request("newcomer")
    res = h.commit("m2", add=[pj], remove=["m1"], update=True)
    own = res.events["m2"]
    assert isinstance(own, EpochChanged)
    welcome = res.welcomes["newcomer"]
    pj = unused_copy(pj)

    def join(data: bytes) -> Group:
        return Group.join(pj, data, h.config)

    seen = reject_all_flips(join, welcome)
    assert sum(seen.values()) == 2 * len(welcome)
    assert "DecryptionError" in seen, seen

    # The PendingJoin was not consumed: the original welcome still works and matches the group.
    again = join(welcome)
    assert again.epoch_authenticator == h.members["newcomer"].epoch_authenticator
    h.members["newcomer"] = again
    h.assert_consistent(["newcomer", "m2", "m0"])


def test_flips_in_a_shared_welcome_never_lead_into_another_state(group: Harness) -> None:
    """A welcome for two joiners: bytes of the *other* joiner's sealed secrets are not authenticated
    to us (as in MLS, the relay could split the welcome), so flipping them may be accepted; any
    flip that is accepted must give exactly the real group state, and all others are rejected."""
    h = group
    pj = h.join_request("newcomer")
    res = h.commit("m2", add=[h.join_request("other"), pj], update=True)
    own = res.events["m2"]
    assert isinstance(own, EpochChanged)
    assert res.welcomes["other"] == res.welcomes["newcomer"]  # one Welcome, sealed to both
    real = h.members["newcomer"].epoch_authenticator
    accepted = []
    for i, _mask, bad in flips(res.welcomes["newcomer"]):
        try:
            g = Group.join(unused_copy(pj), bad, h.config)
        except GroupChatError:
            continue
        assert g.epoch_authenticator == real and g.tree_hash == h.members["m0"].tree_hash
        accepted.append(i)
    # Only the other joiner's entry (its 32-byte ref and HPKE ciphertext) may be flipped harmlessly.
    assert accepted and max(accepted) - min(accepted) < 300, accepted


def test_every_flipped_application_message_byte_is_rejected(group: Harness) -> None:
    h = group
    sender, receiver = h.members["m3"], h.members["m0"]
    message = sender.encrypt(b"the quick brown fox", authenticated_data=b"ad")
    generation_probe = sender.encrypt(b"second")

    seen = reject_all_flips(receiver.receive, message, lambda: fingerprint(receiver))
    assert sum(seen.values()) == 2 * len(message)
    assert "DecryptionError" in seen, seen

    ev = receiver.receive(message)
    assert isinstance(ev, MessageReceived)
    assert (ev.plaintext, ev.authenticated_data, ev.sender.display_name, ev.generation) == (
        b"the quick brown fox",
        b"ad",
        "m3",
        0,
    )
    ev2 = receiver.receive(generation_probe)
    assert isinstance(ev2, MessageReceived) and ev2.generation == 1 and ev2.plaintext == b"second"
    # Everyone else (and the sender's echo) still processes the original.
    for name in ("m1", "m2", "m3"):
        ev = h.members[name].receive(message)
        assert isinstance(ev, MessageEchoed if name == "m3" else MessageReceived)
    h.assert_consistent(["m0", "m3"])


def test_removed_member_accepts_its_removal_only_on_a_valid_signature(group: Harness) -> None:
    """The member a commit removes cannot derive the new epoch, so (as in MLS) it cannot check the
    confirmation tag: flips in the 32 tag bytes still remove it. Every other flip, including in
    the signature and in the tag's length, must be rejected without touching its state."""
    h = group
    victim = h.members["m3"]
    commit = h.members["m1"].commit(remove=[h.leaf("m3")], update=True)
    before = fingerprint(victim)
    tag_start = len(commit) - 32
    for i, mask, bad in flips(commit):
        if i >= tag_start:
            ev = snapshot(victim).receive(bad)
            assert isinstance(ev, RemovedFromGroup), (i, mask, ev)
            continue
        with pytest.raises(GroupChatError):
            victim.receive(bad)
        assert fingerprint(victim) == before, (i, mask)
    events = h.deliver(commit)
    assert isinstance(events["m3"], RemovedFromGroup)
    del h.members["m3"]
    h.assert_consistent(["m0", "m1"])
