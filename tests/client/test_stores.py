"""The client's files: identity store (0600, atomic), trust-on-first-use store, safety numbers,
configuration precedence and errors, and file-only logging."""

from __future__ import annotations

import argparse
import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from groupchat.client.config import (
    ENV_CONFIG,
    ENV_DATA_DIR,
    ENV_LOG_DIR,
    ConfigFileError,
    add_config_arguments,
    default_config_path,
    load_config,
)
from groupchat.client.identity_store import IdentityFileError, load_or_create_identity
from groupchat.client.logging_setup import configure_logging
from groupchat.client.notices import TrustState
from groupchat.client.trust import Sighting, TrustStore, TrustStoreError, safety_number
from groupchat.core.errors import GroupChatError, UsageError
from groupchat.core.identity import Identity

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")

KEY_A = Identity.generate().public_key
KEY_B = Identity.generate().public_key
KEY_C = Identity.generate().public_key


# --- identity store ------------------------------------------------------------------------------


@posix_only
def test_identity_is_created_0600_in_a_0700_dir_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "data" / "identity.key"
    first = load_or_create_identity(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = load_or_create_identity(path)
    assert again.public_key == first.public_key
    assert [p.name for p in path.parent.iterdir()] == ["identity.key"]  # no temp file left behind


@posix_only
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_identity_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "identity.key"
    load_or_create_identity(path)
    before = path.read_bytes()
    path.chmod(mode)
    with pytest.raises(IdentityFileError, match=rf"mode 0{mode:o}.*chmod 600"):
        load_or_create_identity(path)
    assert path.read_bytes() == before  # refused, not rewritten
    assert stat.S_IMODE(path.stat().st_mode) == mode  # and not silently "fixed"


def test_identity_file_malformed_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "identity.key"
    path.write_bytes(b"not a key\n")
    path.chmod(0o600)
    with pytest.raises(IdentityFileError, match="not a groupchat identity"):
        load_or_create_identity(path)
    path.write_bytes(b"groupchat-identity-v1\n" + b"ab" * 31 + b"\n")
    with pytest.raises(IdentityFileError, match="not 32 bytes"):
        load_or_create_identity(path)
    assert issubclass(IdentityFileError, GroupChatError)


def test_identity_file_never_holds_the_public_key_only(tmp_path: Path) -> None:
    """The stored seed is the identity: loading it gives back the same signing key."""
    path = tmp_path / "identity.key"
    ident = load_or_create_identity(path)
    seed = bytes.fromhex(path.read_text().split()[1])
    assert Identity.from_private_bytes(seed).public_key == ident.public_key


# --- trust store -------------------------------------------------------------------------------------


def test_trust_is_keyed_by_identity_key_and_a_new_key_is_another_member() -> None:
    store = TrustStore(None)
    assert store.state(KEY_B) is TrustState.UNVERIFIED
    assert store.observe("bob", KEY_B) == Sighting(new_key=True)
    assert store.observe("bob", KEY_B) == Sighting(new_key=False)
    # Another key calling itself bob is another member: a new key, never a "changed" one.
    assert store.observe("bob", KEY_C) == Sighting(new_key=True)
    assert set(store.keys_like("b\u043eb")) == {KEY_B, KEY_C}  # Cyrillic o: same skeleton
    assert store.names(KEY_B) == ("bob",) and store.names(KEY_A) == ()


def test_verified_belongs_to_the_key_never_to_the_name() -> None:
    store = TrustStore(None)
    store.observe("bob", KEY_B)
    store.trust(KEY_B, "bob")
    store.observe("bob", KEY_C)  # an impostor (or a new device) under the same name
    assert store.state(KEY_B) is TrustState.VERIFIED
    assert store.state(KEY_C) is TrustState.UNVERIFIED
    # A known key under a new name is noted (the names it used before) and stays verified.
    assert store.observe("robert", KEY_B) == Sighting(new_key=False, earlier_names=("bob",))
    assert store.state(KEY_B) is TrustState.VERIFIED and store.names(KEY_B) == ("bob", "robert")


def test_names_per_key_are_bounded_and_version_counts_changes() -> None:
    store = TrustStore(None)
    v0 = store.version
    for i in range(20):
        store.observe(f"bob{i}", KEY_B)
    assert store.names(KEY_B) == tuple(f"bob{i}" for i in range(12, 20))
    assert not store.keys_like("bob0")  # dropped names no longer count as look-alikes
    assert store.version == v0 + 20
    store.observe("bob19", KEY_B)
    assert store.version == v0 + 20  # nothing new: labels need not be recomputed


def test_trust_store_persists_0600_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "d" / "trust.json"
    store = TrustStore(path)
    store.observe("bob", KEY_B)
    store.trust(KEY_C, "carol")
    store.observe("carol", KEY_A)  # another carol: carol's key stays verified
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = TrustStore(path)
    assert again.state(KEY_B) is TrustState.UNVERIFIED
    assert again.state(KEY_C) is TrustState.VERIFIED
    assert again.state(KEY_A) is TrustState.UNVERIFIED
    assert set(again.keys_like("carol")) == {KEY_A, KEY_C}
    assert json.loads(path.read_text())["format"] == "groupchat-trust-v2"


def test_a_mark_on_a_key_already_met_is_written_and_untrust_withdraws_it(tmp_path: Path) -> None:
    path = tmp_path / "trust.json"
    store = TrustStore(path)
    store.observe("bob", KEY_B)  # met first (as every member is), verified later: the usual order
    store.trust(KEY_B, "bob")
    assert TrustStore(path).state(KEY_B) is TrustState.VERIFIED
    assert store.untrust(KEY_B) is True
    assert store.untrust(KEY_B) is False  # not verified: nothing to withdraw
    assert store.untrust(KEY_C) is False  # never met
    again = TrustStore(path)
    assert again.state(KEY_B) is TrustState.UNVERIFIED and again.names(KEY_B) == ("bob",)


def test_a_v1_trust_store_is_read_and_rewritten_as_v2(tmp_path: Path) -> None:
    path = tmp_path / "trust.json"
    v1 = {
        "format": "groupchat-trust-v1",
        "peers": {
            "bob": {"key": KEY_B.hex(), "verified": True},
            "carol": {"key": KEY_C.hex(), "verified": False},
            "caroline": {"key": KEY_C.hex(), "verified": False},  # one key, two names
        },
    }
    path.write_text(json.dumps(v1))
    path.chmod(0o600)
    store = TrustStore(path)
    assert store.state(KEY_B) is TrustState.VERIFIED and store.state(KEY_C) is TrustState.UNVERIFIED
    assert store.names(KEY_C) == ("carol", "caroline")
    doc = json.loads(path.read_text())
    assert doc == {
        "format": "groupchat-trust-v2",
        "keys": {
            KEY_B.hex(): {"names": ["bob"], "verified": True},
            KEY_C.hex(): {"names": ["carol", "caroline"], "verified": False},
        },
    }
    assert TrustStore(path).state(KEY_B) is TrustState.VERIFIED


@posix_only
def test_trust_store_writable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "trust.json"
    TrustStore(path).observe("bob", KEY_B)
    path.chmod(0o666)
    with pytest.raises(TrustStoreError, match="other users could change"):
        TrustStore(path)


@pytest.mark.parametrize(
    "content",
    [b"{", b"[]", b'{"format": "other", "peers": {}}',
     b'{"format": "groupchat-trust-v1", "peers": {"b": {}}}',
     b'{"format": "groupchat-trust-v1", "peers": {"b": {"key": "00", "verified": true}}}',
     b'{"format": "groupchat-trust-v2", "keys": {"00": {"names": ["b"], "verified": true}}}',
     b'{"format": "groupchat-trust-v2", "keys": {"' + b"ab" * 32 + b'": {"names": [], "verified": true}}}',
     b'{"format": "groupchat-trust-v2", "keys": {"' + b"ab" * 32 + b'": {"names": ["b"]}}}'],
)
def test_trust_store_malformed_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "trust.json"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(TrustStoreError, match=str(path.name)):
        TrustStore(path)


# --- safety numbers ------------------------------------------------------------------------------------


def test_safety_number_shape_symmetry_and_distinctness() -> None:
    ab = safety_number(KEY_A, KEY_B)
    groups = ab.split(" ")
    assert len(groups) == 12 and all(len(g) == 5 and g.isdigit() for g in groups)
    assert safety_number(KEY_B, KEY_A) == ab
    assert safety_number(KEY_A, KEY_C) != ab
    assert safety_number(KEY_C, KEY_B) != ab
    with pytest.raises(UsageError, match="32 bytes"):
        safety_number(KEY_A, KEY_B[:31])


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32),
       st.binary(min_size=32, max_size=32))
