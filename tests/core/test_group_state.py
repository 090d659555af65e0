"""A member's stored group state (``Group.export_state`` / ``Group.restore``, docs/protocol.md §12).

A restored member is the member it was: it reads what is sent after the export, the others read
what it sends, it applies the next commit and commits itself, in tree and ring groups. It never
reuses a ratchet generation it used before the export; bytes that are truncated, trailing,
corrupted or malformed are refused with a ``DecodeError`` and no group; a commit in flight is
stored and applied (or rebuilt) on its echo; a ring run in progress or an undrained outbox refuses
to be stored, saying why; and a state stored before a removal reads nothing after it (the keeper
adversary).
"""

from __future__ import annotations

import contextlib

import pytest
from group_harness import Harness, Sent, assert_cannot_derive_epoch, assert_cannot_read, fingerprint
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ring_room import grown

from groupchat.core.admission import NewInvite, RemovalCode, RemovalReason
from groupchat.core.codec import Reader, Writer
from groupchat.core.epoch.persist import STATE_VERSION, STATE_WIRE_FORMAT
from groupchat.core.epoch.state import GroupConfig
from groupchat.core.errors import (
    ConfigError,
    DecodeError,
    EpochError,
    GroupChatError,
    InvalidValueError,
    ReplayError,
    TrailingDataError,
    UnknownVersionError,
    UsageError,
)
from groupchat.core.events import EpochChanged, MessageEchoed, MessageReceived, RemovedFromGroup
from groupchat.core.group import Group
from groupchat.core.identity import Identity
from groupchat.core.suite import CipherSuite
from groupchat.lab.clock import ManualClock

_LABEL = b"groupchat v1 stored group state"


def restore(group: Group) -> Group:
    """``group`` stored and restored (with its own identity and config)."""
    return Group.restore(group.export_state(), group._identity, group.config)


def swap(h: Harness, name: str) -> Group:
    """Replace ``name`` in the room by its restored copy; return the original (no longer in the room)."""
    original = h.members[name]
    h.members[name] = restore(original)
    return original


def reseal(inner: bytes, version: int = STATE_VERSION) -> bytes:
    """A stored state around the body ``inner``, with a correct checksum (to reach the body's checks)."""
    body = Writer().u16(version).u16(STATE_WIRE_FORMAT).opaque(inner).bytes()
    return body + CipherSuite(1).hash(_LABEL + body)


def inner_of(data: bytes) -> bytes:
    r = Reader(data)
    r.u16()
    r.u16()
    return r.opaque("body", 1 << 30)


# --- tree groups -------------------------------------------------------------------------------


def test_restored_tree_member_behaves_like_the_original(h: Harness) -> None:
    h.update("m1")
    h.remove("m0", "m4")
    h.check_send("m2", b"before the export")
    original = swap(h, "m2")
    restored = h.members["m2"]
    assert restored.epoch == original.epoch and restored.my_leaf == original.my_leaf
    assert restored.epoch_authenticator == original.epoch_authenticator
    assert restored.export_secret(b"x", b"", 32) == original.export_secret(b"x", b"", 32)
    assert restored.taint_record() == original.taint_record()
    # The admission state (with the departed m4's init key on the used list) came with the context.
    assert restored.admission.used_init_keys and restored.admission == original.admission
    # It reads what is sent after the export, exactly as the original does.
    data, events = h.send("m0", b"after the export")
    twin = original.receive(data)
    assert isinstance(events["m2"], MessageReceived) and isinstance(twin, MessageReceived)
    assert (events["m2"].plaintext, events["m2"].generation) == (twin.plaintext, twin.generation)
    # The others read what it sends; it applies the next commit, and commits itself.
    h.check_send("m2", b"from the restored member")
    h.update("m3")
    h.commit("m2", add=["m9"], update=True)
    h.remove("m2", "m1")
    h.assert_consistent(senders=h.members)


