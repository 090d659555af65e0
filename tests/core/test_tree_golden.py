"""Golden vectors pinning the TGDH tree scheme and the key schedule on top of it.

Everything here is deterministic: identities come from fixed seeds, and every random byte the
core asks for comes from a counter-mode SHA-256 DRBG passed as ``GroupConfig(rand=...)``.
(HPKE in welcomes uses pyca's internal randomness, which cannot be injected; no pinned value
depends on it: joining is deterministic given the welcome's *plaintext*.)

* ``test_group_scenario_matches_golden``: create, add 3 in one commit, remove 1, update by
  another member, one application message. Per epoch we pin the tree hash, the epoch
  authenticator, an exporter value (all of which depend on the commit secret), the exact commit
  bytes and a hash of the public tree; plus the join requests and the message ciphertext.
* ``test_build_path_four_leaves_matches_golden``: ``RatchetTree.build_path`` on a 4-leaf tree,
  pinning every node's public key, the returned path keys and root secrets, the tree hash and
  the commit secret.
* ``test_node_derivation_follows_the_documented_formula``: recomputes the 4-leaf tree's parent
  keys and root secret with an independent HKDF implementation of the formula in the
  ``groupchat.core.schemes.tree.ratchet_tree`` docstring.

Any change to the scheme, its labels, encodings or the order of random draws changes these
values. If the change is intended, regenerate with ``GROUPCHAT_REGEN_GOLDEN=1 pytest
tests/core/test_tree_golden.py`` and review the diff of ``tests/core/golden/tree_scheme.json``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from group_harness import welcome_for

from groupchat.core import tree_math
from groupchat.core.events import EpochChanged, MessageReceived, RemovedFromGroup
from groupchat.core.group import Group, GroupConfig
from groupchat.core.identity import Identity, JoinRequest
from groupchat.core.schemes.tree.ratchet_tree import PathSecrets, RatchetTree
from groupchat.core.suite import GROUPCHAT_PREFIX

GOLDEN = Path(__file__).parent / "golden" / "tree_scheme.json"
REGEN = os.environ.get("GROUPCHAT_REGEN_GOLDEN") == "1"
GROUP_ID = b"golden-room"
GOLDEN_TIME = 1_800_000_000  # the wall clock of every golden join request (2027-01-15 08:00 UTC)


def golden_clock() -> float:
    return float(GOLDEN_TIME)


class Drbg:
    """rand(n) = the next n bytes of SHA-256(seed || counter) for counter = 0, 1, 2, ..."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0
        self._buffer = b""

    def __call__(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._buffer += hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out


def identity(name: str) -> Identity:
    return Identity.from_private_bytes(hashlib.sha256(b"golden identity " + name.encode()).digest())


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def epoch_record(group: Group) -> dict[str, Any]:
    return {
        "epoch": group.epoch,
        "tree_hash": group.tree_hash.hex(),
        "epoch_authenticator": group.epoch_authenticator.hex(),
        "exporter": group.export_secret(b"golden", b"ctx", 32).hex(),
        "public_tree_sha256": sha(group._tree.encode()),
    }


def deliver(members: dict[str, Group], commit: bytes) -> dict[str, Any]:
    events = {n: g.receive(commit) for n, g in list(members.items())}
    for name, ev in events.items():
        if isinstance(ev, RemovedFromGroup):
            del members[name]
    auths = {ev.epoch_authenticator for ev in events.values() if isinstance(ev, EpochChanged)}
    assert len(auths) == 1
    return events


def scenario() -> dict[str, Any]:
    rand = Drbg(b"groupchat golden scenario v1")
    config = GroupConfig(rand=rand, wall_clock=golden_clock)
    suite = config.suite()
    out: dict[str, Any] = {"epochs": [], "commits": []}
    alice = Group.create(identity("alice"), GROUP_ID, "alice", config)
    members = {"alice": alice}
    out["epochs"].append(epoch_record(alice))

    pjs = [
        JoinRequest.create(suite, identity(n), GROUP_ID, n, rand, wall_clock=golden_clock)
        for n in ("bob", "carol", "dave")
    ]
    out["join_requests"] = [pj.request.encoded.hex() for pj in pjs]
    add = alice.commit(add=[pj.request for pj in pjs])
    deliver(members, add)
    welcome = welcome_for(alice, *pjs)
    for pj in pjs:
        members[pj.request.display_name] = Group.join(pj, welcome, config)
    out["commits"].append(add.hex())
    out["epochs"].append(epoch_record(alice))

    remove = alice.commit(remove=[members["carol"].my_leaf])
    deliver(members, remove)
    assert sorted(members) == ["alice", "bob", "dave"]
    out["commits"].append(remove.hex())
    out["epochs"].append(epoch_record(alice))

    update = members["bob"].commit(update=True)
    deliver(members, update)
    out["commits"].append(update.hex())
    out["epochs"].append(epoch_record(alice))
    for g in members.values():
        assert epoch_record(g) == out["epochs"][-1]

    message = members["dave"].encrypt(b"golden message")
    ev = alice.receive(message)
    assert isinstance(ev, MessageReceived) and ev.plaintext == b"golden message"
    out["message"] = message.hex()
    return out


def four_leaf_secrets() -> list[bytes]:
    return [hashlib.sha256(b"golden leaf secret %d" % i).digest() for i in range(5)]


def four_leaf() -> tuple[RatchetTree, dict[str, Any]]:
    config = GroupConfig()
    suite = config.suite()
    rand = Drbg(b"groupchat golden four leaves v1")
    requests = [
        JoinRequest.create(
            suite, identity(f"leaf{i}"), GROUP_ID, f"leaf{i}", rand, wall_clock=golden_clock
        ).request
        for i in range(4)
    ]
    secrets = four_leaf_secrets()
    tree = RatchetTree(suite, 4)
    out: dict[str, Any] = {"builds": []}
    capture = PathSecrets(3)
    for i in range(4):
        pubs, root = tree.build_path(i, secrets[i], requests[i], capture if i == 3 else None)
        out["builds"].append({"leaf": i, "path": [p.hex() for p in pubs], "root_secret": root.hex()})
    out["nodes"] = [None if tree.own_key(x) is None else tree.own_key(x).hex() for x in range(7)]
    out["tree_hash"] = tree.tree_hash.hex()
    out["commit_secret"] = tree.commit_secret(capture).hex()
    out["captured_nodes"] = sorted(capture.secrets)
    pubs, root = tree.build_path(1, secrets[4], requests[1], None)  # leaf 1 updates
    out["update"] = {"leaf": 1, "path": [p.hex() for p in pubs], "root_secret": root.hex()}
    out["tree_hash_after_update"] = tree.tree_hash.hex()
    return tree, out


def compute() -> dict[str, Any]:
    return {"scenario": scenario(), "four_leaf": four_leaf()[1]}


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    if REGEN:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(compute(), indent=1, sort_keys=True) + "\n")
    return json.loads(GOLDEN.read_text())


