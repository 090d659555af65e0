"""RFC 9420 interop vectors (mlswg/mls-implementations) for suites 1 and 3, with the MLS label prefix.

Every check uses the real primitives through our public modules; see tests/core/vectors/README.md
for the schemas.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from vectors import h, load

from groupchat.core import tree_math
from groupchat.core.codec import Reader, encode_varint
from groupchat.core.errors import ConfirmationError, DecryptionError, ProtocolError, SignatureError
from groupchat.core.key_schedule import (
    GroupContext,
    confirmation_tag,
    confirmed_transcript_hash,
    derive_epoch_secrets,
    epoch_secrets_from_joiner,
    expand_with_label_short,
    exporter,
    interim_transcript_hash,
    psk_secret,
    verify_confirmation_tag,
)
from groupchat.core.message_protection import (
    ContentType,
    FramedContent,
    PrivateMessage,
    WireFormat,
    decrypt_content,
    decrypt_sender_data,
    membership_tag,
    open_private_message,
    ratchet_kind,
    read_application_data,
    verify_framed_content,
    verify_membership_tag,
)
from groupchat.core.secret_tree import RatchetKind, SecretTree
from groupchat.core.suite import MLS_PREFIX, CipherSuite
from groupchat.core.welcome import (
    GroupInfo,
    Welcome,
    decrypt_group_info,
    key_package_ref,
    open_group_secrets,
)


def suite_of(v: dict[str, Any]) -> CipherSuite:
    return CipherSuite(v["cipher_suite"], MLS_PREFIX)


def suites_seen(entries: list[dict[str, Any]]) -> set[int]:
    return {e["cipher_suite"] for e in entries}


# --- tree math, varints, primitives -------------------------------------------------------------


def _or_none(f: Any, *args: int) -> int | None:
    try:
        return int(f(*args))
    except ValueError:
        return None


def test_tree_math() -> None:
    entries = load("tree-math.json")
    checks = 0
    for v in entries:
        n = v["n_leaves"]
        assert tree_math.node_width(n) == v["n_nodes"]
        assert tree_math.root(n) == v["root"]
        for i in range(v["n_nodes"]):
            assert _or_none(tree_math.left, i) == v["left"][i], (n, i)
            assert _or_none(tree_math.right, i) == v["right"][i], (n, i)
            assert _or_none(tree_math.parent, i, n) == v["parent"][i], (n, i)
            assert _or_none(tree_math.sibling, i, n) == v["sibling"][i], (n, i)
            checks += 4
    assert len(entries) == 10 and checks > 8000


def test_deserialization_varints() -> None:
    entries = load("deserialization.json")
    for v in entries:
        header = h(v["vlbytes_header"])
        r = Reader(header, "vector")
        assert r.varint() == v["length"]
        r.end()
        assert encode_varint(v["length"]) == header
    assert len(entries) == 14


def test_crypto_basics() -> None:
    entries = load("crypto-basics.json")
    assert suites_seen(entries) == {1, 3}
    for v in entries:
        s = suite_of(v)
        rh = v["ref_hash"]
        assert s.ref_hash(rh["label"].encode(), h(rh["value"])) == h(rh["out"])
        e = v["expand_with_label"]
        args = (h(e["secret"]), e["label"].encode(), h(e["context"]), e["length"])
        assert s.expand_with_label(*args) == h(e["out"])
        assert expand_with_label_short(s, *args) == h(e["out"])
        d = v["derive_secret"]
        assert s.derive_secret(h(d["secret"]), d["label"].encode()) == h(d["out"])
        t = v["derive_tree_secret"]
        out = s.derive_tree_secret(h(t["secret"]), t["label"].encode(), t["generation"], t["length"])
        assert out == h(t["out"])
        sg = v["sign_with_label"]
        sk = Ed25519PrivateKey.from_private_bytes(h(sg["priv"]))
        assert sk.public_key().public_bytes_raw() == h(sg["pub"])
        label, content = sg["label"].encode(), h(sg["content"])
        assert s.sign_with_label(sk, label, content) == h(sg["signature"])  # Ed25519 is deterministic
        s.verify_with_label(h(sg["pub"]), label, content, h(sg["signature"]), "vector")
        with pytest.raises(SignatureError):
            s.verify_with_label(h(sg["pub"]), label, content + b"x", h(sg["signature"]), "vector")
        en = v["encrypt_with_label"]
        label, ctx = en["label"].encode(), h(en["context"])
        pt = s.decrypt_with_label(h(en["priv"]), label, ctx, h(en["kem_output"]), h(en["ciphertext"]))
        assert pt == h(en["plaintext"])
        kem, ct = s.encrypt_with_label(h(en["pub"]), label, ctx, pt)
        assert s.decrypt_with_label(h(en["priv"]), label, ctx, kem, ct) == pt
        with pytest.raises(DecryptionError):
            s.decrypt_with_label(h(en["priv"]), label, ctx + b"x", kem, ct)


# --- key schedule, PSKs, transcript hashes ------------------------------------------------------


def test_key_schedule() -> None:
    entries = load("key-schedule.json")
    assert suites_seen(entries) == {1, 3}
    names = [
        "joiner_secret",
        "welcome_secret",
        "init_secret",
        "sender_data_secret",
        "encryption_secret",
        "exporter_secret",
        "epoch_authenticator",
        "external_secret",
        "confirmation_key",
        "membership_key",
        "resumption_psk",
    ]
    epochs_checked = 0
    for v in entries:
        s = suite_of(v)
        init = h(v["initial_init_secret"])
        for i, ep in enumerate(v["epochs"]):
            gc = GroupContext(
                v["cipher_suite"], h(v["group_id"]), i, h(ep["tree_hash"]), h(ep["confirmed_transcript_hash"])
            )
            encoded = gc.encode()
            assert encoded == h(ep["group_context"])
            assert GroupContext.decode(encoded) == gc
            secrets = derive_epoch_secrets(s, init, h(ep["commit_secret"]), encoded, h(ep["psk_secret"]))
            for name in names:
                assert getattr(secrets, name) == h(ep[name]), (v["cipher_suite"], i, name)
            joined = epoch_secrets_from_joiner(s, secrets.joiner_secret, encoded, h(ep["psk_secret"]))
            assert joined == secrets
            assert s.derive_key_pair(secrets.external_secret)[1] == h(ep["external_pub"])
            x = ep["exporter"]
            out = exporter(s, secrets.exporter_secret, x["label"].encode(), h(x["context"]), x["length"])
            assert out == h(x["secret"])
            init = secrets.init_secret
            epochs_checked += 1
    assert epochs_checked == 10


def test_psk_secret() -> None:
    entries = load("psk_secret.json")
    for v in entries:
        psks = [(h(p["psk_id"]), h(p["psk"]), h(p["psk_nonce"])) for p in v["psks"]]
        assert psk_secret(suite_of(v), psks) == h(v["psk_secret"]), len(psks)
    assert len(entries) == 22


def test_transcript_hashes() -> None:
    entries = load("transcript-hashes.json")
    assert suites_seen(entries) == {1, 3}
    for v in entries:
        s = suite_of(v)
        ac = h(v["authenticated_content"])
        # AuthenticatedContent ends with V(confirmation_tag) (a 32-byte tag, 1-byte length).
        assert ac[-33] == 32
        confirmed_input, tag = ac[:-33], ac[-32:]
        confirmed = confirmed_transcript_hash(s, h(v["interim_transcript_hash_before"]), confirmed_input)
        assert confirmed == h(v["confirmed_transcript_hash_after"])
        key = h(v["confirmation_key"])
        assert confirmation_tag(s, key, confirmed) == tag
        verify_confirmation_tag(s, key, confirmed, tag)
        with pytest.raises(ConfirmationError):
            verify_confirmation_tag(s, key, confirmed, bytes(32))
        assert interim_transcript_hash(s, confirmed, tag) == h(v["interim_transcript_hash_after"])


# --- secret tree -------------------------------------------------------------------------------------


def test_secret_tree() -> None:
    entries = load("secret-tree.json")
    assert suites_seen(entries) == {1, 3}
    checks = 0
    for v in entries:
        s = suite_of(v)
        sd = v["sender_data"]
        sample = h(sd["ciphertext"])[:32]
        sds = h(sd["sender_data_secret"])
        assert expand_with_label_short(s, sds, b"key", sample, s.key_len) == h(sd["key"])
        assert expand_with_label_short(s, sds, b"nonce", sample, s.nonce_len) == h(sd["nonce"])
        n = len(v["leaves"])
        tree = SecretTree(s, h(v["encryption_secret"]), n)
        sender = SecretTree(s, h(v["encryption_secret"]), n)
        for leaf, gens in enumerate(v["leaves"]):
            for g in gens:
                gen = g["generation"]
                for kind, prefix in (
                    (RatchetKind.HANDSHAKE, "handshake"),
                    (RatchetKind.APPLICATION, "application"),
                ):
                    lk = tree.lookup(leaf, kind, gen)
                    assert (lk.key, lk.nonce) == (h(g[f"{prefix}_key"]), h(g[f"{prefix}_nonce"])), (leaf, gen)
                    tree.commit(lk)
                    # The sending side reaches the same keys by consuming generations in order.
                    while True:
                        sgen, key, nonce = sender.next_send(leaf, kind)
                        if sgen == gen:
                            break
                    assert (key, nonce) == (lk.key, lk.nonce)
                    checks += 2
    assert checks == 2 * 2 * 2 * 2 * (1 + 8 + 32)


# --- welcome ---------------------------------------------------------------------------------------


def test_welcome() -> None:
    entries = load("welcome.json")
    assert suites_seen(entries) == {1, 3}
    for v in entries:
        s = suite_of(v)
        kp_msg = h(v["key_package"])
        assert kp_msg[:4] == b"\x00\x01\x00\x05"  # MLSMessage(KeyPackage)
        ref = key_package_ref(s, kp_msg[4:])  # the ref covers the KeyPackage without the header
        welcome_bytes = h(v["welcome"])
        welcome = Welcome.decode_message(welcome_bytes)
        assert welcome.encode_message() == welcome_bytes
        assert [e.new_member for e in welcome.secrets] == [ref]
        with pytest.raises(ProtocolError):
            open_group_secrets(s, welcome, bytes(32), h(v["init_priv"]))
        gs = open_group_secrets(s, welcome, ref, h(v["init_priv"]))
        assert gs.psks == []
        # welcome_secret does not depend on the GroupContext, which the GroupInfo carries.
        welcome_secret = epoch_secrets_from_joiner(s, gs.joiner_secret, b"").welcome_secret
        gi = decrypt_group_info(s, welcome, welcome_secret)
        assert GroupInfo.decode(gi.encode()) == gi
        gi.verify(s, h(v["signer_pub"]))
        ctx = gi.group_context
        assert ctx.cipher_suite == v["cipher_suite"]
        secrets = epoch_secrets_from_joiner(s, gs.joiner_secret, ctx.encode())
        verify_confirmation_tag(
            s, secrets.confirmation_key, ctx.confirmed_transcript_hash, gi.confirmation_tag
        )
        with pytest.raises(DecryptionError):
            decrypt_group_info(s, welcome, bytes(32))


# --- message protection ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["application", "proposal", "commit"])
def test_message_protection_private(name: str) -> None:
    entries = load("message-protection.json")
    assert suites_seen(entries) == {1, 3}
    for v in entries:
        s = suite_of(v)
        gc = GroupContext(
            v["cipher_suite"],
            h(v["group_id"]),
            v["epoch"],
            h(v["tree_hash"]),
            h(v["confirmed_transcript_hash"]),
        ).encode()
        raw = h(v[f"{name}_priv"])
        msg = PrivateMessage.decode(raw)
        assert msg.encode() == raw
        assert (msg.group_id, msg.epoch) == (h(v["group_id"]), v["epoch"])
        expected = h(v[name])

        def fixed_body(r: Reader, size: int = len(expected)) -> bytes:
            return r.fixed(size, "body")

        reader = read_application_data if name == "application" else fixed_body
        tree = SecretTree(s, h(v["encryption_secret"]), 2)
        opened, lookup = open_private_message(
            s, msg, sender_data_secret=h(v["sender_data_secret"]), secret_tree=tree, body_reader=reader
        )
        assert opened.parsed == expected
        assert opened.content.sender == 1
        assert (
            opened.content.content_type
            == {
                "application": ContentType.APPLICATION,
                "proposal": ContentType.PROPOSAL,
                "commit": ContentType.COMMIT,
            }[name]
        )
        assert (opened.confirmation_tag is not None) == (name == "commit")
        verify_framed_content(
            s, h(v["signature_pub"]), WireFormat.PRIVATE_MESSAGE, opened.content, gc, opened.signature
        )
        with pytest.raises(SignatureError):
            verify_framed_content(
                s, h(v["signature_pub"]), WireFormat.PUBLIC_MESSAGE, opened.content, gc, opened.signature
            )
        tree.commit(lookup)
        # Once consumed, the same message is a replay.
        sd = decrypt_sender_data(s, msg, h(v["sender_data_secret"]))
        assert sd.leaf == 1
        with pytest.raises(ProtocolError):
            tree.lookup(sd.leaf, ratchet_kind(msg.content_type), sd.generation)
        # The same key via the two-step API.
        fresh = SecretTree(s, h(v["encryption_secret"]), 2)
        lk = fresh.lookup(sd.leaf, ratchet_kind(msg.content_type), sd.generation)
        again = decrypt_content(s, msg, sd, lk.key, lk.nonce, reader)
        assert again == opened


@pytest.mark.parametrize("name", ["proposal", "commit"])
def test_message_protection_public(name: str) -> None:
    """PublicMessage = header || FramedContent || V(signature) || [V(tag)] || V(membership_tag)."""
    entries = load("message-protection.json")
    for v in entries:
        s = suite_of(v)
        gc = GroupContext(
            v["cipher_suite"],
            h(v["group_id"]),
            v["epoch"],
            h(v["tree_hash"]),
            h(v["confirmed_transcript_hash"]),
        ).encode()
        ct = ContentType.PROPOSAL if name == "proposal" else ContentType.COMMIT
        content = FramedContent(h(v["group_id"]), v["epoch"], 1, b"", ct, h(v[name]))
        raw = h(v[f"{name}_pub"])
        head = b"\x00\x01\x00\x01" + content.encode()
        assert raw.startswith(head)  # our FramedContent encoding is byte-exact
        r = Reader(raw[len(head) :], "PublicMessage")
        signature = r.opaque_exact("signature", 64)
        tag = r.opaque_exact("confirmation_tag", 32) if ct == ContentType.COMMIT else None
        mtag = r.opaque_exact("membership_tag", 32)
        r.end()
        verify_framed_content(s, h(v["signature_pub"]), WireFormat.PUBLIC_MESSAGE, content, gc, signature)
        key = h(v["membership_key"])
        assert membership_tag(s, key, content, gc, signature, tag) == mtag
        verify_membership_tag(s, key, content, gc, signature, tag, mtag)
        with pytest.raises(ConfirmationError):
            verify_membership_tag(s, key, content, gc, signature, tag, bytes(32))
