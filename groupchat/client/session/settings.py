"""What a session is configured with, and the names it goes by on the relay and in the group.

Pure: no I/O, no clock. :class:`SessionSettings` is checked when built, so a mistake is reported
before connecting; :func:`member_id` and :func:`group_id_for_room` are the two derived names every
member computes the same way (docs/session.md, "Room payloads").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from ...core.config import DEFAULT_ROUND_TIMEOUT
from ...core.errors import GroupChatError, InvalidValueError, UsageError
from ...core.identity import fingerprint, validate_display_name
from ...core.invite import InviteSecret
from ...core.text import has_unsafe
from ...relay_protocol import MAX_ID_LEN
from .. import wording
from .. import wording_connection as connection_wording

__all__ = ["AGENT", "MAX_FRAME", "MAX_TEXT_BYTES", "SessionSettings", "group_id_for_room", "member_id"]

AGENT: Final = "groupchat-session/1"
MAX_TEXT_BYTES: Final = 16 * 1024
MAX_FRAME: Final = 4 << 20  # the largest websocket frame we accept before the relay's hello
_GROUP_ID_PREFIX: Final = b"groupchat room:"


@functools.lru_cache(maxsize=8192)
def member_id(identity_key: bytes) -> bytes:
    """Our relay member id: the identity fingerprint in compact form (32 hex digits)."""
    return fingerprint(identity_key).replace(" ", "").encode("ascii")


@functools.lru_cache(maxsize=8192)
def cached_fingerprint(identity_key: bytes) -> str:
    """The fingerprint of ``identity_key``, cached: the roster shows it for every member often."""
    return fingerprint(identity_key)


def group_id_for_room(room: str) -> bytes:
    """The group id bound into every join request for ``room``, so a request is good for that
    room's group only (threats.md §1.1: no request replayed into another group)."""
    return _GROUP_ID_PREFIX + room.encode("utf-8")


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """What a session needs to know; checked here so that a mistake is reported before connecting."""

    relay_url: str
    room: str
    name: str
    scheme: str = "tree"  # "tree" | "ring": for a group we create; a joiner follows the group's
    add_timeout: float = 3.0  # seconds before the next member in line commits a pending Add
    eviction_grace: float = 60.0  # offline longer than this -> removed by the others
    update_interval: float = 600.0  # self-Update at least this often (seconds)...
    update_every: int = 200  # ...or after this many messages sent, whichever first
    reconnect_min: float = 0.2
    reconnect_max: float = 10.0
    invite: str | None = field(default=None, repr=False)  # an invite code: a secret, kept out of repr
    open_room: bool = False  # a group we create admits anyone who knows the room (on purpose)
    behind_after: float = 30.0  # unverifiable later-epoch hints for this long -> ask to be re-added
    # No welcome this long after a lost creation race, or shown an empty room: a group of our own.
    creation_fallback: float = 20.0
    # Beacons (beacons.py): a periodic one at most this often while chat flows, and the bounds
    # after which an unconfirmed message or commit, a lost message, a silent member are reported.
    beacon_interval: float = 10.0
    confirm_after: float = 15.0
    loss_after: float = 20.0
    silence_after: float = 60.0
    # A ring group's round deadline here (GroupConfig.ring_round_timeout; the attack demo's is short).
    ring_round_timeout: float = DEFAULT_ROUND_TIMEOUT

    def __post_init__(self) -> None:
        if not self.relay_url.startswith(("ws://", "wss://")) or has_unsafe(self.relay_url):
            raise UsageError(wording.bad_relay_url(self.relay_url))
        url = urlsplit(self.relay_url)
        if not url.hostname:
            raise UsageError(connection_wording.relay_url_without_host(self.relay_url))
        try:
            url.port  # noqa: B018  (urlsplit checks the port only when asked)
        except ValueError:
            raise UsageError(connection_wording.bad_relay_port(self.relay_url)) from None
        # One rule for everything shown (issue 15): a room name is refused for what a display
        # name is refused for (control and format characters, escape sequences), not drawn.
        if has_unsafe(self.room):
            raise UsageError(wording.bad_room_characters(self.room))
        room = self.room.encode("utf-8")
        if not room or len(room) > MAX_ID_LEN:
            raise UsageError(wording.bad_room_name(MAX_ID_LEN))
        try:
            validate_display_name(self.name)
        except InvalidValueError as exc:
            raise UsageError(wording.bad_display_name(self.name, exc)) from None
        if self.scheme not in ("tree", "ring"):
            raise UsageError(wording.bad_scheme(self.scheme))
        for name in (
            "add_timeout",
            "eviction_grace",
            "update_interval",
            "reconnect_min",
            "reconnect_max",
            "behind_after",
            "creation_fallback",
            "beacon_interval",
            "confirm_after",
            "loss_after",
            "silence_after",
            "ring_round_timeout",
        ):
            if not getattr(self, name) > 0:
                raise UsageError(wording.not_positive(name))
        if self.reconnect_min > self.reconnect_max:
            raise UsageError(wording.RECONNECT_ORDER)
        if self.invite is not None:
            try:
                InviteSecret.from_code(self.invite)
            except GroupChatError as exc:
                raise UsageError(wording.bad_invite(exc)) from None
        if self.update_every < 1:
            raise UsageError(wording.UPDATE_EVERY_TOO_SMALL)
