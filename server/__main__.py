"""``groupchat-relay`` / ``groupchat relay``: run the relay until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from .config import Limits, RelayConfig
from .logs import configure

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The relay's command line; every limit has a flag."""
    d = Limits()
    p = argparse.ArgumentParser(
        prog="groupchat-relay",
        description="The groupchat relay: orders, logs and forwards opaque room messages.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="TCP port, 0 for any (default 8765)")
    p.add_argument("--certfile", help="PEM certificate chain: serve wss:// instead of ws://")
    p.add_argument("--keyfile", help="PEM private key for --certfile (if not inside it)")
    p.add_argument("--redis", metavar="URL", help="share rooms with other relays via Redis")
    p.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"],
        help="structured logs on stderr (default info)",
    )
    g = p.add_argument_group("limits")
    g.add_argument("--max-frame", type=int, default=d.max_frame, help="bytes per envelope")
    g.add_argument("--max-rooms-per-connection", type=int, default=d.max_rooms_per_connection)
    g.add_argument("--max-members-per-room", type=int, default=d.max_members_per_room)
    g.add_argument("--max-connections", type=int, default=d.max_connections)
    g.add_argument("--max-rooms", type=int, default=d.max_rooms, help="rooms held in memory")
    g.add_argument("--rate", type=float, default=d.rate_per_second, help="frames/s per conn")
    g.add_argument("--burst", type=int, default=d.burst, help="token bucket size")
    g.add_argument("--flood-frames", type=int, default=d.flood_frames)
    g.add_argument("--send-queue-bytes", type=int, default=d.send_queue_bytes)
    g.add_argument("--log-max-count", type=int, default=d.log_max_count)
    g.add_argument("--log-max-bytes", type=int, default=d.log_max_bytes)
    g.add_argument("--log-max-age", type=float, default=d.log_max_age, help="seconds")
    g.add_argument("--idle-timeout", type=float, default=d.idle_timeout, help="seconds")
    g.add_argument("--handshake-timeout", type=float, default=d.handshake_timeout)
    g.add_argument("--ping-interval", type=float, default=d.ping_interval)
    g.add_argument("--ping-timeout", type=float, default=d.ping_timeout)
    return p


def config_from_args(args: argparse.Namespace) -> RelayConfig:
    """Turn parsed flags into a RelayConfig (ValueError on an impossible limit)."""
    limits = Limits(
        max_frame=args.max_frame,
        max_rooms_per_connection=args.max_rooms_per_connection,
        max_members_per_room=args.max_members_per_room,
        max_connections=args.max_connections,
        max_rooms=args.max_rooms,
        rate_per_second=args.rate,
        burst=args.burst,
        flood_frames=args.flood_frames,
        send_queue_bytes=max(args.send_queue_bytes, args.max_frame),
        log_max_count=args.log_max_count,
        log_max_bytes=args.log_max_bytes,
        log_max_age=args.log_max_age,
        idle_timeout=args.idle_timeout,
        handshake_timeout=args.handshake_timeout,
        ping_interval=args.ping_interval or None,
        ping_timeout=args.ping_timeout or None,
    )
    return RelayConfig(
        host=args.host, port=args.port, certfile=args.certfile, keyfile=args.keyfile,
        redis_url=args.redis, limits=limits,
    )


async def run(config: RelayConfig) -> None:
    """Serve until SIGTERM/SIGINT, then shut down cleanly (clients get close 1001)."""
    from .relay import Relay

    factory = None
    if config.redis_url:
        from .redis_backend import redis_backend_factory

        factory = redis_backend_factory(config.redis_url)
    relay = Relay(config, factory)
    await relay.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await relay.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``groupchat-relay`` and ``groupchat relay``; returns the exit status."""
    args = build_parser().parse_args(argv)
    configure(args.log_level)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"groupchat-relay: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(run(config))
    except OSError as exc:
        print(f"groupchat-relay: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
