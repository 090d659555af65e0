"""The agreed admission state: invites, proofs, the extension, commit changes and their refusals.

Real crypto, real groups on the harness's relay (tree scheme; the ring's paths are in
``test_admission_ring.py``). A refusal is mounted by a member that builds the bad commit itself
(its own checks patched out, so the commit is validly signed and confirmed) or by re-signing a
commit with altered changes; every receiver refuses it with the specific error and changes
nothing, and the next valid commit still applies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import pytest
from group_harness import Harness, fingerprint

from groupchat.core.admission import (
    ADMISSION_EXTENSION,
    DEFAULT_ADMISSION,
    MAX_INVITES,
    MAX_RETURNING,
    Admissibility,
    AdmissionChange,
    AdmissionOutcome,
    AdmissionState,
    Admit,
    ChangeType,
    Invite,
    NewInvite,
    RemovalCode,
    RemovalReason,
    Returning,
)
from groupchat.core.codec import Reader, Writer
from groupchat.core.commit import Commit, CommitMessage
from groupchat.core.epoch import state as epoch_state
from groupchat.core.epoch.wire import with_admission
from groupchat.core.errors import (
    AdmissionChangeError,
    ConfigError,
    DuplicateKeyError,
    FieldTooLargeError,
    GroupChatError,
    InvalidInviteCodeError,
    InvalidInviteError,
    InvalidValueError,
    UsageError,
)
from groupchat.core.events import EpochChanged, Event, RemovedFromGroup
from groupchat.core.group import Group
from groupchat.core.identity import Identity, JoinRequest, PendingJoin
from groupchat.core.invite import InviteSecret, prove, verify_proof
from groupchat.core.message_protection import ContentType, FramedContent, WireFormat, sign_framed_content
from groupchat.core.welcome import decode_extensions, encode_extensions

Add = PendingJoin | tuple[PendingJoin, InviteSecret]


def invite_secret(n: int) -> InviteSecret:
    return InviteSecret(bytes([n]) * 16)


def admit_of(h: Harness, pj: PendingJoin, secret: InviteSecret) -> Admit:
    return Admit(pj.request, secret.public_key, prove(secret, h.group_id, pj.request, h.suite))


def run(
    h: Harness, committer: str, *, add: Iterable[Add] = (), remove: Iterable[str] = (), **kw: object
) -> dict[str, Event]:
    """Commit at ``committer`` with admission arguments, deliver it, join the added, drop the removed;
    then every member (joiners included) holds the same admission state and epoch."""
    items: list[object] = []
    joins: list[PendingJoin] = []
    for a in add:
        if isinstance(a, tuple):
            items.append(admit_of(h, *a))
            joins.append(a[0])
        else:
            items.append(a.request)
            joins.append(a)
    victims = list(remove)
    data = h.members[committer].commit(add=items, remove=[h.leaf(v) for v in victims], **kw)  # type: ignore[arg-type]
    h.expect(joins)
    events = h.deliver(data)
    for v in victims:
        assert isinstance(events[v], RemovedFromGroup), events[v]
        del h.members[v]
    h.admit(committer, joins)
    assert_agreed(h)
    return events


def assert_agreed(h: Harness) -> None:
    h.assert_consistent()
    states = {g.admission for g in h.members.values()}
    assert len(states) == 1, states


def resign(h: Harness, committer: str, data: bytes, changes: tuple[AdmissionChange, ...]) -> bytes:
    """``data`` with its admission changes replaced, validly re-signed by ``committer``."""
    msg = CommitMessage.decode(data)
    c = msg.content
    body = Commit(msg.commit.operations, changes)
    content = FramedContent(
        c.group_id, c.epoch, c.sender, c.authenticated_data, ContentType.COMMIT, body.encode()
    )
    group = h.members[committer]
    sig = sign_framed_content(
        h.suite, group._identity.signing_key, WireFormat.PUBLIC_MESSAGE, content, group._ctx_bytes
    )
    return CommitMessage(content, body, sig, msg.confirmation_tag).encode()


def refused_everywhere(h: Harness, data: bytes, error: type[GroupChatError], but: str) -> None:
    for name, g in h.members.items():
        if name == but:
            continue
        before = (fingerprint(g), g.admission)
        with pytest.raises(error):
            g.receive(data)
        assert (fingerprint(g), g.admission) == before, name


def cheat(group: Group) -> None:
    """Switch off a committer's own admission checks: it builds (and signs and confirms) anything."""
    object.__setattr__(group, "_check_own_admission", lambda *a: None)
    real = group._admission_after

    def lenient(ops: object, changes: object, committer: bytes) -> AdmissionOutcome:
        try:
            return real(ops, changes, committer)  # type: ignore[arg-type]
        except GroupChatError:
            return AdmissionOutcome(group.admission)

    object.__setattr__(group, "_admission_after", lenient)


