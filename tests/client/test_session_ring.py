"""Ring groups between real sessions over a real relay: the session drives the ring's rounds
(the core's outbox after every step), holds messages while a rekey runs, shows whom a rekey waits
for, retries after a timeout that names the missing member, and a joiner takes part in the ring
that lets it in. The ring's own cryptography is tested in tests/core."""

from __future__ import annotations

import asyncio

from session_harness import (
    HoldingProxy,
    agree,
    running_relay,
    start_peer,
    stop_all,
    wait_until,
)

from groupchat.client.notices import ChatLine, StatusChanged, TimelineKind, TreeView
from groupchat.lab.clock import ManualClock


async def test_ring_group_joins_chats_and_leaves_with_every_change_a_ring_rekey() -> None:
    async with running_relay() as relay:
        alice = start_peer(relay.port, "ring", "alice", scheme="ring")
        await wait_until(lambda: alice.ready, what="alice ready")
        # Joiners need no --scheme: they follow the group's.
        bob = start_peer(relay.port, "ring", "bob")
        await wait_until(lambda: agree(alice, bob), what="bob in")
        carol = start_peer(relay.port, "ring", "carol")
        peers = (alice, bob, carol)
        try:
            await wait_until(lambda: agree(*peers) and len(alice.session.roster()) == 3, what="carol in")
            assert {p.session.status.scheme for p in peers} == {"ring"}
            # A ring joiner is told it is in only when the ring that lets it in is done.
            joined = [t for t in carol.timeline() if t.startswith("you joined")]
            assert len(joined) == 1 and "ring agreed in" in joined[0]
            assert any(t.startswith("welcome opened in") and "in a ring" in t for t in carol.timeline())
            assert any(t.startswith("carol joined · epoch ") for t in alice.timeline())
            view = alice.session.tree_view()
            assert view.scheme == "ring" and view.epoch == alice.epoch
            assert [n.label for n in view.nodes] == ["alice", "bob", "carol"]
            assert [n.mine for n in view.nodes] == [True, False, False]
            # Every member saw a rekey under way (the status bar's "rekeying ... waiting for").
            assert any(
                isinstance(n, StatusChanged) and n.rekey_waiting_for is not None for n in bob.notices
            )

            for p in peers:
                p.session.send_text(f"from {p.name}")
            await wait_until(
                lambda: all(
                    sorted(p.texts()) == sorted(f"from {q.name}" for q in peers if q is not p) for p in peers
                ),
                what="everyone reads everyone",
            )
            epoch = alice.epoch
            assert epoch is not None
            bob.session.request_rekey()
            await wait_until(lambda: agree(*peers) and alice.epoch == epoch + 1, what="/rekey: a new ring")
            refreshed = f"bob refreshed their keys · epoch {epoch + 1}"
            assert any(t.startswith(refreshed) for t in carol.timeline())
            # The view is built only for a UI that asked for it (alice did, above); then at every change.
            assert any(isinstance(n, TreeView) and n.epoch == epoch + 1 for n in alice.notices)
            assert not any(isinstance(n, TreeView) for n in carol.notices)

            bob.session.leave()
            assert bob.task is not None
            await asyncio.wait_for(bob.task, 10)
            await wait_until(lambda: agree(alice, carol) and len(alice.session.roster()) == 2, what="bob out")
            assert any(t.startswith("bob left · epoch ") for t in carol.timeline())
            alice.session.send_text("after bob")
            await wait_until(lambda: "after bob" in carol.texts(), what="chat after the leave")
            assert "after bob" not in bob.texts()
            # No member ever saw a placeholder or a warning: every ring message was taken.
            for p in peers:
                assert p.placeholders() == []
                assert not [n for n in p.notices if getattr(n, "kind", None) is TimelineKind.WARNING]
        finally:
            await stop_all(*peers)