def test_a_restored_joiner_still_owes_its_first_update(h: Harness) -> None:
    (joiner,) = h.add("m0")
    assert h.members[joiner].tainted_by(h.leaf(joiner)) == h.leaf("m0")
    swap(h, joiner)
    restored = h.members[joiner]
    assert restored.holds_init_key
    # Its adder is removed first: the remover seals its re-keyed leaf to the stored init key.
    h.remove("m1", "m0")
    assert restored.tainted_by(restored.my_leaf) == h.leaf("m1")
    (out,) = restored.data_to_send()  # the taint rule's first Update, as before the restart
    h.deliver(out.data)
    assert restored.tainted_by(restored.my_leaf) is None and not restored.holds_init_key
    h.assert_consistent(senders=h.members)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["send", "update", "add", "remove"]), st.integers(0, 1000)),
        max_size=6,
    ),
    pick=st.integers(0, 1000),
    in_flight=st.booleans(),
)
def test_round_trip_at_any_epoch(steps: list[tuple[str, int]], pick: int, in_flight: bool) -> None:
    h = Harness(GroupConfig(clock=ManualClock()))  # a still clock: the previous epoch's age is exact
    h.add("m0", 2)
    for op, n in steps:
        names = sorted(h.members)
        actor = names[n % len(names)]
        if op == "send":
            h.check_send(actor, b"x" * (n % 50))
        elif op == "update":
            h.update(actor)
        elif op == "add":
            h.add(actor)
        elif len(names) > 2:
            h.remove(actor, names[(n + 1) % len(names)])
    name = sorted(h.members)[pick % len(h.members)]
    data = h.members[name].commit(update=True) if in_flight else None
    original = swap(h, name)
    restored = h.members[name]
    assert fingerprint(restored)[1:] == fingerprint(original)[1:]
    assert restored.export_state() == original.export_state()  # a fixed point: nothing lost
    if data is not None:  # the stored commit's echo: applied by the restored member as by the original
        ev, twin = h.deliver(data)[name], original.receive(data)
        assert isinstance(ev, EpochChanged) and isinstance(twin, EpochChanged) and ev.own
        assert ev.epoch_authenticator == twin.epoch_authenticator
    h.assert_consistent(senders=[name, next(n for n in h.members if n != name)])
    h.update(name)
    h.assert_consistent(senders=[name])


def test_restored_member_never_reuses_a_generation(h: Harness) -> None:
    sent = [h.check_send("m1", b"%d" % i) for i in range(5)]
    assert sent
    swap(h, "m1")
    generations = []
    for i in range(5):
        _, events = h.send("m1", b"again %d" % i)
        ev = events["m0"]
        assert isinstance(ev, MessageReceived), ev
        generations.append(ev.generation)
    # The restored ratchet goes on from where the export left it: generations 5..9, never 0..4.
    assert generations == list(range(5, 10))


def test_store_before_send_makes_a_crash_harmless(h: Harness) -> None:
    """The rule the store follows: encrypt, store, then send. A crash before the store loses an
    unsent ciphertext (re-encrypting reuses nothing that left); a stale store would reuse one."""
    g = h.members["m1"]
    stored = g.export_state()
    lost = g.encrypt(b"never sent: the process died before storing")  # generation 0, dropped
    assert lost
    h.members["m1"] = Group.restore(stored, g._identity, g.config)
    _, events = h.send("m1", b"after the restart")
    ev = events["m0"]
    assert isinstance(ev, MessageReceived) and ev.generation == 0  # generation 0 left once
    # The control: storing *after* sending is what must not happen. A state stored before a sent
    # message reuses its generation, and every receiver refuses the second use.
    stale = Group.restore(stored, g._identity, g.config)
    again = stale.encrypt(b"a second message under generation 0")
    with pytest.raises(ReplayError):
        h.members["m0"].receive(again)


def test_restored_member_recognises_the_echo_of_what_it_sent_before(h: Harness) -> None:
    data = h.members["m3"].encrypt(b"in flight when stored")
    swap(h, "m3")
    events = h.deliver(data)
    assert isinstance(events["m3"], MessageEchoed)
    assert isinstance(events["m0"], MessageReceived)