# --- invites and proofs --------------------------------------------------------------------------


def test_invite_code_round_trips_and_a_typo_is_refused() -> None:
    secret = InviteSecret.generate(lambda n: bytes(range(n)))
    code = secret.code
    assert code.startswith("gci1-") and code == code.lower() and "=" not in code
    assert InviteSecret.from_code(code) == secret
    assert InviteSecret.from_code(f"  {code.upper()}\n") == secret
    assert secret.seed.hex() not in repr(secret)
    typo = code[:15] + ("a" if code[15] != "a" else "b") + code[16:]  # one character off
    for bad in (typo, code[:-1], code[5:], "gci1-!!!!", code + "aa"):
        with pytest.raises(InvalidInviteCodeError):
            InviteSecret.from_code(bad)
    assert issubclass(InvalidInviteCodeError, ConfigError)


def test_a_proof_binds_the_request_and_the_group() -> None:
    h = Harness()
    secret = invite_secret(1)
    pj, other = h.join_request("ann"), h.join_request("bob")
    proof = prove(secret, h.group_id, pj.request, h.suite)
    verify_proof(secret.public_key, h.group_id, pj.request, proof, h.suite)
    with pytest.raises(InvalidInviteError, match="ann"):
        verify_proof(secret.public_key, h.group_id, pj.request, proof[:-1] + bytes([proof[-1] ^ 1]), h.suite)
    with pytest.raises(InvalidInviteError, match="bob"):  # moved to another request
        verify_proof(secret.public_key, h.group_id, other.request, proof, h.suite)
    with pytest.raises(InvalidInviteError):  # moved to another group
        verify_proof(secret.public_key, b"another-room", pj.request, proof, h.suite)
    with pytest.raises(InvalidInviteError):  # another invite's key
        verify_proof(invite_secret(2).public_key, h.group_id, pj.request, proof, h.suite)


# --- the extension -------------------------------------------------------------------------------


def full_state() -> AdmissionState:
    invites = (
        Invite(bytes(32), 3, 0, bytes([1]) * 32, "for ann"),
        Invite(bytes([9]) * 32, 1, 1_900_000_000, bytes(32), ""),
    )
    return AdmissionState(True, invites, (Returning(bytes([5]) * 32, 1234),))


def test_state_round_trips_and_the_default_is_no_extension() -> None:
    state = full_state()
    assert AdmissionState.decode(state.encode()) == state
    with pytest.raises(InvalidValueError, match="default"):
        AdmissionState.decode(DEFAULT_ADMISSION.encode())
    g = Group.create(Identity.generate(), b"room", "ann")
    assert g.admission == DEFAULT_ADMISSION and g._ctx.extensions == b""
    g2 = Group.create(Identity.generate(), b"room", "ann", open_room=True)
    assert g2.admission == AdmissionState(open=True)
    assert [t for t, _ in decode_extensions(g2._ctx.extensions)] == [ADMISSION_EXTENSION]


def _encoded(open_: int, invites: list[bytes], returning: list[bytes]) -> bytes:
    return Writer().u8(open_).opaque(b"".join(invites)).opaque(b"".join(returning)).bytes()


def _invite_bytes(key: bytes, uses: int = 1, label: bytes = b"") -> bytes:
    return Writer().opaque(key).u16(uses).u64(0).opaque(bytes(32)).opaque(label).bytes()