def test_safety_number_symmetric_and_key_bound(a: bytes, b: bytes, c: bytes) -> None:
    assert safety_number(a, b) == safety_number(b, a)
    if c not in (a, b):
        assert safety_number(a, c) != safety_number(a, b)


# --- configuration ----------------------------------------------------------------------------------


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return parser.parse_args(list(argv))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.skipif(sys.platform != "linux", reason="XDG directories")
def test_defaults_and_the_platform_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    cfg = load_config(_parse(), {})
    assert cfg.config_file is None and cfg.relay is None
    assert (cfg.scheme, cfg.eviction_grace, cfg.update_every, cfg.log_level) == ("tree", 60.0, 200, "info")
    assert cfg.identity_path == tmp_path / "xdg-data" / "groupchat" / "identity.key"
    assert cfg.log_path.is_relative_to(tmp_path / "xdg-state")
    default = default_config_path()
    assert default == tmp_path / "xdg-config" / "groupchat" / "config.toml"
    default.parent.mkdir(parents=True)
    _write(default, 'relay = "ws://127.0.0.1:9"\n')
    cfg = load_config(_parse(), {})
    assert cfg.config_file == default and cfg.relay == "ws://127.0.0.1:9"


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    conf = _write(tmp_path / "c.toml", 'room = "file-room"\nname = "file-name"\ndata_dir = "fdata"\n'
                  'log_dir = "/file/logs"\neviction_grace = 30\n')
    env = {ENV_CONFIG: str(conf)}
    cfg = load_config(_parse(), env)
    assert cfg.config_file == conf
    assert (cfg.room, cfg.name, cfg.eviction_grace) == ("file-room", "file-name", 30.0)
    assert cfg.data_path == tmp_path / "fdata"  # relative to the file
    assert cfg.log_path == Path("/file/logs/groupchat.log")
    assert cfg.add_timeout == 3.0  # default

    env |= {ENV_DATA_DIR: str(tmp_path / "env-data"), ENV_LOG_DIR: str(tmp_path / "env-logs")}
    cfg = load_config(_parse(), env)
    assert cfg.data_path == tmp_path / "env-data"
    assert cfg.identity_path == tmp_path / "env-data" / "identity.key"
    assert cfg.trust_path == tmp_path / "env-data" / "trust.json"
    assert cfg.log_path == tmp_path / "env-logs" / "groupchat.log"

    cfg = load_config(_parse("--room", "flag-room", "--data-dir", str(tmp_path / "flag-data"),
                             "--log-dir", str(tmp_path / "flag-logs"), "--eviction-grace", "5"), env)
    assert cfg.room == "flag-room" and cfg.name == "file-name" and cfg.eviction_grace == 5.0
    assert cfg.data_path == tmp_path / "flag-data"
    assert cfg.log_path == tmp_path / "flag-logs" / "groupchat.log"


