"""What the session machine hands the store (sans-I/O): each chat message worth keeping.

The machine only *says* what to keep (:class:`Kept`, taken with ``take_kept()``), which group
state stands (``stored_group()``) and what it has yet to see echoed (:class:`Unsent`,
``unsent()``); the glue (``asyncio_session.py``) writes it, and reads it back
at start (``resume_stored``). See docs/protocol.md §12 for what the stored state costs.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Kept", "Unsent"]


@dataclass(frozen=True, slots=True)
class Kept:
    """A chat message shown in the timeline: received from a member, or ours once echoed."""

    message_id: bytes  # the sender's msg_id (stable over re-encryptions)
    epoch: int
    sender_key: bytes
    sender_name: str
    text: str
    own: bool


@dataclass(frozen=True, slots=True)
class Unsent:
    """A typed message not yet echoed by the relay: queued, or a copy in flight (``digest``, the
    core's message id, and its ``epoch``). Stored with the group state before each send, so a
    restart neither loses it nor leaves it unconfirmed: its echo from the log confirms it, and
    one the relay never logged is sent again (receivers drop a second copy by ``message_id``)."""

    message_id: bytes
    text: str
    digest: bytes | None = None
    epoch: int | None = None
