"""A ring group across an in-memory relay restart (the log is gone): it stays a ring, whoever's
settings say "tree", and a group made afresh in its place is a ring too and says it re-formed."""

from __future__ import annotations

from session_harness import agree, running_relay, start_peer, stop_all, wait_until


async def test_ring_group_stays_a_ring_across_an_in_memory_relay_restart() -> None:
    async with running_relay() as relay:
        port = relay.port
        alice = start_peer(port, "r", "alice", scheme="ring")
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start_peer(port, "r", "bob")  # settings say "tree": a joiner follows the group's
        await wait_until(lambda: agree(alice, bob) and len(bob.session.roster()) == 2, 15, "bob in")
        assert alice.session.status.scheme == bob.session.status.scheme == "ring"
        alice.session.send_text("before")
        await wait_until(lambda: bob.texts() == ["before"], what="first message")
    try:
        async with running_relay(port=port):
            for p in (alice, bob):
                told = lambda p=p: p.ready and any("lost its log" in t for t in p.timeline())  # noqa: E731
                await wait_until(told, 20, p.name)
            await wait_until(lambda: agree(alice, bob) and len(bob.session.roster()) == 2, 20, "back")
            for p in (alice, bob):
                assert p.session.status.scheme == "ring", p.name
                assert p.session.tree_view().scheme == "ring", p.name
            alice.session.send_text("after")
            await wait_until(lambda: bob.texts() == ["before", "after"], what="chat after the restart")
            assert all(p.session.status.scheme == "ring" for p in (alice, bob))
    finally:
        await stop_all(alice, bob)


async def test_a_group_re_formed_after_a_restart_keeps_the_ring_scheme_and_says_so() -> None:
    """Bob (settings "tree") is evicted from alice's ring while away and learns it on his return;
    alice goes, and the in-memory relay restarts: alone, bob forms the group afresh: a ring."""
    async with running_relay() as relay:
        port = relay.port
        alice = start_peer(port, "r", "alice", scheme="ring", eviction_grace=0.5)
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start_peer(port, "r", "bob", reconnect_min=2.0, reconnect_max=2.0)
        try:
            await wait_until(lambda: agree(alice, bob) and len(bob.session.roster()) == 2, 15, "bob in")
            await bob.session.drop_connection()
            await wait_until(lambda: len(alice.session.roster()) == 1, 15, "bob evicted")
            await alice.stop()
            await wait_until(lambda: bob.session.status.member_count == 0, 15, "bob learns he was removed")
            assert bob.session.status.scheme == "ring"  # the scheme of the group he was in
        except BaseException:
            await stop_all(alice, bob)
            raise
    try:
        async with running_relay(port=port):
            await wait_until(lambda: bob.ready and bob.session.status.member_count == 1, 20, "bob re-forms")
            assert bob.session.status.scheme == "ring"
            assert bob.session.tree_view().scheme == "ring"
            assert any("re-formed" in t for t in bob.timeline()), bob.timeline()
    finally:
        await stop_all(bob)
