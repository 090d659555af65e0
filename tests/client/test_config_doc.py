"""docs/config.md and groupchat/client/config.py agree (issue 15: the ``config.toml`` format was
documented only in the source): every key the file may hold is in the page's table with its real
default, and the page's example is a file the loader accepts."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from groupchat.client.config import _FILE_KEYS, _FILE_ONLY_KEYS, ClientConfig, load_config, read_config_file

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def _key_rows() -> dict[str, list[str]]:
    table = DOC.read_text().split("## Keys", 1)[1].split("\n\n## ", 1)[0]
    rows = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith("| `")]
    return {cells[0].strip().strip("`"): [c.strip() for c in cells] for cells in rows}


def test_every_file_key_is_documented_once() -> None:
    assert set(_key_rows()) == set(_FILE_KEYS)


def test_the_documented_defaults_are_the_real_ones() -> None:
    import argparse

    from groupchat.client.config import add_config_arguments

    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    flags = {opt for action in parser._actions for opt in action.option_strings}
    defaults = {f.name: f.default for f in dataclasses.fields(ClientConfig)}
    for key, cells in _key_rows().items():
        if key in _FILE_ONLY_KEYS:
            assert cells[3] == "—" and f"--{key}" not in flags, key
            continue
        assert cells[3] == f"`--{key.replace('_', '-')}`", key  # each key's flag, as the parser spells it
        assert cells[3].strip("`") in flags, key
        literal = re.fullmatch(r"`(.+)`", cells[2])
        if literal is None or defaults[key] is None:
            continue  # "—" or "the platform's": resolved at run time
        assert tomllib.loads(f"v = {literal.group(1)}")["v"] == defaults[key], key


def test_the_documented_example_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = DOC.read_text().split("## Example", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "config.toml"
    path.write_text(example)
    monkeypatch.setenv("HOME", str(tmp_path))
    values = read_config_file(path)
    assert values["data_dir"] == tmp_path / "groupchat-data"  # "~" expanded
    config = load_config(environ={"GROUPCHAT_CONFIG": str(path)})
    assert (config.relay, config.room, config.name, config.eviction_grace) == (
        "wss://chat.example.org", "team", "alice", 120.0)
    config.session_settings()  # a complete, valid session configuration


def test_the_readme_points_to_the_page() -> None:
    readme = (DOC.parent.parent / "README.md").read_text()
    assert "docs/config.md" in readme


def test_the_documented_keys_table_is_accepted_and_checked(tmp_path: Path) -> None:
    from groupchat.tui.app import ChatApp

    block = DOC.read_text().split("## Remapping keys", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "config.toml"
    path.write_text(block)
    config = load_config(environ={"GROUPCHAT_CONFIG": str(path)})
    assert dict(config.keys) == {"toggle-tree": "f2", "quit": "ctrl+q,f10"}
    assert ChatApp.checked_keymap(dict(config.keys)) == {"toggle-tree": "f2", "quit": "ctrl+q,f10"}
