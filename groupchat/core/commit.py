"""Commit wire format: tree operations inside a signed, confirmed public handshake message.

A commit travels as an MLS-style PublicMessage without the membership tag (the sender is
authenticated by its identity signature, which every member checks against the tree)::

    uint16 version || uint16 wire_format(1) || FramedContent(content_type = commit, body = Commit)
      || V(signature) || V(confirmation_tag)

    enum { update(1), add(2), remove(3), rekey(4) } OpType;
    struct { opaque kem_output<V>; opaque ciphertext<V>; } HPKECiphertext;   /* 32 and 48 bytes */
    struct {
        OpType type; uint32 leaf;
        select (type) {
            case add:   opaque join_request<V>;
            case rekey: optional<HPKECiphertext> sealed;  /* present iff the leaf holds a member */
            default: ;
        };
        opaque path<V>;     /* the 32-byte public keys of the keyed nodes on leaf's path, leaf first */
    } Operation;
    struct {
        Operation operations<V>;                     /* order: removes, rekeys, adds, update */
        AdmissionChange changes<V>;                  /* only when non-empty (core/admission.py) */
    } Commit;

The trailing ``changes`` vector is absent when the commit changes nothing about admission, so a
commit without changes is byte-identical to one before admission existed. A receiver tells the
two apart by length: what follows the body (``V(signature) || V(confirmation_tag)``) has a fixed
size (:data:`_TRAILER`), so any bytes before it are the changes.

A *rekey* gives a fresh secret, chosen by the committer, to a leaf that is not the committer's
and that the taint rules (:mod:`groupchat.core.schemes.tree.taint`) require to be refreshed. When the leaf
holds a member (a joiner that has not updated yet), the new leaf secret is sealed to that
member's init key with ``EncryptWithLabel(init_key, "Rekey", V(group_id) || uint64 epoch ||
uint32 leaf, leaf_secret)``, ``epoch`` being the epoch the commit is built on.

Commits are not encrypted: the relay learns who joins and leaves (it sees that anyway from
room membership), but never any secret. The signature covers the GroupContext of the epoch the
commit was built on, and the confirmation tag covers the transcript of the new epoch.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from .admission import AdmissionChange, encode_changes, read_changes
from .codec import Reader, Writer
from .errors import InvalidCommitError, InvalidValueError, UsageError
from .identity import JoinRequest
from .message_protection import (
    MAX_AUTHENTICATED_DATA,
    MAX_GROUP_ID,
    ContentType,
    FramedContent,
    WireFormat,
    read_message_header,
)
from .version import PROTOCOL_VERSION

__all__ = [
    "MAX_COMMIT_BODY",
    "MAX_OPERATIONS",
    "OPERATION_ORDER",
    "REKEY_LABEL",
    "Commit",
    "CommitMessage",
    "OpType",
    "Operation",
    "SealedSecret",
    "check_operation_order",
    "rekey_context",
]

# Every leaf appears at most once in a commit, so no commit has more operations than a tree has
# leaves (2^16): a member who added many others (their first updates not yet in) must be able to
# re-key every leaf it tainted in one Update or Remove. The work is bounded by the body's bytes.
MAX_OPERATIONS: Final = 1 << 16
MAX_COMMIT_BODY: Final = 1 << 20  # bytes of operations a receiver reads
_MAX_PATH_KEYS: Final = 17  # a 2^16-leaf tree has 17 keyed nodes on a path
_KEY: Final = 32
_SEALED_CT: Final = 48  # a 32-byte leaf secret plus the 16-byte AEAD tag
REKEY_LABEL: Final = b"Rekey"
_TRAILER: Final = 2 + 64 + 1 + 32  # V(signature) || V(confirmation_tag) after the commit body


class OpType(IntEnum):
    UPDATE = 1
    ADD = 2
    REMOVE = 3
    REKEY = 4


OPERATION_ORDER: Final = (OpType.REMOVE, OpType.REKEY, OpType.ADD, OpType.UPDATE)
"""The one order of a commit's operations, for builders and checkers alike.

