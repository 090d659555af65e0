"""Long-term Ed25519 identities and signed join requests (our analogue of an MLS KeyPackage).

A join request binds, under the joiner's own identity signature, the group it wants to join,
its display name and a one-time X25519 *init key*. Members add someone only by carrying that
signed request inside a commit, and every member verifies it, so neither the relay nor any
member can put a key into the group that its owner never signed (the ghost-member attack,
threats.md §1.1). The init key is used once, as the HPKE recipient of the welcome.

A request also carries ``not_after`` (Unix seconds, signed): members refuse to add it after that
time, so an old request of someone who left cannot be replayed into the group indefinitely
(threats.md §24). Checking it needs the wall clock, which the caller injects.
"""

from __future__ import annotations

import os
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .codec import Reader, Writer
from .errors import ConfigError, InvalidValueError, UnknownVersionError
from .fingerprints import fingerprint
from .suite import CipherSuite, check_x25519_public
from .text import UNSAFE_CATEGORIES
from .version import PROTOCOL_VERSION

__all__ = [
    "DEFAULT_JOIN_REQUEST_LIFETIME",
    "MAX_DISPLAY_NAME",
    "MAX_GROUP_ID",
    "MAX_JOIN_REQUEST_LIFETIME",
    "Identity",
    "JoinRequest",
    "PendingJoin",
    "epoch_code",
    "fingerprint",
    "validate_display_name",
]

MAX_DISPLAY_NAME: Final = 64
MAX_GROUP_ID: Final = 255
_JOIN_REQUEST_LABEL: Final = b"JoinRequestTBS"
DEFAULT_JOIN_REQUEST_LIFETIME: Final = 24 * 3600  # seconds a new join request stays usable
# Members refuse requests claiming a longer life: it bounds how long a leaked or departed
# member's request can be replayed, and how long members must remember used init keys.
MAX_JOIN_REQUEST_LIFETIME: Final = 30 * 24 * 3600
_MAX_U64: Final = (1 << 64) - 1

Random = Callable[[int], bytes]
WallClock = Callable[[], float]


def epoch_code(epoch_authenticator: bytes) -> str:
    """The short code members compare out of band to confirm they share an epoch: 12 digits.

    Derived from the epoch authenticator (RFC 9420 §8.7), so equal codes mean equal epochs; the
    digits come in three groups of four (``"0123 4567 8901"``) to be read aloud.
    """
    if len(epoch_authenticator) < 8:
        raise ConfigError("an epoch authenticator has at least 8 bytes")
    digits = int.from_bytes(epoch_authenticator[:8], "big") % 10**12
    text = f"{digits:012d}"
    return " ".join(text[i : i + 4] for i in range(0, 12, 4))


def validate_display_name(name: str) -> str:
    """Return the NFC-normalised name, or raise if it is empty, too long or has control chars."""
    name = unicodedata.normalize("NFC", name)
    if any(unicodedata.category(c) == "Cs" for c in name):
        # A str from surrogateescape-decoded bytes (argv, a file): it has no UTF-8 encoding.
        raise InvalidValueError("display name is not valid Unicode text (it contains a lone surrogate)")
    if not name.strip():
        raise InvalidValueError("display name must not be empty")
    if any(unicodedata.category(c) in UNSAFE_CATEGORIES for c in name):  # what sanitise() strips
        raise InvalidValueError("display name must not contain control or formatting characters")
    if len(name.encode()) > MAX_DISPLAY_NAME:
        raise InvalidValueError(f"display name is longer than {MAX_DISPLAY_NAME} bytes")
    return name


