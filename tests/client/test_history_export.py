"""``groupchat history export``: the decrypted history of the local store as text or JSON, through
the real CLI entry point; one-line errors when there is nothing to export or the key is wrong."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from groupchat.cli import main
from groupchat.client.store import KEY_FILE, HistoryEntry, Place, Store, load_or_create_store_key

ME = b"\x01" * 32
LOBBY = Place("ws://127.0.0.1:8765", "lobby", ME)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GROUPCHAT_CONFIG", str(tmp_path / "absent.toml"))
    (tmp_path / "absent.toml").write_text("")
    d = tmp_path / "data"
    with Store.open(d) as store:
        store.add_message(LOBBY, HistoryEntry("01" * 8, 1, "aa" * 32, "bob", "hi there", 1e9, False))
        store.add_message(
            LOBBY, HistoryEntry("02" * 8, 1, "bb" * 32, "me", "two\nlines", 1e9 + 5, True)
        )
        store.add_message(
            LOBBY, HistoryEntry("03" * 8, 2, "aa" * 32, "bob", "\x1b[31mred\x1b[0m", 1e9 + 9, False)
        )
        den = Place("ws://127.0.0.1:8765", "den", ME)
        store.add_message(den, HistoryEntry("04" * 8, 0, "aa" * 32, "bob", "elsewhere", 1e9 + 1, False))
    return d


def test_text_export_of_one_room(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "export", "--data-dir", str(data_dir), "--room", "lobby"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "# lobby (ws://127.0.0.1:8765)"
    assert out[1].endswith("] bob: hi there")
    assert out[2].endswith("] me (you): two") and out[3] == "    lines"
    assert out[4].endswith("] bob: red")  # the escape sequence is not passed to the terminal
    assert len(out) == 5 and "elsewhere" not in "\n".join(out)


def test_json_export_of_every_room(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "export", "--data-dir", str(data_dir), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rooms = {r["room"]: r["messages"] for r in doc["rooms"]}
    assert list(rooms) == ["den", "lobby"]
    assert [m["text"] for m in rooms["lobby"]] == ["hi there", "two\nlines", "\x1b[31mred\x1b[0m"]
    assert rooms["lobby"][1] == {
        "message_id": "02" * 8,
        "epoch": 1,
        "sender_key": "bb" * 32,
        "sender_name": "me",
        "text": "two\nlines",
        "time": 1e9 + 5,
        "own": True,
    }


def test_export_to_a_file_is_owner_only(data_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    assert (
        main(["history", "export", "--data-dir", str(data_dir), "--format", "json", "-o", str(target)]) == 0
    )
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "hi there" in target.read_text()


def test_no_store_is_one_line(tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "export", "--data-dir", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no history is kept in" in err
    assert not (tmp_path / "nothing").exists()  # looking did not create a store or a key


def test_unknown_room_is_one_line(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "export", "--data-dir", str(data_dir), "--room", "nowhere"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no history of room 'nowhere'" in err


def test_missing_key_is_one_line_and_not_replaced(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (data_dir / KEY_FILE).unlink()
    assert main(["history", "export", "--data-dir", str(data_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is missing" in err
    assert not (data_dir / KEY_FILE).exists()


def test_wrong_key_is_one_line(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (data_dir / KEY_FILE).unlink()
    load_or_create_store_key(data_dir / "other.key")  # a valid key, but not the store's
    (data_dir / "other.key").rename(data_dir / KEY_FILE)
    assert main(["history", "export", "--data-dir", str(data_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "another store key" in err


def test_a_passphrase_set_from_the_cli_guards_the_export(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROUPCHAT_STORE_NEW_PASSPHRASE", "tr0ub4dor")
    assert main(["store", "passphrase", "--data-dir", str(data_dir)]) == 0
    assert "now sealed under the passphrase" in capsys.readouterr().out
    monkeypatch.delenv("GROUPCHAT_STORE_NEW_PASSPHRASE")
    # pytest's stdin is no terminal: without the variable there is no way to ask, and it says so.
    assert main(["history", "export", "--data-dir", str(data_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "protected by a passphrase" in err and "GROUPCHAT_STORE_PASSPHRASE" in err
    monkeypatch.setenv("GROUPCHAT_STORE_PASSPHRASE", "wrong")
    assert main(["history", "export", "--data-dir", str(data_dir)]) == 2
    assert "wrong passphrase" in capsys.readouterr().err
    monkeypatch.setenv("GROUPCHAT_STORE_PASSPHRASE", "tr0ub4dor")
    assert main(["history", "export", "--data-dir", str(data_dir), "--room", "lobby"]) == 0
    assert "bob: hi there" in capsys.readouterr().out
    assert main(["store", "passphrase", "--remove", "--data-dir", str(data_dir)]) == 0
    assert "has no passphrase now" in capsys.readouterr().out
    monkeypatch.delenv("GROUPCHAT_STORE_PASSPHRASE")
    assert main(["history", "export", "--data-dir", str(data_dir), "--room", "lobby"]) == 0
    assert "bob: hi there" in capsys.readouterr().out


def test_an_empty_new_passphrase_is_refused(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (data_dir / KEY_FILE).read_bytes()
    monkeypatch.setenv("GROUPCHAT_STORE_NEW_PASSPHRASE", "")
    assert main(["store", "passphrase", "--data-dir", str(data_dir)]) == 2
    assert "the passphrase is empty" in capsys.readouterr().err
    assert (data_dir / KEY_FILE).read_bytes() == before
