"""A message a removed member sent under the epoch its removal ended, ordered by the relay after
the removing commit: the others show "sent by carol after they were removed" (RemovedSenderError
in the core), not a generic failure. Real relay, real crypto, the removed member's own kept state."""

from __future__ import annotations

from session_harness import agree, running_relay, start_peer, stop_all, wait_until
from websockets.asyncio.client import connect

from groupchat.client.app_content import AppContent
from groupchat.client.notices import UnreadableReason
from groupchat.client.room_payload import PayloadKind, RoomPayload
from groupchat.relay_protocol import Hello, Join, Joined, Publish, decode_server, encode


async def test_a_message_from_a_removed_member_is_shown_as_sent_after_removal() -> None:
    async with running_relay() as relay:
        alice = start_peer(relay.port, "r", "alice")
        await wait_until(lambda: alice.ready, what="alice ready")
        bob = start_peer(relay.port, "r", "bob")
        await wait_until(lambda: agree(alice, bob), what="bob in")
        carol = start_peer(relay.port, "r", "carol")
        try:
            await wait_until(lambda: agree(alice, bob, carol) and carol.session.quiet, what="carol in")
            epoch = alice.epoch
            assert epoch is not None
            # What carol keeps: her group state at this epoch (the session is idle: no core call runs).
            kept = carol.session._machine._group
            assert kept is not None and kept.epoch == epoch
            late = kept.encrypt(AppContent.chat(b"\x01" * 8, "still here?").encode())

            alice.session.kick("carol")
            await wait_until(lambda: carol.task is not None and carol.task.done(), what="carol removed")
            await wait_until(lambda: agree(alice, bob) and alice.epoch == epoch + 1, what="epoch after")

            # carol's message reaches the room now, after the commit that removed her.
            async with connect(f"ws://127.0.0.1:{relay.port}", compression=None) as ws:
                await ws.send(encode(Hello("test")))
                await ws.recv()
                await ws.send(encode(Join(1, b"r", b"latecomer")))
                while not isinstance(decode_server(await ws.recv(), 1 << 22), Joined):
                    pass
                await ws.send(encode(Publish(2, b"r", RoomPayload(PayloadKind.CORE, late).encode())))

            for peer in (alice, bob):
                await wait_until(lambda p=peer: bool(p.placeholders()), what=f"{peer.name}'s placeholder")
                (shown,) = peer.placeholders()
                assert shown.reason is UnreadableReason.AFTER_REMOVAL
                assert shown.sender == "carol" and shown.count == 1
                assert "still here?" not in peer.texts()
        finally:
            await stop_all(alice, bob, carol)