Removes first, so that an add can reuse a slot the same commit vacates; re-keys next, so that no
kept secret survives into the paths the adds build; the committer's update last, so that its
fresh path is the last word on every node of it.
"""


def check_operation_order(ops: Sequence[Operation]) -> None:
    """Refuse a commit that changes a leaf twice or is not in :data:`OPERATION_ORDER`."""
    leaves = [op.leaf for op in ops]
    if len(set(leaves)) != len(leaves):
        raise InvalidCommitError("commit changes the same leaf twice")
    ranks = [OPERATION_ORDER.index(op.type) for op in ops]
    if ranks != sorted(ranks):
        raise InvalidCommitError("commit operations must be ordered removes, re-keys, adds, then update")


def rekey_context(group_id: bytes, epoch: int, leaf: int) -> bytes:
    """HPKE context of a sealed re-key: binds the group, the epoch it was built on and the leaf."""
    return Writer().opaque(group_id).u64(epoch).u32(leaf).bytes()


@dataclass(frozen=True, slots=True)
class SealedSecret:
    """A re-keyed leaf's new secret, HPKE-sealed to the init key of the member at that leaf."""

    kem_output: bytes
    ciphertext: bytes

    def write(self, w: Writer) -> None:
        w.opaque(self.kem_output).opaque(self.ciphertext)

    @classmethod
    def read(cls, r: Reader) -> SealedSecret:
        return cls(r.opaque_exact("sealed kem_output", _KEY), r.opaque_exact("sealed ciphertext", _SEALED_CT))


@dataclass(frozen=True, slots=True)
class Operation:
    """One path change: ``leaf`` gets a fresh secret; ``path`` holds the new public keys."""

    type: OpType
    leaf: int
    path: tuple[bytes, ...]
    request: JoinRequest | None = None
    sealed: SealedSecret | None = None  # rekey of a member's leaf only

    def write(self, w: Writer) -> None:
        w.u8(self.type).u32(self.leaf)
        if self.type == OpType.ADD:
            assert self.request is not None
            w.opaque(self.request.encoded)
        elif self.type == OpType.REKEY:
            if self.sealed is None:
                w.u8(0)
            else:
                w.u8(1)
                self.sealed.write(w)
        w.opaque(b"".join(self.path))

    @classmethod
    def read(cls, r: Reader) -> Operation:
        raw_type = r.u8("operation type")
        try:
            op_type = OpType(raw_type)
        except ValueError:
            raise InvalidValueError(f"unknown commit operation type {raw_type}") from None
        leaf = r.u32("operation leaf")
        request = None
        sealed = None
        if op_type == OpType.ADD:
            request = JoinRequest.decode(r.opaque("join request", 4096))
        elif op_type == OpType.REKEY:
            sealed = r.optional("sealed secret", SealedSecret.read)
        raw_path = r.opaque("path", _MAX_PATH_KEYS * _KEY)  # empty in a ring commit (roster only)
        if len(raw_path) % _KEY:
            raise InvalidValueError(f"path length {len(raw_path)} is not a multiple of {_KEY}")
        path = tuple(raw_path[i : i + _KEY] for i in range(0, len(raw_path), _KEY))
        return cls(op_type, leaf, path, request, sealed)


@dataclass(frozen=True, slots=True)
class Commit:
    operations: tuple[Operation, ...]
    changes: tuple[AdmissionChange, ...] = ()  # admission changes, signed with the commit

    def encode(self) -> bytes:
        body = Writer()
        for op in self.operations:
            op.write(body)
        data = body.bytes()
        if len(self.operations) > MAX_OPERATIONS or len(data) > MAX_COMMIT_BODY:
            # Never build what every receiver would refuse: the group would only see noise.
            raise UsageError(
                f"this commit would carry {len(self.operations)} operations in {len(data)} bytes, more "
                f"than a receiver reads ({MAX_OPERATIONS} operations, {MAX_COMMIT_BODY} bytes): "
                "split the change into several commits"
            )
        w = Writer().opaque(data)
        encode_changes(w, self.changes)
        return w.bytes()

    @classmethod
    def read(cls, r: Reader, trailer: int = 0) -> Commit:
        """Read a commit body; bytes beyond the ``trailer`` that follows it are its admission changes."""
        ops = r.vector("operations", MAX_COMMIT_BODY, Operation.read, MAX_OPERATIONS)
        if not ops:
            raise InvalidValueError("commit has no operations")
        changes = read_changes(r) if r.remaining > trailer else ()
        return cls(tuple(ops), changes)


@dataclass(frozen=True, slots=True)
class CommitMessage:
    """A parsed public commit message: framed content, its commit, signature and tag."""

    content: FramedContent
    commit: Commit
    signature: bytes
    confirmation_tag: bytes

    def encode(self) -> bytes:
        return (
            Writer()
            .u16(PROTOCOL_VERSION)
            .u16(WireFormat.PUBLIC_MESSAGE)
            .raw(self.content.encode())
            .opaque(self.signature)
            .opaque(self.confirmation_tag)
            .bytes()
        )

    @classmethod
    def decode(cls, data: bytes) -> CommitMessage:
        """Parse a public commit message, checking every field and limit (every error named)."""
        fast = _decode_common(data)
        return fast if fast is not None else _decode_general(data)


