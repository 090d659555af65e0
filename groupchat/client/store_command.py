"""``groupchat store passphrase``: set, change or remove the passphrase that seals the store's key.

The store itself is not rewritten: only the key file beside the identity (``store_key.py``), in one
atomic replace. The current passphrase is asked first if there is one; the new one twice on a
terminal (or from ``$GROUPCHAT_STORE_NEW_PASSPHRASE`` in a script). Errors are one line
(``groupchat.cli``).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Mapping
from typing import Final

from . import wording_store as words
from .config import add_config_arguments
from .store import KEY_FILE, STORE_FILE
from .store_key import StoreError, ask_passphrase, load_or_create_store_key, write_key_file

__all__ = ["NEW_PASSPHRASE_ENV", "add_arguments", "new_passphrase", "run"]

NEW_PASSPHRASE_ENV: Final = "GROUPCHAT_STORE_NEW_PASSPHRASE"
"""Where a script gives the new passphrase (a terminal is asked twice instead)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--remove``, and the configuration flags that locate the key file."""
    parser.add_argument("--remove", action="store_true",
                        help="remove the passphrase: the key file alone then opens the store")
    add_config_arguments(parser, session=False)


def new_passphrase(env: Mapping[str, str] = os.environ) -> str:
    """The new passphrase: from the environment, or typed twice on the terminal (they must match)."""
    if NEW_PASSPHRASE_ENV in env:
        chosen = env[NEW_PASSPHRASE_ENV]
    elif not sys.stdin.isatty():
        raise StoreError(f"there is no terminal to ask for the new passphrase on: set {NEW_PASSPHRASE_ENV}")
    else:
        try:
            chosen = getpass.getpass("new store passphrase: ")
            again = getpass.getpass("the same again: ")
        except (EOFError, KeyboardInterrupt):
            raise StoreError("no passphrase given: the key file is unchanged") from None
        if chosen != again:
            raise StoreError("the two passphrases differ: the key file is unchanged")
    if not chosen:
        raise StoreError("the passphrase is empty: the key file is unchanged (use --remove to drop one)")
    return chosen


def run(args: argparse.Namespace) -> int:
    """Reseal the key file; exit status 0 with one line saying what was done."""
    from .config import load_config

    config = load_config(args)
    path = config.identity_path.with_name(KEY_FILE)
    # As Store.open: a store whose key is missing gets no new key (it would not open it).
    create = not (config.data_path / STORE_FILE).is_file()
    key = load_or_create_store_key(
        path, create=create, passphrase=ask_passphrase(prompt="current store passphrase: ")
    )
    chosen = None if args.remove else new_passphrase()
    write_key_file(path, key, chosen)
    print(words.passphrase_set(path) if chosen is not None else words.passphrase_removed(path))
    return 0
