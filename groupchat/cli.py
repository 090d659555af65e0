"""Command-line entry point: ``groupchat demo | relay | bench …``.

Subcommands import their implementation lazily so that, for example, ``groupchat relay`` never
loads key-material code and ``groupchat --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _cmd_relay(argv: Sequence[str]) -> int:
    from server.__main__ import main as relay_main

    return relay_main(list(argv))


def _cmd_demo(argv: Sequence[str]) -> int:
    from .lab.demo import main as demo_main

    return demo_main(list(argv))


def _cmd_chat(argv: Sequence[str]) -> int:
    from .tui.command import main as chat_main

    return chat_main(list(argv))


def _cmd_bot(argv: Sequence[str]) -> int:
    from .client.bot import main as bot_main

    return bot_main(list(argv))


def _cmd_bench(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="groupchat bench")
    parser.add_argument("what", choices=["rekey", "relay", "session"], help="which benchmark to run")
    args, rest = parser.parse_known_args(argv)
    if args.what == "rekey":
        from .lab.bench.rekey import main as rekey_main

        return rekey_main(rest)
    if args.what == "session":
        from .lab.bench.session import main as session_bench_main

        return session_bench_main(rest)
    from .lab.bench.relay import main as relay_bench_main

    return relay_bench_main(rest)


_COMMANDS = {
    "chat": (_cmd_chat, "chat in a room (terminal UI)"),
    "bot": (_cmd_bot, "a headless scripted chat client printing a transcript"),
    "demo": (_cmd_demo, "a relay, chatting bots and your own chat window, in one command"),
    "relay": (_cmd_relay, "run the relay server"),
    "bench": (_cmd_bench, "run a benchmark (rekey, relay, session)"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in _COMMANDS:
        lines = ["usage: groupchat COMMAND [ARGS]", "", "commands:"]
        lines += [f"  {name:<8} {help_}" for name, (_, help_) in _COMMANDS.items()]
        asked = bool(argv) and argv[0] in ("-h", "--help")
        print("\n".join(lines), file=sys.stdout if asked else sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    func, _ = _COMMANDS[argv[0]]
    return func(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