def _returning_bytes(i: int) -> bytes:
    return Writer().opaque(i.to_bytes(32, "big")).u64(i).bytes()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (_encoded(2, [], []), InvalidValueError),
        (
            _encoded(0, [_invite_bytes(i.to_bytes(32, "big")) for i in range(MAX_INVITES + 1)], []),
            FieldTooLargeError,
        ),
        (_encoded(0, [], [_returning_bytes(i) for i in range(MAX_RETURNING + 1)]), FieldTooLargeError),
        (_encoded(0, [_invite_bytes(bytes(32), label=b"x" * 65)], []), FieldTooLargeError),
        (_encoded(0, [_invite_bytes(bytes(32), label=b"\xff")], []), InvalidValueError),
        (_encoded(0, [_invite_bytes(bytes(32), uses=0)], []), InvalidValueError),
        (_encoded(0, [_invite_bytes(bytes(32))] * 2, []), DuplicateKeyError),
        (_encoded(0, [], [_returning_bytes(1)] * 2), DuplicateKeyError),
        (_encoded(1, [], []) + b"\x00", GroupChatError),
    ],
)
def test_every_bound_is_checked_on_decode(data: bytes, error: type[GroupChatError]) -> None:
    with pytest.raises(error):
        AdmissionState.decode(data)


def test_bounds_at_the_limit_decode() -> None:
    data = _encoded(
        0,
        [_invite_bytes(i.to_bytes(32, "big"), label=b"x" * 64) for i in range(MAX_INVITES)],
        [_returning_bytes(i) for i in range(MAX_RETURNING)],
    )
    state = AdmissionState.decode(data)
    assert len(state.invites) == MAX_INVITES and len(state.returning) == MAX_RETURNING
    assert state.encode() == data


def test_changes_round_trip_and_a_commit_without_them_is_unchanged() -> None:
    changes = (
        AdmissionChange(ChangeType.REVOKE, invite_key=bytes([1]) * 32),
        AdmissionChange(ChangeType.INVITE, invite_key=bytes([2]) * 32, uses=5, not_after=77, label="hi ✓"),
        AdmissionChange(ChangeType.ADMIT, 3, bytes([3]) * 32, proof=bytes(64)),
        AdmissionChange(ChangeType.REASON, 4, reason=RemovalReason(RemovalCode.OFFLINE, 61)),
        AdmissionChange(ChangeType.REASON, 5, reason=RemovalReason(RemovalCode.KICKED)),
    )
    h = Harness()
    data = h.members["m0"].commit(update=True)
    msg = CommitMessage.decode(data)
    assert Commit(msg.commit.operations, ()).encode() == msg.content.body  # byte-identical without changes
    with_changes = dataclasses.replace(msg, commit=Commit(msg.commit.operations, changes))
    content = dataclasses.replace(msg.content, body=with_changes.commit.encode())
    again = CommitMessage.decode(dataclasses.replace(with_changes, content=content).encode())
    assert again.commit.changes == changes
    # An empty trailing list is not canonical: refused.
    empty = dataclasses.replace(msg.content, body=msg.content.body + Writer().opaque(b"").bytes())
    with pytest.raises(InvalidValueError, match="empty admission change"):
        CommitMessage.decode(dataclasses.replace(msg, content=empty).encode())
    with pytest.raises(ConfigError):  # a caller's mistake
        RemovalReason(RemovalCode.KICKED, 5)
    with pytest.raises(InvalidValueError, match="kicked with 5 seconds"):  # a peer's bad bytes
        AdmissionChange.read(Reader(Writer().u8(4).u32(0).u8(2).u32(5).bytes(), "x"))
    r = Reader(Writer().u8(4).u32(0).u8(9).u32(0).bytes(), "x")
    with pytest.raises(InvalidValueError, match="removal reason 9"):
        AdmissionChange.read(r)


# --- commits that change the state, applied by every member ---------------------------------------


