"""Concurrency and loss: the commit race, the offline queue, scheduled updates."""

from __future__ import annotations

from session_harness import agree, running_relay, start_peer, stop_all, wait_until

from groupchat.client.notices import ConnectionState


async def test_commit_race_two_rekeys_at_once_lose_no_message() -> None:
    async with running_relay() as relay:
        alice = start_peer(relay.port, "r", "alice")
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start_peer(relay.port, "r", "bob")
        try:
            await wait_until(lambda: agree(alice, bob) and (alice.epoch or 0) >= 2, what="bob in and updated")
            start = alice.epoch
            assert start is not None
            alice.session.request_rekey()
            bob.session.request_rekey()
            sent = []
            for i in range(5):
                sent.append(alice.session.send_text(f"a{i}"))
                bob.session.send_text(f"b{i}")
            # Both commits were built on the same epoch; the relay's order picks one, the loser
            # rebuilds its update on the new epoch: both refresh their keys, both end agreeing.
            await wait_until(
                lambda: agree(alice, bob) and (alice.epoch or 0) >= start + 2, what="two updates"
            )
            await wait_until(
                lambda: (
                    bob.texts() == [f"a{i}" for i in range(5)]
                    and alice.texts() == [f"b{i}" for i in range(5)]
                ),
                what="every message read once, in order",
            )
            await wait_until(lambda: set(sent) <= set(alice.confirmed()), what="alice's echoes")
            assert len(alice.confirmed()) == len(set(alice.confirmed()))
            for p in (alice, bob):
                assert any(t.startswith("you refreshed your keys") for t in p.timeline()[-4:])
        finally:
            await stop_all(alice, bob)


async def test_offline_queue_delivers_once_after_reconnect() -> None:
    async with running_relay() as relay:
        alice = start_peer(relay.port, "r", "alice", reconnect_min=0.5, reconnect_max=0.6)
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start_peer(relay.port, "r", "bob")
        try:
            await wait_until(lambda: agree(alice, bob) and (alice.epoch or 0) >= 2, what="bob in")
            epoch = alice.epoch
            assert epoch is not None
            await alice.session.drop_connection()
            await wait_until(
                lambda: alice.session.status.connection is ConnectionState.RECONNECTING, what="offline"
            )
            ids = [alice.session.send_text("typed offline 1"), alice.session.send_text("typed offline 2")]
            await wait_until(lambda: bob.texts() == ["typed offline 1", "typed offline 2"], what="delivered")
            await wait_until(lambda: set(ids) <= set(alice.confirmed()), what="confirmed")
            assert any(t.startswith("reconnected") for t in alice.timeline())
            # Post-compromise security by habit: a self-update after our own reconnect.
            await wait_until(
                lambda: agree(alice, bob) and (alice.epoch or 0) > epoch, what="update after reconnect"
            )
            bob.session.send_text("welcome back")
            await wait_until(lambda: alice.texts() == ["welcome back"], what="alice reads again")
            assert bob.texts() == ["typed offline 1", "typed offline 2"]
        finally:
            await stop_all(alice, bob)


async def test_scheduled_updates_by_time_and_by_count() -> None:
    async with running_relay() as relay:
        alice = start_peer(relay.port, "r", "alice", update_every=3)
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start_peer(relay.port, "r", "bob", update_interval=0.5)
        try:
            await wait_until(lambda: agree(alice, bob) and (alice.epoch or 0) >= 2, what="bob in")
            # bob updates every 0.5 s without anyone asking.
            start = alice.epoch
            assert start is not None
            await wait_until(
                lambda: agree(alice, bob) and (alice.epoch or 0) >= start + 2, what="timed updates"
            )
            assert any(t.startswith("bob refreshed their keys") for t in alice.timeline())
            before = sum(t.startswith("you refreshed") for t in alice.timeline())
            for i in range(3):
                alice.session.send_text(f"m{i}")
            await wait_until(
                lambda: sum(t.startswith("you refreshed") for t in alice.timeline()) > before,
                what="count update",
            )
            await wait_until(lambda: bob.texts() == ["m0", "m1", "m2"], what="messages read")
        finally:
            await stop_all(alice, bob)
