"""Messages typed during a relay outage: every member who was in all along reads each once (none
shows "sent before you joined"), and nothing typed is lost or shown twice."""

from __future__ import annotations

from session_harness import Peer, agree, running_relay, start_peer, stop_all, wait_until

from groupchat.client.notices import ChatLine, UnreadableReason


def _got(p: Peer, sender: str) -> list[str]:
    return [n.text for n in p.notices if isinstance(n, ChatLine) and not n.own and n.sender == sender]


def _all_in(*peers: Peer) -> bool:
    return agree(*peers) and all(len(p.session.roster()) == len(peers) for p in peers)


async def _outage(scheme: str) -> None:
    async with running_relay() as relay:
        port = relay.port
        alice = start_peer(port, "r", "alice", scheme=scheme)
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start_peer(port, "r", "bob")
        await wait_until(lambda: _all_in(alice, bob), 15, "bob in")
        carol = start_peer(port, "r", "carol")
        peers = (alice, bob, carol)
        await wait_until(lambda: _all_in(*peers), 20, "carol in")
        alice.session.send_text("before")
        await wait_until(lambda: _got(bob, "alice") == _got(carol, "alice") == ["before"], what="first")
    try:
        # The relay is gone: what is typed now waits in the outbox.
        await wait_until(lambda: not any(p.ready for p in peers), what="all see the outage")
        alice.session.send_text("during a")
        bob.session.send_text("during b")
        alice.session.send_text("during a2")
        async with running_relay(port=port):
            await wait_until(lambda: _all_in(*peers), 30, "back")
            from_alice, from_bob = ["before", "during a", "during a2"], ["during b"]
            await wait_until(
                lambda: _got(bob, "alice") == _got(carol, "alice") == from_alice
                and _got(alice, "bob") == _got(carol, "bob") == from_bob,
                20,
                "every message typed during the outage",
            )
            for p in peers:
                before_join = [x for x in p.placeholders() if x.reason is UnreadableReason.BEFORE_JOIN]
                assert not before_join, (p.name, before_join, p.timeline())
                assert not p.placeholders(), (p.name, p.placeholders())
    finally:
        await stop_all(*peers)


async def test_messages_typed_during_an_outage_reach_every_member_once_tree() -> None:
    await _outage("tree")


async def test_messages_typed_during_an_outage_reach_every_member_once_ring() -> None:
    await _outage("ring")


async def _missed_commit(others_back_after: float | None) -> None:
    """Carol is away when bob rekeys, then the in-memory relay restarts (the commit is gone with
    its log) while alice types: carol, a member all along, must read it, never "before you joined".
    ``others_back_after``: alice and bob reconnect this late (carol is back first)."""
    late = others_back_after
    slow = {} if late is None else {"reconnect_min": late, "reconnect_max": late}
    async with running_relay() as relay:
        port = relay.port
        alice = start_peer(port, "r", "alice", **slow)
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start_peer(port, "r", "bob", **slow)
        await wait_until(lambda: _all_in(alice, bob), 15, "bob in")
        carol = start_peer(port, "r", "carol", reconnect_min=1.5, reconnect_max=1.5)
        peers = (alice, bob, carol)
        await wait_until(lambda: _all_in(*peers), 20, "carol in")
        alice.session.send_text("before")
        await wait_until(lambda: _got(bob, "alice") == _got(carol, "alice") == ["before"], what="first")
        await carol.session.drop_connection()
        epoch = alice.epoch or 0
        bob.session.request_rekey()
        await wait_until(lambda: alice.epoch == bob.epoch == epoch + 1, what="bob's rekey")
    try:
        await wait_until(lambda: not any(p.ready for p in peers), what="all see the outage")
        assert carol.epoch == epoch  # she missed bob's rekey, which the relay's lost log held
        alice.session.send_text("during a")
        async with running_relay(port=port):
            await wait_until(lambda: _all_in(*peers), 30, "back")
            for p in (bob, carol):
                await wait_until(lambda p=p: _got(p, "alice") == ["before", "during a"], 20, p.name)
            assert carol.session.epoch_codes[epoch + 1] == alice.session.epoch_codes[epoch + 1]
            for p in peers:
                before_join = [x for x in p.placeholders() if x.reason is UnreadableReason.BEFORE_JOIN]
                assert not before_join, (p.name, before_join, p.timeline())
            bob.session.send_text("after")
            for p in (alice, carol):
                await wait_until(lambda p=p: _got(p, "bob") == ["after"], 20, f"{p.name} reads on")
    finally:
        await stop_all(*peers)


async def test_a_member_who_missed_the_last_commit_before_the_outage_reads_what_was_typed() -> None:
    await _missed_commit(None)


async def test_the_member_who_missed_the_last_commit_back_first_does_not_fork_off() -> None:
    await _missed_commit(3.0)