async def test_a_ring_rekey_waits_for_a_silent_member_names_it_and_completes_after_retry() -> None:
    clock = ManualClock.following()
    async with running_relay() as relay, HoldingProxy(relay.port) as proxy:
        alice = start_peer(relay.port, "ring", "alice", scheme="ring", clock=clock)
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start_peer(relay.port, "ring", "bob")
        await wait_until(lambda: agree(alice, bob), what="bob in")
        carol = start_peer(proxy.port, "ring", "carol")  # through a proxy that can hold her frames
        peers = (alice, bob, carol)
        try:
            await wait_until(lambda: agree(*peers) and len(alice.session.roster()) == 3, what="carol in")
            epoch = alice.epoch
            assert epoch is not None
            # carol's network stalls (still connected, nothing she sends gets through) while bob
            # asks for a rekey: the ring cannot finish without her.
            proxy.hold = True
            bob.session.request_rekey()
            await wait_until(
                lambda: "carol" in (alice.session.status.rekey_waiting_for or ()), what="waiting for carol"
            )
            typed = alice.session.send_text("typed mid-rekey")
            await asyncio.sleep(0.3)
            # Held until the new epoch: nobody read it yet, and it is still pending.
            assert "typed mid-rekey" not in bob.texts()
            assert typed not in alice.confirmed()
            assert alice.epoch == epoch
            clock.advance(31.0)  # alice's round deadline passes (the core's injected clock)
            await wait_until(
                lambda: any("is waiting for carol" in t for t in alice.timeline()),
                what="the timeout names who is missing",
            )
            # carol's network recovers: her stale messages of the first attempt are dropped, she
            # joins the retry, and everyone enters the new epoch.
            await proxy.release()
            await wait_until(lambda: agree(*peers) and alice.epoch == epoch + 1, 20, "the retry completes")
            await wait_until(lambda: "typed mid-rekey" in bob.texts(), what="the held message is sent")
            assert any(
                isinstance(n, ChatLine) and n.text == "typed mid-rekey" and n.epoch == epoch + 1
                for n in bob.notices
            )
            for p in peers:
                assert p.placeholders() == []
        finally:
            await stop_all(*peers)


async def test_a_member_gone_for_good_during_a_ring_rekey_is_removed_by_a_restart() -> None:
    clock = ManualClock.following()
    async with running_relay() as relay:
        alice = start_peer(relay.port, "ring", "alice", scheme="ring", clock=clock, eviction_grace=5.0)
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start_peer(relay.port, "ring", "bob", eviction_grace=600.0)
        await wait_until(lambda: agree(alice, bob), what="bob in")
        carol = start_peer(relay.port, "ring", "carol")
        try:
            await wait_until(lambda: agree(alice, bob, carol) and len(alice.session.roster()) == 3)
            epoch = alice.epoch
            assert epoch is not None
            await carol.stop(leave=False)  # gone, without a word
            await wait_until(
                lambda: not {r.name: r.online for r in alice.session.roster()}["carol"], what="carol offline"
            )
            bob.session.request_rekey()  # the ring now waits for carol, who never comes back
            await wait_until(
                lambda: "carol" in (alice.session.status.rekey_waiting_for or ()), what="waiting for carol"
            )
            clock.advance(31.0)  # alice: the round times out and carol is offline past the grace
            await wait_until(
                lambda: agree(alice, bob) and len(alice.session.roster()) == 2, 20, "restarted without carol"
            )
            assert alice.epoch == epoch + 1
            removed = f"carol was removed by alice: stalled a rekey for 5 s · epoch {epoch + 1} · ring of 2"
            assert any(t.startswith(removed) for t in alice.timeline()), alice.timeline()
            # bob tells the same story: the reason is in the signed commit.
            by_alice = f"carol was removed by alice: stalled a rekey for 5 s · epoch {epoch + 1}"
            assert any(t.startswith(by_alice) for t in bob.timeline())
            alice.session.send_text("without carol")
            await wait_until(lambda: "without carol" in bob.texts(), what="chat after the restart")
        finally:
            await stop_all(alice, bob, carol)
