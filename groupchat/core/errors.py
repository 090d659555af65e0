"""The one exception hierarchy of groupchat.

Every error raised on purpose is a subclass of :class:`GroupChatError` whose message says what was
wrong in words a user can act on. Like h11's ``LocalProtocolError``/``RemoteProtocolError``, the
tree splits in two so that a caller can tell "a bug or a bad setting on our side" from "drop this
input and go on":

* :class:`LocalError`: the local caller's mistake (a call the current state cannot serve, a bad
  argument or setting). Retrying the same call will fail the same way; fix the code or config.
* :class:`RemoteError`: the peer's (or the relay's) input was bad. Rejections never change
  state: the protocol core validates on a draft and only applies it once every check has passed,
  so the caller drops the input and carries on.

Hierarchy::

    GroupChatError
    ├── LocalError                         the local caller's mistake
    │   ├── UsageError                     asked for something the current state cannot do
    │   │   └── HoldMessagesError          a ring that removes members runs: send after it
    │   ├── ConfigError (ValueError)       an invalid argument or local setting
    │   │   └── InvalidInviteCodeError     a mistyped or truncated invite code
    │   └── EpochLimitError                our commit would need an epoch past the last a uint64 holds
    └── RemoteError                        the peer's or the relay's bad input
        ├── DecodeError                    malformed bytes
        │   ├── TruncatedError             input ended inside a field
        │   ├── TrailingDataError          bytes left over after a complete structure
        │   ├── NonMinimalLengthError      a varint length not in its shortest form
        │   ├── FieldTooLargeError         a field or vector longer than its limit
        │   ├── UnknownVersionError        a protocol version we do not speak
        │   └── InvalidValueError          an enum, flag or fixed-size field outside its allowed set
        ├── CryptoError                    cryptographic verification failed
        │   ├── InvalidPublicKeyError      low-order, non-canonical or malformed X25519/Ed25519 key
        │   ├── SignatureError             a signature did not verify
        │   ├── DecryptionError            an AEAD or HPKE open failed
        │   ├── ConfirmationError          a confirmation tag did not match: divergent group views
        │   └── InconsistentPathError      a commit's path keys do not match what we derive
        ├── ProtocolError                  well-formed input that is wrong for our state
        │   ├── WrongGroupError            another group's message
        │   ├── WrongSchemeError           the other key-agreement scheme's commit or handshake
        │   ├── EpochError                 stale or future epoch
        │   │   └── LateRestartError       a restart of the ring that made our epoch, too late (a fork)
        │   ├── ReplayError                a message or commit we have already processed
        │   ├── DuplicateKeyError          a key already present in the group
        │   ├── UnknownMemberError         a sender or target leaf that holds no member
        │   ├── GenerationError            a ratchet generation too far ahead or too old
        │   ├── InvalidCommitError         a commit whose operations break the rules
        │   │   ├── TaintRuleError         it does not re-key exactly what the taint rules require
    │   │   └── AdmissionChangeError   its admission changes do not fit its operations or the state
        │   ├── RemovedSenderError         sent in the old epoch by a member its ending commit removed
        │   ├── InvalidWelcomeError        a well-formed welcome whose content is wrong for our request
        │   ├── ForgedMemberError          a welcome's tree lists a leaf whose join request is not signed
        │   ├── ExpiredJoinRequestError    a join request past its expiry, or valid for too long
    │   ├── InvalidInviteError         an unknown or used-up invite, or a proof that does not verify
        │   └── CounterLimitError          a peer's epoch or other counter at the end of its range

``InvalidValueError`` means malformed *remote* bytes only; a bad value the local caller passed
is a :class:`ConfigError`. A well-formed Welcome whose content is wrong is an
:class:`InvalidWelcomeError`.

Fields a caller needs ride on the error: :class:`EpochError` has ``epoch`` (the message's) and
``current`` (ours); every :class:`RemoteError` raised about material whose signature we checked
names its signer in ``signer`` (leaf), ``signer_name`` and ``signer_key`` (identity key; its
fingerprint in ``signer_fingerprint``), all ``None``/``""`` when unknown, and every
refusal from ``Group.receive`` carries the epoch the message claimed in ``epoch``.
The relay's own error frames are not exceptions of the core: the session shows them as claims.
"""

from __future__ import annotations

from .fingerprints import fingerprint

__all__ = [
    "AdmissionChangeError",
    "ConfigError",
    "ConfirmationError",
    "CounterLimitError",
    "CryptoError",
    "DecodeError",
    "DecryptionError",
    "DuplicateKeyError",
    "EpochError",
    "EpochLimitError",
    "ExpiredJoinRequestError",
    "FieldTooLargeError",
    "ForgedMemberError",
    "GenerationError",
    "GroupChatError",
    "HoldMessagesError",
    "InconsistentPathError",
    "InvalidCommitError",
    "InvalidInviteCodeError",
    "InvalidInviteError",
    "InvalidPublicKeyError",
    "InvalidValueError",
    "InvalidWelcomeError",
    "LateRestartError",
    "LocalError",
    "NonMinimalLengthError",
    "ProtocolError",
    "RemoteError",
    "RemovedSenderError",
    "ReplayError",
    "SignatureError",
    "TaintRuleError",
    "TrailingDataError",
    "TruncatedError",
    "UnknownMemberError",
    "UnknownVersionError",
    "UsageError",
    "WrongGroupError",
    "WrongSchemeError",
]


