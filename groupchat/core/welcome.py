"""GroupInfo and Welcome: how a new member learns the group's state (RFC 9420 §12.4.3).

The encodings are MLS-compatible. A Welcome carries, per new member, the ``GroupSecrets``
HPKE-sealed to that member's init key (label "Welcome", context = the encrypted GroupInfo), and
one GroupInfo AEAD-encrypted under keys derived from the ``welcome_secret``. What groupchat sends
a joiner, a :class:`WelcomeMessage`, is that Welcome and, beside it, the scheme's public state
(the tree), encrypted under keys of its own from the same secret and bound by the signed tree
hash (RFC 9420 §12.4.3.3 lets a tree travel outside the GroupInfo).

Joining is split into the two steps that the key schedule forces: :func:`open_group_secrets`
yields the ``joiner_secret``, from which the caller derives the ``welcome_secret``
(:func:`~groupchat.core.key_schedule.epoch_secrets_from_joiner`), and only then can
:func:`decrypt_group_info` read the GroupInfo, whose signature and confirmation tag the caller
then checks (§12.4.3.1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .codec import Reader, Writer, encode_varint
from .errors import DuplicateKeyError, InvalidValueError, InvalidWelcomeError, ProtocolError, UsageError
from .key_schedule import GroupContext, public_state_key_nonce, welcome_key_nonce
from .message_protection import WireFormat, read_message_header
from .suite import CipherSuite
from .version import PROTOCOL_VERSION

__all__ = [
    "MAX_GROUP_INFO",
    "MAX_PUBLIC_STATE",
    "SECRETS_EXTENSION",
    "EncryptedGroupSecrets",
    "GroupInfo",
    "GroupSecrets",
    "Welcome",
    "WelcomeMessage",
    "committed_secrets",
    "decode_extensions",
    "decrypt_group_info",
    "encode_extensions",
    "key_package_ref",
    "open_group_secrets",
    "open_public_state",
    "seal_welcome",
    "secrets_commitment",
    "signed_group_info",
]

_WIRE_WELCOME: Final = 3
_NH: Final = 32
_SIG_LEN: Final = 64  # Ed25519
_AEAD_TAG: Final = 16
MAX_GROUP_INFO: Final = 8 << 20
# The largest compact tree: 2^16 member leaves of 237 B (64-byte names, tainted) and 2^16 - 1
# parent keys, about 17.6 MB (a relay's frame limit stops far smaller welcomes, §4.3).
MAX_PUBLIC_STATE: Final = 18 << 20
_MAX_EXTENSION_ITEMS: Final = 64
_MAX_PSKS: Final = 64
_MAX_PSK_BYTES: Final = 64 * 1024
_MAX_SECRETS_BYTES: Final = 8 << 20
_MAX_RECIPIENTS: Final = 65536
_MAX_GROUP_SECRETS_CT: Final = _MAX_PSK_BYTES + 1024
# GroupInfo extension (RFC 9420 §13 private-use range): the signer's commitment to the GroupSecrets
# it sealed to each joiner, so a secret that does not fit the signed tree is provably the signer's.
SECRETS_EXTENSION: Final = 0xF0C8
_SECRETS_LABEL: Final = b"GroupSecrets Commitment"


def key_package_ref(suite: CipherSuite, key_package: bytes) -> bytes:
    """``RefHash(prefix + "KeyPackage Reference", KeyPackage)`` (§5.2), over the struct without header."""
    return suite.ref_hash(suite.label_prefix + b"KeyPackage Reference", key_package)


# --- extensions (§13) ---------------------------------------------------------------------------


def _extension_parts(extensions: Sequence[tuple[int, bytes | tuple[bytes, ...]]]) -> list[bytes]:
    """The pieces of an extension-list body, unjoined: ``uint16 type``, the ``V()`` length, the
    data (given whole, or as the pieces of its concatenation)."""
    types = [t for t, _ in extensions]
    if len(set(types)) != len(types):
        raise DuplicateKeyError("an extension type appears more than once")
    parts: list[bytes] = []
    for ext_type, data in extensions:
        pieces = (data,) if isinstance(data, bytes) else data
        parts += [Writer().u16(ext_type).bytes(), encode_varint(sum(map(len, pieces))), *pieces]
    return parts


def encode_extensions(extensions: Sequence[tuple[int, bytes]]) -> bytes:
    """Encode the body of ``Extension extensions<V>``: each ``uint16 type || V(data)``."""
    return b"".join(_extension_parts(extensions))


def decode_extensions(body: bytes) -> list[tuple[int, bytes]]:
    """Decode the body of an extension list; each type may appear at most once (§13)."""
    r = Reader(body, "extensions")
    out: list[tuple[int, bytes]] = []
    seen: set[int] = set()
    while r.remaining:
        if len(out) >= _MAX_EXTENSION_ITEMS:
            raise InvalidValueError(f"more than {_MAX_EXTENSION_ITEMS} extensions")
        ext_type = r.u16("extension_type")
        if ext_type in seen:
            raise DuplicateKeyError(f"extension type {ext_type} appears more than once")
        seen.add(ext_type)
        out.append((ext_type, r.opaque("extension_data", MAX_GROUP_INFO)))
    return out


# --- GroupInfo (§12.4.3) ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """The signed group state a joiner needs; ``extensions`` is the encoded extension-list body."""

    group_context: GroupContext
    extensions: bytes = field(repr=False)
    confirmation_tag: bytes
    signer: int
    signature: bytes = b""

    def tbs(self) -> bytes:
        """``GroupInfoTBS``: every field but the signature."""
        return (
            Writer()
            .raw(self.group_context.encode())
            .opaque(self.extensions)
            .opaque(self.confirmation_tag)
            .u32(self.signer)
            .bytes()
        )

    def encode(self) -> bytes:
        return self.tbs() + Writer().opaque(self.signature).bytes()

    @classmethod
    def decode(cls, data: bytes) -> GroupInfo:
        if len(data) > MAX_GROUP_INFO:
            raise InvalidValueError(f"GroupInfo is {len(data)} bytes, more than {MAX_GROUP_INFO}")
        r = Reader(data, "GroupInfo")
        gc = GroupContext.read(r)
        extensions = r.opaque("extensions", MAX_GROUP_INFO)
        tag = r.opaque_exact("confirmation_tag", _NH)
        signer = r.u32("signer")
        signature = r.opaque_exact("signature", _SIG_LEN)
        r.end()
        return cls(gc, extensions, tag, signer, signature)

    def sign(self, suite: CipherSuite, key: Ed25519PrivateKey) -> GroupInfo:
        """A copy carrying ``SignWithLabel(key, "GroupInfoTBS", tbs)``."""
        return replace(self, signature=suite.sign_with_label(key, b"GroupInfoTBS", self.tbs()))

    def verify(self, suite: CipherSuite, signer_public_key: bytes) -> None:
        """Raise :class:`SignatureError` unless the signer's key signed this GroupInfo."""
        suite.verify_with_label(
            signer_public_key,
            b"GroupInfoTBS",
            self.tbs(),
            self.signature,
            f"GroupInfo from leaf {self.signer}",
        )


