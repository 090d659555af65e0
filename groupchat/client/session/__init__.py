"""The chat session: one member of one room, over the relay, driving the sans-I/O core.

A :class:`ChatSession` connects to the relay, joins the room and the group, and turns relay frames
and core events into :mod:`~groupchat.client.notices` for its UI. It adds no cryptography and no
protocol rule of its own. The package is split the way ``websockets`` is:

* :mod:`.machine` (with :mod:`.state`, :mod:`.membership`): the sans-I/O session machine;
  :mod:`.phases` its phases and transition table; :mod:`.inputs` and :mod:`.actions` its interface;
  :mod:`.core_calls` the core calls it asks for;
* the policies, one module each: :mod:`..coordinator` and :mod:`.duties` (who commits what, when),
  :mod:`.eviction`, :mod:`.updates`, :mod:`.rejoin`, :mod:`.ring_driver`, :mod:`.rejections`, and
  :mod:`groupchat.client.wording` (every sentence a user reads); :mod:`.views` what the UI reads;
* :mod:`.asyncio_session` (:class:`ChatSession`) and :mod:`.worker`: the asyncio glue.

The rules are documented in ``docs/session.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .settings import SessionSettings, group_id_for_room, member_id

if TYPE_CHECKING:
    from .asyncio_session import ChatSession

__all__ = ["ChatSession", "SessionSettings", "group_id_for_room", "member_id"]


def __getattr__(name: str) -> object:
    """``ChatSession`` is imported on first use, so that importing the sans-I/O machine (a test,
    a simulation) never loads asyncio or websockets through this package."""
    if name == "ChatSession":
        from .asyncio_session import ChatSession

        return ChatSession
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