class GroupChatError(Exception):
    """Root of every error groupchat raises on purpose."""


class LocalError(GroupChatError):
    """The local caller made a mistake: fix the calling code or the setting, do not retry."""


class RemoteError(GroupChatError):
    """A peer or the relay sent input we refuse; our state is unchanged, so drop it and go on.

    ``signer``/``signer_name``/``signer_key`` name the member whose valid signature the refused
    material carried (its leaf, display name and identity key; :attr:`signer_fingerprint` shows
    the key), when the refusal came after that signature was checked.
    """

    signer: int | None = None
    signer_name: str = ""
    signer_key: bytes | None = None
    # The epoch the refused message claimed (its public header, unauthenticated; for an EpochError
    # the one the core judged), set by Group.receive; None when it did not parse that far.
    epoch: int | None = None

    def signed_by(self, leaf: int, name: str, identity_key: bytes | None = None) -> RemoteError:
        """Record who signed the refused material (only if the signature was checked); returns self.

        The first signer recorded stays (the innermost check knows best); a later call that knows
        the same leaf's identity key adds it.
        """
        if self.signer is None:
            self.signer, self.signer_name = leaf, name
        if self.signer == leaf and self.signer_key is None:
            self.signer_key = identity_key
        return self

    @property
    def signer_fingerprint(self) -> str:
        """The signer's fingerprint (``core.identity.fingerprint``), ``""`` when its key is unknown."""
        return "" if self.signer_key is None else fingerprint(self.signer_key)


# --- local mistakes ----------------------------------------------------------------------------


class UsageError(LocalError):
    """The caller asked for something the current state cannot do."""


class ConfigError(LocalError, ValueError):
    """An argument or local setting is invalid (a ValueError too, for generic argument checks)."""


class InvalidInviteCodeError(ConfigError):
    """An invite code that is mistyped or truncated (its checksum does not match); ask for it again."""


class HoldMessagesError(UsageError):
    """An application message cannot be sent now: a change that removes members is being agreed
    (a ring's run), and they still hold this epoch's keys. Hold it and send after the epoch changes."""


class EpochLimitError(LocalError):
    """The group is at the last epoch a uint64 holds: no commit of ours can follow; start a new group."""


# --- malformed bytes -------------------------------------------------------------------------


class DecodeError(RemoteError):
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


class CryptoError(RemoteError):
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


class ProtocolError(RemoteError):
    """Input that parses but is not acceptable in the current group state."""


class WrongGroupError(ProtocolError):
    """The message belongs to another group."""


class EpochError(ProtocolError):
    """The message's epoch is neither the current one nor the retained previous one.

    ``epoch`` is the message's epoch and ``current`` ours (``None`` where the raiser does not know).
    """

    def __init__(self, message: str, epoch: int | None = None, current: int | None = None) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.current = current


class LateRestartError(EpochError):
    """A restart of the ring that created our epoch, ordered after we entered it: its signer
    missed the last confirmation (withheld from it) and went on alone, so it now holds another
    epoch of our number. A fork, not a lost race; ``signer`` names who restarted."""


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


class RemovedSenderError(ProtocolError):
    """A message in the retained previous epoch from a member whom the commit ending it removed.

    The relay ordered it after that commit, so it was sent (or delivered) after the removal and
    must not read as normal chat; ``sender`` is the removed member's leaf, ``name`` its display
    name (authenticated: the message's signature was checked before this is raised).
    """

    def __init__(self, message: str, sender: int, name: str = "") -> None:
        super().__init__(message)
        self.sender = sender
        self.name = name


class TaintRuleError(InvalidCommitError):
    """A commit does not re-key exactly the leaves the taint rules require (``schemes/tree/taint.py``).

    The message names the leaf and the rule, so a report shows which member built a commit that
    would have left a removed or updated member able to compute the new root.
    """


class AdmissionChangeError(InvalidCommitError):
    """A commit's admission changes contradict its operations or the agreed admission state."""


class InvalidInviteError(ProtocolError):
    """An invite that is not live (unknown, revoked, used up) or a proof of it that does not verify."""


class WrongSchemeError(ProtocolError):
    """A commit or handshake message built for the other key-agreement scheme than the group's.

    A group's scheme is fixed at creation and bound into every GroupContext; nothing of the other
    scheme is ever processed.
    """


class ForgedMemberError(ProtocolError):
    """A welcome's public tree lists a member whose join request is not validly signed by them.

    Only the adder can have built that tree: it listed someone who never asked to join (a ghost,
    RFC 9420 §12.4.3.1). ``leaf`` is the offending leaf.
    """

    def __init__(self, message: str, leaf: int) -> None:
        super().__init__(message)
        self.leaf = leaf


class InvalidWelcomeError(ProtocolError):
    """A welcome that parses but is wrong for us: no leaf secret, a tree or roster that does not match
    what it was signed with, a ring commit that does not add us, features groupchat does not use."""


class ExpiredJoinRequestError(ProtocolError):
    """A join request past its ``not_after``, or one claiming a longer lifetime than allowed."""


class CounterLimitError(ProtocolError):
    """A peer's counter (epoch, ratchet generation) has reached the end of its range."""