def test_previous_epoch_keys_are_kept_with_their_age() -> None:
    clock = ManualClock()
    h = Harness(GroupConfig(clock=clock))
    h.add("m0", 2)
    late = [
        h.members["m1"].encrypt(b"sent at the old epoch, ordered after the commit %d" % i) for i in (1, 2)
    ]
    h.update("m0")
    clock.advance(10)
    swap(h, "m2")
    ev = h.members["m2"].receive(late[0])  # the retained previous epoch came through the store
    assert isinstance(ev, MessageReceived) and ev.epoch == h.epoch - 1
    # Its TTL (30 s) counts from the epoch's start, stored as an age: 10 s of it had passed.
    clock.advance(21)
    with pytest.raises(EpochError):
        h.members["m2"].receive(late[1])


def test_a_large_group_round_trips() -> None:
    h = Harness(GroupConfig(clock=ManualClock()))
    h.add("m0", 40)
    h.remove("m7", "m3", "m20")
    for name in ("m0", "m33", "m40"):
        original = swap(h, name)
        assert h.members[name].export_state() == original.export_state()
    h.assert_consistent(senders=["m0", "m33", "m40"])


# --- ring groups -------------------------------------------------------------------------------


def test_restored_ring_member_behaves_like_the_original() -> None:
    room = grown(3)
    original = room.members["m1"]
    room.members["m1"] = restore(original)
    assert room.members["m1"].scheme == "ring"
    assert room.members["m1"].epoch_authenticator == original.epoch_authenticator
    room.assert_agreement()
    room.commit("m0", add=["m3"])
    room.pump()
    room.assert_agreement()
    room.commit("m1", update=True)
    room.pump()
    room.assert_agreement()
    room.commit("m1", add=["m4"], remove=["m0"])  # its Welcome carries the restored init_secret
    room.pump()
    room.assert_agreement()
    assert room.members["m1"].epoch == original.epoch + 3
    assert {m.display_name for m in room.members["m1"].members()} == {"m1", "m2", "m3", "m4"}


def test_ring_member_refuses_to_store_during_an_agreement() -> None:
    room = grown(3)
    room.offline.add("m2")  # the run cannot finish without m2
    room.commit("m0", update=True)
    room.pump()
    g = room.members["m1"]
    assert g._ring is not None
    refusal = r"ring is agreeing epoch \d+: a run in progress cannot be stored or resumed"
    with pytest.raises(UsageError, match=refusal):
        g.export_state()
    room.offline.discard("m2")
    room.pump()
    room.assert_agreement()
    assert restore(g).epoch == g.epoch  # once the epoch is entered, it stores


def test_an_undrained_outbox_is_not_stored(h: Harness) -> None:
    g = h.members["m0"]
    joiner = h.join_request("m9")
    h.expect([joiner])
    h.deliver(g.commit(add=[joiner.request]))
    with pytest.raises(UsageError, match=r"data_to_send\(\) has messages to send first"):
        g.export_state()  # the Welcome is still in the outbox
    h.admit("m0", [joiner])
    assert restore(g).epoch == g.epoch


def test_a_commit_in_flight_is_stored_and_applied_on_its_echo(h: Harness) -> None:
    g = h.members["m1"]
    joiner = h.join_request("m9")
    reasons = {h.leaf("m2"): RemovalReason(RemovalCode.KICKED)}
    invite = NewInvite(bytes(range(32)), uses=2, label="for later")
    data = g.commit(
        add=[joiner.request], remove=[h.leaf("m2")], update=True, reasons=reasons, invite=[invite]
    )
    stored = g.export_state()
    original = swap(h, "m1")
    restored = h.members["m1"]
    assert restored.export_state() == stored  # a fixed point, the pending commit included
    assert restored._pending is not None and original._pending is not None
    assert restored._pending.intent == original._pending.intent
    assert restored._pending.admission == original._pending.admission
    h.expect([joiner])
    events = h.deliver(data)  # the echo: the restored member applies its own commit
    twin = original.receive(data)
    ev = events["m1"]
    assert isinstance(ev, EpochChanged) and ev.own and isinstance(twin, EpochChanged)
    assert ev.epoch_authenticator == twin.epoch_authenticator == restored.epoch_authenticator
    assert ev.removal_reasons == twin.removal_reasons and ev.invites_created == twin.invites_created
    # The Welcome, sealed before the export, is released from the restored outbox alike.
    assert [o.data for o in restored._outbox] == [o.data for o in original._outbox] != []
    del h.members["m2"]
    h.admit("m1", [joiner])
    h.assert_consistent(senders=h.members)