def test_invite_admit_and_use_up(h: Harness) -> None:
    secret = invite_secret(7)
    events = run(h, "m1", invite=[NewInvite(secret.public_key, uses=2, label="for the team")])
    live = h.members["m0"].admission.invites
    assert live == (Invite(secret.public_key, 2, 0, h.members["m1"]._identity.public_key, "for the team"),)
    assert all(isinstance(e, EpochChanged) and e.invites_created == live for e in events.values())
    ann, bob = h.join_request("ann"), h.join_request("bob")
    events = run(h, "m2", add=[(ann, secret)])
    assert h.members["ann"].admission.invites[0].uses_left == 1  # the joiner's Welcome carries it
    ev = events["m0"]
    assert isinstance(ev, EpochChanged)
    assert ev.admitted_by_invite == {ann.request.identity_key: secret.public_key}
    run(h, "ann", add=[(bob, secret)])
    assert h.members["m0"].admission == DEFAULT_ADMISSION  # used up: dropped
    assert h.members["m0"]._ctx.extensions == b""
    carl = h.join_request("carl")
    with pytest.raises(UsageError, match="not live"):
        h.members["m0"].commit(add=[admit_of(h, carl, secret)])
    assert not h.members["m0"].has_pending_commit


def test_an_approved_add_uses_no_invite_and_revoke_drops_one(h: Harness) -> None:
    s1, s2 = invite_secret(1), invite_secret(2)
    run(h, "m0", invite=[NewInvite(s1.public_key), NewInvite(s2.public_key, not_after=2_000_000_000)])
    events = run(h, "m3", add=[h.join_request("dan")], revoke=[s1.public_key])
    ev = events["m0"]
    assert (
        isinstance(ev, EpochChanged)
        and ev.admitted_by_invite == {}
        and ev.invites_revoked == (s1.public_key,)
    )
    assert [i.invite_key for i in h.members["dan"].admission.invites] == [s2.public_key]


def test_reasons_travel_in_the_commit(h: Harness) -> None:
    victim_key = h.members["m4"]._identity.public_key
    events = run(h, "m0", remove=["m4", "m3"], reasons={h.leaf("m4"): RemovalReason(RemovalCode.KICKED)})
    assert events["m4"] == RemovedFromGroup(
        events["m4"].epoch, events["m4"].by, RemovalReason(RemovalCode.KICKED)
    )  # type: ignore[union-attr]
    ev = events["m1"]
    assert isinstance(ev, EpochChanged) and ev.removal_reasons == {
        victim_key: RemovalReason(RemovalCode.KICKED)
    }
    assert h.members["m1"].admission.policy_is_default  # a kick lists no one as returning
    with pytest.raises(UsageError, match="does not remove"):
        h.members["m0"].commit(remove=[h.leaf("m1")], reasons={h.leaf("m2"): RemovalReason(RemovalCode.LEFT)})


def test_offline_removal_lists_the_member_as_returning_until_it_is_back(h: Harness) -> None:
    gone = h.members["m4"]
    key, old_request = gone._identity.public_key, gone._scheme.member(gone.my_leaf)
    assert old_request is not None
    run(h, "m0", remove=["m4"], reasons={h.leaf("m4"): RemovalReason(RemovalCode.OFFLINE, 90)})
    assert h.members["m1"].admission.returning == (Returning(key, old_request.not_after),)
    m1 = h.members["m1"]
    now = int(h.config.wall_clock())
    same_second = h.join_request("m4", identity=gone._identity)  # not_after not newer: a replay
    if same_second.request.not_after == old_request.not_after:
        assert m1.classify_request(same_second.request, None, None, now).admissibility is Admissibility.STALE
    # Made in the same second but told what the last one was: strictly newer, so it gets in.
    prompt = JoinRequest.create(h.suite, gone._identity, h.group_id, "m4", wall_clock=lambda: now,
                                newer_than=old_request.not_after)
    assert prompt.request.not_after == old_request.not_after + 1
    assert m1.classify_request(prompt.request, None, None, now).admissibility is Admissibility.RETURNING
    back = JoinRequest.create(h.suite, gone._identity, h.group_id, "m4", wall_clock=lambda: now + 5)
    assert m1.classify_request(back.request, None, None, now).admissibility is Admissibility.RETURNING
    run(h, "m1", add=[back])
    # Off the list again; what stays is the old request's used init key, the joiner's state included.
    assert h.members["m4"].admission == h.members["m0"].admission
    assert h.members["m0"].admission.policy_is_default and h.members["m0"].admission.used_init_keys


