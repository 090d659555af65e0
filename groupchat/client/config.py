"""Client configuration: a TOML file, flags for every option, environment overrides for every path.

Precedence, highest first: command-line flag > environment variable > config file > default.

- The config file is ``config.toml`` in platformdirs' ``user_config_path("groupchat")``;
  ``--config`` or ``GROUPCHAT_CONFIG`` names another one.
- The data directory (identity and trust store) is platformdirs' ``user_data_path("groupchat")``;
  ``--data-dir``, ``GROUPCHAT_DATA_DIR`` or the file's ``data_dir`` overrides it.
- The log directory is platformdirs' ``user_log_path("groupchat")``; ``--log-dir``,
  ``GROUPCHAT_LOG_DIR`` or the file's ``log_dir`` overrides it.

An unknown key or a value of the wrong type in the file is an error that names the key, so a typo
never silently falls back to a default. Every key is documented for users in ``docs/config.md``
(kept in step by ``tests/client/test_config_doc.py``). Example file::

    relay = "wss://chat.example.org"
    room = "team"
    name = "alice"
    scheme = "tree"
    eviction_grace = 120.0
    log_level = "debug"
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import platformdirs

from ..core.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from .session import SessionSettings

__all__ = [
    "ENV_CONFIG",
    "ENV_DATA_DIR",
    "ENV_LOG_DIR",
    "ClientConfig",
    "ConfigFileError",
    "add_config_arguments",
    "default_config_path",
    "load_config",
]

APP_NAME: Final = "groupchat"
ENV_CONFIG: Final = "GROUPCHAT_CONFIG"
ENV_DATA_DIR: Final = "GROUPCHAT_DATA_DIR"
ENV_LOG_DIR: Final = "GROUPCHAT_LOG_DIR"
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
SCHEMES: Final = ("tree", "ring")
BELLS: Final = ("mention", "all", "off")  # the chat screen's bell (groupchat.tui.highlight.BELL_MODES)


class ConfigFileError(ConfigError, UsageError):
    """The configuration (file, flags or environment) is invalid; the message names the culprit.

    One tree with the core's errors: a :class:`~groupchat.core.errors.ConfigError` (an invalid
    local setting) that callers catching :class:`~groupchat.core.errors.UsageError` still see."""


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Every client option after merging flags, environment, file and defaults."""

    relay: str | None = None
    room: str | None = None
    name: str | None = None
    scheme: str = "tree"
    identity: Path | None = None  # None: <data_dir>/identity.key
    data_dir: Path | None = None  # None: platformdirs user data dir
    log_dir: Path | None = None  # None: platformdirs user log dir
    log_level: str = "info"
    add_timeout: float = 3.0
    eviction_grace: float = 60.0
    update_interval: float = 600.0
    update_every: int = 200
    reconnect_min: float = 0.2
    reconnect_max: float = 10.0
    bell: str = "mention"  # the chat screen rings the terminal bell: "mention", "all" or "off"
    theme: str | None = None  # a Textual theme for the chat screen (checked by the TUI); None: Textual's
    keys: tuple[tuple[str, str], ...] = ()  # the file's [keys]: (binding id, keys), checked by the TUI
    invite: str | None = None  # an invite code (flag only: a secret does not belong in a file)
    open_room: bool = False  # create an open room (flag only: a choice made on purpose)
    config_file: Path | None = None  # the file that was read, if any (not itself a file key)

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ConfigFileError(f"scheme must be one of {', '.join(SCHEMES)}, not {self.scheme!r}")
        if self.log_level not in LOG_LEVELS:
            raise ConfigFileError(f"log_level must be one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}")
        for key in ("add_timeout", "eviction_grace", "update_interval", "reconnect_min", "reconnect_max"):
            if getattr(self, key) <= 0:
                raise ConfigFileError(f"{key} must be positive, not {getattr(self, key)}")
        if self.bell not in BELLS:
            raise ConfigFileError(f"bell must be one of {', '.join(BELLS)}, not {self.bell!r}")
        if self.update_every < 1:
            raise ConfigFileError(f"update_every must be at least 1, not {self.update_every}")
        if self.reconnect_min > self.reconnect_max:
            raise ConfigFileError("reconnect_min must not be larger than reconnect_max")

    @property
    def data_path(self) -> Path:
        return self.data_dir if self.data_dir is not None else platformdirs.user_data_path(APP_NAME)

    @property
    def log_path(self) -> Path:
        """The log file (not the directory)."""
        base = self.log_dir if self.log_dir is not None else platformdirs.user_log_path(APP_NAME)
        return base / "groupchat.log"

    @property
    def identity_path(self) -> Path:
        return self.identity if self.identity is not None else self.data_path / "identity.key"

    @property
    def trust_path(self) -> Path:
        return self.data_path / "trust.json"

    def require(self, *keys: str) -> None:
        """Raise a ConfigFileError naming the first of ``keys`` (relay, room, name) that is unset."""
        for key in keys:
            if getattr(self, key) is None:
                where = self.config_file or "the config file"
                raise ConfigFileError(f"no {key} given: pass --{key} or set {key} in {where}")

    def session_settings(self) -> SessionSettings:
        """The settings for a :class:`~groupchat.client.session.ChatSession` (needs relay, room, name)."""
        from .session import SessionSettings

        self.require("relay", "room", "name")
        assert self.relay is not None and self.room is not None and self.name is not None
        return SessionSettings(
            relay_url=self.relay,
            room=self.room,
            name=self.name,
            scheme=self.scheme,
            add_timeout=self.add_timeout,
            eviction_grace=self.eviction_grace,
            update_interval=self.update_interval,
            update_every=self.update_every,
            reconnect_min=self.reconnect_min,
            reconnect_max=self.reconnect_max,
            invite=self.invite,
            open_room=self.open_room,
        )


