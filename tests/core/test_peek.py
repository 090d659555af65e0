"""The core reads a message's public header once (``peek``) and hands the claim to its caller:
the kind routes the message, and a refusal carries the epoch the message claimed."""

from __future__ import annotations

import pytest
from group_harness import Harness, fingerprint
from rejections import rebuild

from groupchat.core.commit import CommitMessage, Operation
from groupchat.core.errors import (
    ConfirmationError,
    DecryptionError,
    EpochError,
    InvalidValueError,
    RemoteError,
)
from groupchat.core.peek import MessageKind, peek


def test_peek_reads_kind_and_epoch_of_each_kind_the_core_sends(h: Harness) -> None:
    chat = h.members["m0"].encrypt(b"hi")
    assert peek(chat).kind is MessageKind.APPLICATION
    assert peek(chat).epoch == h.epoch
    commit = h.members["m1"].commit(update=True)
    assert (peek(commit).kind, peek(commit).epoch) == (MessageKind.COMMIT, h.epoch)


@pytest.mark.parametrize("data", [b"", b"\x00\x01\x00", b"\x00\x01\xbe\xef" + bytes(40)])
def test_peek_refuses_what_names_no_kind(data: bytes) -> None:
    with pytest.raises(InvalidValueError, match=r"too short|unknown wire format"):
        peek(data)


def test_a_cut_header_has_a_kind_but_no_epoch(h: Harness) -> None:
    chat = h.members["m0"].encrypt(b"hi")
    claim = peek(chat[:6])
    assert claim.kind is MessageKind.APPLICATION and claim.epoch is None


def test_a_refused_message_carries_the_epoch_it_claimed(h: Harness) -> None:
    """A tampered ciphertext at our epoch: DecryptionError, with that epoch on it (no header parsing
    by the caller), and nothing changed."""
    bob = h.members["m1"]
    chat = bytearray(h.members["m0"].encrypt(b"hi"))
    chat[-1] ^= 1
    before = fingerprint(bob)
    with pytest.raises(DecryptionError) as info:
        bob.receive(bytes(chat))
    assert info.value.epoch == bob.epoch
    assert fingerprint(bob) == before


def test_an_epoch_error_keeps_the_epoch_the_core_judged(h: Harness) -> None:
    old = h.members["m0"].encrypt(b"old")
    h.update("m1")
    h.update("m2")  # two epochs on: the old keys are gone
    with pytest.raises(EpochError) as info:
        h.members["m3"].receive(old)
    assert info.value.epoch == h.epoch - 2 and info.value.current == h.epoch


def test_a_refusal_of_what_the_committer_signed_names_the_committer(h: Harness) -> None:
    """The path keys are inside the signature: a commit whose signed path is wrong is m1's own doing,
    so the refusal names m1; a flipped confirmation tag (outside it) names no one."""
    commit = h.members["m1"].commit(update=True)
    ops = list(CommitMessage.decode(commit).commit.operations)
    op = ops[-1]
    ops[-1] = Operation(op.type, op.leaf, (op.path[0], *reversed(op.path[1:])), op.request)
    crafted = rebuild(h, "m1", commit, ops=ops)
    with pytest.raises(RemoteError) as info:
        h.members["m2"].receive(crafted)
    assert (info.value.signer, info.value.signer_name) == (h.leaf("m1"), "m1")
    msg = CommitMessage.decode(commit)
    tag = bytearray(msg.confirmation_tag)
    tag[0] ^= 1
    flipped = CommitMessage(msg.content, msg.commit, msg.signature, bytes(tag)).encode()
    with pytest.raises(ConfirmationError) as unsigned:
        h.members["m2"].receive(flipped)
    assert unsigned.value.signer is None