class Identity:
    """A long-term Ed25519 signing identity."""

    __slots__ = ("_key", "public_key")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key: bytes = private_key.public_key().public_bytes_raw()

    @classmethod
    def generate(cls) -> Identity:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, seed: bytes) -> Identity:
        if len(seed) != 32:
            raise ConfigError("an Ed25519 private key is a 32-byte seed")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def private_bytes(self) -> bytes:
        """The raw 32-byte seed, for the caller's 0600 key store. Never log it."""
        return self._key.private_bytes_raw()

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        return self._key

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def __repr__(self) -> str:
        return f"Identity({self.fingerprint})"

    # Immutable: copies of a Group share the identity object.
    def __copy__(self) -> Identity:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Identity:
        return self


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """``struct { version; cipher_suite; group_id<V>; identity_key<V>; display_name<V>;
    init_key<V>; uint64 not_after; signature<V> }`` signed with
    SignWithLabel(identity, "JoinRequestTBS", every field before the signature)."""

    cipher_suite: int
    group_id: bytes
    identity_key: bytes
    display_name: str
    init_key: bytes
    not_after: int  # Unix seconds; members refuse to add the request after this time
    signature: bytes
    encoded: bytes  # the exact bytes received or produced; hashed into the tree and the ref

    @staticmethod
    def tbs(
        cipher_suite: int, group_id: bytes, identity_key: bytes, name: bytes, init_key: bytes, not_after: int
    ) -> bytes:
        """The signed part of a request (``JoinRequestTBS``): every field but the signature."""
        return JoinRequest.tbs_head(cipher_suite, group_id) + (
            Writer()
            .opaque(identity_key)
            .opaque(name)
            .opaque(init_key)
            .u64(not_after)
            .bytes()
        )

    @staticmethod
    def tbs_head(cipher_suite: int, group_id: bytes) -> bytes:
        """How every request's TBS for this group and suite starts: version, suite, V(group_id)."""
        return Writer().u16(PROTOCOL_VERSION).u16(cipher_suite).opaque(group_id).bytes()

    @classmethod
    def create(
        cls,
        suite: CipherSuite,
        identity: Identity,
        group_id: bytes,
        display_name: str,
        rand: Random = os.urandom,
        *,
        lifetime: int = DEFAULT_JOIN_REQUEST_LIFETIME,
        wall_clock: WallClock = time.time,
        newer_than: int = 0,
    ) -> PendingJoin:
        """Make a fresh init key and a signed request valid for ``lifetime`` seconds from now.

        ``newer_than``: the ``not_after`` of our last request; the new one ends at least a second
        later (members take only a strictly newer request of a known identity, and whole seconds
        would make a request made within the same second a replay). Keep the returned
        :class:`PendingJoin` locally: it holds the init private key.
        """
        if not 0 < len(group_id) <= MAX_GROUP_ID:
            raise ConfigError(f"group id must be 1..{MAX_GROUP_ID} bytes")
        if not 0 < lifetime <= MAX_JOIN_REQUEST_LIFETIME:
            raise ConfigError(
                f"join request lifetime must be 1..{MAX_JOIN_REQUEST_LIFETIME} seconds, got {lifetime}"
            )
        try:
            name = validate_display_name(display_name)
        except InvalidValueError as exc:  # our own name: a local mistake, not a peer's bad bytes
            raise ConfigError(str(exc)) from None
        now = wall_clock()
        if not 0 <= now <= _MAX_U64 - MAX_JOIN_REQUEST_LIFETIME:
            raise ConfigError(f"the wall clock reads {now}, which is not a plausible Unix time")
        not_after = max(int(now) + lifetime, newer_than + 1)
        if not_after > now + MAX_JOIN_REQUEST_LIFETIME:
            raise ConfigError(
                f"a join request newer than {newer_than} would be valid for more than "
                f"{MAX_JOIN_REQUEST_LIFETIME} s: is the wall clock behind?"
            )
        init_private, init_public = suite.derive_key_pair(rand(32))
        tbs = cls.tbs(suite.id, group_id, identity.public_key, name.encode(), init_public, not_after)
        signature = suite.sign_with_label(identity.signing_key, _JOIN_REQUEST_LABEL, tbs)
        encoded = Writer().raw(tbs).opaque(signature).bytes()
        request = cls(
            suite.id, group_id, identity.public_key, name, init_public, not_after, signature, encoded
        )
        return PendingJoin(identity=identity, request=request, init_private=init_private)

    @classmethod
    def read(cls, r: Reader) -> JoinRequest:
        start = r.position
        version = r.u16("version")
        if version != PROTOCOL_VERSION:
            raise UnknownVersionError(f"join request version {version} is not supported")
        suite_id = r.u16("cipher_suite")
        group_id = r.opaque("group_id", MAX_GROUP_ID, 1)
        identity_key = r.opaque_exact("identity_key", 32)
        raw_name = r.opaque("display_name", MAX_DISPLAY_NAME, 1)
        init_key = check_x25519_public(r.opaque_exact("init_key", 32), "join request init key")
        not_after = r.u64("not_after")
        signature = r.opaque_exact("signature", 64)
        try:
            name = validate_display_name(raw_name.decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidValueError("display name is not valid UTF-8") from None
        if name.encode() != raw_name:
            raise InvalidValueError("display name is not in NFC normal form")
        encoded = r.since(start)  # the exact bytes, for hashing and the ref
        return cls(suite_id, group_id, identity_key, name, init_key, not_after, signature, encoded)

    @classmethod
    def decode(cls, data: bytes) -> JoinRequest:
        r = Reader(data, "join request")
        out = cls.read(r)
        r.end()
        return out

    def verify(self, suite: CipherSuite) -> None:
        """Check the suite and the joiner's own signature; raise on any mismatch."""
        if self.cipher_suite != suite.id:
            raise InvalidValueError(
                f"join request is for cipher suite {self.cipher_suite}, group uses {suite.id}"
            )
        tbs = self.tbs(
            self.cipher_suite,
            self.group_id,
            self.identity_key,
            self.display_name.encode(),
            self.init_key,
            self.not_after,
        )
        suite.verify_with_label(self.identity_key, _JOIN_REQUEST_LABEL, tbs, self.signature, "join request")

    def ref(self, suite: CipherSuite) -> bytes:
        """RefHash naming this request in a Welcome (RFC 9420 §5.2 KeyPackageRef analogue)."""
        return suite.ref_hash(suite.label_prefix + b"JoinRequest Reference", self.encoded)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.identity_key)


@dataclass(slots=True, eq=False)
class PendingJoin:
    """A joiner's local state between publishing a request and receiving the welcome.

    It completes one join only (:meth:`Group.join` marks it used on success): feeding an old
    welcome again must not give a second group at a stale epoch (threats.md §24).
    """

    identity: Identity
    request: JoinRequest
    init_private: bytes
    used: bool = field(default=False, init=False)

    def __repr__(self) -> str:  # never print the init key
        return f"PendingJoin({self.request.display_name!r}, {self.identity.fingerprint})"
