"""Why a leaf's init key is signed with its membership and kept in the tree (docs/protocol.md §4.3).

Issue 16 asked whether the init key could leave the tree (signed apart, checked only by the adder,
as RFC 9420's KeyPackage init_key is). In this protocol the init key has a second use: while a
member's leaf is tainted (it has not updated since its adder chose its leaf secret, §5.4), every
re-key of that leaf seals the new leaf secret to it (§4.2), and the re-keying committer may be a
member that learnt the tree only from its own Welcome. These tests pin the three facts that rule the
split out:

* a relay that swaps the init key of a request gets nothing sealed to it (the adder refuses);
* a malicious adder that swaps it in its own Add is refused by every receiver, naming the adder
  (otherwise, once the adder is removed, the re-key that must cut it off is sealed to its own key);
* a member that joined after J, and so knows J's init key only from its Welcome's tree, seals J's
  re-key to it, and J opens it.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from group_harness import fingerprint, untainted
from rejections import assert_rejected, rebuild

from groupchat.core.codec import Writer
from groupchat.core.commit import CommitMessage, Operation, OpType
from groupchat.core.errors import GroupChatError, SignatureError
from groupchat.core.identity import JoinRequest


def with_init_key(request: JoinRequest, init_key: bytes) -> JoinRequest:
    """``request`` as a relay or adder would rewrite it: another init key, the joiner's signature kept."""
    tbs = JoinRequest.tbs(
        request.cipher_suite,
        request.group_id,
        request.identity_key,
        request.display_name.encode(),
        init_key,
        request.not_after,
    )
    return JoinRequest.decode(Writer().raw(tbs).opaque(request.signature).bytes())


def attacker_init_key() -> bytes:
    return X25519PrivateKey.generate().public_key().public_bytes_raw()


def test_a_relay_that_swaps_the_init_key_gets_nothing_sealed_to_it() -> None:
    h = untainted(2)
    joiner = h.join_request("j")
    swapped = with_init_key(joiner.request, attacker_init_key())
    adder = h.members["m1"]
    before = fingerprint(adder)
    for given in (swapped, swapped.encoded):  # as a decoded request and as the relayed bytes
        with pytest.raises(SignatureError, match="join request"):
            adder.commit(add=[given])
        assert not adder.has_pending_commit
        assert adder.data_to_send() == []  # no Welcome, no commit: nothing sealed to the swapped key
        assert fingerprint(adder) == before
    h.commit("m1", add=[joiner])  # the genuine request still joins
    h.assert_consistent(["j", "m1"])


def test_an_adder_that_swaps_the_init_key_is_refused_by_every_receiver_naming_it() -> None:
    h = untainted(3)
    joiner = h.join_request("j")
    commit = h.members["m1"].commit(add=[joiner.request])
    ops = list(CommitMessage.decode(commit).commit.operations)
    i = next(i for i, op in enumerate(ops) if op.type == OpType.ADD)
    swapped = with_init_key(joiner.request, attacker_init_key())
    ops[i] = Operation(OpType.ADD, ops[i].leaf, ops[i].path, swapped)
    crafted = rebuild(h, "m1", commit, ops=ops)  # validly signed by the adder
    receivers = ["m0", "m2", "m3"]
    assert_rejected(h, receivers, crafted, SignatureError)
    for name in receivers:
        with pytest.raises(GroupChatError) as info:
            h.members[name].receive(crafted)
        assert info.value.signer == h.leaf("m1")  # type: ignore[attr-defined]
    h.members["m1"].discard_pending_commit()
    h.update("m2")  # nothing split: the next commit applies everywhere
    h.assert_consistent(["m0", "m1"])


def test_a_member_that_joined_later_seals_a_tainted_leafs_rekey_to_the_init_key_in_its_welcome() -> None:
    h = untainted(2)
    j = h.join_request("J")
    h.commit("m1", add=[j])  # J's leaf is tainted by m1 until J updates
    h.commit("m0", add=["K"])  # K never saw J's Add: J's init key reaches K only in its Welcome
    k, j_leaf = h.members["K"], h.leaf("J")
    assert k.tainted_by(j_leaf) == h.leaf("m1")
    assert k._tree.member(j_leaf) == j.request  # init key included, as J signed it
    result = h.remove("K", "m1")  # must re-key J (its chooser leaves), sealed to J's init key
    ops = CommitMessage.decode(result.message).commit.operations
    rekey = next(op for op in ops if op.type == OpType.REKEY)
    assert rekey.leaf == j_leaf and rekey.sealed is not None
    member_j = h.members["J"]
    assert member_j.tainted_by(j_leaf) == h.leaf("K") and member_j.holds_init_key
    h.assert_consistent(["J", "K"])
