"""Where the session's core calls run: kept as a name for older imports.

The worker thread is :mod:`groupchat.client.session.worker`; the calls, their timing and the
``/tree`` snapshot are :mod:`groupchat.client.session.core_calls`.
"""

from __future__ import annotations

from .session.core_calls import INLINE_MAX_BYTES, Timed, TreeSnapshot, snapshot
from .session.worker import CoreWorker

__all__ = ["INLINE_MAX_BYTES", "CoreWorker", "Timed", "TreeSnapshot"]

_ = snapshot  # re-exported for the tests of the /tree snapshot