def test_config_flag_beats_env_config(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.toml", 'room = "a"\n')
    b = _write(tmp_path / "b.toml", 'room = "b"\n')
    assert load_config(_parse("--config", str(b)), {ENV_CONFIG: str(a)}).room == "b"
    assert load_config(_parse(), {ENV_CONFIG: str(a)}).room == "a"


def test_env_data_dir_overrides_identity_from_file(tmp_path: Path) -> None:
    conf = _write(tmp_path / "c.toml", 'identity = "/somewhere/id.key"\n')
    assert load_config(_parse(), {ENV_CONFIG: str(conf)}).identity_path == Path("/somewhere/id.key")
    env = {ENV_CONFIG: str(conf), ENV_DATA_DIR: str(tmp_path / "d")}
    assert load_config(_parse(), env).identity_path == tmp_path / "d" / "identity.key"
    flagged = load_config(_parse("--identity", str(tmp_path / "x.key")), env)
    assert flagged.identity_path == tmp_path / "x.key"


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ('rom = "x"\n', r"unknown key 'rom'"),
        ("eviction_grace = \"soon\"\n", r"'eviction_grace' must be a number, not str"),
        ("update_every = 2.5\n", r"'update_every' must be an integer, not float"),
        ("update_every = true\n", r"'update_every' must be an integer, not bool"),
        ("room = 3\n", r"'room' must be a string, not int"),
        ("[session]\nroom = \"x\"\n", r"unknown key 'session'"),
        ("room = \n", r"not valid TOML"),
        ('scheme = "star"\n', r"scheme must be one of tree, ring"),
        ("eviction_grace = -1\n", r"eviction_grace must be positive"),
        ('log_level = "loud"\n', r"log_level must be one of"),
    ],
)
def test_bad_config_file_names_the_key(tmp_path: Path, text: str, pattern: str) -> None:
    conf = _write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigFileError, match=pattern):
        load_config(_parse(), {ENV_CONFIG: str(conf)})


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="does not exist"):
        load_config(_parse(), {ENV_CONFIG: str(tmp_path / "nope.toml")})


