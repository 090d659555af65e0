"""Joins, leaves, kicks, evictions and key changes between real sessions over a real relay."""

from __future__ import annotations

import asyncio

from session_harness import agree, running_relay, start_peer, stop_all, wait_until

from groupchat.client import wording
from groupchat.client.names import compact_fingerprint
from groupchat.client.notices import TimelineKind, TrustState
from groupchat.core.identity import Identity
from groupchat.lab.clock import ManualClock


async def test_three_members_chat_then_one_leaves() -> None:
    async with running_relay() as relay:
        alice = start_peer(relay.port, "r", "alice")
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start_peer(relay.port, "r", "bob")
        await wait_until(lambda: agree(alice, bob), what="bob in")
        carol = start_peer(relay.port, "r", "carol")
        peers = (alice, bob, carol)
        try:
            await wait_until(lambda: agree(*peers) and len(alice.session.roster()) == 3, what="carol in")
            for p in peers:
                p.session.send_text(f"from {p.name}")
            await wait_until(
                lambda: all(
                    sorted(p.texts()) == sorted(f"from {q.name}" for q in peers if q is not p) for p in peers
                ),
                what="everyone reads everyone",
            )
            # Every join rekeyed, and the timeline says so in plain words.
            assert any(
                t.startswith("carol joined · epoch ") and "keys refreshed in" in t for t in bob.timeline()
            )
            bob.session.leave()
            assert bob.task is not None
            await asyncio.wait_for(bob.task, 10)
            assert any(t.startswith("you left the group") for t in bob.timeline())
            await wait_until(
                lambda: agree(alice, carol) and len(alice.session.roster()) == 2, what="bob removed"
            )
            assert any(t.startswith("bob left · epoch ") for t in carol.timeline())
            alice.session.send_text("after bob")
            await wait_until(lambda: "after bob" in carol.texts(), what="chat after the leave")
            assert "after bob" not in bob.texts()
        finally:
            await stop_all(*peers)


async def test_kick_and_eviction_after_grace() -> None:
    async with running_relay() as relay:
        alice = start_peer(relay.port, "r", "alice", eviction_grace=1.0)
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start_peer(relay.port, "r", "bob", eviction_grace=1.0)
        carol = start_peer(relay.port, "r", "carol", eviction_grace=1.0)
        try:
            await wait_until(
                lambda: agree(alice, bob, carol) and len(alice.session.roster()) == 3, what="3 in"
            )
            # carol vanishes without a leave request: the others remove her after the grace period.
            await carol.stop(leave=False)
            await wait_until(lambda: len(alice.session.roster()) == 2 and agree(alice, bob), 10, "eviction")
            lines = alice.timeline() + bob.timeline()
            assert any("carol was removed by" in t and "not heard from for 1 s" in t for t in lines)
            alice.session.kick("bob")
            await wait_until(lambda: bob.task is not None and bob.task.done(), 10, "bob kicked")
            assert any(
                n.kind is TimelineKind.REMOVED and "removed from the group by alice" in n.text
                for n in bob.notices
                if hasattr(n, "kind")
            )
            await wait_until(lambda: len(alice.session.roster()) == 1, what="alice alone")
        finally:
            await stop_all(alice, bob, carol)


async def test_two_joiners_at_once_and_two_eligible_committers() -> None:
    # A tiny add_timeout makes the second member in line eligible almost at once, so both
    # members commit the Add: the relay's order decides and both must end up agreeing.
    async with running_relay() as relay:
        alice = start_peer(relay.port, "r", "alice", add_timeout=0.001)
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start_peer(relay.port, "r", "bob", add_timeout=0.001)
        await wait_until(lambda: agree(alice, bob), what="bob in")
        carol = start_peer(relay.port, "r", "carol", add_timeout=0.001)
        dave = start_peer(relay.port, "r", "dave", add_timeout=0.001)
        peers = (alice, bob, carol, dave)
        try:
            await wait_until(
                lambda: agree(*peers) and len(alice.session.roster()) == 4, 20, "both joiners in"
            )
            codes = [dict(p.session.epoch_codes) for p in peers]
            for epoch, code in codes[0].items():
                for other in codes[1:]:
                    assert other.get(epoch, code) == code, f"fork at epoch {epoch}"
            dave.session.send_text("dave here")
            await wait_until(
                lambda: all(p.texts() == ["dave here"] for p in (alice, bob, carol)), what="dave reads"
            )
        finally:
            await stop_all(*peers)


