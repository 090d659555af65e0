"""The end-to-end protocol version: the one constant every versioned structure carries.

It is the ``uint16 version`` that opens every MLSMessage (RFC 9420 §6: ``mls10`` = 1), every
GroupContext (§8.1) and every JoinRequest, so a structure from another protocol version is refused
before anything else is read. The relay's envelope has its own, independent version octet
(:data:`groupchat.relay_protocol.ENVELOPE_VERSION`): the relay never reads inside the payloads.
"""

from __future__ import annotations

from typing import Final

__all__ = ["PROTOCOL_VERSION"]

PROTOCOL_VERSION: Final = 1  # mls10
