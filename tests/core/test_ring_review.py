"""Adversarial review of the issue-14 ring (round 3, attempts, check-then-switch, held messages).

Each test mounts one attack through the public ``Group`` API with real crypto and asserts what the
rules of issue 14 promise. Each failed against the first version of the rewrite (its docstring
tells the flaw it found, in the past of that version) and passes since its fix.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from ring_room import Room, forge, grown, rounds

from groupchat.core.errors import GroupChatError, RemoteError
from groupchat.core.events import Event, RekeyFailed, RekeyProgress, RekeyTimedOut
from groupchat.core.group import Group
from groupchat.core.schemes.ring_message import RING_WIRE_FORMAT, RingRound
from groupchat.core.schemes.ring_scheme import RingScheme


def is_round(data: bytes, round_: int) -> bool:
    return int.from_bytes(data[2:4], "big") == RING_WIRE_FORMAT and RingRound.decode(data).round == round_


def deliver(
    room: Room,
    names: list[str],
    events: dict[str, list[Event]],
    hold: dict[str, list[bytes]] | None = None,
    keep: object = None,
    drop: Callable[[str, int, bytes], bool] | set[tuple[str, int]] = frozenset(),  # type: ignore[assignment]
) -> None:
    """The relay in order, to ``names`` only; what ``keep(name, data)`` says is held back from the
    room goes to ``hold[name]`` instead of being sequenced; what ``drop`` names (``(name, index)``
    pairs, or a predicate on name, index and bytes) is never delivered to that member (bounded)."""
    for _ in range(100):
        progress = False
        for name in names:
            g = room.members[name]
            while room.cursor[name] < len(room.log):
                data = room.log[room.cursor[name]]
                room.cursor[name] += 1
                progress = True
                index = room.cursor[name] - 1
                if drop(name, index, data) if callable(drop) else (name, index) in drop:
                    continue  # the relay never delivered it to this member
                try:
                    events.setdefault(name, []).append(g.receive(data))
                except RemoteError:
                    continue
                for out in g.data_to_send():
                    if hold is not None and callable(keep) and keep(name, out.data):
                        hold.setdefault(name, []).append(out.data)
                    else:
                        room.post(name, out.data)
        if not progress:
            return
    raise AssertionError("did not settle")


def names_member(ev: Event, name: str) -> bool:
    if isinstance(ev, RekeyFailed):
        return ev.signer is not None and ev.signer.display_name == name
    if isinstance(ev, RekeyTimedOut):
        return name in [m.display_name for m in ev.missing]
    if isinstance(ev, RekeyProgress):  # a retry put in force at its signed message, early
        return ev.early and ev.retried_by is not None and ev.retried_by.display_name == name
    return False


# --- joining: a crafted ring Welcome ---------------------------------------------------------------


def test_a_ring_welcome_listing_our_identity_twice_is_refused_as_remote_and_keeps_our_request() -> None:
    """``_join_multi_round`` sets ``pending.used = True`` before ``_begin_agreement``, whose
    ``RingRekey`` refuses a roster listing one identity key twice with a ``UsageError``. The joiner
    runs no duplicate-identity check of its own on the Welcome's roster and commit (members do, in
    ``Admission._check_adds``), so a malicious member (m1) that lists the joiner's own request in
    the old roster and adds it again gets exactly the issue-14 item back: a refused Welcome burns
    the request, refused with a local error for remote input."""
    room = grown(2)
    m0, m1 = room.members["m0"], room.members["m1"]
    pj = room.request("j")
    m0.commit(add=[pj.request])  # the genuine Welcome (m0's commit; not delivered, not needed)
    assert m0._pending is not None and m0._pending.welcome is not None
    genuine = m0._pending.welcome
    # m1, malicious: its roster already lists j (a real, signed request), its GroupContext matches
    # that roster, and it skips the add checks every honest member runs.
    scheme = m1._scheme
    assert isinstance(scheme, RingScheme)
    scheme._roster = {**scheme._roster, 2: pj.request}
    m1._ctx = dataclasses.replace(m1._ctx, tree_hash=scheme.public_hash)
    m1._ctx_bytes = m1._ctx.encode()
    m1._check_adds = lambda *a, **k: None  # type: ignore[method-assign]
    m1.commit(add=[pj.request])  # j again, at leaf 3
    assert m1._pending is not None and m1._pending.welcome is not None
    forged = m1._pending.welcome

    with pytest.raises(GroupChatError) as info:
        Group.join(pj, forged, room.config)
    refused = info.value
    assert not pj.used, f"the refused Welcome burned the request ({type(refused).__name__}: {refused})"
    assert isinstance(refused, RemoteError), f"remote input refused with {type(refused).__name__}"
    assert refused.signer == m1.my_leaf  # m1 signed the GroupInfo and the commit
    joined = Group.join(pj, genuine, room.config)
    assert joined.joining


# --- attempts: one signed message of the next attempt -------------------------------------------


def test_a_member_that_jumps_to_the_next_attempt_before_any_deadline_is_named() -> None:
    """Every member has confirmed attempt 0 but the relay has not yet sequenced m2's confirmation.
    m1 (malicious) signs a round-1 message of attempt 1 at once (no timeout anywhere): every member
    abandons attempt 0 (check, then switch: the message is acceptable) and m2's confirmation, which
    would have completed it, is stale. Withholding a message gets the withholder named by the
    timeout (``RekeyTimedOut.missing``) and evicted by the session's restart rule; this gets
    nobody named, no ``RekeyTimedOut`` ever fires (so the session never restarts), and m1 can do
    it again in every attempt: a livelock that, in a ring that removes someone, also holds every
    member's chat (``HoldMessagesError``) indefinitely."""
    room = grown(3)
    honest = ["m0", "m2"]
    old = room.members["m0"].epoch
    events: dict[str, list[Event]] = {}
    held: dict[str, list[bytes]] = {}
    room.commit("m0", update=True)
    deliver(room, ["m0", "m1", "m2"], events, held, lambda name, data: name == "m2" and is_round(data, 3))
    # Attempt 0 is one message from completion everywhere: only m2's confirmation is missing.
    for name in ("m0", "m1", "m2"):
        assert room.members[name].phase.value == "confirming", name
    assert len(held["m2"]) == 1
    like = next(r for r in rounds(room, old + 1) if r.round == 1)
    room.post("m1", forge(room, "m1", like, attempt=1))  # no deadline passed anywhere
    room.post("m2", *held["m2"])  # the confirmation that completes attempt 0
    deliver(room, honest, events)
    done = all(room.members[n].epoch == old + 1 for n in honest)
    told = {n: any(names_member(e, "m1") for e in events.get(n, [])) for n in honest}
    assert done or all(told.values()), (
        f"attempt 0 (everyone confirmed) was killed by m1's early retry, and nobody was told: {told}"
    )


