"""Issue 14: one small deterministic test per ring attack that breaks an invariant of the state
machine (``test_ring_state_machine.py``) on today's code. Each mounts the attack through the public
API on a ring group of three honest members and the insider ``x`` (``ring_adversary.Net``) and
asserts the invariant, not the behaviour of one version. They were ``xfail(strict=True)`` on the
ring before its rewrite (three signed rounds, content-bound hashes, one attempt at a time, check
then switch, encrypt held during a removing ring), which passes them all; ``ring_adversary.BUGGY``
names the issue item each reproduces, and the machine mounts them all.
"""

from __future__ import annotations

import pytest
from ring_adversary import (
    KEYED,
    TIMEOUT,
    Frame,
    Net,
    describe,
    insider_variant,
    is_kind,
    keep,
    public_state,
    settle,
    split_untold,
)

from groupchat.core.epoch.machine import Phase
from groupchat.core.errors import GroupChatError, RemoteError, UsageError
from groupchat.core.events import MessageReceived
from groupchat.core.schemes.ring_message import RingRound


def _started(n_honest: int = 3) -> Net:
    """A ring group; h0 has committed a /rekey and everyone took the commit (nothing else yet)."""
    net = Net.grown([f"h{i}" for i in range(n_honest)])
    net.publish("h0", net.members["h0"].commit(update=True))
    net.sequence("h0")
    for name in sorted(net.members):
        net.deliver(name)  # the commit; each sends its round 1 (held by the relay)
    return net


def _pump_except(net: Net, *away: str) -> None:
    """Sequence and deliver everything to everyone but ``away`` (their queues keep filling)."""
    for _ in range(100):
        net.sequence_all()
        moved = False
        for name in sorted(net.members):
            while name not in away and net.deliver(name):
                moved = True
        if not moved and not any(net.held.values()):
            return
    raise AssertionError("the room did not settle")


def _insider_round(net: Net, round_: int) -> bytes:
    frames = [f.data for f in net.log if f.sender == net.insider and is_kind(f.data, "ROUND")]
    frames += [f.data for f in net.held[net.insider] if is_kind(f.data, "ROUND")]
    return next(d for d in reversed(frames) if RingRound.decode(d).round == round_)


def _control_the_room_settles(net: Net) -> None:
    """Control for the tests: without the attack the same steps settle, the honest agreeing."""
    settle(net)
    keys = {g.epoch_authenticator for n, g in net.live().items() if n != net.insider}
    assert len(keys) == 1, describe(net)


# --- (a) no silent split --------------------------------------------------------------------------


def _split_by_signature_bytes(*, drop_tag: bool) -> Net:
    """The insider's round 2 reaches h2 with other (valid) signature bytes of the same content; if
    ``drop_tag``, the relay also hides from h2 what h0 sends once its run is done (the committer's
    confirmation). Then the deadline passes for everyone."""
    net = _started()
    x = net.members[net.insider]

    def tamper(net: Net, frame: Frame) -> None:
        if is_kind(frame.data, "ROUND") and _round_of(frame.data) == 2:
            frame.variants["h2"] = insider_variant(x, frame.data, "signature", salt=b"other nonce")

    net.tamper = tamper
    for frame in net.held[net.insider]:  # x's round 1 is already out; round 2 is not
        tamper(net, frame)
    for _ in range(20):
        net.sequence_all()
        if drop_tag:
            done_at_h0 = [f.data for f in net.log if f.sender == "h0"]
            tail = done_at_h0[-1] if net.members["h0"].phase is not Phase.AGREEING else None
            if tail is not None and not is_kind(tail, "ROUND") and tail in net.queues["h2"]:
                net.queues["h2"].remove(tail)
                net.unclean.add("h2")
        if not any([net.deliver(n) for n in sorted(net.members)]):
            break
    assert "h2" in net.unclean or not drop_tag
    net.clock.advance(TIMEOUT + 1)
    net.all_tick()
    _pump_except(net)
    return net


def _round_of(data: bytes) -> int:
    return RingRound.decode(data).round


def test_two_signatures_of_one_round2_value_and_a_hidden_confirmation_do_not_split_silently() -> None:
    net = _split_by_signature_bytes(drop_tag=True)
    assert split_untold(net) == [], describe(net)


def test_a_member_that_saw_a_mismatching_confirmation_never_enters_that_epoch() -> None:
    net = _split_by_signature_bytes(drop_tag=False)
    h0, h2 = net.members["h0"], net.members["h2"]
    if h2.phase in KEYED and h2.epoch == h0.epoch:
        assert h2.epoch_authenticator == h0.epoch_authenticator, describe(net)


def test_other_signature_bytes_for_everyone_is_no_attack() -> None:
    """Control: the same variant for *every* member is just the insider's message; all agree."""
    net = _started()
    x = net.members[net.insider]

    def tamper(net: Net, frame: Frame) -> None:
        if is_kind(frame.data, "ROUND") and _round_of(frame.data) == 2:
            for name in net.honest:
                frame.variants[name] = insider_variant(x, frame.data, "signature", salt=b"s")

    net.tamper = tamper
    _pump_except(net)
    assert split_untold(net) == []
    _control_the_room_settles(net)


# --- (c) no freeze --------------------------------------------------------------------------------


def test_a_round1_claiming_the_last_attempt_does_not_freeze_the_ring() -> None:
    net = _started()
    net.sequence_all()
    claim = insider_variant(net.members[net.insider], _insider_round(net, 1), "attempt-max")
    net.publish(net.insider, claim, to=frozenset(net.honest))
    _pump_except(net, "h2")  # h2 is slow: the attempt in force times out
    net.clock.advance(TIMEOUT + 1)
    settle(net)  # every tick returns (no UsageError), and a retry or restart completes the run
    assert split_untold(net) == []


