"""A chat client process for the crash test (test_session_store.py): run, then be SIGKILLed.

    python store_crash_client.py PORT ROOM DATA_DIR SEED_HEX PREFIX COUNT

Joins ROOM on the relay at 127.0.0.1:PORT with the identity of SEED_HEX and the store of
DATA_DIR, prints ``READY`` once it is a member, sends ``PREFIX-0`` ... ``PREFIX-(COUNT-1)`` (one
every 20 ms), and prints ``CONFIRMED <text>`` for each message the relay echoed (by then it is
in the store) and ``RECEIVED <text>`` for each message of another member; then idles until it is
killed. Every line is flushed at once, so the test knows what was acknowledged before the kill.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from groupchat.client.notices import ChatLine, ConnectionState, MessageConfirmed, Notice, TimelineEvent
from groupchat.client.session import ChatSession, SessionSettings
from groupchat.client.session_store import SessionStore
from groupchat.client.store import Store
from groupchat.client.trust import TrustStore
from groupchat.core.identity import Identity


def say(line: str) -> None:
    sys.stdout.write(line.replace("\n", " ") + "\n")
    sys.stdout.flush()


async def main(port: int, room: str, data_dir: Path, seed: bytes, prefix: str, count: int) -> None:
    identity = Identity.from_private_bytes(seed)
    store = Store.open(data_dir)
    texts: dict[int, str] = {}

    def notify(n: Notice) -> None:
        if isinstance(n, MessageConfirmed) and n.local_id in texts:
            say(f"CONFIRMED {texts[n.local_id]}")
        elif isinstance(n, ChatLine) and not n.own and not n.pending:
            say(f"RECEIVED {n.text}")
        elif isinstance(n, TimelineEvent):
            say(f"TIMELINE {n.text}")

    settings = SessionSettings(
        relay_url=f"ws://127.0.0.1:{port}",
        room=room,
        name=prefix,
        add_timeout=0.5,
        open_room=True,
        reconnect_min=0.05,
        reconnect_max=0.3,
    )
    kept = SessionStore(store, settings.relay_url, room, identity)
    session = ChatSession(settings, identity, TrustStore(None), notify, store=kept)
    task = asyncio.create_task(session.run())
    for _ in range(500):
        if session.status.connection is ConnectionState.READY:
            break
        await asyncio.sleep(0.02)
    say("READY")
    for i in range(count):
        text = f"{prefix}-{i}"
        texts[session.send_text(text)] = text
        await asyncio.sleep(0.02)
    await task


if __name__ == "__main__":
    a = sys.argv[1:]
    asyncio.run(main(int(a[0]), a[1], Path(a[2]), bytes.fromhex(a[3]), a[4], int(a[5])))
