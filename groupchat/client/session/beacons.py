"""Beacons: members tell each other what they sent and received, so loss, withholding and forks show.

A beacon is an application message (``ContentKind.BEACON``), so the core signs it with its
sender's key and only members of its epoch can read it. It carries the epoch, a digest of that
epoch's authenticator, the last room seq its sender had processed, and one :class:`Tally` for the
epoch (and one for the epoch before): how many chat messages the sender had echoed by the relay,
and how many it received from each sender leaf. :class:`BeaconBook` keeps our own account and
reads the others' to report, as sentences of ``client/wording.py``:

- to a recipient, chat messages that did not reach it (a gap in a sender's ratchet generations
  not explained by the sender's next beacon within ``loss_after``, or a beacon claiming more
  chat messages than we got);
- to a sender, its messages (or its commit) that no other member confirmed within ``confirm_after``;
- a fork: a beacon at our epoch with another authenticator, or one at the epoch before ours whose
  sender had processed the room log past the commit that took us to ours;
- a split: one at the epoch before ours whose sender says (``refused``) it could not follow the
  commit that took us to ours: told with whose commit it was;
- a member from whom no signed traffic came for ``silence_after`` seconds although the room had
  chat it should have answered and the relay says it is online.

Every report rests on signed input (or its absence); none removes anyone. Pure: times and
randomness are given, no I/O.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives import hashes

from ...core.codec import Reader, Writer
from ...core.events import Member
from .. import wording

__all__ = [
    "ASK_GAP",
    "DIGEST_LEN",
    "KEEPALIVE",
    "MAX_ENTRIES",
    "SPEAKERS",
    "Beacon",
    "BeaconBook",
    "Tally",
    "authenticator_digest",
    "is_speaker",
    "speakers",
]

DIGEST_LEN: Final = 8
SPEAKERS: Final = 2  # members who confirm each commit with a beacon
MAX_ENTRIES: Final = 64  # sender leaves a tally lists at most (the busiest first)
ASK_GAP: Final = 20.0  # seconds: how often we ask for signs of life, and answer
KEEPALIVE: Final = 300.0  # seconds: a beacon to everyone at least this often (give or take a quarter)
_ENTRY_BYTES: Final = 8
_WAITING: Final = 4096  # our unconfirmed messages watched per epoch at most
_CHAT_TIMES: Final = 64  # chat moments remembered (coalesced to one a second) for the silence rule


def speakers(online_leaves: Iterable[int], committer: int, k: int = SPEAKERS) -> list[int]:
    """Who confirms a commit with a beacon at the new epoch: the first ``k`` members after the
    committer in leaf order (cyclic) that the relay says are online. A few suffice (any one
    confirms the commit, and each beacon carries a digest of the epoch to compare); N of them
    would cost every member N decryptions at every epoch change."""
    leaves = sorted(set(online_leaves) - {committer})
    return ([lf for lf in leaves if lf > committer] + [lf for lf in leaves if lf < committer])[:k]


def is_speaker(
    me: int, committer: int, leaves: Collection[int], online: Callable[[int], bool], k: int = SPEAKERS
) -> bool:
    """``me in speakers(online leaves, committer, k)`` without listing and sorting every online
    leaf at every epoch: the leaves between the committer and ours (cyclic) are walked, up to the
    ``k``-th online one. ``leaves``: the roster's; ``online(leaf)``: the relay says that leaf's
    member is in the room."""
    if me == committer or me not in leaves or not online(me):
        return False
    if me > committer:
        before: Iterable[int] = range(committer + 1, me)
    else:
        before = itertools.chain(range(committer + 1, max(leaves) + 1), range(me))
    found = 0
    for lf in before:
        if lf in leaves and online(lf):
            found += 1
            if found >= k:
                return False
    return True


def authenticator_digest(authenticator: bytes) -> bytes:
    """A short digest of an epoch authenticator: equal views give equal digests."""
    h = hashes.Hash(hashes.SHA256())
    h.update(b"groupchat beacon digest" + authenticator)
    return h.finalize()[:DIGEST_LEN]


@dataclass(frozen=True, slots=True)
class Tally:
    """One member's account of one epoch: chat messages of its own the relay logged, and the chat
    messages it received per sender leaf (``complete``: every sender it heard is listed)."""

    sent: int
    heard: tuple[tuple[int, int], ...] = ()
    complete: bool = True

    def count_from(self, leaf: int) -> int | None:
        """How many of ``leaf``'s messages it got (None: not listed in an incomplete tally)."""
        for lf, n in self.heard:
            if lf == leaf:
                return n
        return 0 if self.complete else None

    def _write(self, w: Writer) -> Writer:
        entries = [Writer().u32(leaf).u32(n).bytes() for leaf, n in self.heard]
        return w.u32(self.sent).u8(1 if self.complete else 0).vector(entries)

    @classmethod
    def _read(cls, r: Reader) -> Tally:
        sent = r.u32("sent")
        flag = r.u8("complete")
        if flag > 1:
            raise _invalid(f"beacon: complete flag is {flag}, not 0/1")
        heard = r.vector(
            "heard", MAX_ENTRIES * _ENTRY_BYTES, lambda s: (s.u32("leaf"), s.u32("count")), MAX_ENTRIES
        )
        leaves = [leaf for leaf, _ in heard]
        if leaves != sorted(set(leaves)):
            raise _invalid("beacon: sender leaves are not listed once each in order")
        return cls(sent, tuple(heard), flag == 1)