def test_a_slow_member_times_out_and_the_ring_retries() -> None:
    """Control for the test above: the same steps without the claim settle."""
    net = _started()
    _pump_except(net, "h2")
    net.clock.advance(TIMEOUT + 1)
    _control_the_room_settles(net)


# --- (b) a bad message of the next attempt changes nothing -------------------------------------


def _one_message_from_done() -> tuple[Net, str]:
    """h1 holds every message of the run but the insider's round 2, which the relay holds back;
    nobody has completed yet."""
    net = _started()
    net.sequence_all()  # every round 1
    for name in sorted(net.members):
        while net.deliver(name):
            pass  # everyone sends its round 2 (held)
    for sender in ("h0", "h1", "h2"):
        net.sequence(sender)
    while net.deliver("h1"):
        pass
    net.sequence(net.insider)  # x's round 2: h1's only frame left, the one completing its run
    assert len(net.queues["h1"]) == 1 and is_kind(net.queues["h1"][0], "ROUND")
    assert net.members["h1"].phase is Phase.AGREEING
    return net, "h1"


@pytest.mark.parametrize("how", ["next-low-order", "next-round2"])
def test_a_bad_message_of_the_next_attempt_does_not_abandon_the_running_one(how: str) -> None:
    net, name = _one_message_from_done()
    g = net.members[name]
    bad = insider_variant(net.members[net.insider], _insider_round(net, 1), how)
    before = public_state(g)
    with pytest.raises(RemoteError):
        g.receive(bad)
    assert public_state(g) == before
    net.deliver(name)  # the genuine last message still completes the running attempt
    assert g.phase is not Phase.AGREEING, describe(net)


def test_the_last_message_completes_the_run() -> None:
    """Control for the test above: without the bad message, the last one completes h1's run."""
    net, name = _one_message_from_done()
    net.deliver(name)
    assert net.members[name].phase is not Phase.AGREEING
    _control_the_room_settles(net)


# --- (b) a forged unsigned frame changes nothing, even later -------------------------------------


def test_a_forged_confirmation_does_not_make_the_completing_round2_raise_after_a_change() -> None:
    net, name = _one_message_from_done()
    for other in ("h0", "h2"):  # h0 completes first and sends what it sends then (held)
        while net.deliver(other):
            pass
    assert net.members["h0"].phase is not Phase.AGREEING
    real = net.held["h0"][-1].data  # today the unsigned confirmation
    forged = real[:-1] + bytes([real[-1] ^ 1])  # a bit-flipped copy of it
    g = net.members[name]
    net.queues[name].appendleft(forged)  # before the round-2 message completing h1's run
    for _ in range(2):
        before = public_state(g)
        try:
            g.receive(net.queues[name].popleft())
        except RemoteError as exc:
            assert public_state(g) == before, f"raised {type(exc).__name__} after the state changed"
    net.drain(name)
    _control_the_room_settles(net)


# --- (d) nothing sent at an epoch whose successor removes someone ------------------------------


def test_no_message_a_removed_member_can_read_is_sent_once_its_removal_is_applied() -> None:
    net = Net.grown(["h0", "h1", "h2", "h3"])
    h0, h3 = net.members["h0"], net.members["h3"]
    kept = keep(h3)  # what h3 keeps of the epoch its removal ends
    net.publish("h0", h0.commit(remove=[h3.my_leaf]))
    net.sequence("h0")
    net.deliver("h0")  # h0 applies its removal of h3; the ring without h3 runs
    assert h0.phase is Phase.AGREEING
    try:
        message = h0.encrypt(b"after h3's removal")
    except UsageError:
        return  # refused (or held) until the new epoch: what the issue asks
    try:
        ev = keep(kept).receive(message)
    except GroupChatError:
        return
    assert not isinstance(ev, MessageReceived), "the removed member reads a message sent after its removal"


def test_before_its_removal_is_applied_the_member_still_reads() -> None:
    """Control for the test above: the same kept state reads a message sent before the removal."""
    net = Net.grown(["h0", "h1", "h2", "h3"])
    kept = keep(net.members["h3"])
    message = net.members["h0"].encrypt(b"before")
    assert isinstance(keep(kept).receive(message), MessageReceived)


# --- found by the machine: an unsigned byte of a ring commit -----------------------------------


def test_a_ring_commit_with_a_flipped_unsigned_tag_does_not_split_its_receiver_off() -> None:
    """The relay hands h2 a copy of h0's commit with one bit of its (unsigned, unused) confirmation
    tag flipped, ahead of the genuine one. Before, h2 accepted it and ran the ring bound to those
    bytes, so every round message of the others was refused (RosterMismatchError) and the others
    could only restart h2 out. Now a ring commit's tag must be all zero: the copy is refused."""
    net = Net.grown(["h0", "h1", "h2"])
    net.publish("h0", net.members["h0"].commit(update=True))
    net.sequence("h0")
    real = net.queues["h2"][0]
    assert is_kind(real, "COMMIT")
    net.queues["h2"].appendleft(real[:-1] + bytes([real[-1] ^ 1]))
    settle(net)  # h2 is not "unclean": the relay hid nothing from it and swapped nothing
    assert "h2" in net.live() and split_untold(net) == [], describe(net)


def test_the_same_steps_without_the_flipped_copy_settle() -> None:
    """Control for the test above."""
    net = Net.grown(["h0", "h1", "h2"])
    net.publish("h0", net.members["h0"].commit(update=True))
    _control_the_room_settles(net)
    assert net.members["h2"].epoch == net.members["h0"].epoch