# Keys the TOML file may hold, with the Python types they accept (int is fine where float is wanted).
_FILE_KEYS: Final[Mapping[str, tuple[type, ...]]] = {
    "relay": (str,),
    "room": (str,),
    "name": (str,),
    "scheme": (str,),
    "identity": (str,),
    "data_dir": (str,),
    "log_dir": (str,),
    "log_level": (str,),
    "add_timeout": (float, int),
    "eviction_grace": (float, int),
    "update_interval": (float, int),
    "update_every": (int,),
    "reconnect_min": (float, int),
    "reconnect_max": (float, int),
    "bell": (str,),
    "theme": (str,),
    "keys": (dict,),
}
_FILE_ONLY_KEYS: Final = frozenset({"keys"})
"""Keys with no flag: a table of key bindings belongs in the file."""
_PATH_KEYS: Final = ("identity", "data_dir", "log_dir")
_TYPE_NAMES: Final = {str: "a string", int: "an integer", float: "a number", dict: "a table"}


def default_config_path() -> Path:
    return platformdirs.user_config_path(APP_NAME) / "config.toml"


def add_config_arguments(
    parser: argparse.ArgumentParser, *, session: bool = True, ephemeral_identity: bool = False
) -> None:
    """Add a flag for every option. Defaults are None so that :func:`load_config` sees what was given.

    ``session=False`` leaves out relay/room/name/scheme and the session timings (for commands
    such as ``demo`` that choose those themselves). ``ephemeral_identity`` documents that the
    command makes a fresh identity unless ``--identity`` is given (bots).
    """
    g = parser.add_argument_group("configuration")
    g.add_argument("--config", type=Path, metavar="FILE",
                   help=f"config file (default: ${ENV_CONFIG} or {default_config_path()})")
    g.add_argument("--data-dir", type=Path, metavar="DIR",
                   help=f"identity and trust store directory (default: ${ENV_DATA_DIR} or the platform's)")
    g.add_argument("--log-dir", type=Path, metavar="DIR",
                   help=f"log file directory (default: ${ENV_LOG_DIR} or the platform's)")
    g.add_argument("--log-level", choices=LOG_LEVELS, help="log file detail (default info)")
    default_identity = "a fresh one each run" if ephemeral_identity else "DATA_DIR/identity.key"
    g.add_argument("--identity", type=Path, metavar="FILE",
                   help=f"identity key file (default: {default_identity})")
    if not session:
        return
    s = parser.add_argument_group("session")
    s.add_argument("--relay", metavar="URL", help="relay address, e.g. ws://127.0.0.1:8765")
    s.add_argument("--room", help="room to join")
    s.add_argument("--name", help="your display name in the room")
    s.add_argument("--invite", metavar="CODE",
                   help="the invite code a member gave you (from their /invite): your way in")
    s.add_argument("--open", dest="open_room", action="store_true", default=None,
                   help="if this creates the room's group, admit anyone who knows the room's name "
                        "(default: invite-only)")
    s.add_argument("--scheme", choices=SCHEMES,
                   help="group key scheme when creating the group (default tree)")
    s.add_argument("--add-timeout", type=float, metavar="SEC",
                   help="seconds before the next member commits a pending join (default 3)")
    s.add_argument("--eviction-grace", type=float, metavar="SEC",
                   help="remove members offline longer than this (default 60)")
    s.add_argument("--update-interval", type=float, metavar="SEC",
                   help="refresh your own keys at least this often (default 600)")
    s.add_argument("--update-every", type=int, metavar="N",
                   help="...or after sending this many messages (default 200)")
    s.add_argument("--reconnect-min", type=float, metavar="SEC", help="first reconnect delay (default 0.2)")
    s.add_argument("--reconnect-max", type=float, metavar="SEC", help="longest reconnect delay (default 10)")
    d = parser.add_argument_group("display (groupchat chat)")
    d.add_argument("--bell", choices=BELLS,
                   help="ring the bell for a message naming you, every message, or never (default mention)")
    d.add_argument("--theme", metavar="NAME",
                   help="a Textual theme for the chat screen, e.g. textual-light (default textual-dark)")


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse and type-check one TOML config file; raise ConfigFileError naming any bad key."""
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigFileError(f"config file {path} is not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigFileError(f"cannot read config file {path}: {e.strerror}") from None
    out: dict[str, Any] = {}
    for key, value in doc.items():
        types = _FILE_KEYS.get(key)
        if types is None:
            known = ", ".join(sorted(_FILE_KEYS))
            raise ConfigFileError(f"config file {path}: unknown key {key!r} (known keys: {known})")
        # bool is an int subclass in Python; `update_every = true` is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, types):
            raise ConfigFileError(
                f"config file {path}: {key!r} must be {_TYPE_NAMES[types[0]]}, not {type(value).__name__}"
            )
        if isinstance(value, dict):
            out[key] = _keys_table(path, value)
        elif key in _PATH_KEYS:
            # A relative path in the file is relative to the file, not to the current directory.
            p = Path(str(value)).expanduser()
            out[key] = p if p.is_absolute() else path.parent / p
        else:
            out[key] = float(value) if isinstance(value, int | float) and float in types else value
    return out


def _keys_table(path: Path, table: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The ``[keys]`` table: binding id -> keys, every value a string (the TUI checks the names)."""
    for action, keys in table.items():
        if not isinstance(keys, str):
            raise ConfigFileError(
                f"config file {path}: [keys] {action} must be a string of keys such as \"ctrl+q\", "
                f"not {type(keys).__name__}"
            )
    return tuple(sorted(table.items()))


def load_config(
    args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None
) -> ClientConfig:
    """Merge flags (``args`` from :func:`add_config_arguments`), environment, file and defaults."""
    env = os.environ if environ is None else environ
    flags = {k: v for k, v in vars(args or argparse.Namespace()).items() if v is not None}

    explicit = flags.get("config") or (Path(env[ENV_CONFIG]) if env.get(ENV_CONFIG) else None)
    path = explicit or default_config_path()
    values: dict[str, Any] = {}
    file_used: Path | None = None
    if explicit is not None or path.exists():
        if not path.exists():
            raise ConfigFileError(f"config file {path} does not exist")
        values = read_config_file(path)
        file_used = path

    # Environment variables override the file's paths (tests and wrappers point them at tmp dirs).
    for key, var in (("data_dir", ENV_DATA_DIR), ("log_dir", ENV_LOG_DIR)):
        if env.get(var):
            values[key] = Path(env[var])
    if env.get(ENV_DATA_DIR) and "identity" in values and "identity" not in flags:
        del values["identity"]  # the identity lives in the overriding data dir, not the file's
    names = {f.name for f in fields(ClientConfig)} - {"config_file"}
    values.update({k: v for k, v in flags.items() if k in names})
    return ClientConfig(**values, config_file=file_used)
