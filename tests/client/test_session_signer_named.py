"""The session says who signed a change it could not follow or verify, with the label it shows that
member by (a look-alike name carries its fingerprint), and that the member may be faulty or malicious.

The attack is real: bob's own group state builds an update whose path carries a made-up secret at
the node above alice and bob (docs/protocol.md §7), signed with bob's key, and it reaches the
room as bob's. Alice, below that node, refuses it; the member above it applies it.
"""

from __future__ import annotations

import copy

import pytest
from session_room import Member, MemoryRoom

from groupchat.client import wording
from groupchat.client.names import compact_fingerprint
from groupchat.client.room_payload import PayloadKind, RoomPayload
from groupchat.client.session.rejections import Outcome, commit_rejection, ring_rejection, welcome_unopened
from groupchat.core.errors import (
    ConfirmationError,
    InvalidValueError,
    InvalidWelcomeError,
    ProtocolError,
    TaintRuleError,
)
from groupchat.core.events import Member as CoreMember
from groupchat.core.group import Group
from groupchat.core.identity import fingerprint
from groupchat.core.schemes.ring_errors import WrongAttemptError
from groupchat.core.schemes.tree import ratchet_tree
from groupchat.relay_protocol import Deliver


def _copy(group: Group) -> Group:
    """A deep copy of a tree member's group (its suite, identity and config shared: immutable)."""
    shared = (group.suite, group._tree.suite, group._identity, group.config)
    return copy.deepcopy(group, {id(o): o for o in shared})


def _inconsistent_update(group: Group, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """``group``'s update commit with a made-up secret at its leaf's parent, the rest built on it."""
    real = ratchet_tree.node_secret
    calls: list[None] = []

    def first_made_up(*args: object) -> bytes:
        calls.append(None)
        return bytes(range(32)) if len(calls) == 1 else real(*args)  # type: ignore[arg-type]

    with monkeypatch.context() as m:
        m.setattr(ratchet_tree, "node_secret", first_made_up)
        return _copy(group).commit(update=True)


def test_a_refused_signed_change_names_its_committer_by_label(
    room: MemoryRoom, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob, twin = room.add("alice"), room.add("bob"), room.add("b\u043eb")  # Cyrillic o
    for m in (alice, bob, twin):
        room.connect(m)
        room.tick()
    room.tick()
    held = {m.name: m.machine._hold for m in (alice, bob, twin)}
    assert all(h is not None for h in held.values())
    groups = {name: h.group for name, h in held.items() if h is not None}
    assert [groups[n].my_leaf for n in ("alice", "bob", "b\u043eb")] == [0, 1, 2]
    assert len({g.epoch_authenticator for g in groups.values()}) == 1
    crafted = _inconsistent_update(groups["bob"], monkeypatch)
    epoch = groups["alice"].epoch
    payload = RoomPayload(PayloadKind.CORE, crafted).encode()
    d = Deliver(len(room.log) + 1, room.room, bob.mid, None, payload)
    room.log.append(d)
    for m in (alice, twin):  # bob's own session is not asked: it did not build this commit
        room.inbox.append((m, d))
    room.settle()

    (bob_member,) = [m for m in groups["alice"].members() if m.leaf == 1]
    label = alice.machine.label(bob_member)
    assert label.startswith("bob\u00b7") and bob_member.fingerprint.replace(" ", "").startswith(label[4:])
    lines = [t for t in alice.timeline() if "cannot be followed here" in t]
    assert len(lines) == 1, alice.timeline()
    assert lines[0].startswith(
        f"{label}'s change to the group cannot be followed here: their update is inconsistent"
    )
    assert "may be faulty or malicious" in lines[0]
    assert "asking to be re-added" in lines[0]  # the behaviour stays: cut off, re-added (the split helper's)
    assert groups["alice"].epoch == epoch  # refused: nothing changed
    assert groups["b\u043eb"].epoch == epoch + 1  # above the bad node: applied
    assert not [t for t in _timelines(alice, twin) if "cannot follow the last change" in t]


def _timelines(*members: Member) -> list[str]:
    return [t for m in members for t in m.timeline()]


def test_the_rejection_table_names_a_signer_and_only_a_signer() -> None:
    """Pure: a signed refusal names the committer's label; an unsigned one (a confirmation tag, a
    re-sealed welcome) keeps the words that name no one."""
    key = bytes(range(32))
    labels: list[int] = []

    def label(m: CoreMember) -> str:
        labels.append(m.leaf)
        return f"{m.display_name}\u00b7{compact_fingerprint(m.identity_key)[:4]}"

    rekey = TaintRuleError("re-key of our leaf 3 is not sealed to our init key for this group and epoch")
    rekey.signed_by(1, "mallory", key)
    r = commit_rejection(rekey, 5, False, False, label)
    who = f"mallory\u00b7{compact_fingerprint(key)[:4]}"
    assert r.outcome is Outcome.WARN and labels == [1]
    assert r.text.startswith(f"{who}'s change to the group could not be verified here: its re-keying breaks")
    assert "not sealed to our init key" in r.text and r.text.endswith("; ignored")
    unsigned = ConfirmationError("tag")
    assert commit_rejection(unsigned, 5, False, False, label).text.startswith("cannot follow the last change")
    assert labels == [1]

    welcome = InvalidWelcomeError("welcome's tree does not contain our join request").signed_by(
        1, "mallory", key
    )
    text = welcome_unopened([ProtocolError("not addressed to us"), welcome])
    assert text.startswith(f"a welcome for us from mallory ({fingerprint(key)}) could not be opened")
    assert "mallory may be faulty or malicious" in text
    assert welcome_unopened([InvalidWelcomeError("re-sealed")]) == wording.WELCOME_UNOPENED


def test_a_refused_signed_ring_message_names_its_sender_and_stale_ones_stay_quiet() -> None:
    key = bytes(32)
    bad = InvalidValueError("round-2 value is a low-order point")
    bad.signed_by(2, "mallory", key)
    r = ring_rejection(bad, lambda m: f"{m.display_name}!")
    assert r.outcome is Outcome.WARN
    assert r.text.startswith("mallory!'s ring message could not be verified here (round-2 value")
    assert r.text.endswith("mallory! may be faulty or malicious; ignored")
    stale = WrongAttemptError(0, 1, "'mallory'")
    stale.signed_by(2, "mallory", key)
    assert ring_rejection(stale, lambda m: "x").outcome is Outcome.IGNORE  # a normal outcome
    assert ring_rejection(InvalidValueError("?")).text == "ignored an invalid ring message: ?"
