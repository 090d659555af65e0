"""The one exception hierarchy of groupchat.

Every rejected input raises a subclass of :class:`GroupChatError` whose message says what was
wrong in words a user can act on. Rejections never change state: the protocol core validates
on a draft and only applies it once every check has passed.

Hierarchy::

    GroupChatError
    ├── DecodeError                    malformed bytes (remote)
    │   ├── TruncatedError             input ended inside a field
    │   ├── TrailingDataError          bytes left over after a complete structure
    │   ├── NonMinimalLengthError      a varint length not in its shortest form
    │   ├── FieldTooLargeError         a field or vector longer than its limit
    │   ├── UnknownVersionError        a protocol version we do not speak
    │   └── InvalidValueError          an enum or flag outside its allowed set
    ├── CryptoError                    cryptographic verification failed (remote)
    │   ├── InvalidPublicKeyError      low-order, non-canonical or malformed X25519/Ed25519 key
    │   ├── SignatureError             a signature did not verify
    │   ├── DecryptionError            an AEAD or HPKE open failed
    │   ├── ConfirmationError          a confirmation tag did not match: divergent group views
    │   └── InconsistentPathError      a commit's path keys do not match what we derive
    ├── ProtocolError                  well-formed input that is wrong for our state (remote)
    │   ├── WrongGroupError            another group's message
    │   ├── EpochError                 stale or future epoch
    │   ├── ReplayError                a message or commit we have already processed
    │   ├── DuplicateKeyError          a key already present in the group
    │   ├── UnknownMemberError         a sender or target leaf that holds no member
    │   ├── GenerationError            a ratchet generation too far ahead or too old
    │   └── InvalidCommitError         a commit whose operations break the rules
    │       └── TaintRuleError         a commit that re-keys more or less than the taint rules require
    ├── UsageError                     the local caller asked for something impossible
    └── RelayError                     the relay answered with an error frame (has .code)
"""

from __future__ import annotations

__all__ = [
    "ConfirmationError",
    "CryptoError",
    "DecodeError",
    "DecryptionError",
    "DuplicateKeyError",
    "EpochError",
    "FieldTooLargeError",
    "GenerationError",
    "GroupChatError",
    "InconsistentPathError",
    "InvalidCommitError",
    "InvalidPublicKeyError",
    "InvalidValueError",
    "NonMinimalLengthError",
    "ProtocolError",
    "RelayError",
    "ReplayError",
    "SignatureError",
    "TaintRuleError",
    "TrailingDataError",
    "TruncatedError",
    "UnknownMemberError",
    "UnknownVersionError",
    "UsageError",
    "WrongGroupError",
]


class GroupChatError(Exception):
    """Root of every error groupchat raises on purpose."""


# --- malformed bytes -------------------------------------------------------------------------


class DecodeError(GroupChatError):
    """The bytes do not parse as the structure we expected."""


class TruncatedError(DecodeError):
    """The input ended in the middle of a field."""


class TrailingDataError(DecodeError):
    """A complete structure was followed by unexpected extra bytes."""


class NonMinimalLengthError(DecodeError):
    """A variable-length integer was not in its shortest encoding (RFC 9420 §2.1.2)."""


class FieldTooLargeError(DecodeError):
    """A field is longer than the limit allowed for it."""


class UnknownVersionError(DecodeError):
    """A version number we do not speak."""


class InvalidValueError(DecodeError):
    """An enum, flag or fixed-size field holds a value outside its allowed set."""


# --- cryptographic failures --------------------------------------------------------------------


class CryptoError(GroupChatError):
    """A cryptographic check failed."""


class InvalidPublicKeyError(CryptoError):
    """A public key is malformed, non-canonical or of low order."""


class SignatureError(CryptoError):
    """A signature did not verify under the key it claims."""


class DecryptionError(CryptoError):
    """Authenticated decryption failed: wrong key or tampered bytes."""


class ConfirmationError(CryptoError):
    """A confirmation tag did not match: the sender's view of the group differs from ours."""


class InconsistentPathError(CryptoError):
    """A commit's public path keys do not match the ones we derive from our own secrets."""


# --- well-formed but wrong for our state ---------------------------------------------------------


class ProtocolError(GroupChatError):
    """Input that parses but is not acceptable in the current group state."""


class WrongGroupError(ProtocolError):
    """The message belongs to another group."""


class EpochError(ProtocolError):
    """The message's epoch is neither the current one nor the retained previous one."""


class ReplayError(ProtocolError):
    """The message or commit was already processed."""


class DuplicateKeyError(ProtocolError):
    """A key that must be unique in the group appears twice."""


class UnknownMemberError(ProtocolError):
    """A leaf index that does not hold a member."""


class GenerationError(ProtocolError):
    """A ratchet generation outside the allowed window."""


class InvalidCommitError(ProtocolError):
    """A commit breaks the rules for its operations."""


class TaintRuleError(InvalidCommitError):
    """A commit does not re-key exactly the leaves the taint rules require (see ``core/taint.py``).

    The message names the leaf and the rule, so a report shows which member built a commit that
    would have left a removed or updated member able to compute the new root.
    """


# --- local misuse and relay errors ------------------------------------------------------------


class UsageError(GroupChatError):
    """The caller asked for something the current state cannot do."""


class RelayError(GroupChatError):
    """The relay rejected a request; ``code`` is the stable error code from the relay protocol."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"relay error {code}: {reason}")
        self.code = code
        self.reason = reason