def attempt_of(data: bytes) -> int | None:
    if int.from_bytes(data[2:4], "big") != RING_WIRE_FORMAT:
        return None
    return RingRound.decode(data).attempt


def tick_all(room: Room, names: list[str], events: dict[str, list[Event]]) -> None:
    for name in names:
        ev = room.members[name].tick()
        if ev is not None:
            events.setdefault(name, []).append(ev)
        for out in room.members[name].data_to_send():
            room.post(name, out.data)


def test_a_member_that_missed_two_attempts_catches_up_once_the_relay_behaves() -> None:
    """m2 is away while attempt 0 times out twice (m0 and m1 go on to attempts 1, then 2); the
    relay drops every message of attempts 1 and 2 for m2 (four messages), then behaves. m2 reads
    attempt 0 and takes part in it; m0 and m1 are at 2 and refuse it as stale. From then on every
    message m2 sees is two ahead ("not the next attempt", refused), and each of its own timeouts
    moves it one attempt on, exactly as the others' move them: the gap of two never closes.
    m2 is online (the session evicts only members offline past the grace), so no restart comes
    either: the ring, and with a removal in it the group's chat, is frozen for good."""
    room = grown(3)
    everyone = ["m0", "m1", "m2"]
    old = room.members["m0"].epoch
    events: dict[str, list[Event]] = {}
    room.commit("m0", update=True)
    deliver(room, ["m0", "m1"], events)  # m2 is away: attempt 0 waits for it
    for _ in range(2):  # two timeouts: m0 and m1 go on to attempt 1, then 2
        room.clock.now += 31
        tick_all(room, ["m0", "m1"], events)
        deliver(room, ["m0", "m1"], events)
    assert {room.members[n]._scheme._run.attempt for n in ("m0", "m1")} == {2}  # type: ignore[attr-defined]
    dropped = {("m2", i) for i, d in enumerate(room.log) if attempt_of(d) in (1, 2)}
    assert len(dropped) == 4
    deliver(room, everyone, events, drop=dropped)  # m2 is back; the relay behaves from here on
    for _ in range(12):  # twelve more deadlines, everyone online and every message delivered
        if all(room.members[n].epoch == old + 1 for n in everyone):
            break
        room.clock.now += 31
        tick_all(room, everyone, events)
        deliver(room, everyone, events)
    attempts = {n: getattr(room.members[n]._scheme._run, "attempt", None) for n in everyone}
    assert all(room.members[n].epoch == old + 1 for n in everyone), (
        f"the ring never completed after the relay behaved; attempts in force: {attempts}"
    )
    room.assert_agreement()