def test_a_stored_commit_moving_a_member_to_a_lower_leaf_applies(h: Harness) -> None:
    """The draft's order is kept: the member leaves leaf 4 before it takes leaf 1 (sorted by leaf,
    the replay would find its identity twice)."""
    h.remove("m0", "m1")  # leaf 1 is free
    bob = h.members["m4"]._identity
    again = h.join_request("bob", identity=bob)
    data = h.members["m2"].commit(add=[again.request], remove=[h.leaf("m4")])
    swap(h, "m2")
    del h.members["m4"]
    h.expect([again])
    h.deliver(data)
    h.admit("m2", [again])
    assert h.leaf("bob") == 1
    h.assert_consistent(senders=h.members)


def test_a_stored_commit_that_loses_its_epoch_is_rebuilt(h: Harness) -> None:
    g = h.members["m1"]
    joiner = h.join_request("m9")
    g.commit(add=[joiner.request])
    swap(h, "m1")
    restored = h.members["m1"]
    h.update("m3")  # wins the epoch the stored commit was built on
    assert restored._pending is None and restored._rebuild is not None
    (out,) = restored.data_to_send()  # the add, rebuilt on the new epoch from the stored intent
    h.expect([joiner])
    h.deliver(out.data)
    h.admit("m1", [joiner])
    h.assert_consistent(senders=h.members)


def test_a_ring_commit_in_flight_is_stored() -> None:
    room = grown(3)
    data = room.members["m1"].commit(update=True)
    room.members["m1"] = restore(room.members["m1"])
    room.send("m1", data)
    room.pump()
    room.assert_agreement()
    assert room.members["m1"].epoch == room.members["m0"].epoch


def test_ring_joiner_refuses_to_store_before_its_first_epoch() -> None:
    room = grown(2)
    room.offline.add("m1")  # the run creating the joiner's first epoch cannot finish
    room.commit("m0", add=["m2"])
    room.pump()
    joiner = room.members["m2"]
    assert joiner.joining
    with pytest.raises(UsageError, match="still agreeing our first epoch"):
        joiner.export_state()
    room.offline.discard("m1")
    room.pump()
    room.members["m2"] = restore(joiner)
    room.assert_agreement()


# --- refusals ------------------------------------------------------------------------------------


@pytest.fixture
def stored() -> tuple[bytes, Group]:
    h = Harness()
    h.add("m0", 1)
    h.check_send("m1", b"hi")
    g = h.members["m1"]
    return g.export_state(), g


def test_every_truncation_and_trailing_byte_is_refused(
    stored: tuple[bytes, Group], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, g = stored
    made: list[object] = []
    init = Group.__init__

    def counting(self: Group, **kwargs: object) -> None:
        made.append(self)
        init(self, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Group, "__init__", counting)
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            Group.restore(data[:cut], g._identity, g.config)
    with pytest.raises(TrailingDataError):
        Group.restore(data + b"\x00", g._identity, g.config)
    assert made == []  # no group was even begun
    assert isinstance(Group.restore(data, g._identity, g.config), Group) and len(made) == 1  # control


def test_every_corrupted_byte_is_refused(stored: tuple[bytes, Group]) -> None:
    data, g = stored
    for i in range(len(data)):
        bad = data[:i] + bytes((data[i] ^ 0x01,)) + data[i + 1 :]
        with pytest.raises(DecodeError):
            Group.restore(bad, g._identity, g.config)


def test_version_and_tag_are_checked_first(stored: tuple[bytes, Group]) -> None:
    data, g = stored
    with pytest.raises(UnknownVersionError, match="version 3"):
        Group.restore(b"\x00\x03" + data[2:], g._identity, g.config)
    with pytest.raises(InvalidValueError, match="tag"):
        Group.restore(data[:2] + b"\x00\x01" + data[4:], g._identity, g.config)


def test_a_version_1_state_without_the_completed_ring_is_still_read(stored: tuple[bytes, Group]) -> None:
    """Version 2 only appended the ring that made the epoch (absent: one 0 byte); version 1 ends
    before it, and stores written by it restore as they were."""
    data, g = stored
    inner = inner_of(data)
    assert inner.endswith(b"\x00")  # a tree group: no completed ring
    restored = Group.restore(reseal(inner[:-1], version=1), g._identity, g.config)
    assert restored.epoch == g.epoch and restored.epoch_authenticator == g.epoch_authenticator
    with pytest.raises(DecodeError):  # version 2 needs the field: a v1 body under v2 is truncated
        Group.restore(reseal(inner[:-1]), g._identity, g.config)


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(0, 10_000), extra=st.binary(min_size=1, max_size=8))
def test_a_malformed_body_is_refused_even_with_a_good_checksum(cut: int, extra: bytes) -> None:
    identity = Identity.generate()
    g = Group.create(identity, b"room", "solo")
    inner = inner_of(g.export_state())
    with pytest.raises(DecodeError):
        Group.restore(reseal(inner[: cut % len(inner)]), identity, g.config)
    with pytest.raises(DecodeError):
        Group.restore(reseal(inner + extra), identity, g.config)


