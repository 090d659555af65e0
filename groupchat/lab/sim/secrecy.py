"""The sim's attacks: what a removed member kept, or a joiner holds, tried against other epochs.

Each attacker is a :class:`~groupchat.lab.keeper.Deriver` over every 32-byte value the member ever
held (its :class:`~groupchat.lab.keeper.Keeper`: every random output, every state it had before
each commit it took in). Against an epoch it is not entitled to, it tries for real:

* to derive the epoch: in a tree group by climbing the epoch's public tree from every private key
  it holds and running the key schedule from every init secret it holds or derived before; in a
  ring group (no tree) by trying every held value and every 32-byte window of the epoch's ring
  traffic as the commit secret on its kept init secrets (later epochs: on those of epochs it
  derived); in both, every held value as the epoch
  secret itself (the derived epoch is compared by its epoch authenticator);
* to read the epoch's probe message: every candidate sender-data secret (each held value, each
  value as an epoch secret, each derived epoch's) is used to open the message's sender data
  (``trial``), or, for later epochs of the same attacker, looked up (the same question, exactly,
  since an AEAD opens under one key only); a joiner also gets the message re-framed at its own
  epoch through its live ``Group.receive``, which must fail on the keys.

Controls, so a check can fail: the probe's real sender-data secret must open the probe, and a
keeper must hold that epoch's sender-data secret and derive the last epoch it was entitled to (the
derived epoch's init secret then feeds the attack on the next one).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ...core.errors import DecryptionError, GroupChatError
from ...core.group import Group
from ...core.message_protection import PrivateMessage, decrypt_sender_data
from ...core.suite import CipherSuite
from ..keeper import Deriver, EpochView

__all__ = ["Attacker", "EpochRecord", "Probe"]


@dataclass(frozen=True, slots=True)
class Probe:
    """One application message of an epoch and, for the checks only, its sender-data secret."""

    epoch: int
    data: bytes
    sender_data_secret: bytes = field(repr=False)

    @classmethod
    def of(cls, sender: Group, data: bytes) -> Probe:
        return cls(sender.epoch, data, sender._keys.sender_data_secret)


@dataclass(slots=True)
class EpochRecord:
    """The public facts of one epoch (read from the first member to reach it) and its probe."""

    view: EpochView
    traffic: tuple[bytes, ...] = ()  # ring: the relay's payloads since the epoch before
    probe: Probe | None = None

    @classmethod
    def of(cls, group: Group, traffic: tuple[bytes, ...]) -> EpochRecord:
        if group.scheme == "tree":
            return cls(EpochView.of(group))
        return cls(EpochView(group.epoch, group._ctx_bytes, group.epoch_authenticator, ()), traffic)


def _windows(traffic: tuple[bytes, ...]) -> set[bytes]:
    return {d[i : i + 32] for d in traffic for i in range(len(d) - 31)}


class Attacker:
    """One member's kept knowledge, frozen, and its attempts on epochs it is not entitled to."""

    def __init__(
        self, label: str, held: frozenset[bytes], inits: frozenset[bytes], suite: CipherSuite, scheme: str
    ) -> None:
        self.label = label
        self.scheme = scheme
        self.suite = suite
        self.inits = inits  # the init secrets it kept (the ring's attack starts from them)
        self.deriver = Deriver(held, suite.label_prefix, label)
        self.tried: set[int] = set()  # epochs attacked so far
        self._trials = 0

    @property
    def held(self) -> int:
        return len(self.deriver.held)

    def control(self, record: EpochRecord) -> str | None:
        """The attack works where it should: the last epoch it was entitled to. ``None`` if the
        control holds, else why not (the check would be blind)."""
        if record.probe is not None:
            why = self._probe_opens(record.probe)
            if why is not None:
                return why
            if record.probe.sender_data_secret not in self.deriver.sender_data_candidates():
                epoch = record.view.epoch
                return f"control failed: {self.label} does not hold the sender-data secret of epoch {epoch}"
        if self.scheme == "tree":
            derived = self.deriver.attempt(record.view)
        else:  # the ring: from the epoch secret it held (the commit-secret route needs the rounds')
            derived = self.deriver.attempt_candidates(record.view, (), ())
        if derived is None:
            return f"control failed: {self.label} does not derive epoch {record.view.epoch}, its own"
        return None

    def derives(self, record: EpochRecord, first: bool) -> str | None:
        """How it derives ``record``'s epoch (a leak), or ``None``. ``first``: the epoch right after
        the event, where the ring's traffic windows are tried too."""
        self.tried.add(record.view.epoch)
        d = self.deriver
        if self.scheme == "tree":
            if d.commit_secrets(record.view):
                return "holds a private key of the epoch's tree"
            return d.attempt(record.view)
        # The key schedule of epoch e starts from the init secret of epoch e - 1: right after the
        # event that is one it kept; later, only one of an epoch it derived (chained in the deriver).
        candidates = set(d.held) | _windows(record.traffic)
        return d.attempt_candidates(record.view, candidates, self.inits if first else ())

    def reads(self, probe: Probe, trial: bool) -> str | None:
        """Whether it opens ``probe`` (a leak: says with what), else ``None``; raises nothing."""
        why = self._probe_opens(probe)
        if why is not None:
            return why
        candidates = self.deriver.sender_data_candidates()
        if not trial:
            return "holds its sender-data secret" if probe.sender_data_secret in candidates else None
        msg = PrivateMessage.decode(probe.data)
        for key in candidates:
            self._trials += 1
            try:
                decrypt_sender_data(self.suite, msg, key)
            except GroupChatError:
                continue
            return "opened its sender data with a held value"
        return None

    def _probe_opens(self, probe: Probe) -> str | None:
        try:
            decrypt_sender_data(self.suite, PrivateMessage.decode(probe.data), probe.sender_data_secret)
        except GroupChatError as exc:
            return f"control failed: the probe of epoch {probe.epoch} does not open with its own key ({exc})"
        return None

    @staticmethod
    def reframed(reader: Group, probe: Probe) -> str | None:
        """The probe re-framed at ``reader``'s epoch, given to its live ``receive``: must fail on
        the keys (``DecryptionError``). ``None`` if it does, else what happened."""
        msg = PrivateMessage.decode(probe.data)
        data = dataclasses.replace(msg, epoch=reader.epoch).encode()
        try:
            reader.receive(data)
        except DecryptionError:
            return None
        except GroupChatError as exc:
            return f"the re-framed message of epoch {probe.epoch} failed before the keys: {exc}"
        return f"opened the message of epoch {probe.epoch} re-framed at its own epoch"