def test_scenario_is_deterministic() -> None:
    """No hidden randomness outside the injected rand (a precondition for the vectors)."""
    assert scenario() == scenario()


def test_group_scenario_matches_golden(golden: dict[str, Any]) -> None:
    got = scenario()
    want = golden["scenario"]
    assert got["join_requests"] == want["join_requests"]
    for i, (g, w) in enumerate(zip(got["epochs"], want["epochs"], strict=True)):
        assert g == w, f"epoch record {i} differs"
    for i, (g, w) in enumerate(zip(got["commits"], want["commits"], strict=True)):
        assert g == w, f"commit {i} bytes differ"
    assert got["message"] == want["message"]
    assert got == want


def test_build_path_four_leaves_matches_golden(golden: dict[str, Any]) -> None:
    _, got = four_leaf()
    want = golden["four_leaf"]
    assert got["nodes"] == want["nodes"]
    assert got["builds"] == want["builds"]
    assert got == want


# --- an independent implementation of the documented node formula -------------------------------


def _hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), "sha256").digest()
        out += block
        i += 1
    return out[:length]


def _v(data: bytes) -> bytes:
    """opaque<V> with the RFC 9420 §2.1.2 minimal varint length (1 or 2 bytes here)."""
    n = len(data)
    assert n < 1 << 14
    return (bytes([n]) if n < 64 else (0x4000 | n).to_bytes(2, "big")) + data