# --- restarts: one dropped confirmation, then a restart ---------------------------------------------


@pytest.mark.parametrize("restarted", [False, True], ids=["live", "restored from its store"])
def test_a_restart_by_a_member_that_missed_the_last_confirmation_does_not_split_silently(
    restarted: bool,
) -> None:
    """m0 and m1 run the /rekey ring; the relay drops m1's confirmation for m0 only (one message).
    m1 holds every confirmation and enters the epoch; m0 waits in round 3, times out naming m1, and
    (m1 looking offline to it: presence is the relay's claim) commits a restart that removes m1,
    which leaves it alone: it enters the same epoch number at once, with its own key. m1 refuses
    the restart as a commit on an earlier epoch, the generic "lost the race" EpochError that the
    session ignores at debug level, although that signed restart proves its committer never saw
    the epoch m1 entered. Docs §8.3 says "a restart ordered after the last confirmation is on an
    old epoch for everyone"; for the member that missed it, it is not. The same works with n > 2
    when the relay drops the last confirmation for every member but one."""
    from groupchat.client.session.rejections import Outcome, commit_rejection

    room = grown(2)
    m0, m1 = room.members["m0"], room.members["m1"]
    old = m0.epoch
    events: dict[str, list[Event]] = {}
    room.commit("m0", update=True)
    dropped: list[int] = []

    def m1_confirmation_to_m0(name: str, index: int, data: bytes) -> bool:
        if name == "m0" and is_round(data, 3) and RingRound.decode(data).sender == m1.my_leaf:
            dropped.append(index)
            return True
        return False

    deliver(room, ["m0", "m1"], events, drop=m1_confirmation_to_m0)  # in order, but for one message
    assert m1.epoch == old + 1 and m0.epoch == old and len(dropped) == 1
    if restarted:  # m1's process restarts from its stored state before the restart arrives
        m1 = room.members["m1"] = Group.restore(m1.export_state(), m1._identity, m1.config)
    room.clock.now += 31
    timed_out = m0.tick()
    assert isinstance(timed_out, RekeyTimedOut) and timed_out.round == 3
    assert [m.display_name for m in timed_out.missing] == ["m1"]
    restart = m0.commit(remove=[m1.my_leaf])
    room.post("m0", restart)
    deliver(room, ["m0"], events)
    try:
        m1.receive(restart)
        refusal: GroupChatError | None = None
    except GroupChatError as exc:
        refusal = exc
    forked = m0.epoch == m1.epoch and m0.epoch_authenticator != m1.epoch_authenticator
    told_m0 = any(isinstance(e, RekeyFailed) for e in events.get("m0", []))
    told_m1 = refusal is not None and (
        commit_rejection(refusal, m1.epoch, False, False).outcome is not Outcome.IGNORE
    )
    assert not forked or told_m0 or told_m1, (
        f"m0 and m1 both at epoch {m0.epoch} with different keys; m1 refused the restart with "
        f"{type(refusal).__name__}: {refusal}, which the session ignores"
    )
    # m1 is told by name: the commit verifies as a restart of the ring that made its epoch.
    from groupchat.core.errors import LateRestartError

    assert isinstance(refusal, LateRestartError) and refusal.signer == m0.my_leaf


# --- a wrong ring value, every attempt ---------------------------------------------------------------