def _invalid(text: str) -> Exception:
    from ...core.errors import InvalidValueError

    return InvalidValueError(text)


@dataclass(frozen=True, slots=True)
class Beacon:
    """What one member says about its view of the group (see the module docstring)."""

    epoch: int
    digest: bytes
    seq: int
    current: Tally
    previous: Tally | None = None
    ask: bool = False  # "are you there?": members long silent answer with a beacon of their own
    # The leaf of the member whose commit on this epoch we could not follow (signed, consistent
    # only above some node: the members who took it moved on without us). None: none (then the
    # field is absent: the beacon is encoded as before it existed).
    refused: int | None = None

    def encode(self) -> bytes:
        w = Writer().u64(self.epoch).raw(self.digest).u64(self.seq)
        self.current._write(w)
        if self.previous is None:
            w.u8(0)
        else:
            self.previous._write(w.u8(1))
        # The ask octet's bit 1 says a refused leaf follows (absent, the beacon is as before it was).
        w.u8((1 if self.ask else 0) | (0 if self.refused is None else 2))
        return (w if self.refused is None else w.u32(self.refused)).bytes()

    @classmethod
    def decode(cls, data: bytes) -> Beacon:
        r = Reader(data, "beacon")
        epoch = r.u64("epoch")
        digest = r.fixed(DIGEST_LEN, "digest")
        seq = r.u64("seq")
        current = Tally._read(r)
        previous = r.optional("previous", Tally._read)
        ask = r.u8("ask")
        if ask > 3:
            raise _invalid(f"beacon: ask octet must be 0 to 3, not {ask}")
        refused = r.u32("refused") if ask & 2 else None
        r.end()
        return cls(epoch, digest, seq, current, previous, bool(ask & 1), refused)


@dataclass(slots=True)
class _Sender:
    """One sender in one epoch, as we received it."""

    member: Member
    chat: int = 0  # chat messages received
    top_gen: int = -1  # highest ratchet generation seen
    missing: int = 0  # generations skipped and not yet explained by a beacon
    gap_since: float | None = None
    reported: int = 0  # losses already reported
    seen_by_others: int = 0  # the most of its chat messages another member's beacon counted


@dataclass(slots=True)
class _Ledger:
    """Our account of one epoch."""

    epoch: int
    digest: bytes
    my_leaf: int
    start_seq: int
    by: str | None = None  # whose commit took us here ("" ours; None: not known)
    by_leaf: int | None = None  # its leaf
    sent: int = 0  # our chat messages the relay echoed
    settled: int = 0  # of them, confirmed by another member's beacon or reported as unconfirmed
    waiting: deque[float] = field(default_factory=deque)  # echo times of the others, in order
    senders: dict[int, _Sender] = field(default_factory=dict)

    def tally(self) -> Tally:
        heard = sorted(self.senders.items(), key=lambda kv: -kv[1].chat)
        listed = [(leaf, s.chat) for leaf, s in heard if s.chat][:MAX_ENTRIES]
        complete = len(listed) == sum(1 for s in self.senders.values() if s.chat)
        return Tally(self.sent, tuple(sorted(listed)), complete)

    def settle(self, n: int) -> None:
        """The first ``n`` of our messages need no more watching."""
        while self.settled < min(n, self.sent):
            self.waiting.popleft()
            self.settled += 1


