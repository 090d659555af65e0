"""``groupchat-relay`` / ``groupchat relay``: run the relay until SIGTERM or SIGINT.

The command-module interface of :mod:`groupchat.cli`: :func:`add_arguments` and :func:`run`;
asyncio and the server itself are imported only inside :func:`run`.
"""

from __future__ import annotations

import argparse
import math
import sys

from .config import Limits, RelayConfig

__all__ = ["add_arguments", "build_parser", "config_from_args", "main", "run", "serve"]


def _port(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free one) to 65535, so a bad one is refused in one line."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a port is a number from 0 to 65535, not {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 0 to 65535, not {value}")
    return value


def _number(text: str) -> float:
    """An argparse type: a finite number (``nan`` or ``inf`` would slip past every limit check)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"wants a finite number, not {text!r}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The relay's flags: where to listen, TLS, Redis, logs, and one flag per limit."""
    d = Limits()
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=_port, default=8765, help="TCP port, 0 for any")
    p.add_argument("--certfile", help="PEM certificate chain: serve wss:// instead of ws://")
    p.add_argument("--keyfile", help="PEM private key for --certfile (if not inside it)")
    p.add_argument("--redis", metavar="URL", help="share rooms with other relays via Redis")
    p.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"],
        help="structured logs on stderr",
    )
    g = p.add_argument_group("limits")
    g.add_argument("--max-frame", type=int, default=d.max_frame, help="bytes per envelope")
    g.add_argument("--max-rooms-per-connection", type=int, default=d.max_rooms_per_connection,
                   help="rooms one connection may join")
    g.add_argument("--max-members-per-room", type=int, default=d.max_members_per_room,
                   help="members present in one room")
    g.add_argument("--max-connections", type=int, default=d.max_connections, help="open connections")
    g.add_argument("--max-rooms", type=int, default=d.max_rooms, help="rooms held in memory")
    g.add_argument("--rate", type=_number, default=d.rate_per_second, help="frames/s per connection")
    g.add_argument("--burst", type=int, default=d.burst, help="token bucket size")
    g.add_argument("--flood-frames", type=int, default=d.flood_frames,
                   help="rate-limited frames in a row before a disconnect")
    g.add_argument("--send-queue-bytes", type=int, default=d.send_queue_bytes,
                   help="per-connection send queue bound")
    g.add_argument("--log-max-count", type=int, default=d.log_max_count, help="messages logged per room")
    g.add_argument("--log-max-bytes", type=int, default=d.log_max_bytes, help="bytes logged per room")
    g.add_argument("--log-max-age", type=_number, default=d.log_max_age,
                   help="seconds a message stays logged")
    g.add_argument("--idle-timeout", type=_number, default=d.idle_timeout,
                   help="seconds without a frame before a disconnect")
    g.add_argument("--handshake-timeout", type=_number, default=d.handshake_timeout,
                   help="seconds for the websocket handshake, then for the Hello")
    g.add_argument("--ping-interval", type=_number, default=d.ping_interval,
                   help="seconds between pings, 0: none")
    g.add_argument("--ping-timeout", type=_number, default=d.ping_timeout,
                   help="seconds to answer a ping, 0: none")


def build_parser() -> argparse.ArgumentParser:
    """The stand-alone ``groupchat-relay`` command line."""
    p = argparse.ArgumentParser(
        prog="groupchat-relay",
        description="The groupchat relay: orders, logs and forwards opaque room messages.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_arguments(p)
    return p


def config_from_args(args: argparse.Namespace) -> RelayConfig:
    """Turn parsed flags into a RelayConfig (ConfigError, a ValueError, on an impossible limit)."""
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


async def serve(config: RelayConfig) -> None:
    """Serve until SIGTERM/SIGINT, then shut down cleanly (clients get close 1001)."""
    import asyncio
    import signal

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


def run(args: argparse.Namespace) -> int:
    """Run the relay from parsed flags; 2 for an impossible limit or setting, 1 if it cannot listen.

    Each failure is one line on stderr, never a traceback (issue 15)."""
    import asyncio
    import os
    import ssl

    from .logs import configure

    prog = getattr(args, "_prog", "groupchat-relay")
    configure(args.log_level)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    for path in (config.certfile, config.keyfile):
        if path is not None and not os.access(path, os.R_OK):
            print(f"{prog}: error: cannot read TLS file {path}", file=sys.stderr)
            return 2
    try:
        asyncio.run(serve(config))
    except KeyboardInterrupt:
        return 130
    except ssl.SSLError as exc:
        print(f"{prog}: error: cannot load the TLS certificate {config.certfile}: {exc.reason or exc}",
              file=sys.stderr)
        return 2
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.filename is not None:  # a certificate or key file
            print(f"{prog}: error: {reason}: {exc.filename}", file=sys.stderr)
        else:
            print(f"{prog}: error: cannot listen on {config.host}:{config.port}: {reason}", file=sys.stderr)
        return 1
    except ValueError as exc:  # a setting only checked when used (a Redis URL, a TLS file's content)
        print(f"{prog}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``groupchat-relay``; returns the exit status."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