def _expand_with_label(secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
    info = length.to_bytes(2, "big") + _v(GROUPCHAT_PREFIX + label) + _v(context)
    return _hkdf_expand(secret, info, length)


def _pub(secret: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes_raw()


def _parent(secret_mine: bytes, pub_other: bytes, pk_left: bytes, pk_right: bytes) -> bytes:
    """secret(P) = ExpandWithLabel(Extract(0, X25519(sk, pk_other)), "tgdh node", V(pk_L)||V(pk_R), 32)."""
    sk = X25519PrivateKey.from_private_bytes(secret_mine)
    dh = sk.exchange(X25519PublicKey.from_public_bytes(pub_other))
    prk = hmac.new(bytes(32), dh, "sha256").digest()
    return _expand_with_label(prk, b"tgdh node", _v(pk_left) + _v(pk_right), 32)


def test_node_derivation_follows_the_documented_formula() -> None:
    tree, out = four_leaf()
    s = four_leaf_secrets()
    pk = [_pub(x) for x in s[:4]]
    assert [tree.leaf_key(i) for i in range(4)] == [pk[0], _pub(s[4]), pk[2], pk[3]]  # leaf 1 updated last
    n1 = _parent(s[0], pk[1], pk[0], pk[1])
    assert n1 == _parent(s[1], pk[0], pk[0], pk[1])  # both children compute the same secret
    n5 = _parent(s[3], pk[2], pk[2], pk[3])
    root = _parent(n5, _pub(n1), _pub(n1), _pub(n5))
    assert out["nodes"] == [x.hex() for x in (pk[0], _pub(n1), pk[1], _pub(root), pk[2], _pub(n5), pk[3])]
    assert out["builds"][3]["root_secret"] == root.hex()
    assert out["builds"][3]["path"] == [pk[3].hex(), _pub(n5).hex(), _pub(root).hex()]
    commit_secret = _expand_with_label(root, b"tgdh commit", b"", 32)
    assert out["commit_secret"] == commit_secret.hex()
    # Leaf 1 updates: its parent and the root are recomputed, leaf 0's side is untouched.
    pk1 = _pub(s[4])
    n1b = _parent(s[4], pk[0], pk[0], pk1)
    root_b = _parent(n1b, _pub(n5), _pub(n1b), _pub(n5))
    assert out["update"]["path"] == [pk1.hex(), _pub(n1b).hex(), _pub(root_b).hex()]
    assert out["update"]["root_secret"] == root_b.hex()


def test_pass_through_nodes_before_the_tree_fills() -> None:
    """With leaves 2 and 3 blank, node 5 owns no key and passes leaf 2's key up once it is used."""
    config = GroupConfig()
    tree = RatchetTree(config.suite(), 4)
    s = four_leaf_secrets()
    rand = Drbg(b"pass-through")
    suite = config.suite()
    reqs = [
        JoinRequest.create(suite, identity(f"p{i}"), GROUP_ID, f"p{i}", rand, wall_clock=golden_clock).request
        for i in range(3)
    ]
    pubs, root = tree.build_path(0, s[0], reqs[0], None)
    assert pubs == [_pub(s[0])] and root == s[0]  # alone: every parent passes through
    assert tree.own_key(1) is None and tree.own_key(3) is None and tree.effective_key(3) == _pub(s[0])
    tree.build_path(1, s[1], reqs[1], None)
    pubs, root = tree.build_path(2, s[2], reqs[2], None)
    n1 = _parent(s[1], _pub(s[0]), _pub(s[0]), _pub(s[1]))
    assert tree.own_key(5) is None and tree.effective_key(5) == _pub(s[2])
    assert root == _parent(s[2], _pub(n1), _pub(n1), _pub(s[2]))
    assert pubs == [_pub(s[2]), _pub(root)]


def test_leaf_path_is_the_direct_path() -> None:
    """The path the tree climbs by (``tree_math.leaf_path``, siblings as 2p - c) is RFC 9420's
    direct path and sibling (``tree_math``, checked against the RFC vectors) in every perfect tree
    up to 2^7 leaves."""
    for log2 in range(8):
        n = 1 << log2
        for leaf in range(n):
            path = tree_math.leaf_path(leaf, n)
            assert list(path) == tree_math.direct_path(2 * leaf, n), (log2, leaf)
            for p, c in zip(path, [2 * leaf, *path], strict=False):
                assert 2 * p - c == tree_math.sibling(c, n)