def test_returning_list_is_bounded_fifo() -> None:
    h = Harness()
    state = AdmissionState(returning=tuple(Returning(i.to_bytes(32, "big"), i) for i in range(MAX_RETURNING)))
    h.add("m0", 2)
    for g in h.members.values():  # plant a full list (white box), re-deriving nothing
        g._admission = state
    gone = h.members["m2"]
    run(h, "m0", remove=["m2"], reasons={h.leaf("m2"): RemovalReason(RemovalCode.OFFLINE, 60)})
    returning = h.members["m1"].admission.returning
    assert len(returning) == MAX_RETURNING
    assert returning[0] == Returning((1).to_bytes(32, "big"), 1)  # the oldest fell off
    assert returning[-1].identity_key == gone._identity.public_key  # the newest at the end


def test_an_admission_only_commit_carries_the_committers_update(h: Harness) -> None:
    data = h.members["m2"].commit(invite=[NewInvite(invite_secret(3).public_key)])
    ops = CommitMessage.decode(data).commit.operations
    assert [op.type.name for op in ops] == ["UPDATE"] and ops[0].leaf == h.leaf("m2")
    h.members["m2"].discard_pending_commit()


def test_the_honest_committer_refuses_expired_invites_and_bad_input(h: Harness) -> None:
    now = int(h.config.wall_clock())
    old, fresh = invite_secret(4), invite_secret(5)
    run(h, "m0", invite=[NewInvite(old.public_key, not_after=now - 10), NewInvite(fresh.public_key)])
    m0, pj = h.members["m0"], h.join_request("eve")
    with pytest.raises(UsageError, match="expired"):
        m0.commit(add=[admit_of(h, pj, old)])
    with pytest.raises(InvalidInviteError):  # a proof made for another request
        m0.commit(add=[Admit(pj.request, fresh.public_key, admit_of(h, h.join_request("x"), fresh).proof)])
    with pytest.raises(UsageError, match="already live"):
        m0.commit(invite=[NewInvite(fresh.public_key)])
    with pytest.raises(ConfigError):
        m0.commit(invite=[NewInvite(invite_secret(6).public_key, label="x" * 65)])
    with pytest.raises(ConfigError):
        m0.commit(invite=[NewInvite(invite_secret(6).public_key, uses=0)])
    with pytest.raises(UsageError, match="not live"):
        m0.commit(revoke=[invite_secret(6).public_key])
    with pytest.raises(UsageError, match="more than 64"):
        m0.commit(invite=[NewInvite(invite_secret(10 + i).public_key) for i in range(MAX_INVITES - 1)])
    assert not m0.has_pending_commit
    # Receivers do not judge expiry by their own clock: an expired invite admitted by a committer
    # whose clock says otherwise is applied by everyone alike.
    cheat(h.members["m1"])
    run(h, "m1", add=[(pj, old)])
    assert [i.invite_key for i in h.members["m0"].admission.invites] == [fresh.public_key]


# --- refusals by receivers -------------------------------------------------------------------------


