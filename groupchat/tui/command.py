"""``groupchat chat``: load the configuration, identity and trust store, then run the chat TUI.

    groupchat chat --relay ws://127.0.0.1:8765 --room lobby --name alice

Every option can also come from the config file (see :mod:`groupchat.client.config`). Errors found
before the TUI starts (bad config, an identity file others can read) are printed on stderr with
exit status 2; from then on the terminal belongs to the app and logs go to the log file only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ..client.config import add_config_arguments

__all__ = ["add_arguments", "main", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``groupchat chat`` flags: every client option plus display switches."""
    parser.add_argument("--no-color", action="store_true", help="no colours (also: NO_COLOR=1)")
    parser.add_argument("--ephemeral", "--no-history", dest="ephemeral", action="store_true",
                        help="keep nothing on disk: no group state, no history (a restart is a rejoin)")
    add_config_arguments(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="groupchat chat", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Build the session from ``args`` and run the TUI until the user quits."""
    from ..client.config import load_config
    from ..client.identity_store import load_or_create_identity
    from ..client.logging_setup import configure_logging
    from ..client.notices import Notice
    from ..client.session import ChatSession
    from ..client.trust import TrustStore
    from ..core.errors import GroupChatError
    from .app import ChatApp, check_theme, run_chat
    from .session_api import SessionAPI

    try:
        config = load_config(args)
        settings = config.session_settings()
        check_theme(config.theme)
        keymap = ChatApp.checked_keymap(dict(config.keys))
        configure_logging(config.log_path, config.log_level)
        identity = load_or_create_identity(config.identity_path)
        trust = TrustStore(config.trust_path)
        kept = None
        if not getattr(args, "ephemeral", False):
            from ..client.session_store import SessionStore
            from ..client.store import KEY_FILE, Store
            from ..client.store_key import ask_passphrase

            key_path = config.identity_path.with_name(KEY_FILE)
            store = Store.open(config.data_path, key_path, passphrase=ask_passphrase())
            kept = SessionStore(store, settings.relay_url, settings.room, identity)
    except GroupChatError as e:
        print(f"groupchat chat: error: {e}", file=sys.stderr)
        return 2

    def make_session(notify: Callable[[Notice], None]) -> SessionAPI:
        return ChatSession(settings, identity, trust, notify, store=kept)

    return run_chat(
        make_session, no_color=args.no_color, bell=config.bell, theme=config.theme, keymap=keymap
    )