def signed_group_info(
    suite: CipherSuite,
    key: Ed25519PrivateKey,
    group_context: GroupContext,
    extensions: Sequence[tuple[int, bytes | tuple[bytes, ...]]],
    confirmation_tag: bytes,
    signer: int,
) -> bytes:
    """``GroupInfo(group_context, encode_extensions(extensions), confirmation_tag, signer)`` signed
    by ``key`` and encoded, with each extension's data (whole, or the pieces it joins) copied
    once into the signed content and once into the encoding: a Welcome's tree extension is the
    whole tree."""
    ext = _extension_parts(extensions)
    tail = Writer().opaque(confirmation_tag).u32(signer).bytes()
    tbs = [group_context.encode(), encode_varint(sum(map(len, ext))), *ext, tail]
    content, signature = suite.sign_parts_with_label(key, b"GroupInfoTBS", tbs)
    return b"".join((content, encode_varint(len(signature)), signature))


# --- GroupSecrets and Welcome (§12.4.3) ------------------------------------------------------------


def _read_psk_id(r: Reader) -> bytes:
    """Read one ``PreSharedKeyID`` (§8.4) and return its canonical encoding."""
    w = Writer()
    psk_type = r.u8("psktype")
    w.u8(psk_type)
    if psk_type == 1:  # external
        w.opaque(r.opaque("psk_id", 255))
    elif psk_type == 2:  # resumption
        usage = r.u8("resumption usage")
        if usage not in (1, 2, 3):
            raise InvalidValueError(f"unknown resumption PSK usage {usage}")
        w.u8(usage).opaque(r.opaque("psk_group_id", 255)).u64(r.u64("psk_epoch"))
    else:
        raise InvalidValueError(f"unknown PSK type {psk_type}")
    w.opaque(r.opaque("psk_nonce", _NH))
    return w.bytes()