def test_a_used_up_invite_is_refused_even_from_a_cheating_committer(h: Harness) -> None:
    secret = invite_secret(8)
    run(h, "m0", invite=[NewInvite(secret.public_key, uses=1)])
    run(h, "m0", add=[(h.join_request("ann"), secret)])
    cheater = h.members["m1"]
    cheat(cheater)
    bob = h.join_request("bob")
    data = cheater.commit(add=[admit_of(h, bob, secret)])
    refused_everywhere(h, data, InvalidInviteError, but="m1")
    # Two admits with a one-use invite in one commit: used up within the commit.
    cheater.discard_pending_commit()
    one = invite_secret(9)
    run(h, "m0", invite=[NewInvite(one.public_key)])
    data = cheater.commit(add=[admit_of(h, bob, one), admit_of(h, h.join_request("carl"), one)])
    refused_everywhere(h, data, InvalidInviteError, but="m1")
    h.members["m1"].discard_pending_commit()
    run(h, "m2", add=[(bob, one)])  # the next valid commit applies


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (
            lambda add_leaf, rm_leaf, key, proof: (
                AdmissionChange(ChangeType.ADMIT, rm_leaf, key, proof=proof),
            ),
            AdmissionChangeError,
        ),
        (
            lambda add_leaf, rm_leaf, key, proof: (
                AdmissionChange(ChangeType.ADMIT, add_leaf, bytes(32), proof=proof),
            ),
            InvalidInviteError,
        ),
        (
            lambda add_leaf, rm_leaf, key, proof: (
                AdmissionChange(ChangeType.ADMIT, add_leaf, key, proof=bytes(64)),
            ),
            InvalidInviteError,
        ),
        (
            lambda add_leaf, rm_leaf, key, proof: (
                AdmissionChange(ChangeType.ADMIT, add_leaf, key, proof=proof),
                AdmissionChange(ChangeType.ADMIT, add_leaf, key, proof=proof),
            ),
            AdmissionChangeError,
        ),
        (
            lambda add_leaf, rm_leaf, key, proof: (
                AdmissionChange(ChangeType.REASON, add_leaf, reason=RemovalReason(RemovalCode.LEFT)),
            ),
            AdmissionChangeError,
        ),
        (
            lambda add_leaf, rm_leaf, key, proof: (
                AdmissionChange(ChangeType.REASON, rm_leaf, reason=RemovalReason(RemovalCode.LEFT)),
                AdmissionChange(ChangeType.REASON, rm_leaf, reason=RemovalReason(RemovalCode.KICKED)),
            ),
            AdmissionChangeError,
        ),
        (
            lambda add_leaf, rm_leaf, key, proof: (
                AdmissionChange(ChangeType.INVITE, invite_key=key, uses=1),
            ),
            AdmissionChangeError,
        ),
        (
            lambda add_leaf, rm_leaf, key, proof: (
                AdmissionChange(ChangeType.INVITE, invite_key=bytes(32), uses=1),
                AdmissionChange(ChangeType.INVITE, invite_key=bytes(32), uses=1),
            ),
            AdmissionChangeError,
        ),
        (
            lambda add_leaf, rm_leaf, key, proof: (AdmissionChange(ChangeType.REVOKE, invite_key=bytes(32)),),
            InvalidInviteError,
        ),
        (
            lambda add_leaf, rm_leaf, key, proof: (
                AdmissionChange(ChangeType.REVOKE, invite_key=key),
                AdmissionChange(ChangeType.ADMIT, add_leaf, key, proof=proof),
            ),
            InvalidInviteError,
        ),
        (
            lambda add_leaf, rm_leaf, key, proof: (
                AdmissionChange(ChangeType.ADMIT, add_leaf, key, proof=proof),
                AdmissionChange(ChangeType.REVOKE, invite_key=key),
            ),
            InvalidInviteError,
        ),
        (
            lambda add_leaf, rm_leaf, key, proof: tuple(
                AdmissionChange(ChangeType.INVITE, invite_key=i.to_bytes(32, "big"), uses=1)
                for i in range(MAX_INVITES)
            ),
            AdmissionChangeError,
        ),
    ],
    ids=[
        "admit-not-an-add",
        "admit-unknown-invite",
        "admit-bad-proof",
        "admit-twice",
        "reason-not-removed",
        "reason-twice",
        "invite-already-live",
        "invite-twice",
        "revoke-unknown",
        "revoked-then-used",
        "used-then-revoked",
        "too-many-invites",
    ],
)
def test_inconsistent_changes_are_refused_and_change_nothing(
    h: Harness, make: object, error: type[GroupChatError]
) -> None:
    secret = invite_secret(11)
    run(h, "m0", invite=[NewInvite(secret.public_key, uses=3)])
    pj = h.join_request("ann")
    m1 = h.members["m1"]
    legit = m1.commit(add=[admit_of(h, pj, secret)], remove=[h.leaf("m4")])
    ops = CommitMessage.decode(legit).commit.operations
    add_leaf = next(op.leaf for op in ops if op.request is not None)
    changes = make(add_leaf, h.leaf("m4"), secret.public_key, admit_of(h, pj, secret).proof)  # type: ignore[operator]
    refused_everywhere(h, resign(h, "m1", legit, changes), error, but="m1")
    # The legitimate commit still applies everywhere.
    h.expect([pj])
    events = h.deliver(legit)
    del h.members["m4"]
    h.admit("m1", [pj])
    assert isinstance(events["m2"], EpochChanged)
    assert_agreed(h)
    assert h.members["ann"].admission.invites[0].uses_left == 2


