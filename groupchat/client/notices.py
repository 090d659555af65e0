"""What a chat session tells its user interface: typed, frozen notices, no key material.

The session (:mod:`groupchat.client.session`) turns relay frames and core events into these
notices; the Textual app (:mod:`groupchat.tui`) and the headless bot transcript render them.
The words a user reads for timeline events and placeholders are composed here, once, so that
the TUI, the bot and the headless demo all say the same thing.

Every text field that can carry words a peer or the relay chose (a chat line and its sender, an
event's sentence, a placeholder's sender and detail, a roster or tree name) passes through
:func:`~groupchat.core.text.sanitise` when the notice is made: whatever the session composes, no
escape sequence, bidi control or second line reaches a screen (issue 13 item 7). Chat text is one
line: newlines and tabs in a peer's message are shown as spaces (our own input has none), so a
message cannot paint a line that looks like the client's own.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ..core.text import sanitise
from .wording_connection import retrying

__all__ = [
    "ChatLine",
    "ConnectionState",
    "MessageConfirmed",
    "Notice",
    "Placeholder",
    "RosterChanged",
    "RosterEntry",
    "StatusChanged",
    "TimelineEvent",
    "TimelineKind",
    "TreeNode",
    "TreeView",
    "TrustState",
    "UnreadableReason",
]


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"
    JOINING = "joining"  # connected to the relay, waiting for a welcome or creating the group
    READY = "ready"  # a member at the current epoch; messages go out at once
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class TrustState(enum.Enum):
    UNVERIFIED = "unverified"  # key pinned on first use, never compared out of band
    VERIFIED = "verified"  # the user compared the safety number and ran /trust
    KEY_CHANGED = "key-changed"  # a different key than the pinned one: warn until re-verified


class TimelineKind(enum.Enum):
    JOINED = "joined"
    LEFT = "left"
    REMOVED = "removed"
    UPDATED = "updated"
    RECONNECTED = "reconnected"
    DISCONNECTED = "disconnected"
    INFO = "info"
    WARNING = "warning"


class UnreadableReason(enum.Enum):
    BEFORE_JOIN = "sent before you joined"
    AFTER_REMOVAL = "sent after the sender was removed"
    POSSIBLE_FORK = "possible fork, or altered on the way"
    MISSED_OFFLINE = "missed while offline"
    TAMPERED = "failed authentication (altered or forged)"
    REPLAYED = "a copy of one already read, sent again (or too old to open)"
    UNKNOWN_SENDER = "from someone who is not a member"
    EXPIRED_EPOCH = "its epoch's keys are already deleted"


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """Everything the status bar shows. ``problem`` is why we are not connected ("cannot reach the
    relay (connection refused)"), "" once the relay answered; ``retry_attempt`` and ``retry_in``
    say when the next attempt is, and :attr:`problem_line` says both in one line."""

    connection: ConnectionState
    relay: str
    room: str
    scheme: str
    member_count: int
    epoch: int | None = None
    epoch_code: str | None = None
    latency_ms: float | None = None
    # Ring groups: a rekey under way, and whose message it waits for (empty: only the committer's
    # confirmation); None when no multi-round rekey is running.
    rekey_waiting_for: tuple[str, ...] | None = None
    open_room: bool = False  # the group admits anyone who knows the room's name (chosen on purpose)
    problem: str = ""
    retry_attempt: int = 0
    retry_in: float | None = None

    @property
    def problem_line(self) -> str:
        """``"cannot reach the relay (connection refused); retry 5 in 8 s"``, or "" when connected."""
        return retrying(self.problem, self.retry_attempt, self.retry_in) if self.problem else ""

    def __post_init__(self) -> None:
        # One rule for everything shown (issue 15): our own settings pass the sanitiser too.
        for name in ("relay", "room", "problem"):
            object.__setattr__(self, name, sanitise(getattr(self, name)))


@dataclass(frozen=True, slots=True)
class RosterEntry:
    name: str
    fingerprint: str
    online: bool
    trust: TrustState
    is_me: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", sanitise(self.name))


@dataclass(frozen=True, slots=True)
class RosterChanged:
    members: tuple[RosterEntry, ...]


@dataclass(frozen=True, slots=True)
class ChatLine:
    """A chat message to show. Our own lines arrive with ``pending=True`` at once, before the relay
    has ordered them; :class:`MessageConfirmed` with the same ``local_id`` clears the mark."""

    sender: str
    text: str
    epoch: int
    own: bool = False
    pending: bool = False
    local_id: int | None = None
    trust: TrustState = TrustState.UNVERIFIED
    # The text with its line breaks, for a display that marks the rows after the first as part of
    # the message (the TUI's "│ ", the transcript's indented "| "), so no line the sender wrote
    # looks like another message; ``text`` has them as spaces, for a one-line output.
    # Left out, it is made from ``text``; ``dataclasses.replace`` keeps it.
    body: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sender", sanitise(self.sender))
        object.__setattr__(self, "body", sanitise(self.body or self.text, multiline=True))
        object.__setattr__(self, "text", sanitise(self.text))


@dataclass(frozen=True, slots=True)
class MessageConfirmed:
    """The relay echoed our message ``local_id``: it is in the room's order and was delivered."""

    local_id: int


@dataclass(frozen=True, slots=True)
class Placeholder:
    """``count`` messages that cannot be shown, with the reason in plain words.

    ``sender`` is the claimed sender's name when it is known. ``detail`` adds specifics, such as
    the two epoch codes to compare for a possible fork."""

    reason: UnreadableReason
    count: int = 1
    sender: str | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        if self.sender is not None:
            object.__setattr__(self, "sender", sanitise(self.sender))
        object.__setattr__(self, "detail", sanitise(self.detail))

    @property
    def text(self) -> str:
        who = f" from {self.sender}" if self.sender else ""
        n = "1 message" if self.count == 1 else f"{self.count} messages"
        tail = f" ({self.detail})" if self.detail else ""
        return f"{n}{who} cannot be shown: {self.reason.value}{tail}"


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """A membership, key or connection event, already phrased for people, e.g.
    ``"carol joined · epoch 7 · 3 keys refreshed in 0.4 ms · code changed"``."""

    kind: TimelineKind
    text: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", sanitise(self.text))


@dataclass(frozen=True, slots=True)
class TreeNode:
    """One node of the key tree (or one member of the ring) for the ``/tree`` panel."""

    index: int
    level: int
    label: str  # member name for a leaf, short key id for a parent, "" for blank
    key_id: str  # first hex digits of the public key, "" for none
    changed: bool  # touched by the last commit
    mine: bool  # on our own direct path (we hold its secret)
    # A leaf whose current secret another member chose (docs/protocol.md §5.4: the adder of a
    # joiner not yet updated, a re-keyer): that member's name, "" when the owner chose it.
    set_by: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", sanitise(self.label))
        object.__setattr__(self, "set_by", sanitise(self.set_by))


@dataclass(frozen=True, slots=True)
class TreeView:
    scheme: str  # "tree" or "ring"
    epoch: int
    nodes: tuple[TreeNode, ...]


Notice = (
    StatusChanged | RosterChanged | ChatLine | MessageConfirmed | Placeholder | TimelineEvent | TreeView
)