@dataclass(frozen=True, slots=True)
class GroupSecrets:
    """What a Welcome gives each new member: the joiner secret and maybe a path secret."""

    joiner_secret: bytes = field(repr=False)
    path_secret: bytes | None = field(repr=False)
    psks: list[bytes] = field(default_factory=list)  # encoded PreSharedKeyIDs

    def encode(self) -> bytes:
        path = None if self.path_secret is None else Writer().opaque(self.path_secret).bytes()
        return Writer().opaque(self.joiner_secret).optional(path).vector(self.psks).bytes()

    @classmethod
    def decode(cls, data: bytes) -> GroupSecrets:
        r = Reader(data, "GroupSecrets")
        joiner = r.opaque_exact("joiner_secret", _NH)
        path = r.optional("path_secret", lambda rr: rr.opaque_exact("path_secret", _NH))
        psks = r.vector("psks", _MAX_PSK_BYTES, _read_psk_id, _MAX_PSKS)
        r.end()
        return cls(joiner, path, psks)


@dataclass(frozen=True, slots=True)
class EncryptedGroupSecrets:
    """GroupSecrets HPKE-sealed to one new member, named by its KeyPackageRef."""

    new_member: bytes
    kem_output: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)

    def encode(self) -> bytes:
        return Writer().opaque(self.new_member).opaque(self.kem_output).opaque(self.ciphertext).bytes()

    @classmethod
    def read(cls, r: Reader) -> EncryptedGroupSecrets:
        ref = r.opaque_exact("new_member", _NH)
        kem_output = r.opaque_exact("kem_output", 32)  # DHKEM(X25519) enc
        ciphertext = r.opaque("ciphertext", _MAX_GROUP_SECRETS_CT)
        return cls(ref, kem_output, ciphertext)


@dataclass(frozen=True, slots=True)
class Welcome:
    """``Welcome = uint16 cipher_suite || V(EncryptedGroupSecrets[]) || V(encrypted_group_info)``."""

    cipher_suite: int
    secrets: list[EncryptedGroupSecrets]
    encrypted_group_info: bytes = field(repr=False)

    def _write(self, w: Writer) -> Writer:
        w.u16(self.cipher_suite).vector([s.encode() for s in self.secrets])
        return w.opaque(self.encrypted_group_info)

    def encode(self) -> bytes:
        return self._write(Writer()).bytes()

    def encode_message(self) -> bytes:
        """Encode as ``MLSMessage``: uint16 version || uint16 wire_format(3) || Welcome (RFC 9420's
        encoding; groupchat sends a joiner a :class:`WelcomeMessage`, which adds the tree)."""
        return self._write(Writer().u16(PROTOCOL_VERSION).u16(_WIRE_WELCOME)).bytes()

    @classmethod
    def read(cls, r: Reader) -> Welcome:
        suite = r.u16("cipher_suite")
        secrets = r.vector("secrets", _MAX_SECRETS_BYTES, EncryptedGroupSecrets.read, _MAX_RECIPIENTS)
        egi = r.opaque("encrypted_group_info", MAX_GROUP_INFO + _AEAD_TAG)
        return cls(suite, secrets, egi)

    @classmethod
    def decode(cls, data: bytes) -> Welcome:
        r = Reader(data, "Welcome")
        w = cls.read(r)
        r.end()
        return w

    @classmethod
    def decode_message(cls, data: bytes) -> Welcome:
        """Parse ``MLSMessage(Welcome)``, checking the version and wire format."""
        r = Reader(data, "Welcome")
        read_message_header(r, WireFormat.WELCOME, "a welcome")
        w = cls.read(r)
        r.end()
        return w


@dataclass(frozen=True, slots=True)
class WelcomeMessage:
    """What a joiner receives: ``MLSMessage(Welcome) || V(encrypted_public_state)``.

    The scheme's public state (the whole tree, or the ring's roster) travels beside the GroupInfo,
    not inside it: the signer then signs the tree's hash (in the GroupContext), not its O(n) bytes,
    and the HPKE context of every joiner's secrets (the encrypted GroupInfo) stays small. It is
    AEAD-encrypted under keys from the welcome secret, so the relay can neither read nor replace
    it, and the joiner uses it only once its hash equals the signed ``tree_hash``.
    """

    welcome: Welcome
    encrypted_state: bytes = field(repr=False)

    def encode(self) -> bytes:
        w = self.welcome._write(Writer().u16(PROTOCOL_VERSION).u16(_WIRE_WELCOME))
        return w.opaque(self.encrypted_state).bytes()

    @classmethod
    def decode(cls, data: bytes) -> WelcomeMessage:
        """Parse it, checking the version and wire format; the state is opened later, with the
        welcome secret (:func:`open_public_state`)."""
        r = Reader(data, "Welcome")
        read_message_header(r, WireFormat.WELCOME, "a welcome")
        welcome = Welcome.read(r)
        if not r.remaining:
            raise InvalidWelcomeError(
                "welcome carries no tree beside its GroupInfo: it was made by an older groupchat "
                "(the member who added you may need to upgrade) or cut short on the way"
            )
        state = r.opaque("encrypted public state", MAX_PUBLIC_STATE + _AEAD_TAG, 1)
        r.end()
        return cls(welcome, state)