# --- the Welcome ---------------------------------------------------------------------------------


def test_a_joiner_reads_the_state_from_its_welcome_and_refuses_one_out_of_bounds(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = invite_secret(12)
    run(h, "m0", invite=[NewInvite(secret.public_key, uses=5, label="welcome")])
    run(h, "m1", add=[h.join_request("ann")])
    assert h.members["ann"].admission == h.members["m0"].admission  # from the Welcome's GroupContext
    # A committer that writes an out-of-bounds state (65 invites) into the GroupContext: the joiner
    # refuses the Welcome. (The committer's own echo is let through so that the Welcome goes out.)
    m2 = h.members["m2"]
    bad = _encoded(0, [_invite_bytes(i.to_bytes(32, "big")) for i in range(MAX_INVITES + 1)], [])
    items = [
        (t, d) for t, d in decode_extensions(with_admission(b"", m2.admission)) if t != ADMISSION_EXTENSION
    ]
    object.__setattr__(
        m2, "_extensions_after", lambda outcome: encode_extensions([*items, (ADMISSION_EXTENSION, bad)])
    )
    pj = h.join_request("bob")
    data = m2.commit(add=[pj.request])
    monkeypatch.setattr(epoch_state, "admission_of", lambda ctx: DEFAULT_ADMISSION)
    m2.receive(data)
    monkeypatch.undo()
    welcome = next(o.data for o in m2.data_to_send() if o.kind.name == "WELCOME")
    with pytest.raises(FieldTooLargeError):
        Group.join(pj, welcome, h.config)
    assert not pj.used


def test_a_lost_commit_is_rebuilt_with_its_admission_changes(h: Harness) -> None:
    s1, s2 = invite_secret(20), invite_secret(21)
    run(h, "m0", invite=[NewInvite(s1.public_key, uses=2)])
    ann = h.join_request("ann")
    loser, m4_key = h.members["m1"], h.members["m4"]._identity.public_key
    lost = loser.commit(
        add=[admit_of(h, ann, s1)],
        remove=[h.leaf("m4")],
        reasons={h.leaf("m4"): RemovalReason(RemovalCode.OFFLINE, 30)},
        invite=[NewInvite(s2.public_key)],
    )
    winner = h.members["m2"].commit(update=True)
    events = h.deliver(winner)
    assert isinstance(events["m1"], EpochChanged) and events["m1"].superseded_own_commit
    with pytest.raises(GroupChatError):
        loser.receive(lost)  # built on the old epoch
    rebuilt = [o.data for o in loser.data_to_send() if o.kind.name == "COMMIT"]
    assert len(rebuilt) == 1
    changes = CommitMessage.decode(rebuilt[0]).commit.changes
    assert sorted(c.type.name for c in changes) == ["ADMIT", "INVITE", "REASON"]
    h.expect([ann])
    events = h.deliver(rebuilt[0])
    del h.members["m4"]
    h.admit("m1", [ann])
    assert_agreed(h)
    state = h.members["ann"].admission
    assert [(i.invite_key, i.uses_left) for i in state.invites] == [(s1.public_key, 1), (s2.public_key, 1)]
    assert [e.identity_key for e in state.returning] == [m4_key]
    assert isinstance(events["m4"], RemovedFromGroup) and events["m4"].reason == RemovalReason(
        RemovalCode.OFFLINE, 30
    )
