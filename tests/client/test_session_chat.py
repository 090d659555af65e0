"""Two and three sessions over a real relay: create, join, chat, and agree on every epoch."""

from __future__ import annotations

import asyncio

from session_harness import agree, running_relay, start_peer, stop_all, wait_until


async def test_two_members_create_join_and_chat() -> None:
    async with running_relay() as relay:
        alice = start_peer(relay.port, "room1", "alice")
        await wait_until(lambda: alice.ready, what="alice creates the group")
        assert alice.epoch == 0
        assert any("you created the group" in t for t in alice.timeline())
        bob = start_peer(relay.port, "room1", "bob")
        try:
            # bob joins (epoch 1) and commits his own update at once (epoch 2, the taint rule).
            await wait_until(lambda: agree(alice, bob) and (alice.epoch or 0) >= 2, what="bob joins")
            assert any(t.startswith("bob joined · epoch 1 · ") for t in alice.timeline())
            assert any(t.startswith("you joined · epoch 1") for t in bob.timeline())
            lid = alice.session.send_text("hello bob")
            bob.session.send_text("hi alice")
            await wait_until(
                lambda: bob.texts() == ["hello bob"] and alice.texts() == ["hi alice"], what="chat"
            )
            await wait_until(lambda: lid in alice.confirmed(), what="alice's echo")
            assert [r.name for r in alice.session.roster()] == ["alice", "bob"]
            assert all(r.online for r in alice.session.roster())
        finally:
            await stop_all(alice, bob)


async def test_members_arriving_together_in_an_empty_room_form_one_group() -> None:
    async with running_relay() as relay:
        for room in ("together-1", "together-2", "together-3"):
            peers = [start_peer(relay.port, room, name) for name in ("ann", "ben", "cat")]
            try:
                await wait_until(lambda ps=peers: agree(*ps) and len(ps[0].session.roster()) == 3, 20, room)
                created = [p.name for p in peers if any("you created the group" in t for t in p.timeline())]
                assert len(created) == 1, created
            finally:
                await stop_all(*peers)


async def test_the_last_member_leaves_at_once() -> None:
    async with running_relay() as relay:
        alice = start_peer(relay.port, "solo", "alice")
        await wait_until(lambda: alice.ready, what="alice ready")
        alice.session.leave()
        assert alice.task is not None
        await asyncio.wait_for(alice.task, 5)
        assert alice.timeline()[-1] == "you left; the group is now empty"
