"""What the session machine hands the store (sans-I/O): each chat message worth keeping.

The machine only *says* what to keep (:class:`Kept`, taken with ``take_kept()``) and which group
state stands (``stored_group()``); the glue (``asyncio_session.py``) writes it, and reads it back
at start (``resume_stored``). See docs/protocol.md §12 for what the stored state costs.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Kept"]


@dataclass(frozen=True, slots=True)
class Kept:
    """A chat message shown in the timeline: received from a member, or ours once echoed."""

    message_id: bytes  # the sender's msg_id (stable over re-encryptions)
    epoch: int
    sender_key: bytes
    sender_name: str
    text: str
    own: bool