def seal_welcome(
    suite: CipherSuite,
    group_info: bytes,
    welcome_secret: bytes,
    recipients: Sequence[tuple[bytes, bytes, GroupSecrets]],
    public_state: bytes,
) -> WelcomeMessage:
    """Encrypt the encoded GroupInfo and the scheme's public state, and seal each
    ``(key_package_ref, init_public_key, secrets)``.

    HPKE randomness comes from pyca's HPKE implementation, which does not take an injected RNG.
    """
    if len(public_state) > MAX_PUBLIC_STATE:
        raise UsageError(f"public state is {len(public_state)} bytes, more than {MAX_PUBLIC_STATE}")
    key, nonce = welcome_key_nonce(suite, welcome_secret)
    egi = suite.seal(key, nonce, b"", group_info)
    sealed = []
    for ref, init_pk, secrets in recipients:
        kem_output, ct = suite.encrypt_with_label(init_pk, b"Welcome", egi, secrets.encode())
        sealed.append(EncryptedGroupSecrets(ref, kem_output, ct))
    state = suite.seal(*public_state_key_nonce(suite, welcome_secret), b"", public_state)
    return WelcomeMessage(Welcome(suite.id, sealed, egi), state)


def _commitment(suite: CipherSuite, ref: bytes, secrets: GroupSecrets) -> bytes:
    return suite.ref_hash(suite.label_prefix + _SECRETS_LABEL, ref + secrets.encode())


def secrets_commitment(suite: CipherSuite, recipients: Sequence[tuple[bytes, GroupSecrets]]) -> bytes:
    """The :data:`SECRETS_EXTENSION` data: per joiner ``ref || RefHash(ref || GroupSecrets)``.

    Signed with the GroupInfo, it binds the signer to what it sealed: anyone who knows the joiner
    secret (every member of the new epoch) could otherwise re-seal other secrets under the same
    signed GroupInfo, and a bad secret would name no one. The hash hides the secrets (each holds
    32 fresh random bytes beyond what a reader of the GroupInfo knows).
    """
    return b"".join(ref + _commitment(suite, ref, gs) for ref, gs in recipients)


def committed_secrets(suite: CipherSuite, data: bytes, ref: bytes, secrets: GroupSecrets) -> bool | None:
    """Whether ``secrets`` (opened for ``ref``) are the ones the signed ``data`` commits to;
    ``None`` when ``data`` is malformed or commits to nothing for ``ref`` (the signer's fault)."""
    size = 2 * _NH
    if len(data) % size:
        return None
    for at in range(0, len(data), size):
        if data[at : at + _NH] == ref:
            return data[at + _NH : at + size] == _commitment(suite, ref, secrets)
    return None


def open_group_secrets(
    suite: CipherSuite, welcome: Welcome, my_ref: bytes, init_private_key: bytes
) -> GroupSecrets:
    """Find the GroupSecrets addressed to ``my_ref`` and HPKE-open them with our init key."""
    if welcome.cipher_suite != suite.id:
        raise InvalidValueError(f"welcome uses cipher suite {welcome.cipher_suite}, we expected {suite.id}")
    for egs in welcome.secrets:
        if egs.new_member == my_ref:
            plain = suite.decrypt_with_label(
                init_private_key, b"Welcome", welcome.encrypted_group_info, egs.kem_output, egs.ciphertext
            )
            return GroupSecrets.decode(plain)
    raise ProtocolError("this welcome is not addressed to us (no secrets for our key package)")


def decrypt_group_info(suite: CipherSuite, welcome: Welcome, welcome_secret: bytes) -> GroupInfo:
    """Decrypt and parse the GroupInfo; the caller must still verify signature and confirmation tag."""
    key, nonce = welcome_key_nonce(suite, welcome_secret)
    plain = suite.open(key, nonce, b"", welcome.encrypted_group_info, "welcome GroupInfo")
    return GroupInfo.decode(plain)


def open_public_state(suite: CipherSuite, message: WelcomeMessage, welcome_secret: bytes) -> bytes:
    """Decrypt the public state beside the GroupInfo; the caller must still check it against the
    signed tree hash (only members of the new epoch can encrypt another, but any of them could)."""
    key, nonce = public_state_key_nonce(suite, welcome_secret)
    return suite.open(key, nonce, b"", message.encrypted_state, "welcome public state")
