"""A small in-process harness for end-to-end group tests: N real members and a "relay".

The relay is the lab's :class:`~groupchat.lab.room.Room`: every message (commit or application
message) is sequenced, logged and delivered, in that one total order, to every current member,
the sender included (the sender gets its echo); a committer's Welcome comes out of its outbox
(``data_to_send()``) and the room hands it to the joiner.
There are no mocks: members are real :class:`~groupchat.core.group.Group` objects
doing real X25519, Ed25519, HKDF, AEAD and HPKE.

Helpers:

* :meth:`Harness.commit` builds a commit at any member (adds by name, removes by name, update),
  delivers it, joins the new members from the Welcome in the committer's outbox and drops the removed
  ones from the roster, optionally keeping a snapshot of each removed member's state taken just
  before the removing commit was delivered;
* :meth:`Harness.send` / :meth:`Harness.check_send` deliver an application message and check that
  everyone else decrypts it with the right plaintext and sender, and that the sender gets its echo;
* :meth:`Harness.assert_consistent` checks that every member is in the same epoch, with the same
  epoch authenticator, tree hash and roster, and (optionally) that everyone decrypts everyone;
* :func:`snapshot` deep-copies a Group (the immutable suite, identity and config are shared);
* :func:`fingerprint` summarises a Group's state so tests can check that a rejection left it untouched;
* :func:`assert_cannot_derive_epoch` and :func:`assert_cannot_read` attack a saved state with the
  keeper adversary (``groupchat/lab/keeper.py``): they fail on a key leak, not on an epoch-number mismatch.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from groupchat.core.errors import DecryptionError
from groupchat.core.events import EpochChanged, Event, MessageEchoed, MessageReceived, RemovedFromGroup
from groupchat.core.group import Group, GroupConfig, GroupState
from groupchat.core.identity import Identity, JoinRequest, PendingJoin
from groupchat.core.message_protection import PrivateMessage, decrypt_sender_data
from groupchat.core.outbox import Joiner, OutboundKind
from groupchat.lab.keeper import Deriver, EpochView, harvest
from groupchat.lab.room import Room

__all__ = [
    "CommitResult",
    "Harness",
    "Sent",
    "assert_cannot_derive_epoch",
    "assert_cannot_read",
    "fingerprint",
    "keeper_of",
    "snapshot",
    "welcome_for",
]


def snapshot(group: Group) -> Group:
    """A deep copy of ``group`` (what a removed member could keep on disk).

    The cipher suite holds pyca objects that cannot be copied; it, the identity and the config
    are immutable, so the copy shares them.
    """
    shared = (group.suite, group._tree.suite, group._identity, group.config)
    memo: dict[int, object] = {id(o): o for o in shared}
    return copy.deepcopy(group, memo)


def fingerprint(group: Group) -> tuple[object, ...]:
    """Everything that must not change when a message is rejected (public and secret state)."""
    secrets = group._secrets
    return (
        group.state,
        group.epoch,
        group.tree_hash,
        secrets.epoch_authenticator if group.state is GroupState.MEMBER else None,
        secrets.init_secret,
        group._ctx_bytes,
        group._interim,
        group._tree.encode(),
        group.my_leaf,
        tuple(sorted(group._path.secrets.items())),
        group.has_pending_commit,
        None if group._previous is None else group._previous.epoch,
        tuple(group._recent_commits),
    )


def keeper_of(state: Group, label: str = "retained state") -> Deriver:
    """A keeper that holds every value reachable from ``state`` (a removed member's saved state,
    or any member's state), deriving independently of the core (see ``groupchat/lab/keeper.py``)."""
    return Deriver(frozenset(harvest(state)), state.config.label_prefix, label)


def assert_cannot_derive_epoch(retained: Group, member: Group, deriver: Deriver | None = None) -> None:
    """``retained`` (a removed member's old state) cannot compute ``member``'s current epoch.

    A keeper holding every value of the retained state climbs the current public tree from every
    node whose private key it holds, runs the key schedule from every init secret it holds and
    compares epoch authenticators (``keeper.Deriver``). Control: from the same values it does
    climb the retained state's *own* tree to the commit secret the core computed, so the check
    is able to fail on a leak.
    """
    deriver = deriver or keeper_of(retained)
    own = EpochView.of(retained)
    assert retained._tree.commit_secret(retained._path) in deriver.commit_secrets(own), (
        "control failed: the keeper does not even reach the retained state's own root"
    )
    view = EpochView.of(member)
    held = deriver.commit_secrets(view)
    assert held == set(), f"{deriver.label} holds a private key of the epoch-{view.epoch} tree"
    assert deriver.attempt(view) is None, f"{deriver.label} derives epoch {view.epoch}"


@dataclass(frozen=True)
class Sent:
    """An application message with the public facts of its epoch and, for checks only, the
    sender-data secret it was protected under."""

    data: bytes
    sender_data_secret: bytes = field(repr=False)
    view: EpochView = field(repr=False)

    @classmethod
    def of(cls, sender: Group, data: bytes) -> Sent:
        return cls(data, sender._keys.sender_data_secret, EpochView.of(sender))


def assert_cannot_read(reader: Group, sent: Sent, deriver: Deriver | None = None) -> None:
    """``reader`` (a removed member's saved state, or a later joiner) cannot read ``sent``.

    The epoch-number check proves nothing about keys, so: (1) no value the reader holds, used
    directly or as an epoch secret, nor any epoch it derives, is the message's sender-data
    secret, and the keeper derives no epoch of the message; (2) control: that secret does open
    the message; (3) the message re-framed at the reader's own epoch gets past the epoch check
    into the reader's keys and fails there with ``DecryptionError``.
    """
    deriver = deriver or keeper_of(reader, "reader")
    msg = PrivateMessage.decode(sent.data)
    decrypt_sender_data(reader.suite, msg, sent.sender_data_secret)  # control: the right key opens it
    assert deriver.attempt(sent.view) is None, f"{deriver.label} derives epoch {sent.view.epoch}"
    assert sent.sender_data_secret not in deriver.sender_data_candidates(), (
        f"{deriver.label} holds the sender-data secret of epoch {sent.view.epoch}"
    )
    reframed = dataclasses.replace(msg, epoch=reader.epoch).encode()
    try:
        reader.receive(reframed)
    except DecryptionError:
        pass
    else:  # pragma: no cover - a failure path
        raise AssertionError(f"{deriver.label} opened a message of epoch {sent.view.epoch}")


def welcome_for(committer: Group, *joiners: PendingJoin) -> bytes:
    """The Welcome, from ``committer``'s outbox after its commit's echo: exactly one item per
    joiner, addressed to it, all the same Welcome (sealed to every joiner's init key)."""
    out = committer.data_to_send()
    wanted = [(Joiner.of(pj.request), OutboundKind.WELCOME) for pj in joiners]
    assert [(o.to, o.kind) for o in out] == wanted, out
    assert len({o.data for o in out}) == 1, "one Welcome for all the joiners"
    return out[0].data


@dataclass
class CommitResult:
    message: bytes
    events: dict[str, Event]
    joined: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    # name -> deep copy of that removed member's Group taken just before the commit was delivered
    retained: dict[str, Group] = field(default_factory=dict)
    # joiner name -> the Welcome the committer's outbox addressed to it
    welcomes: dict[str, bytes] = field(default_factory=dict)


class Harness:
    """N members of one group and a relay that delivers everything in one total order."""

    def __init__(
        self,
        config: GroupConfig | None = None,
        group_id: bytes = b"harness-room",
        creator: str = "m0",
        configs: dict[str, GroupConfig] | None = None,
    ) -> None:
        self.config = config or GroupConfig()
        # Per-member configs (a keeper's recording random source); everyone else uses `config`.
        self.configs: dict[str, GroupConfig] = dict(configs or {})
        self.suite = self.config.suite()
        self.group_id = group_id
        self.room: Room[str, Group] = Room()
        self.members: dict[str, Group] = self.room.members  # one roster: the room's
        self._names = itertools.count(1)
        self.members[creator] = Group.create(Identity.generate(), group_id, creator, self.config_for(creator))

    # --- roster helpers -----------------------------------------------------------------------

    def config_for(self, name: str) -> GroupConfig:
        return self.configs.get(name, self.config)

    def fresh_name(self) -> str:
        return f"m{next(self._names)}"

    def join_request(self, name: str | None = None, identity: Identity | None = None) -> PendingJoin:
        name = name or self.fresh_name()
        return JoinRequest.create(
            self.suite,
            identity or Identity.generate(),
            self.group_id,
            name,
            self.config_for(name).rand,
            wall_clock=self.config.wall_clock,
        )

    def leaf(self, name: str) -> int:
        return self.members[name].my_leaf

    def name_of_leaf(self, leaf: int) -> str:
        return next(n for n, g in self.members.items() if g.my_leaf == leaf)

    # --- delivery -----------------------------------------------------------------------------

    @property
    def relay(self) -> list[bytes]:
        """Everything the room sequenced, in order."""
        return [d.payload for d in self.room.log]

    def deliver(self, message: bytes, to: Iterable[str] | None = None) -> dict[str, Event]:
        """Sequence ``message`` in the room and hand it to every member (or only ``to``)."""
        return self.room.deliver(message, only=to)

    def commit(
        self,
        committer: str,
        *,
        add: Iterable[str | PendingJoin] = (),
        remove: Iterable[str] = (),
        update: bool = False,
        keep_removed: bool = False,
    ) -> CommitResult:
        """Commit at ``committer``, deliver it, then join the added and drop the removed members."""
        joins = [a if isinstance(a, PendingJoin) else self.join_request(a) for a in add]
        victims = list(dict.fromkeys(remove))
        group = self.members[committer]
        message = group.commit(
            add=[pj.request for pj in joins], remove=[self.leaf(v) for v in victims], update=update
        )
        retained = {v: snapshot(self.members[v]) for v in victims} if keep_removed else {}
        self.expect(joins)
        events = self.deliver(message)
        own = events[committer]
        assert isinstance(own, EpochChanged) and own.own, own
        for v in victims:
            ev = events[v]
            assert isinstance(ev, RemovedFromGroup), ev
            assert self.members[v].state is GroupState.REMOVED
            del self.members[v]
        for name, ev in events.items():
            if name not in victims:
                assert isinstance(ev, EpochChanged), (name, ev)
                assert ev.epoch_authenticator == own.epoch_authenticator
        welcomes = self.admit(committer, joins)
        return CommitResult(message, events, list(welcomes), victims, retained, welcomes)

    def expect(self, joins: Iterable[PendingJoin]) -> None:
        """The room will hand each joiner its Welcome (by display name) when a committer's outbox
        addresses it; the joiner then joins with its own config."""
        for pj in joins:
            name = pj.request.display_name
            self.room.expect(name, pj.request.identity_key, self._joiner(pj, self.config_for(name)))

    def admit(self, committer: str, joins: Iterable[PendingJoin]) -> dict[str, bytes]:
        """After the commit's echo: the committer's outbox holds exactly one Welcome per joiner
        (and nothing else); the room delivers each to its (expected) joiner, who joins.
        Returns each joiner's name and its Welcome, in the outbox's order."""
        joins = list(joins)
        flushed = self.room.flush(committer)
        assert [f.outbound.kind for f in flushed] == [OutboundKind.WELCOME] * len(joins), flushed
        welcomes = {f.delivery.to: f.delivery.payload for f in flushed if f.delivery.to is not None}
        assert list(welcomes) == [pj.request.display_name for pj in joins]
        return welcomes

    @staticmethod
    def _joiner(pj: PendingJoin, config: GroupConfig) -> Callable[[bytes], Group]:
        return lambda welcome: Group.join(pj, welcome, config)

    def add(self, committer: str, count: int = 1) -> list[str]:
        return self.commit(committer, add=[self.fresh_name() for _ in range(count)]).joined

    def remove(self, committer: str, *victims: str) -> CommitResult:
        return self.commit(committer, remove=victims)

    def update(self, committer: str) -> CommitResult:
        return self.commit(committer, update=True)

    def send(self, sender: str, plaintext: bytes) -> tuple[bytes, dict[str, Event]]:
        message = self.members[sender].encrypt(plaintext)
        return message, self.deliver(message)

    def check_send(self, sender: str, plaintext: bytes) -> bytes:
        """Send and check that everyone else decrypts it and the sender gets its echo."""
        group = self.members[sender]
        message, events = self.send(sender, plaintext)
        for name, ev in events.items():
            if name == sender:
                assert isinstance(ev, MessageEchoed), (name, ev)
                assert ev.epoch == group.epoch
            else:
                assert isinstance(ev, MessageReceived), (name, ev)
                assert ev.plaintext == plaintext
                assert ev.sender.leaf == group.my_leaf
                assert ev.sender.display_name == sender
                assert ev.sender.identity_key == group._identity.public_key
                assert ev.epoch == group.epoch
        return message

    # --- invariants ---------------------------------------------------------------------------

    def assert_consistent(self, senders: Iterable[str] = ()) -> list[bytes]:
        """Same epoch, authenticator, tree hash and roster everywhere; ``senders`` reach everyone."""
        groups = list(self.members.values())
        assert groups, "the group has no members left"
        assert len({g.epoch for g in groups}) == 1, {n: g.epoch for n, g in self.members.items()}
        assert len({g.epoch_authenticator for g in groups}) == 1
        assert len({g.tree_hash for g in groups}) == 1
        roster = {(m.leaf, m.display_name, m.identity_key) for m in groups[0].members()}
        assert roster == {(g.my_leaf, n, g._identity.public_key) for n, g in self.members.items()}
        for g in groups[1:]:
            assert {(m.leaf, m.display_name, m.identity_key) for m in g.members()} == roster
        return [self.check_send(s, f"hello from {s} at epoch {self.epoch}".encode()) for s in senders]

    @property
    def epoch(self) -> int:
        return next(iter(self.members.values())).epoch


def untainted(n: int) -> Harness:
    """m0 plus m1..n, each of which has applied its own update (no leaf is tainted)."""
    h = Harness()
    h.add("m0", n)
    for i in range(1, n + 1):
        h.update(f"m{i}")
    assert all(not g.taint_record() for g in h.members.values())
    return h