def test_require_names_the_missing_option(tmp_path: Path) -> None:
    cfg = load_config(_parse("--relay", "ws://127.0.0.1:1", "--room", "r"), {ENV_CONFIG: str(_write(
        tmp_path / "c.toml", ""))})
    with pytest.raises(ConfigFileError, match="no name given: pass --name"):
        cfg.require("relay", "room", "name")


# --- logging -----------------------------------------------------------------------------------------


def test_logging_goes_to_the_file_only(tmp_path: Path) -> None:
    """In a fresh interpreter: records and warnings land in the file; nothing reaches the terminal."""
    log = tmp_path / "logs" / "groupchat.log"
    code = (
        "import logging, sys, warnings\n"
        "from pathlib import Path\n"
        "from groupchat.client.logging_setup import configure_logging\n"
        "logging.basicConfig()\n"  # a terminal handler someone added earlier
        f"configure_logging(Path({str(log)!r}), 'info')\n"
        "logging.getLogger('groupchat.x').error('boom %d', 7)\n"
        "logging.getLogger('groupchat.x').debug('hidden')\n"
        "warnings.warn('careful')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    text = log.read_text()
    assert "ERROR groupchat.x: boom 7" in text and "careful" in text and "hidden" not in text


def test_logging_rejects_unknown_level(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="log level"):
        configure_logging(tmp_path / "x.log", "loud")


def test_logging_reconfigure_replaces_the_file_handler(tmp_path: Path) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.lastResort)
    try:
        configure_logging(tmp_path / "a.log", "debug")
        configure_logging(tmp_path / "b.log", "debug")
        logging.getLogger("groupchat.t").debug("to b")
        for h in root.handlers:
            h.flush()
        assert "to b" in (tmp_path / "b.log").read_text()
        assert "to b" not in (tmp_path / "a.log").read_text()
    finally:
        for h in list(root.handlers):
            if h not in saved[0]:
                root.removeHandler(h)
                h.close()
        root.setLevel(saved[1])
        logging.lastResort = saved[2]
        logging.captureWarnings(False)


def test_a_config_file_error_is_one_tree_with_the_core_errors() -> None:
    from groupchat.core.errors import ConfigError, UsageError

    assert issubclass(ConfigFileError, ConfigError) and issubclass(ConfigFileError, UsageError)
