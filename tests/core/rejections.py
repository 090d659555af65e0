"""Helpers for the tests that feed a live Group bad input (shared by several test modules).

* :func:`rebuild` re-encodes and re-signs a commit with changes (a crafted, validly signed commit);
* :func:`assert_rejected` checks that receivers reject bytes with exactly one error class and that
  the rejection changed nothing (the state fingerprint);
* :func:`finish` delivers the legitimate commit afterwards (joining its joiners from the Welcome in
  the committer's outbox) and checks that everyone still decrypts everyone.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from group_harness import Harness, fingerprint

from groupchat.core.commit import Commit, CommitMessage, Operation
from groupchat.core.errors import GroupChatError
from groupchat.core.events import EpochChanged, RemovedFromGroup
from groupchat.core.identity import PendingJoin
from groupchat.core.message_protection import ContentType, FramedContent, WireFormat, sign_framed_content

__all__ = ["assert_rejected", "finish", "rebuild"]


def rebuild(
    h: Harness,
    committer: str,
    commit: bytes,
    *,
    ops: list[Operation] | None = None,
    sender: int | None = None,
    epoch: int | None = None,
    group_id: bytes | None = None,
    signer: Ed25519PrivateKey | None = None,
    context: bytes | None = None,
) -> bytes:
    """Re-encode ``commit`` with changes and re-sign it (by default with the committer's identity
    over the committer's current GroupContext). The confirmation tag is copied unchanged."""
    msg = CommitMessage.decode(commit)
    c = msg.content
    body = Commit(tuple(ops)) if ops is not None else msg.commit
    content = FramedContent(
        c.group_id if group_id is None else group_id,
        c.epoch if epoch is None else epoch,
        c.sender if sender is None else sender,
        c.authenticated_data,
        ContentType.COMMIT,
        body.encode(),
    )
    group = h.members[committer]
    key = signer or group._identity.signing_key
    ctx = context if context is not None else group._ctx_bytes
    signature = sign_framed_content(h.suite, key, WireFormat.PUBLIC_MESSAGE, content, ctx)
    return CommitMessage(content, body, signature, msg.confirmation_tag).encode()


def assert_rejected(
    h: Harness, names: list[str], data: bytes, error: type[GroupChatError], receive: Callable | None = None
) -> None:
    """Every receiver in ``names`` rejects ``data`` with exactly ``error`` and changes nothing."""
    for name in names:
        group = h.members[name]
        before = fingerprint(group)
        with pytest.raises(GroupChatError) as info:
            (receive or group.receive)(data)
        assert type(info.value) is error, (name, repr(info.value))
        assert fingerprint(group) == before, name


def finish(
    h: Harness, committer: str, commit: bytes, senders: list[str], joiners: tuple[PendingJoin, ...] = ()
) -> None:
    """Deliver the legitimate pending commit everywhere (joining ``joiners`` from its welcome and
    dropping whoever it removed), then check that everyone decrypts everyone."""
    if joiners:
        h.expect(joiners)
    events = h.deliver(commit)
    own = events[committer]
    assert isinstance(own, EpochChanged) and own.own
    for name, ev in events.items():
        if isinstance(ev, RemovedFromGroup):
            del h.members[name]
            continue
        assert isinstance(ev, EpochChanged) and ev.epoch_authenticator == own.epoch_authenticator
    if joiners:
        h.admit(committer, joiners)
    h.assert_consistent([*senders, *(pj.request.display_name for pj in joiners)])
