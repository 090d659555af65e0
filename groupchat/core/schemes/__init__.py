"""Key-agreement schemes: how the members of a new epoch agree on its ``commit_secret``.

Everything above ``commit_secret`` (key schedule, transcript, confirmation tag, epoch
authenticator, message protection) belongs to the epoch machine and is the same for every scheme.
Today this package holds the ring (:mod:`.ring`); the tree moves here when ``Group`` becomes the
epoch machine.

The interface a scheme wants from the epoch machine
---------------------------------------------------
A rekey is a sans-I/O *run*, one object per attempt, shaped like :class:`.ring.RingRekey`::

    run = scheme.rekey(RekeyInput(...))   # built when a roster change or update wins its epoch
    step = run.start()                    # Step(outbound=(bytes, ...), result=None | Result)
    step = run.receive(data)              # every scheme message the relay delivers, own echoes included
    run.check_timeout()                   # on the session's timer; raises naming who is missing

Input (``RekeyInput``), all of it public except the injected effects:

* ``suite`` and our ``identity`` (to sign);
* ``group_id`` and ``epoch``: the epoch being created;
* ``roster``: the members of the *new* epoch, in leaf order (``events.Member``: leaf, name,
  identity key); joiners included, removed members excluded;
* ``context``: up to 64 bytes naming the group state the rekey continues, so that a run cannot
  be replayed into a fork: ``Hash(GroupContext[epoch-1] || the commit that triggered the rekey)``;
* ``rand`` and ``clock`` (``GroupConfig.rand`` / ``GroupConfig.clock``), the round ``timeout``
  and, for the ring, the ``attempt`` number.

Output (``Result``): ``commit_secret`` (32 bytes) and ``transcript_hash`` (the hash of every
scheme message of the run, which the epoch machine folds into the confirmed transcript hash:
``confirmed[n] = Hash(interim[n-1] || commit || V(transcript_hash))``), plus the ``roster_hash``
that goes where ``tree_hash`` sits in the GroupContext. The scheme never sees ``init_secret``:
the epoch machine runs ``derive_epoch_secrets(init_secret[n-1], commit_secret, GroupContext[n])``
as for the tree. Scheme errors are ``GroupChatError`` subclasses; a run changes no state on a
rejected message.

How the two schemes fit behind it:

* **tree**: the run completes in one step. At the committer, ``start()`` returns the commit's
  path and the result (held until the echo, as today); at a receiver, ``receive(commit)``
  returns the result. Add, Remove and Update, the taint rules and the Welcome's leaf secret stay
  inside the tree scheme.
* **ring**: the triggering commit carries only the roster change; its winning echo starts a run
  at every member of the new roster; two rounds later every member has the result. A joiner's
  Welcome carries the previous epoch's state (GroupContext, roster, ``init_secret``), not the new
  epoch's, and the joiner runs the ring like everyone (see :mod:`.ring`, "Joiners").
* **confirmation**: the tree's committer puts the confirmation tag in its commit. A ring epoch's
  secret exists only after round 2, so the author of the triggering commit broadcasts the tag in
  one more handshake message (``MAC(confirmation_key, confirmed[n])``) and every member verifies
  it before it sends in the new epoch. A divergent view then fails exactly as a bad tree tag does.
* **scheme choice**: fixed at group creation and recorded in the GroupContext extensions, so a
  message of the other scheme is refused as for another group.
"""

from __future__ import annotations

from .ring import RingRekey, RingResult, RingState, RingStep
from .ring_errors import (
    AttemptFailedError,
    DivergentViewError,
    EquivocationError,
    RingInconsistentError,
    RingTimeoutError,
    RosterMismatchError,
    RoundOrderError,
    WrongAttemptError,
)
from .ring_message import RING_WIRE_FORMAT, RingRound

__all__ = [
    "RING_WIRE_FORMAT",
    "AttemptFailedError",
    "DivergentViewError",
    "EquivocationError",
    "RingInconsistentError",
    "RingRekey",
    "RingResult",
    "RingRound",
    "RingState",
    "RingStep",
    "RingTimeoutError",
    "RosterMismatchError",
    "RoundOrderError",
    "WrongAttemptError",
]