def test_a_member_that_sends_wrong_ring_values_is_eventually_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """m1 (malicious) takes part in every round but signs a round-2 value with one bit flipped.
    Every honest member gets ``RekeyFailed(VALUES_INCONSISTENT, signer=None)`` ("who sent a wrong
    one cannot be known"), then the failed attempt's timeout, whose ``missing`` is empty (every
    round-2 message came), and the next attempt fails the same way. Docs §8.5 says the remedy for
    a member that stops a rekey is a restart that removes it; here nothing ever names m1, so no
    member and no session rule can choose whom to remove, and the group never rekeys (in a ring
    that removes someone its chat is held for as long). The attempt that failed is dead, so its
    secrets could be revealed safely to find the liar (a blame step): nothing does."""
    from groupchat.core.schemes.ring import RingRekey

    room = grown(3)
    old = room.members["m0"].epoch
    liar = room.members["m1"]._identity.public_key
    sign = RingRekey._sign

    def lying_sign(self: RingRekey, round_: int, value: bytes, view: bytes) -> RingRound:
        if round_ == 2 and self._identity.public_key == liar:
            value = bytes([value[0] ^ 1]) + value[1:]
        return sign(self, round_, value, view)

    monkeypatch.setattr(RingRekey, "_sign", lying_sign)
    room.commit("m0", update=True)
    room.pump()
    for _ in range(4):  # four attempts, each one failed by m1, then its deadline
        room.clock.now += 31
        for name in ("m0", "m2"):
            ev = room.members[name].tick()
            if ev is not None:
                room.events.setdefault(name, []).append(ev)
            room.drain(name)
        room.members["m1"].tick()
        room.drain("m1")
        room.pump()
    failures = [e for n in ("m0", "m2") for e in room.events.get(n, []) if isinstance(e, RekeyFailed)]
    assert len(failures) >= 8  # every attempt failed, at both honest members
    done = all(room.members[n].epoch == old + 1 for n in ("m0", "m2"))
    named = [e for n in ("m0", "m2") for e in room.events.get(n, []) if names_member(e, "m1")]
    assert done or named, f"{len(failures)} failed attempts, none of them names m1: {failures[-1]}"


# --- retries: dropped proposals -------------------------------------------------------------------


def test_dropped_proposals_of_the_next_attempt_are_sent_again() -> None:
    """m0 and m1 run the /rekey ring; the relay drops m1's round-1 message (so attempt 0 cannot
    complete) and then both proposals of attempt 1 (three messages in all), then behaves. Each
    member holds its proposal, never echoed, and ``RingScheme.overdue`` returns None while a
    proposal exists: no later deadline, no new proposal, nothing sent again, for ever. The
    session's restart rule never fires either (both are online)."""
    room = grown(2)
    old = room.members["m0"].epoch
    events: dict[str, list[Event]] = {}
    m1_leaf = room.members["m1"].my_leaf

    def relay_drops(name: str, index: int, data: bytes) -> bool:
        attempt = attempt_of(data)
        return (attempt == 0 and is_round(data, 1) and RingRound.decode(data).sender == m1_leaf) or (
            attempt == 1
        )

    room.commit("m0", update=True)
    deliver(room, ["m0", "m1"], events, drop=relay_drops)
    room.clock.now += 31
    tick_all(room, ["m0", "m1"], events)
    assert [type(e).__name__ for n in ("m0", "m1") for e in events[n][-1:]] == ["RekeyTimedOut"] * 2
    deliver(room, ["m0", "m1"], events, drop=relay_drops)  # both proposals dropped for everyone
    cut = len(room.log)  # from here on the relay delivers everything

    def behaves(name: str, index: int, data: bytes) -> bool:
        return index < cut and relay_drops(name, index, data)

    timeouts = 0
    for _ in range(10):
        if all(room.members[n].epoch == old + 1 for n in ("m0", "m1")):
            break
        room.clock.now += 31
        before = sum(isinstance(e, RekeyTimedOut) for n in ("m0", "m1") for e in events.get(n, []))
        tick_all(room, ["m0", "m1"], events)
        timeouts += (
            sum(isinstance(e, RekeyTimedOut) for n in ("m0", "m1") for e in events.get(n, [])) - before
        )
        deliver(room, ["m0", "m1"], events, drop=behaves)
    sent_after = len(room.log) - cut
    assert all(room.members[n].epoch == old + 1 for n in ("m0", "m1")), (
        f"frozen: {timeouts} timeouts and {sent_after} messages in 310 s once the relay behaved"
    )


# --- check, then switch: acceptance that depends on who judges --------------------------------------


