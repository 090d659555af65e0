"""Several real ChatApps in one test, each with a real ChatSession, each in its own task.

Textual finds "the current app" through a context variable, so every app runs ``run_test()`` in
its own asyncio task (its own context) and the test hands it work through :meth:`Peer.do`; nothing
touches another app's widgets from the test's task. Waits poll with a bounded count and time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from textual.pilot import Pilot

from groupchat.client.notices import TrustState
from groupchat.client.session import ChatSession, SessionSettings
from groupchat.client.session_store import SessionStore
from groupchat.client.store import Store
from groupchat.client.trust import TrustStore
from groupchat.core.identity import Identity
from groupchat.tui.app import ChatApp
from groupchat.tui.session_api import NoticeSink

T = TypeVar("T")

SIZE = (120, 36)
POLL = 0.05


class Peer:
    """One ChatApp with a real session, driven from the test through :meth:`do`."""

    def __init__(
        self,
        port: int,
        name: str,
        *,
        room: str = "lobby",
        identity: Identity | None = None,
        trust: TrustStore | None = None,
        scheme: str = "tree",
        open_room: bool = True,  # most of these tests are about the TUI, not about who may come in
        invite: str | None = None,
        store: Store | None = None,  # a store: the session keeps its state (quitting stays)
    ) -> None:
        self.name = name
        self.identity = identity or Identity.generate()
        self.trust = trust or TrustStore(None)
        self.settings = SessionSettings(
            relay_url=f"ws://127.0.0.1:{port}",
            room=room,
            name=name,
            add_timeout=0.5,
            scheme=scheme,
            open_room=open_room,
            invite=invite,
        )
        self.session: ChatSession | None = None
        self.store = store
        self.app = ChatApp(
            self._make_session,
            now=lambda: datetime(2026, 11, 22, 9, 41),
            cursor_blink=False,
        )
        self._ops: asyncio.Queue[
            tuple[Callable[[Pilot[int]], Awaitable[Any]], asyncio.Future[Any]] | None
        ] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def _make_session(self, notify: NoticeSink) -> ChatSession:
        kept = None
        if self.store is not None:
            kept = SessionStore(self.store, self.settings.relay_url, self.settings.room, self.identity)
        self.session = ChatSession(self.settings, self.identity, self.trust, notify, store=kept)
        return self.session

    async def start(self) -> Peer:
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._main(started), name=f"app-{self.name}")
        await asyncio.wait_for(started, 10)
        return self

    async def _main(self, started: asyncio.Future[None]) -> None:
        async with self.app.run_test(size=SIZE) as pilot:
            started.set_result(None)
            while (item := await self._ops.get()) is not None:
                fn, fut = item
                try:
                    fut.set_result(await fn(pilot))
                except Exception as exc:
                    fut.set_exception(exc)

    async def do(self, fn: Callable[[Pilot[int]], Awaitable[T]], timeout: float = 10.0) -> T:
        """Run ``fn(pilot)`` inside this app's task and return its result."""
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._ops.put((fn, fut))
        return await asyncio.wait_for(fut, timeout)

    async def type(self, text: str) -> None:
        """Type ``text`` into the input and press enter, as a person would."""

        async def run(pilot: Pilot[int]) -> None:
            self.app.input.focus()
            self.app.input.value = text
            await pilot.press("enter")
            await pilot.pause()

        await self.do(run)

    async def read(self, what: Callable[[ChatApp], T]) -> T:
        async def run(pilot: Pilot[int]) -> T:
            await pilot.pause()
            return what(self.app)

        return await self.do(run)

    async def lines(self) -> list[str]:
        return await self.read(lambda app: app.message_log.plain_lines())

    async def wait_until(self, what: str, check: Callable[[ChatApp], bool], timeout: float = 15.0) -> None:
        """Poll ``check(app)`` until true (bounded in count and time); fail with the timeline."""
        for _ in range(int(timeout / POLL)):
            if await self.read(check):
                return
            await asyncio.sleep(POLL)
        raise AssertionError(
            f"{self.name}: timed out waiting for {what}; timeline:\n" + "\n".join(await self.lines())
        )

    async def wait_line(self, fragment: str, timeout: float = 15.0) -> str:
        await self.wait_until(
            repr(fragment),
            lambda app: any(fragment in line for line in app.message_log.plain_lines()),
            timeout,
        )
        return next(line for line in await self.lines() if fragment in line)

    async def wait_ready(self, members: int, timeout: float = 20.0) -> None:
        def ready(app: ChatApp) -> bool:
            status = app.status_bar.status
            return (
                status is not None and status.connection.value == "ready" and status.member_count == members
            )

        await self.wait_until(f"ready with {members} members", ready, timeout)

    async def epoch(self) -> tuple[int | None, str | None]:
        def get(app: ChatApp) -> tuple[int | None, str | None]:
            status = app.status_bar.status
            return (None, None) if status is None else (status.epoch, status.epoch_code)

        return await self.read(get)

    async def trust_of(self, name: str) -> TrustState | None:
        def get(app: ChatApp) -> TrustState | None:
            return next((m.trust for m in app.member_list.members if m.name == name), None)

        return await self.read(get)

    async def wait_until_stopped(self, timeout: float = 15.0) -> None:
        """Wait (bounded) until the app has exited by itself."""
        for _ in range(int(timeout / POLL)):
            if not self.app.is_running:
                return
            await asyncio.sleep(POLL)
        raise AssertionError(f"{self.name}: the app is still running {timeout} s after quitting")

    async def stop(self) -> None:
        """Quit as a user would (ctrl+q: leave, close, exit) and end the app's task."""
        if self._task is None or self._task.done():
            return
        if self.app.is_running:
            try:
                with contextlib.suppress(TimeoutError):
                    await self.do(lambda pilot: pilot.press("ctrl+q"))
                # Quitting must end the app by itself (a regression once left it running).
                await self.wait_until_stopped()
            finally:
                await self._ops.put(None)
                await asyncio.wait_for(self._task, 15)
                if self.session is not None:
                    await self.session.close()
            return
        await self._ops.put(None)
        await asyncio.wait_for(self._task, 15)
