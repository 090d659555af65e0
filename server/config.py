"""Relay configuration: where to listen and every limit, with defaults that suit a small team."""

from __future__ import annotations

from dataclasses import dataclass, field

from groupchat.core.errors import ConfigError
from groupchat.relay_protocol import DEFAULT_MAX_FRAME, ServerLimits, max_payload_for

__all__ = ["Limits", "RelayConfig"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Every bound the relay enforces; each one has a stable error code (docs/relay-protocol.md)."""

    max_frame: int = DEFAULT_MAX_FRAME  # websocket message size; bigger closes with 1009
    max_rooms_per_connection: int = 64
    max_members_per_room: int = 1024
    max_connections: int = 10_000
    max_rooms: int = 100_000  # rooms held by one in-memory relay (each keeps a log)
    rate_per_second: float = 200.0  # token bucket refill, frames per second per connection
    burst: int = 400  # token bucket size
    flood_frames: int = 1_000  # rate-limited frames in a row before the relay disconnects
    send_queue_bytes: int = 2 * DEFAULT_MAX_FRAME  # per-connection send queue bound
    log_max_count: int = 10_000  # per room
    log_max_bytes: int = 32 << 20  # per room
    log_max_age: float = 24 * 3600.0  # seconds, per room
    idle_timeout: float = 600.0  # no frame received for this long: disconnect
    handshake_timeout: float = 10.0  # websocket opening handshake, then again for the Hello
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.max_frame < 256:
            raise ConfigError("max_frame must be at least 256 bytes")
        if self.send_queue_bytes < self.max_frame:
            raise ConfigError("send_queue_bytes must hold at least one maximal frame")
        if min(self.max_rooms_per_connection, self.max_members_per_room, self.max_connections,
               self.max_rooms, self.burst, self.flood_frames, self.log_max_count) < 1:
            raise ConfigError("every count limit must be at least 1")
        if self.rate_per_second <= 0 or self.log_max_age <= 0 or self.idle_timeout <= 0:
            raise ConfigError("rates and durations must be positive")

    @property
    def max_payload(self) -> int:
        """The largest payload a Publish or SendTo may carry (its Deliver fits max_frame)."""
        return max_payload_for(self.max_frame)

    def announce(self) -> ServerLimits:
        """The limits as sent to clients in the welcome."""
        return ServerLimits(
            max_frame=self.max_frame,
            max_payload=self.max_payload,
            max_rooms_per_connection=min(self.max_rooms_per_connection, 0xFFFF),
            max_members_per_room=self.max_members_per_room,
            rate_per_second=max(1, int(self.rate_per_second)),
            burst=self.burst,
            log_max_count=self.log_max_count,
            log_max_bytes=self.log_max_bytes,
            log_max_age_seconds=int(self.log_max_age),
            idle_timeout_seconds=int(self.idle_timeout),
        )


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """Where the relay listens and what backs it."""

    host: str = "127.0.0.1"
    port: int = 8765
    certfile: str | None = None
    keyfile: str | None = None
    redis_url: str | None = None  # None: the embedded in-process relay
    limits: Limits = field(default_factory=Limits)
