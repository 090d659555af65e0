"""``groupchat demo``: an in-process group that shows the key agreement working for real.

Several members run real :class:`~groupchat.core.group.Group` state machines; a list stands in for the
relay's total order (every message goes to everyone, the sender included, as the relay echoes).
The demo prints each rekey with its epoch code, shows that everyone decrypts everyone, that a
removed member's saved state cannot read on, and that a joiner cannot read the past.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Sequence

from ..core.errors import GroupChatError
from ..core.events import EpochChanged, Event, MessageEchoed, MessageReceived, RemovedFromGroup
from ..core.group import Group, GroupConfig
from ..core.identity import Identity, JoinRequest


def _code(group: Group) -> str:
    """A short epoch code users would compare out of band (from the epoch authenticator)."""
    digits = int.from_bytes(group.epoch_authenticator[:8], "big") % 10**12
    return " ".join(f"{digits:012d}"[i : i + 4] for i in range(0, 12, 4))


class _DemoRoom:
    """A stand-in for the relay: one total order, every message to every member."""

    def __init__(self, config: GroupConfig, out: list[str]) -> None:
        self.config = config
        self.members: dict[str, Group] = {}
        self.out = out

    def say(self, line: str) -> None:
        self.out.append(line)

    def deliver(self, data: bytes) -> dict[str, Event]:
        events: dict[str, Event] = {}
        for name, group in list(self.members.items()):
            events[name] = group.receive(data)
        return events

    def rekey_line(self, event: EpochChanged, viewer: Group) -> str:
        parts = []
        if event.added:
            parts.append("added " + ", ".join(m.display_name for m in event.added))
        if event.removed:
            parts.append("removed " + ", ".join(m.display_name for m in event.removed))
        if event.updated:
            parts.append("refreshed its keys")
        return (
            f"  ⟳ epoch {event.epoch}: {event.committer.display_name} {' and '.join(parts)}"
            f" — code {_code(viewer)}"
        )

    def commit(self, by: str, **kwargs: object) -> dict[str, Event]:
        data = self.members[by].commit(**kwargs)  # type: ignore[arg-type]
        events = self.deliver(data)
        own = events[by]
        assert isinstance(own, EpochChanged)
        self.say(self.rekey_line(own, self.members[by]))
        self.say(f"    commit: {len(data)} bytes through the relay")
        return events

    def add(self, by: str, name: str) -> None:
        suite = self.config.suite()
        pending = JoinRequest.create(suite, Identity.generate(), self.members[by].group_id, name)
        events = self.commit(by, add=[pending.request])
        own = events[by]
        assert isinstance(own, EpochChanged) and own.welcome is not None
        self.members[name] = Group.join(pending, own.welcome, self.config)
        self.say(f"    welcome for {name}: {len(own.welcome)} bytes, sealed to {name}'s init key")

    def send(self, sender: str, text: str) -> None:
        data = self.members[sender].encrypt(text.encode())
        events = self.deliver(data)
        readers = [
            n for n, e in events.items() if isinstance(e, MessageReceived) and e.plaintext == text.encode()
        ]
        echoed = isinstance(events[sender], MessageEchoed)
        self.say(f"  <{sender}> {text}")
        self.say(f"    read by {', '.join(readers)}; echo to {sender}: {'yes' if echoed else 'NO'}")

    def check_codes(self) -> None:
        codes = {_code(g) for g in self.members.values()}
        verdict = "all members agree" if len(codes) == 1 else "MISMATCH"
        self.say(f"    epoch codes: {verdict} ({len(self.members)} members)")


def script(config: GroupConfig | None = None) -> list[str]:
    """Run the scripted demo and return the lines it prints."""
    config = config or GroupConfig()
    out: list[str] = []
    room = _DemoRoom(config, out)
    out.append("groupchat demo: tree group key agreement over X25519 (in-process relay)")
    out.append(f"cipher suite: {config.suite().name}")
    out.append("")
    room.members["alice"] = Group.create(Identity.generate(), b"demo-room", "alice", config)
    out.append(f"alice creates the group (epoch 0, code {_code(room.members['alice'])})")
    for name in ("bob", "carol", "dave"):
        room.add("alice", name)
    room.check_codes()
    room.send("bob", "hi all, is this thing on?")
    room.send("carol", "loud and clear")

    early = room.members["dave"].encrypt(b"a secret before erin joins")
    room.deliver(early)
    room.add("dave", "erin")
    try:
        room.members["erin"].receive(early)
        out.append("  !! erin read a message from before she joined")
    except GroupChatError as exc:
        out.append(f"  erin cannot read the past: {type(exc).__name__}: {exc}")

    saved_carol = copy.deepcopy(room.members["carol"])
    events = room.commit("bob", remove=[room.members["carol"].my_leaf])
    assert isinstance(events["carol"], RemovedFromGroup)
    del room.members["carol"]
    room.check_codes()
    after = room.members["alice"].encrypt(b"carol is gone")
    room.deliver(after)
    try:
        saved_carol.receive(after)
        out.append("  !! carol's saved state read a message after removal")
    except GroupChatError as exc:
        out.append(f"  carol's saved state cannot read on: {type(exc).__name__}: {exc}")

    room.commit("erin", update=True)
    room.check_codes()
    room.send("erin", "fresh keys, same group")
    out.append("")
    out.append(
        "members: "
        + ", ".join(f"{m.display_name} [{m.fingerprint[:9]}]" for m in room.members["alice"].members())
    )
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``groupchat demo`` flags (the command-module interface of :mod:`groupchat.cli`)."""
    parser.add_argument(
        "--suite", type=int, choices=(1, 3), default=1, help="cipher suite (1 AES-GCM, 3 ChaCha20)"
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo from parsed flags."""
    for line in script(GroupConfig(suite_id=args.suite)):
        print(line)
    sys.stdout.flush()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="groupchat demo",
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(list(argv) if argv is not None else None))