def _decode_general(data: bytes) -> CommitMessage:
    """The general :meth:`CommitMessage.decode`: every shape the format allows, every error named."""
    r = Reader(data, "commit")
    read_message_header(r, WireFormat.PUBLIC_MESSAGE, "a public commit")
    group_id = r.opaque("group_id", MAX_GROUP_ID, 1)
    epoch = r.u64("epoch")
    sender_type = r.u8("sender type")
    if sender_type != 1:
        raise InvalidValueError(f"commit sender type {sender_type} is not a member (1)")
    sender = r.u32("sender leaf")
    authenticated_data = r.opaque("authenticated_data", MAX_AUTHENTICATED_DATA)
    content_type = r.u8("content_type")
    if content_type != ContentType.COMMIT:
        raise InvalidValueError(f"public messages must carry commits, got content type {content_type}")
    body_start = r.position
    commit = Commit.read(r, _TRAILER)
    body = r.since(body_start)
    signature = r.opaque_exact("signature", 64)
    tag = r.opaque_exact("confirmation_tag", 32)
    r.end()
    content = FramedContent(group_id, epoch, sender, authenticated_data, ContentType.COMMIT, body)
    return CommitMessage(content, commit, signature, tag)


_PUBLIC_HEAD: Final = PROTOCOL_VERSION.to_bytes(2, "big") + WireFormat.PUBLIC_MESSAGE.to_bytes(2, "big")
_SENDER: Final = struct.Struct(">QBI")  # uint64 epoch || uint8 sender_type || uint32 leaf
_LEAF: Final = struct.Struct(">I")
_PATH_OPS: Final = {int(OpType.UPDATE): OpType.UPDATE, int(OpType.REMOVE): OpType.REMOVE}
_TRAILER_HEAD: Final = b"\x40\x40"  # V(signature): a 2-byte varint of 64


def _short_vector(data: bytes, at: int, end: int) -> tuple[int, int] | None:
    """``(start, stop)`` of the vector whose minimal 1- or 2-byte varint length is at ``at``, if it
    ends by ``end``; ``None`` for anything else (a longer length, non-minimal, or cut short)."""
    if at >= end:
        return None
    first = data[at]
    if first < 0x40:
        start, size = at + 1, first
    elif first < 0x80 and at + 1 < end:
        start, size = at + 2, ((first & 0x3F) << 8) | data[at + 1]
        if size < 0x40:
            return None
    else:
        return None
    stop = start + size
    return (start, stop) if stop <= end else None


def _decode_common(data: bytes) -> CommitMessage | None:
    """:meth:`CommitMessage.decode` of the common shape, read straight from the bytes: a group id
    and authenticated data under 64 bytes, operations that are updates and removes only (no join
    request, no sealed secret), under 16 KiB, and no admission changes. ``None`` for anything else,
    valid or not; the general decoder then reads it and names what is wrong (issue 16: a commit's
    receiver near its floor)."""
    n = len(data)
    if type(data) is not bytes or n < 5 or data[:4] != _PUBLIC_HEAD:
        return None
    gid_end = 5 + data[4]
    if not 0 < data[4] < 0x40 or n < gid_end + 15:
        return None
    epoch, sender_type, sender = _SENDER.unpack_from(data, gid_end)
    at = gid_end + 13
    ad_end = at + 1 + data[at]
    if sender_type != 1 or data[at] >= 0x40 or n < ad_end + 1 or data[ad_end] != ContentType.COMMIT:
        return None
    body_start = ad_end + 1
    body_end = n - _TRAILER
    vector = _short_vector(data, body_start, body_end)
    if vector is None or vector[1] != body_end:  # bytes after the operations are admission changes
        return None
    at, ops_end = vector
    ops: list[Operation] = []
    while at < ops_end:
        op_type = _PATH_OPS.get(data[at])
        path = _short_vector(data, at + 5, ops_end)
        if op_type is None or path is None:
            return None
        start, stop = path
        if (stop - start) % _KEY or stop - start > _MAX_PATH_KEYS * _KEY:
            return None
        leaf = _LEAF.unpack_from(data, at + 1)[0]
        ops.append(Operation(op_type, leaf, tuple(data[i : i + _KEY] for i in range(start, stop, _KEY))))
        at = stop
    if not ops or data[body_end : body_end + 2] != _TRAILER_HEAD or data[body_end + 66] != _KEY:
        return None
    ad = data[gid_end + 14 : ad_end]
    content = FramedContent(data[5:gid_end], epoch, sender, ad, ContentType.COMMIT, data[body_start:body_end])
    return CommitMessage(
        content, Commit(tuple(ops)), data[body_end + 2 : body_end + 66], data[body_end + 67 :]
    )
