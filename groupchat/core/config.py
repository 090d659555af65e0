"""Validation of a group's local configuration, run when a ``GroupConfig`` is built.

Every check raises :class:`~groupchat.core.errors.ConfigError`: a bad setting is the local
caller's mistake, never a peer's, so it must not look like rejected remote input.
``GroupConfig.__post_init__`` calls :func:`check_group_config`, so an invalid config cannot exist
(the one-line hook lives in ``core/epoch/state.py``, where ``GroupConfig`` is defined).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .errors import ConfigError
from .suite import CipherSuite

__all__ = ["DEFAULT_ROUND_TIMEOUT", "MAX_ROUND_TIMEOUT", "GroupConfigFields", "check_group_config"]

#: Larger jumps would let one message make a receiver derive this many ratchet steps.
MAX_FORWARD_LIMIT = 1 << 20
MAX_SKIPPED_LIMIT = 1 << 16
MAX_PADDING_BLOCK = 1 << 16
MAX_LABEL_PREFIX = 255
#: How long a ring round waits for a member by default, and at most, before the attempt is retried.
DEFAULT_ROUND_TIMEOUT = 30.0
MAX_ROUND_TIMEOUT = 3600.0


class GroupConfigFields(Protocol):
    """The fields of ``groupchat.core.group.GroupConfig`` that are checked here."""

    @property
    def suite_id(self) -> int: ...
    @property
    def label_prefix(self) -> bytes: ...
    @property
    def max_forward(self) -> int: ...
    @property
    def max_skipped(self) -> int: ...
    @property
    def padding_block(self) -> int: ...
    @property
    def previous_epoch_ttl(self) -> float: ...
    @property
    def clock(self) -> Callable[[], float]: ...
    @property
    def rand(self) -> Callable[[int], bytes]: ...
    @property
    def wall_clock(self) -> Callable[[], float]: ...
    @property
    def clock_skew(self) -> float: ...
    @property
    def ring_round_timeout(self) -> float: ...


def _int_in(value: object, name: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer in {low}..{high}, got {value!r}")


def check_group_config(config: GroupConfigFields) -> None:
    """Raise :class:`ConfigError` naming the first invalid field of ``config``."""
    CipherSuite(config.suite_id)  # raises ConfigError for a suite we do not support
    if not isinstance(config.label_prefix, bytes) or not 0 < len(config.label_prefix) <= MAX_LABEL_PREFIX:
        raise ConfigError(f"label_prefix must be 1..{MAX_LABEL_PREFIX} bytes")
    _int_in(config.max_forward, "max_forward", 0, MAX_FORWARD_LIMIT)
    _int_in(config.max_skipped, "max_skipped", 0, MAX_SKIPPED_LIMIT)
    _int_in(config.padding_block, "padding_block", 0, MAX_PADDING_BLOCK)
    ttl = config.previous_epoch_ttl
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 <= ttl < float("inf"):
        raise ConfigError(f"previous_epoch_ttl must be a finite number of seconds ≥ 0, got {ttl!r}")
    if not callable(config.clock) or not callable(config.rand) or not callable(config.wall_clock):
        raise ConfigError("clock, wall_clock and rand must be callables")
    skew = config.clock_skew
    if isinstance(skew, bool) or not isinstance(skew, int | float) or not 0 <= skew < float("inf"):
        raise ConfigError(f"clock_skew must be a finite number of seconds ≥ 0, got {skew!r}")
    rt = config.ring_round_timeout
    if isinstance(rt, bool) or not isinstance(rt, int | float) or not 0 < rt <= MAX_ROUND_TIMEOUT:
        raise ConfigError(
            f"ring_round_timeout must be a number of seconds in (0, {MAX_ROUND_TIMEOUT:g}], got {rt!r}"
        )
