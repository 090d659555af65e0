"""The one thread in which the session's heavy core calls run, in submission order.

The UI shares the session's event loop and must never stall for more than 50 ms, but joining a
large group (n signature checks) or building a commit and its Welcome costs milliseconds to tens
of milliseconds. So those calls run in a single-thread executor and the loop only awaits them.
Which calls are heavy is said by each call (:attr:`.core_calls.CoreCall.offload`):
reading a message of ordinary size and encrypting run on the loop itself, without the thread hop.

A :class:`~groupchat.core.group.Group` is not thread-safe. The session's glue awaits every call
before it resumes the machine, so a call on the loop never overlaps one in the thread: keep it so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .core_calls import CoreCall

__all__ = ["CoreWorker"]

T = TypeVar("T")


class CoreWorker:
    """One thread that runs the heavy calls on the session's :class:`Group`, in submission order."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="groupchat-core")

    async def run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn)

    async def call(self, call: CoreCall[T]) -> T:
        """Run ``call``: in the thread if it says it is heavy, else here on the loop."""
        if call.offload:
            return await self.run(call.run)
        return call.run()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