@pytest.fixture(scope="module")
def rich() -> list[tuple[bytes, Group]]:
    """Stored states of a tree member (a previous epoch, skipped keys, a tainted leaf) and a ring member."""
    h = Harness(GroupConfig(clock=ManualClock()))
    h.add("m0", 3)
    late = h.members["m2"].encrypt(b"skipped")
    h.check_send("m2", b"read")
    h.commit("m1", remove=["m3"], add=["m5"])
    assert late  # never delivered: its key stays in the previous epoch's skipped window
    room = grown(3)
    states = [(g.export_state(), g) for g in (h.members["m1"], room.members["m2"])]
    # With commits in flight: an add, a remove with its reason and an invite; a ring update.
    g = h.members["m2"]
    g.commit(
        add=[h.join_request("m8").request],
        remove=[h.leaf("m5")],
        reasons={h.leaf("m5"): RemovalReason(RemovalCode.LEFT)},
        invite=[NewInvite(bytes(32), uses=3)],
    )
    room.members["m1"].commit(update=True)
    return [*states, (g.export_state(), g), (room.members["m1"].export_state(), room.members["m1"])]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, 3), at=st.integers(0, 1 << 20), flip=st.integers(1, 255))
def test_a_mutated_body_is_refused_or_restored_never_crashes(
    rich: list[tuple[bytes, Group]], which: int, at: int, flip: int
) -> None:
    """With the checksum recomputed (the store's AEAD is what really guards it), a flipped byte is
    either refused with a GroupChatError (a DecodeError when the structure breaks) or, in a secret,
    restores a group: never another exception."""
    data, g = rich[which]
    inner = bytearray(inner_of(data))
    inner[at % len(inner)] ^= flip
    with contextlib.suppress(GroupChatError):
        assert isinstance(Group.restore(reseal(bytes(inner)), g._identity, g.config), Group)


def test_another_identity_or_config_is_refused(stored: tuple[bytes, Group]) -> None:
    data, g = stored
    with pytest.raises(UsageError, match="not ours"):
        Group.restore(data, Identity.generate(), g.config)
    with pytest.raises(ConfigError, match="label prefix"):
        Group.restore(data, g._identity, GroupConfig(label_prefix=b"other "))


def test_removed_member_cannot_be_stored(h: Harness) -> None:
    doomed = h.members["m4"]
    h.remove("m0", "m4")
    with pytest.raises(UsageError, match="no longer a member"):
        doomed.export_state()


# --- the keeper ------------------------------------------------------------------------------------


def test_a_state_stored_before_a_removal_reads_nothing_after_it(h: Harness) -> None:
    data = h.members["m3"].export_state()
    identity, config = h.members["m3"]._identity, h.members["m3"].config
    result = h.remove("m0", "m3")
    h.update("m1")
    message = h.check_send("m0", b"after m3 left")
    kept = Group.restore(data, identity, config)
    assert_cannot_derive_epoch(kept, h.members["m0"])
    assert_cannot_read(kept, Sent.of(h.members["m0"], message))
    # And the removing commit, replayed to the restored state, removes it.
    assert isinstance(Group.restore(data, identity, config).receive(result.message), RemovedFromGroup)