@dataclass(slots=True)
class _OwnCommit:
    epoch: int
    at: float
    update: bool


@dataclass(slots=True)
class BeaconBook:
    """Our beacon bookkeeping and the reports it decides (see the module docstring)."""

    interval: float = 10.0  # a periodic beacon at most this often while chat flows
    confirm_after: float = 15.0
    loss_after: float = 20.0
    silence_after: float = 60.0
    ledgers: dict[int, _Ledger] = field(default_factory=dict)  # our epoch and the one before
    epoch: int | None = None
    _authenticator: bytes = b""
    next_beacon: float | None = None
    chat_pending: bool = False  # chat since our last beacon that no two beacons of others cover
    sent_pending: bool = False  # chat of ours since our last beacon (only we can claim it)
    last_life: float | None = None  # when we last sent a beacon to everyone (or arrived)
    _must_by: float | None = None  # a beacon owed (epoch change, retry): no standing down delays it
    addressee: bytes | None = None  # our next beacon only confirms this member's commit: to it alone
    next_check: float | None = None
    last_heard: dict[bytes, float] = field(default_factory=dict)  # identity key -> time
    _watched: dict[bytes, float] = field(default_factory=dict)  # identity key -> counting since
    _roster: Mapping[int, Member] | None = None  # the roster watched last (watch_roster)
    _silent_told: set[bytes] = field(default_factory=set)
    _forks_told: set[tuple[int, bytes]] = field(default_factory=set)
    _chat_times: deque[float] = field(default_factory=deque)
    _own_commit: _OwnCommit | None = None
    keepalive: float = KEEPALIVE  # a beacon to everyone at least this often, even in an idle room
    _keepalive_due: float | None = None
    _asking: bool = False  # our next beacon asks for signs of life
    _asked_at: float | None = None
    _refused: int | None = None  # the committer whose commit on our epoch we could not follow
    fraction: Callable[[], float] = lambda: 1.0  # a random number in [0, 1): spreads beacons out

    # --- our epoch -------------------------------------------------------------------------------

    def enter(
        self,
        epoch: int,
        authenticator: bytes,
        my_leaf: int,
        seq: int,
        now: float,
        members: int,
        *,
        confirm: bytes | None = None,
        fresh: bool = False,
        by: str | None = None,
        by_leaf: int | None = None,
    ) -> bool:
        """We hold ``epoch`` (idempotent; ``seq``: the room seq that took us there); on a new one,
        schedule our beacon after a random pause that grows with the group (at most 8 s), so that
        the members do not all send at once. ``confirm``: the committer's identity key when we are
        one of the few who confirm its commit (:func:`speakers`), to it alone (:attr:`addressee`);
        we also send one, to everyone, when chat of the epoch before is in no beacon of ours yet.
        ``fresh``: it is another group than before (we rejoined). ``by``: whose commit took us there
        ("" ours) and its leaf, for the split report. True if the epoch is new to us."""
        if epoch == self.epoch and authenticator == self._authenticator:
            return False
        if self.last_life is None or fresh:
            self.last_life = now  # the others count our silence from about now (our arrival)
            self._next_keepalive(now)
        if fresh or (self.epoch is not None and epoch != self.epoch + 1):
            self.ledgers.clear()  # a new group, or epochs we never saw: the old accounts say nothing
        self.epoch, self._authenticator = epoch, authenticator
        self.ledgers[epoch] = _Ledger(epoch, authenticator_digest(authenticator), my_leaf, seq, by, by_leaf)
        self._refused = None  # a commit we could not follow was built on the epoch we leave
        for old in [e for e in self.ledgers if e < epoch - 1]:
            del self.ledgers[old]
        pending = self.chat_pending or self.sent_pending
        if self.addressee is not None:
            # A confirmation of the commit before, not sent yet: this commit confirmed that one.
            self.next_beacon = self._must_by = self.addressee = None
        if confirm is not None or pending:
            due = now + 1.0 + self.fraction() * min(7.0, 0.1 * members)
            # One already scheduled (a silent member's, say) serves everyone: it stays a Publish.
            self.addressee = confirm if self.next_beacon is None and not pending else None
            self.next_beacon = due if self.next_beacon is None else min(self.next_beacon, due)
            self._must_by = due if self._must_by is None else min(self._must_by, due)
        self.chat_pending = False
        return True

    def watch_roster(self, roster: Mapping[int, Member], me: bytes, now: float) -> None:
        """:meth:`watch` the members of ``roster`` (the machine's mapping, never changed in place:
        a new roster is a new mapping), at once when it is the one watched last (an update-only
        epoch keeps it): nothing came or went, so nothing is to do."""
        if roster is self._roster:
            return
        self._roster = roster
        self.watch(roster.values(), me, now)

    def watch(self, members: Iterable[Member], me: bytes, now: float) -> None:
        """Count the silence of roster members from when they entered our roster."""
        keys = {m.identity_key for m in members if m.identity_key != me}
        for key in keys - self._watched.keys():
            self._watched[key] = now
        for key in self._watched.keys() - keys:
            del self._watched[key]
            self._silent_told.discard(key)
            self.last_heard.pop(key, None)

    def own_commit(self, epoch: int, update: bool, now: float) -> None:
        """Our commit took us to ``epoch``: it waits for another member's traffic there."""
        self._own_commit = _OwnCommit(epoch, now, update)
        self._arm_at(now + self.confirm_after)

    def commit_from(self, member: Member, epoch: int, now: float) -> None:
        """Another member's signed commit took the group to ``epoch``."""
        self._heard(member.identity_key, epoch, now)

    # --- our traffic -----------------------------------------------------------------------------

    def echoed_chat(self, epoch: int, now: float) -> None:
        """The relay echoed one of our chat messages of ``epoch``."""
        ledger = self.ledgers.get(epoch)
        if ledger is not None:
            ledger.sent += 1
            ledger.waiting.append(now)
            if len(ledger.waiting) > _WAITING:
                ledger.settle(ledger.settled + 1)
            self._arm_at(now + self.confirm_after)
        self._chat(now, own=True)

    def beacon(self, seq: int, now: float) -> Beacon | None:
        """Our beacon (None before we hold an epoch); marks it sent."""
        epoch = self.epoch
        if epoch is None:
            return None
        ledger = self.ledgers[epoch]
        before = self.ledgers.get(epoch - 1)
        if self.addressee is None:
            self.last_life = now
            self._next_keepalive(now)
        self.next_beacon, self.chat_pending, self.addressee = None, False, None
        self.sent_pending, self._must_by = False, None
        ask, self._asking = self._asking, False
        previous = before.tally() if before else None
        return Beacon(epoch, ledger.digest, seq, ledger.tally(), previous, ask, self._refused)

    def ask_for_life(self, now: float) -> None:
        """Someone's eviction is coming due: ask everyone (our next beacon, soon) to show signs of
        life, so that only a member truly gone stays silent (at most once per ``ASK_GAP``)."""
        if self._asked_at is not None and now - self._asked_at < ASK_GAP:
            return
        self._asked_at, self._asking = now, True
        self._schedule_broadcast(now + 0.2 + self.fraction())

    def cut_off(self, committer: int, now: float) -> None:
        """We could not follow ``committer``'s signed commit on our epoch: say so to everyone soon,
        in our beacons at this epoch, which the members who took it still read for a while (the
        core keeps the previous epoch's keys for ``previous_epoch_ttl``)."""
        self._refused = committer
        self._schedule_broadcast(now + 0.2 + self.fraction())

    def _answer(self, now: float) -> None:
        """Another member asked for signs of life: answer with a beacon if we have been quiet."""
        if self.last_life is not None and now - self.last_life < ASK_GAP:
            return
        self._schedule_broadcast(now + 0.5 + 2.0 * self.fraction())

    def _schedule_broadcast(self, due: float) -> None:
        self.addressee = None  # to everyone
        self.next_beacon = due if self.next_beacon is None else min(self.next_beacon, due)
        self._must_by = due if self._must_by is None else min(self._must_by, due)

    def retry(self, now: float) -> None:
        """Our beacon did not go out (or the relay refused it): send another in a second or two
        (its claim also explains the ratchet generation the lost one used)."""
        if self.next_beacon is None:
            self.next_beacon = now + 1.0 + self.fraction()
        self._must_by = self.next_beacon if self._must_by is None else min(self._must_by, self.next_beacon)

    def _next_keepalive(self, now: float) -> None:
        self._keepalive_due = now + self.keepalive * (0.75 + 0.5 * self.fraction())

    def due(self, now: float) -> bool:
        """A beacon or a look at the timed reports is due (checked after every input: cheap)."""
        ka = self._keepalive_due
        if ka is not None and now >= ka and self.next_beacon is None and self.epoch is not None:
            # Even an idle room hears from each member now and then: a fork of equal epoch
            # numbers shows as hints at its minority (behind.py), a member the relay calls gone
            # shows it is not.
            self._schedule_broadcast(now)
            self._keepalive_due = None
        nb, nc = self.next_beacon, self.next_check
        return (nb is not None and now >= nb) or (nc is not None and now >= nc)

    def beacon_due(self, now: float) -> bool:
        return self.next_beacon is not None and now >= self.next_beacon

    def wakeups(self) -> list[float]:
        return [t for t in (self.next_beacon, self.next_check, self._keepalive_due) if t is not None]

    # --- what we receive -------------------------------------------------------------------------

    def received(self, sender: Member, epoch: int, generation: int, chat: bool, now: float) -> None:
        """An application message from ``sender`` at ``epoch`` (chat or not), authenticated."""
        self._heard(sender.identity_key, epoch, now)
        ledger = self.ledgers.get(epoch)
        if ledger is None:
            return
        s = ledger.senders.get(sender.leaf)
        if s is None or s.member.identity_key != sender.identity_key:
            s = ledger.senders[sender.leaf] = _Sender(sender)
        if generation > s.top_gen + 1:
            s.missing += generation - s.top_gen - 1
            if s.gap_since is None:
                s.gap_since = now
                self._arm_at(now + self.loss_after)
        s.top_gen = max(s.top_gen, generation)
        if chat:
            s.chat += 1
            self._chat(now, own=False)

    def read_beacon(self, sender: Member, b: Beacon, now: float) -> list[str]:
        """Another member's beacon (already counted by :meth:`received`): what it tells."""
        out: list[str] = []
        name = sender.display_name
        if b.ask:
            self._answer(now)
        ledger = self.ledgers.get(b.epoch)
        if ledger is None:
            return out
        if b.digest != ledger.digest:
            out += self._fork(b.epoch, sender)
        newer = self.ledgers.get(b.epoch + 1)
        if newer is not None and b.refused is not None and b.refused == newer.by_leaf:
            # It could not follow the commit that took us on (signed, inconsistent below some
            # node: we are above it): it is cut off (session/behind.py, Split).
            out += self._fork(b.epoch, sender, newer)
        elif newer is not None and b.seq >= newer.start_seq:
            # It had processed the room log past the commit that took us on, yet stayed behind.
            out += self._fork(b.epoch, sender)
        if out:
            return out
        s = ledger.senders.get(sender.leaf)
        if s is not None:
            lost = b.current.sent - s.chat
            s.missing, s.gap_since = 0, None  # its claim explains every generation before it
            if lost > s.reported:
                out.append(wording.messages_lost(lost - s.reported, name))
                s.reported = lost
        self._confirm(ledger, b.current)
        for leaf, n in b.current.heard:
            got = ledger.senders.get(leaf)
            if got is not None and leaf != sender.leaf and n > got.seen_by_others:
                got.seen_by_others = n
        if self.chat_pending and not self.sent_pending and b.epoch == self.epoch and self._covered(ledger):
            self._stand_down(now)
        before = self.ledgers.get(b.epoch - 1)
        if before is not None and b.previous is not None:
            self._confirm(before, b.previous)
            p = before.senders.get(sender.leaf)
            if p is not None:
                p.missing, p.gap_since = 0, None  # its final claim for that epoch explains it all
                if b.previous.sent - p.chat > p.reported:
                    out.append(wording.messages_lost(b.previous.sent - p.chat - p.reported, name))
                    p.reported = b.previous.sent - p.chat
        return out

    # --- timed reports ---------------------------------------------------------------------------

    def poll(
        self, now: float, names: Callable[[bytes], str | None], online: Callable[[bytes], bool]
    ) -> list[str]:
        """The reports whose time has come (looked at when :attr:`next_check` comes). ``names``: the display
        name of a roster member by identity key (None: not one); ``online``: the relay's claim."""
        if self.next_check is None or now < self.next_check:
            return []
        self.next_check = None
        out: list[str] = []
        anyone_online = any(online(k) for k in self._watched)
        for ledger in self.ledgers.values():
            for s in ledger.senders.values():
                if s.gap_since is not None:
                    if now >= s.gap_since + self.loss_after:
                        out.append(wording.messages_lost(s.missing, s.member.display_name))
                        s.reported += s.missing
                        s.missing, s.gap_since = 0, None
                    else:
                        self._arm_at(s.gap_since + self.loss_after)
            waiting = ledger.waiting
            overdue = 0
            while overdue < len(waiting) and waiting[overdue] + self.confirm_after <= now:
                overdue += 1
            if overdue:
                if self._watched and anyone_online:
                    out.append(wording.messages_unconfirmed(overdue))
                ledger.settle(ledger.settled + overdue)
            if waiting:
                self._arm_at(waiting[0] + self.confirm_after)
        own = self._own_commit
        if own is not None:
            if now >= own.at + self.confirm_after:
                if self._watched and anyone_online:
                    out.append(wording.commit_unconfirmed(own.update, self.confirm_after))
                self._own_commit = None
            else:
                self._arm_at(own.at + self.confirm_after)
        out += self._silences(now, names, online)
        return out

    def _silences(
        self, now: float, names: Callable[[bytes], str | None], online: Callable[[bytes], bool]
    ) -> list[str]:
        times = self._chat_times
        answer_by = now - 2 * self.interval  # chat older than this should have had an answer
        while len(times) > 1 and times[1] <= answer_by:
            times.popleft()
        answerable = times[0] if times and times[0] <= answer_by else None
        out: list[str] = []
        for key, since in self._watched.items():
            heard = max(since, self.last_heard.get(key, since))
            if key in self._silent_told or not times or times[-1] <= heard:
                continue  # told already, or no chat since we last heard from it
            if now - heard >= self.silence_after and answerable is not None and answerable > heard:
                if online(key) and (name := names(key)) is not None:
                    out.append(wording.not_heard(name, self.silence_after))
                    self._silent_told.add(key)
                continue
            first_after = next(t for t in times if t > heard)
            self._arm_at(max(heard + self.silence_after, first_after + 2 * self.interval))
        return out

    # --- helpers ---------------------------------------------------------------------------------

    def _heard(self, key: bytes, epoch: int, now: float) -> None:
        self.last_heard[key] = now
        self._silent_told.discard(key)
        own = self._own_commit
        if own is not None and epoch >= own.epoch:
            self._own_commit = None

    def _chat(self, now: float, *, own: bool) -> None:
        self.sent_pending |= own
        if not self.chat_pending:
            self.chat_pending = True
            self.addressee = None  # it tells of chat now: everyone needs it
            due = now + self.interval * (0.5 + 0.5 * self.fraction())
            if self.next_beacon is None or due < self.next_beacon:
                self.next_beacon = due
        times = self._chat_times
        if not times or now - times[-1] >= 1.0:
            times.append(now)
            if len(times) > _CHAT_TIMES:
                times.popleft()
            self._arm_at(now + 2 * self.interval)

    @staticmethod
    def _covered(ledger: _Ledger) -> bool:
        """Every chat message we got in the epoch is counted by a beacon of someone other than its
        sender, so each sender has its confirmation without ours."""
        return all(s.seen_by_others >= s.chat for s in ledger.senders.values())

    def _stand_down(self, now: float) -> None:
        """Others' beacons already confirm all we got: ours can wait. One still goes out
        ``interval`` before the silence bound after our last, so nobody takes us for withheld."""
        self.chat_pending = False
        # The others report us after silence_after: speak ``interval`` before that.
        life = (self.last_life if self.last_life is not None else now) + self.silence_after - self.interval
        self.next_beacon = max(now, life) if self._must_by is None else min(self._must_by, max(now, life))

    def _confirm(self, ledger: _Ledger, tally: Tally) -> None:
        n = tally.count_from(ledger.my_leaf)
        if n is not None:
            ledger.settle(n)

    def _fork(self, epoch: int, sender: Member, newer: _Ledger | None = None) -> list[str]:
        key = (epoch, sender.identity_key)
        if key in self._forks_told:
            return []
        self._forks_told.add(key)
        if len(self._forks_told) > 4096:
            self._forks_told.clear()
        if newer is not None:
            return [wording.split_seen(sender.display_name, newer.by, newer.epoch)]
        return [wording.fork_view(sender.display_name)]

    def _arm_at(self, t: float) -> None:
        if self.next_check is None or t < self.next_check:
            self.next_check = t
