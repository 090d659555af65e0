"""No two members look alike: "bob" and "b\u043eb" (Cyrillic o) in one room, with real sessions.

Every notice about either carries its fingerprint suffix, and a command addresses exactly one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest
from session_room import Member, MemoryRoom

from groupchat.client import wording
from groupchat.client.names import AmbiguousMember, label_members
from groupchat.client.notices import ChatLine, Placeholder, RosterChanged, TimelineEvent, TimelineKind
from groupchat.client.session.inputs import KickRequested
from groupchat.lab.clock import ManualClock

IMPOSTOR = "b\u043eb"
# "bob" or its look-alike, not followed by a fingerprint suffix.
BARE = re.compile(r"\bb[o\u043e]b\b(?!·[0-9a-f]{4})")


def _settle_roster(room: MemoryRoom, clock: ManualClock, members: list[Member], n: int) -> None:
    for _ in range(30):
        if all(len(m.machine.roster()) == n and m.machine.quiet for m in members):
            return
        clock.advance(0.5)
        room.tick()
    raise AssertionError("the members never agreed on the roster")


@pytest.fixture
def three(room: MemoryRoom, clock: ManualClock) -> tuple[Member, Member, Member]:
    alice = room.add("alice")
    room.connect(alice)
    bob = room.add("bob")
    room.connect(bob)
    room.tick()
    impostor = room.add(IMPOSTOR)
    room.connect(impostor)
    _settle_roster(room, clock, [alice, bob, impostor], 3)
    return alice, bob, impostor


def _labels(*members: Member) -> dict[bytes, str]:
    return label_members((m.name, m.machine.identity.public_key) for m in members)


def _texts(notices: Sequence[object]) -> list[str]:
    out = []
    for n in notices:
        if isinstance(n, ChatLine):
            out.append(n.sender)
        elif isinstance(n, (TimelineEvent, Placeholder)):
            out.append(n.text)
        elif isinstance(n, RosterChanged):
            out.extend(e.name for e in n.members)
    return out


def test_lookalikes_are_shown_with_distinct_suffixes_in_every_notice(
    room: MemoryRoom, three: tuple[Member, Member, Member]
) -> None:
    alice, bob, impostor = three
    labels = _labels(alice, bob, impostor)
    bob_label = labels[bob.machine.identity.public_key]
    imp_label = labels[impostor.machine.identity.public_key]
    assert bob_label.startswith("bob·") and imp_label.startswith(f"{IMPOSTOR}·") and bob_label != imp_label
    assert labels[alice.machine.identity.public_key] == "alice"
    bob.machine.queue_text("it's me")
    impostor.machine.queue_text("no, it's me")
    room.tick()

    assert {e.name for e in alice.machine.roster()} == {"alice", bob_label, imp_label}
    lines = [n for n in alice.notices() if isinstance(n, ChatLine)]
    assert [(n.sender, n.text) for n in lines] == [(bob_label, "it's me"), (imp_label, "no, it's me")]
    # The join line and the warning name the impostor by its label, and the warning names bob's.
    assert any(t.startswith(f"{imp_label} joined") for t in alice.timeline())
    warnings = [
        n.text for n in alice.notices() if isinstance(n, TimelineEvent) and n.kind is TimelineKind.WARNING
    ]
    assert wording.lookalike_member(imp_label, (bob_label,)) in warnings
    assert not any("key changed" in w for w in warnings)
    # Our own lines (the glue shows them at once) carry our label too.
    assert bob.machine.own_label == bob_label and impostor.machine.own_label == imp_label
    assert alice.machine.own_label == "alice"
    # The /tree view names the leaves the same way.
    leaves = {n.label for n in alice.machine.tree_view().nodes if n.index % 2 == 0 and n.label}
    assert leaves == {"alice", bob_label, imp_label}
    # Every notice each member got since its roster first held both shows each with its suffix.
    for who in (alice, bob, impostor):
        notices = who.notices()
        both_in = next(
            i for i, n in enumerate(notices) if isinstance(n, RosterChanged) and len(n.members) == 3
        )
        texts = _texts(notices[both_in:])
        assert any(bob_label in t for t in texts) and any(imp_label in t for t in texts)
        assert [t for t in texts if BARE.search(t)] == []
    assert BARE.search("bob joined") and not BARE.search(f"{bob_label} joined")  # the check can fail

def test_kick_by_an_ambiguous_name_is_refused_and_a_label_kicks_the_right_one(
    room: MemoryRoom, three: tuple[Member, Member, Member], clock: ManualClock
) -> None:
    alice, bob, impostor = three
    labels = _labels(alice, bob, impostor)
    bob_key, imp_key = bob.machine.identity.public_key, impostor.machine.identity.public_key
    with pytest.raises(AmbiguousMember) as refused:
        alice.machine.member_named("bob")
    assert sorted(refused.value.candidates) == sorted([labels[bob_key], labels[imp_key]])
    assert labels[bob_key] in str(refused.value) and labels[imp_key] in str(refused.value)

    target = alice.machine.member_named(labels[imp_key])  # what /kick <impostor's label> resolves
    assert target.identity_key == imp_key
    room.feed(alice, KickRequested(target.identity_key, room.clock()))
    room.settle()
    assert impostor.stopped and not bob.stopped
    _settle_roster(room, clock, [alice, bob], 2)
    # Both tell the same story, naming the impostor by its label.
    for who, by in ((alice, "alice"), (bob, "alice")):
        assert any(t.startswith(f"{labels[imp_key]} was removed by {by}") for t in who.timeline())
    # alice's trust store still knows the impostor's key under a look-alike name: bob keeps his suffix.
    assert {e.name for e in alice.machine.roster()} == {"alice", labels[bob_key]}
    assert alice.machine.member_named("bob").identity_key == bob_key  # unambiguous again