async def test_a_new_key_under_a_verified_name_is_another_member_and_safety_numbers() -> None:
    async with running_relay() as relay:
        alice = start_peer(relay.port, "r", "alice")
        await wait_until(lambda: alice.ready, what="alice ready")
        bob_id = Identity.generate()
        bob = start_peer(relay.port, "r", "bob", identity=bob_id)
        try:
            await wait_until(lambda: agree(alice, bob), what="bob in")
            number = alice.session.safety_number("bob")
            assert number == bob.session.safety_number("alice")
            alice.session.trust("bob")
            assert {r.name: r.trust for r in alice.session.roster()}["bob"] is TrustState.VERIFIED
            await bob.stop(leave=True)
            await wait_until(lambda: len(alice.session.roster()) == 1, what="bob gone")
            impostor = start_peer(relay.port, "r", "bob")
            await wait_until(lambda: agree(alice, impostor), what="new bob in")
            # Another key is another member: shown with its fingerprint suffix (alice's trust store
            # knows a "bob" under the first key), warned about once, and not verified.
            label = next(r.name for r in alice.session.roster() if not r.is_me)
            assert label.startswith("bob·" + compact_fingerprint(impostor.session.identity.public_key)[:4])
            warnings = [n.text for n in alice.notices if getattr(n, "kind", None) is TimelineKind.WARNING]
            assert [w for w in warnings if "looks like" in w] == [
                wording.lookalike_member(label, ("bob·" + compact_fingerprint(bob_id.public_key)[:4],))
            ]
            assert {r.name: r.trust for r in alice.session.roster()}[label] is TrustState.UNVERIFIED
            await impostor.stop()
        finally:
            await stop_all(alice, bob)


async def test_a_known_key_under_a_new_name_is_noted_and_stays_verified() -> None:
    async with running_relay() as relay:
        alice = start_peer(relay.port, "r", "alice")
        await wait_until(lambda: alice.ready, what="alice ready")
        bob_id = Identity.generate()
        bob = start_peer(relay.port, "r", "bob", identity=bob_id)
        robert = None
        try:
            await wait_until(lambda: agree(alice, bob), what="bob in")
            alice.session.trust("bob")
            await bob.stop(leave=True)
            await wait_until(lambda: len(alice.session.roster()) == 1, what="bob gone")
            robert = start_peer(relay.port, "r", "robert", identity=bob_id)  # same key, new name
            await wait_until(lambda: agree(alice, robert), what="robert in")
            assert wording.member_renamed("robert", ("bob",)) in alice.timeline()
            assert not any("looks like" in t for t in alice.timeline())
            assert {r.name: r.trust for r in alice.session.roster()}["robert"] is TrustState.VERIFIED
        finally:
            await stop_all(alice, bob, *([robert] if robert is not None else []))


async def test_injected_clock_drives_eviction_and_scheduled_update() -> None:
    clock = ManualClock.following()
    async with running_relay() as relay:
        alice = start_peer(relay.port, "r", "alice", clock=clock, eviction_grace=60.0, update_interval=600.0)
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start_peer(relay.port, "r", "bob", eviction_grace=60.0, update_interval=600.0)
        await wait_until(lambda: agree(alice, bob) and (alice.epoch or 0) >= 2, what="bob in")
        try:
            epoch = alice.epoch
            assert epoch is not None
            clock.advance(601.0)  # alice's update is due: she commits one without being asked
            await wait_until(lambda: agree(alice, bob) and alice.epoch == epoch + 1, what="scheduled update")
            assert alice.timeline()[-1].startswith(f"you refreshed your keys · epoch {epoch + 1}")
            await bob.stop(leave=False)
            await asyncio.sleep(0.5)
            assert len(alice.session.roster()) == 2  # 60 s have not passed on alice's clock
            clock.advance(61.0)
            await wait_until(lambda: len(alice.session.roster()) == 1, what="eviction")
            assert any("bob was removed by alice: not heard from for 60 s" in t for t in alice.timeline())
        finally:
            await stop_all(alice, bob)
