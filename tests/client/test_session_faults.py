"""Late, refused and altered traffic: a message that raced two commits is re-encrypted and sent
again; an altered commit makes its receiver rejoin; unreadable messages get the right placeholder."""

from __future__ import annotations

import asyncio

from session_harness import HoldingProxy, agree, running_relay, start_peer, stop_all, wait_until
from websockets.asyncio.client import ClientConnection, connect

from groupchat.client.notices import TimelineKind, UnreadableReason
from groupchat.client.room_payload import PayloadKind, RoomPayload
from groupchat.relay_protocol import Hello, Join, Publish, decode_client, encode


async def _raw_publisher(port: int, room: bytes) -> ClientConnection:
    """A bare relay client in ``room`` (an attacker on the network, or a buggy client)."""
    ws = await connect(f"ws://127.0.0.1:{port}", compression=None)
    await ws.send(encode(Hello("test")))
    await ws.recv()
    await ws.send(encode(Join(1, room, b"mallory")))
    await ws.recv()
    return ws


async def test_message_that_raced_two_commits_is_resent_once() -> None:
    async with running_relay() as relay, HoldingProxy(relay.port) as proxy:
        alice = start_peer(proxy.port, "r", "alice")
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start_peer(relay.port, "r", "bob")
        await wait_until(lambda: agree(alice, bob) and (alice.epoch or 0) >= 2, what="bob in")
        carol = start_peer(relay.port, "r", "carol")
        peers = (alice, bob, carol)
        try:
            await wait_until(
                lambda: agree(*peers) and all(p.session._machine.want_update is None for p in peers), 10, "3"
            )
            epoch = alice.epoch
            assert epoch is not None
            proxy.hold = True
            lid = alice.session.send_text("raced")
            await wait_until(lambda: len(proxy.held) == 1, what="alice's message on the wire")
            bob.session.request_rekey()
            await wait_until(lambda: agree(*peers) and alice.epoch == epoch + 1, what="first commit")
            carol.session.request_rekey()
            await wait_until(lambda: agree(*peers) and alice.epoch == epoch + 2, what="second commit")
            # Now the message reaches the relay, two epochs late: receivers no longer hold its
            # keys. Alice sees her echo at the old epoch, re-encrypts and sends it again.
            await proxy.release()
            await wait_until(lambda: bob.texts() == ["raced"] and carol.texts() == ["raced"], what="resent")
            await wait_until(lambda: lid in alice.confirmed(), what="confirmed")
            await asyncio.sleep(0.3)
            assert alice.confirmed().count(lid) == 1
            assert bob.texts() == ["raced"]
            expired = [p for p in bob.placeholders() if p.reason is UnreadableReason.EXPIRED_EPOCH]
            assert len(expired) == 1 and f"epoch {epoch}" in expired[0].detail
        finally:
            await stop_all(*peers)


async def test_altered_commit_is_refused_and_the_original_still_applies() -> None:
    async with running_relay() as relay, HoldingProxy(relay.port) as proxy:
        alice = start_peer(proxy.port, "r", "alice")
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start_peer(relay.port, "r", "bob")
        mallory = await _raw_publisher(relay.port, b"r")
        try:
            await wait_until(lambda: agree(alice, bob) and (alice.epoch or 0) >= 2, what="bob in")
            proxy.hold = True
            alice.session.request_rekey()
            await wait_until(lambda: len(proxy.held) == 1, what="alice's commit on the wire")
            frame = decode_client(proxy.held[0])
            assert isinstance(frame, Publish)
            payload = RoomPayload.decode(frame.payload)
            assert payload.kind is PayloadKind.CORE
            # Flip the last byte (the confirmation tag, outside the signature) and publish the
            # altered copy first, as a malicious relay or member could.
            altered = payload.body[:-1] + bytes([payload.body[-1] ^ 1])
            await mallory.send(encode(Publish(2, b"r", RoomPayload(PayloadKind.CORE, altered).encode())))
            await proxy.release()
            await wait_until(
                lambda: any("cannot follow the last change to the group" in t for t in bob.timeline()),
                what="bob notices",
            )
            # The altered copy is unsigned where it was altered: bob keeps his group, and the
            # original, right behind it in the log, moves him on with alice. Nobody rejoins.
            await wait_until(lambda: agree(alice, bob) and (bob.epoch or 0) >= 3, 15, "both moved on")
            assert not any("rejoin" in t for t in alice.timeline() + bob.timeline())
            bob.session.send_text("still here")
            await wait_until(lambda: alice.texts() == ["still here"], what="chat goes on")
        finally:
            await mallory.close()
            await stop_all(alice, bob)


async def test_unreadable_messages_get_a_reason() -> None:
    async with running_relay() as relay, HoldingProxy(relay.port) as proxy:
        alice = start_peer(proxy.port, "r", "alice")
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start_peer(relay.port, "r", "bob")
        mallory = await _raw_publisher(relay.port, b"r")
        try:
            await wait_until(
                lambda: (
                    agree(alice, bob) and all(p.session._machine.want_update is None for p in (alice, bob))
                ),
                what="bob in",
            )
            proxy.hold = True
            alice.session.send_text("secret")
            await wait_until(lambda: len(proxy.held) == 1, what="alice's message on the wire")
            frame = decode_client(proxy.held[0])
            assert isinstance(frame, Publish)
            body = RoomPayload.decode(frame.payload).body
            flipped = body[:-1] + bytes([body[-1] ^ 1])  # the AEAD tag: fails to decrypt
            await mallory.send(encode(Publish(2, b"r", RoomPayload(PayloadKind.CORE, flipped).encode())))
            await mallory.send(encode(Publish(3, b"r", b"\x63junk")))  # a payload kind nobody knows
            await proxy.release()
            await wait_until(lambda: bob.texts() == ["secret"], what="the real message")
            reasons = [p.reason for p in bob.placeholders()]
            assert reasons == [UnreadableReason.POSSIBLE_FORK, UnreadableReason.TAMPERED]
            fork = bob.placeholders()[0]
            code = bob.session.epoch_codes[bob.epoch or 0]
            assert code in fork.detail and "compare" in fork.detail
            assert "room payload kind 99 is unknown" in bob.placeholders()[1].detail
            assert not [n for n in bob.notices if getattr(n, "kind", None) is TimelineKind.WARNING]
        finally:
            await mallory.close()
            await stop_all(alice, bob)
