"""A relay restart: without Redis the log is gone (the members are told, and keep their group: the
relay's word is no evidence); with Redis the sessions resume and nothing is lost."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from session_harness import agree, running_relay, start_peer, stop_all, wait_until

from groupchat.client.notices import TimelineKind, UnreadableReason
from server.redis_server import RedisProcess, redis_available, start_redis


async def test_relay_restart_without_redis_keeps_the_group_and_tells_the_user() -> None:
    async with running_relay() as relay:
        port = relay.port
        alice = start_peer(port, "r", "alice")
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start_peer(port, "r", "bob")
        await wait_until(lambda: agree(alice, bob) and (alice.epoch or 0) >= 2, what="bob in")
        alice.session.send_text("before")
        await wait_until(lambda: bob.texts() == ["before"], what="first message")
        epoch, code = alice.epoch, alice.session.epoch_codes[alice.epoch or 0]
    try:
        # The same port, a fresh in-memory relay: every resume is past its head (future_seq).
        async with running_relay(port=port):
            for p in (alice, bob):
                await wait_until(lambda p=p: p.ready and bool(p.notices), 20, f"{p.name} back")
                warnings = [n.text for n in p.notices if getattr(n, "kind", None) is TimelineKind.WARNING]
                assert any("the relay says it lost its log" in w for w in warnings), p.name
                # The same group (its epochs go on from where they were; the reconnect's update
                # may add one): nobody created a group or joined one again.
                assert (p.epoch or 0) >= (epoch or 0) and p.session.epoch_codes[epoch or 0] == code, p.name
                assert sum(t.startswith(("you created", "you joined")) for t in p.timeline()) <= 1
            assert agree(alice, bob) and len(bob.session.roster()) == 2
            alice.session.send_text("after")
            await wait_until(lambda: bob.texts() == ["before", "after"], what="chat after the restart")
    finally:
        await stop_all(alice, bob)


@pytest.fixture
def redis_proc() -> Iterator[RedisProcess]:
    if not redis_available():
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing in CI: run .ci/install-deps")
        pytest.skip("redis-server is not installed (run .ci/install-deps)")
    proc = start_redis()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.mark.redis
async def test_relay_restart_with_redis_loses_nothing(redis_proc: RedisProcess) -> None:
    async with running_relay(redis_url=redis_proc.url) as relay:
        port = relay.port
        alice = start_peer(port, "r", "alice")
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start_peer(port, "r", "bob")
        await wait_until(lambda: agree(alice, bob) and (alice.epoch or 0) >= 2, what="bob in")
        alice.session.send_text("before")
        await wait_until(lambda: bob.texts() == ["before"], what="first message")
    try:
        # Typed while the relay is down: queued, then sent once the relay is back.
        alice.session.send_text("during")
        async with running_relay(redis_url=redis_proc.url, port=port):
            await wait_until(lambda: bob.texts() == ["before", "during"], 20, "resumed without loss")
            bob.session.send_text("after")
            await wait_until(lambda: alice.texts() == ["after"], what="chat after the restart")
            assert agree(alice, bob)
            for p in (alice, bob):
                assert not p.placeholders(), p.placeholders()
                assert not any("lost its log" in t for t in p.timeline())
    finally:
        await stop_all(alice, bob)


async def test_gap_after_the_log_was_trimmed_keeps_the_group_and_counts_the_missed() -> None:
    async with running_relay(log_max_count=5) as relay:
        alice = start_peer(relay.port, "r", "alice", reconnect_min=1.0, reconnect_max=1.2)
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start_peer(relay.port, "r", "bob")
        try:
            await wait_until(lambda: agree(alice, bob) and (alice.epoch or 0) >= 2, what="bob in")
            await alice.session.drop_connection()
            for i in range(10):
                bob.session.send_text(f"while away {i}")
            await wait_until(lambda: len(bob.confirmed()) == 10, what="bob's messages logged")
            await wait_until(lambda: agree(alice, bob) and len(bob.session.roster()) == 2, 15, "alice back")
            missed = [p for p in alice.placeholders() if p.reason is UnreadableReason.MISSED_OFFLINE]
            assert len(missed) == 1 and missed[0].count >= 10, missed
            assert any("log was trimmed" in t for t in alice.timeline())
            assert not any("rejoining" in t for t in bob.timeline())  # nobody signed a reason to
            bob.session.send_text("readable again")
            await wait_until(lambda: "readable again" in alice.texts(), what="alice reads again")
            assert not any(t.startswith("while away") for t in alice.texts())
        finally:
            await stop_all(alice, bob)
