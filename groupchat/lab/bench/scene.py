"""The live tree group the rekey bench measures: built cheaply, with only the measured members held.

How the group is built: holding n full ``Group`` states and letting each process every commit would
cost O(n²). Instead one creator (leaf 0) adds the n - 1 others in as few commits as a receiver
takes (``MAX_OPERATIONS`` joiners, ``MAX_COMMIT_BODY`` bytes: the batch is halved until it fits),
and only the few members we measure actually call ``Group.join`` from their batch's welcome; the
other join requests' secrets are thrown away, so their leaves are real, signed members of the tree
that nobody plays. Every held member processes every commit, so all held states stay in the same
epoch (checked through the epoch authenticator). The creator chose every other leaf's secret, so
its own update would have to re-key them all (taint rules); the measured committer is therefore
leaf 1, which applies its own update once after the build and has chosen nothing for anyone else.

Its own module so that the samplers (``tree``) and the report (``rekey``) share it without a cycle.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Final

from ...core.commit import MAX_OPERATIONS
from ...core.errors import UsageError
from ...core.events import EpochChanged
from ...core.group import Group, GroupConfig
from ...core.identity import Identity, JoinRequest, PendingJoin
from ...core.outbox import OutboundKind

__all__ = [
    "COMMITTER",
    "COMMITTER_SIBLING",
    "CREATOR",
    "GROUP_ID",
    "VICTIM",
    "VICTIM_SIBLING",
    "Scene",
    "build_group",
    "deliver",
    "lca_level",
    "take_welcome",
]

GROUP_ID: Final = b"bench-rekey"
# Fixed leaves of the measured members (see the module docstring): the creator, the measured
# committer, the committer's sibling (the creator), the slot every sample empties and refills, and
# the member next to that slot.
CREATOR: Final = 0
COMMITTER: Final = 1
COMMITTER_SIBLING: Final = 0
VICTIM: Final = 2
VICTIM_SIBLING: Final = 3


def lca_level(a: int, b: int) -> int:
    """Tree level of the lowest common ancestor of leaves ``a`` and ``b`` (1 = their parent)."""
    return (a ^ b).bit_length()


@dataclasses.dataclass(slots=True)
class Scene:
    """The live group: the committer and the few receivers we measure, keyed by leaf."""

    n: int
    config: GroupConfig
    held: dict[int, Group]
    typical: int
    setup_s: float
    next_name: int = 0

    @property
    def committer(self) -> Group:
        """The measured committer (leaf 1), which has chosen no other leaf's secret."""
        return self.held[COMMITTER]

    def pending_join(self) -> PendingJoin:
        """A fresh joiner's join request (a new identity and display name)."""
        self.next_name += 1
        return JoinRequest.create(
            self.config.suite(), Identity.generate(), GROUP_ID, f"m{self.next_name}", self.config.rand
        )

    def check_consistent(self) -> None:
        """Raise unless every held member is in the same epoch (same epoch authenticator)."""
        auths = {g.epoch_authenticator for g in self.held.values()}
        if len(auths) != 1:
            raise RuntimeError(f"held members disagree on the epoch at n={self.n}: {self.held}")


def take_welcome(committer: Group, joiners: int) -> bytes:
    """Drain the Welcome of ``committer``'s applied add commit from its ``data_to_send()``.

    The core queues one item per joiner, all the same bytes; anything else in the outbox (a commit
    the protocol asks for) would change what the bench measures, so it is an error. Call it outside
    the timed sections.
    """
    items = committer.data_to_send()
    welcomes = {item.data for item in items if item.kind is OutboundKind.WELCOME}
    if len(items) != joiners or len(welcomes) != 1 or any(i.kind is not OutboundKind.WELCOME for i in items):
        raise RuntimeError(f"expected {joiners} copies of one Welcome in the outbox, got {items}")
    return welcomes.pop()


def build_group(n: int, config: GroupConfig) -> Scene:
    """Create an n-member group in add commits as large as a receiver reads; only measured members join.

    Members are added in leaf order (each add takes the leftmost free leaf), so the leaves of the
    measured members are known in advance: the committer 1 and its sibling 0 (the creator), the
    member 3 next to the slot 2 that each sample empties and refills, and one typical leaf in the
    other half.
    """
    if n < 8:
        raise ValueError(f"group size {n} is too small: the bench needs n ≥ 8")
    t0 = time.perf_counter()
    typical = n // 2 + 1
    wanted = {COMMITTER, VICTIM_SIBLING, typical}
    creator = Group.create(Identity.generate(), GROUP_ID, "m0", config)
    scene = Scene(n, config, {CREATOR: creator}, typical, 0.0)
    next_leaf = 1
    # A commit may carry MAX_OPERATIONS adds but at most MAX_COMMIT_BODY bytes of them: from
    # n = 4096 on, the build takes several add commits. A refused commit changed nothing (the core
    # says so before building it): halve the batch and try again.
    limit = MAX_OPERATIONS
    while next_leaf < n:
        batch = [scene.pending_join() for _ in range(min(limit, n - next_leaf))]
        try:
            msg = creator.commit(add=[pj.request for pj in batch])
        except UsageError:
            if len(batch) == 1:
                raise
            limit = len(batch) // 2
            continue
        for leaf, group in scene.held.items():
            event = group.receive(msg)
            assert isinstance(event, EpochChanged)
            if leaf == CREATOR:
                got = [m.leaf for m in event.added]
                if got != list(range(next_leaf, next_leaf + len(batch))):
                    raise RuntimeError(
                        f"adds landed on leaves {got}, expected them in order from {next_leaf}"
                    )
        welcome = take_welcome(creator, len(batch))
        for i, pj in enumerate(batch):
            if next_leaf + i in wanted:
                scene.held[next_leaf + i] = Group.join(pj, welcome, config)
        next_leaf += len(batch)
    # The measured committer's leaf was chosen by the creator: its first commit is its own update.
    deliver(scene, scene.committer, scene.committer.commit(update=True))
    scene.check_consistent()
    scene.setup_s = time.perf_counter() - t0
    return scene


def deliver(scene: Scene, author: Group, msg: bytes) -> EpochChanged:
    """Hand an untimed commit to every held member (``author`` applies its echo); return the echo."""
    for group in scene.held.values():
        if group is not author:
            assert isinstance(group.receive(msg), EpochChanged)
    own = author.receive(msg)
    assert isinstance(own, EpochChanged) and own.own
    return own