def test_the_switch_to_the_next_attempt_is_decided_alike_by_every_member() -> None:
    """Attempt 0 waits only for m2's confirmation. m0's deadline passes first: it proposes attempt
    1 with ephemeral key E0. The relay holds the proposal back and shows it to m2 (malicious), who
    signs its own attempt-1 round-1 message with the same key E0; the relay sequences that first.
    m0 judges it against its proposal (check, then switch): a duplicate of its own key, refused,
    so m0 stays in attempt 0. m1 has no proposal: a fresh candidate accepts it, and m1 switches.
    One message, one order, two decisions. m2's confirmation of attempt 0 follows: m0 enters the
    epoch, m1 (in attempt 1) drops it as stale, and m0's proposal then reaches m1 as a duplicate
    key. m0 is done and answers no later attempt, so m1 is stuck in the ring for good."""
    room = grown(3)
    m0, m1 = room.members["m0"], room.members["m1"]
    old = m0.epoch
    events: dict[str, list[Event]] = {}
    held: dict[str, list[bytes]] = {}
    room.commit("m0", update=True)
    deliver(room, ["m0", "m1", "m2"], events, held, lambda name, data: name == "m2" and is_round(data, 3))
    assert [m.display_name for m in m0._scheme.missing()] == ["m2"]  # type: ignore[attr-defined]
    room.clock.now += 31
    assert isinstance(m0.tick(), RekeyTimedOut)  # m0's deadline only (m1's is a little later)
    (proposal,) = [o.data for o in m0.data_to_send()]  # the relay holds it back
    e0 = RingRound.decode(proposal)
    stolen = forge(room, "m2", e0, value=e0.value)  # m2's attempt-1 round 1, with m0's key
    room.post("m2", stolen, *held["m2"])  # then m2's confirmation of attempt 0, before anyone reacts
    # Judged as a member without a proposal judges it: m0 switches too (with a fresh key), so
    # one message and one order give one decision (before, m0 refused it as a duplicate of its key).
    m0.receive(stolen)
    room.cursor["m0"] += 1
    room.drain("m0")
    deliver(room, ["m0", "m1"], events)
    assert m0.epoch == m1.epoch == old  # m2's attempt-0 confirmation is stale for both
    assert m0._scheme._run.attempt == m1._scheme._run.attempt == 1  # type: ignore[attr-defined]
    room.post("m0", proposal)  # the relay lets the proposal through, and behaves from here on
    deliver(room, ["m0", "m1"], events)
    # m2's own code took its forged message for an earlier run of itself and completed attempt 0
    # alone; it answers no later attempt. m0 and m1 agree on where they are, and removing the
    # attacker (a restart, as the session commits for a member that stalls the ring) frees them.
    assert m0.epoch == m1.epoch == old
    restart = m0.commit(remove=[room.members["m2"].my_leaf])
    room.post("m0", restart)
    deliver(room, ["m0", "m1"], events)
    assert m0.epoch == m1.epoch == old + 1
    assert m0.epoch_authenticator == m1.epoch_authenticator


# --- held messages: our own removal in flight ----------------------------------------------------------


def test_nothing_is_encrypted_while_our_ring_commit_that_removes_someone_is_in_flight() -> None:
    """m0 commits the removal of m2 (ring) and, before the relay's echo, encrypts a message. The
    relay orders it after the commit (one connection), so it sits at an epoch whose successor
    removes m2, exactly what ``HoldMessagesError`` is for: every member still at that epoch reads
    it, and so does a copy of m2's state taken before the commit (a member who keeps everything).
    The session never sends chat with a commit in flight; the core promise is the one that fails."""
    import copy

    from groupchat.core.events import MessageReceived

    room = grown(3)
    m0, m2 = room.members["m0"], room.members["m2"]
    shared: dict[int, object] = {id(x): x for x in (m2.suite, m2._identity, m2.config)}
    kept = copy.deepcopy(m2, shared)  # m2 keeps everything
    commit = m0.commit(remove=[m2.my_leaf])
    try:
        message = m0.encrypt(b"m2 must not read this")
    except GroupChatError as exc:
        assert type(exc).__name__ == "HoldMessagesError"
        return
    room.post("m0", commit, message)
    room.members["m1"].receive(commit)
    assert room.members["m1"].holding_messages  # m1 holds its own chat at this epoch, yet m0 sent
    ev = kept.receive(message)
    assert not isinstance(ev, MessageReceived), "the removed member's kept state read it"
