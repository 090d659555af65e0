"""``groupchat demo --headless``: a real relay and real sessions churning, checked end to end; and the
checker itself, which must fail for each kind of disagreement it claims to catch."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from groupchat.lab.demo import PeerView, SentMessage, find_problems

REPO = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    return os.environ | {"GROUPCHAT_LOG_DIR": str(tmp_path / "logs"),
                         "GROUPCHAT_DATA_DIR": str(tmp_path / "data")}


def test_headless_demo_runs_and_checks_out(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "groupchat.cli", "demo", "--headless", "--peers", "3", "--seconds", "4"],
        capture_output=True, text=True, timeout=90, env=_env(tmp_path), cwd=REPO, stdin=subprocess.DEVNULL,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert proc.stderr == ""
    assert re.search(r"^OK: 3 peers, \d+ epochs, \d+ messages", out, re.M), out
    # Joins, a leave, rekeys with their cost, and decrypted messages are all in the transcript.
    assert len(re.findall(r"\[alice\] \+ (bob|carol) joined · epoch \d+", out)) == 2, out
    assert re.search(r"\[alice\] - (bob|carol) left · epoch \d+", out), out
    assert re.search(r"keys refreshed in [\d.]+ ms", out), out
    assert re.search(r"\[alice\] \[epoch \d+\] <(bob|carol)> .+ \(#\d+\)$", out, re.M), out
    assert list((tmp_path / "logs").glob("*.log")), "the demo logs to the log dir"


def test_demo_without_a_terminal_falls_back_to_headless(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "groupchat.cli", "demo", "--peers", "1", "--seconds", "1", "--churn", "0"],
        capture_output=True, text=True, timeout=60, env=_env(tmp_path), cwd=REPO, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0].startswith("groupchat demo: no terminal here, so running headless")
    assert "OK: 1 peers" in proc.stdout


def test_demo_flag_errors_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "groupchat.cli", "demo", "--headless", "--peers", "0"],
        capture_output=True, text=True, timeout=60, env=_env(tmp_path), cwd=REPO,
    )
    assert proc.returncode == 2
    assert "--peers must be between 1 and" in proc.stderr


def test_headless_demo_with_the_ring(tmp_path: Path) -> None:
    """The same demo on a ring group: every join and leave reruns the ring, and it checks out."""
    proc = subprocess.run(
        [sys.executable, "-m", "groupchat.cli", "demo", "--headless", "--scheme", "ring", "--peers", "3",
         "--seconds", "4"],
        capture_output=True, text=True, timeout=90, env=_env(tmp_path), cwd=REPO, stdin=subprocess.DEVNULL,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "scheme ring" in out.splitlines()[0]
    assert re.search(r"^OK: 3 peers, \d+ epochs, \d+ messages", out, re.M), out
    assert re.search(r"\[alice\] \+ (bob|carol) joined · epoch \d+ · ring of \d agreed in 3 rounds", out), out
    assert re.search(r"\[alice\] - (bob|carol) left · epoch \d+ · ring of \d agreed", out), out


# --- the checker --------------------------------------------------------------------------------------


def _peer(name: str, codes: dict[int, str], *, departed: bool = False, state: str = "ready",
          received: dict[tuple[str, str], int] | None = None, confirmed: frozenset[int] = frozenset()
          ) -> PeerView:
    epoch = max(codes) if codes else None
    return PeerView(name, codes, departed, state, epoch, received or {}, confirmed)


CODES = {1: "aaaa", 2: "bbbb", 3: "cccc"}


def test_checker_accepts_a_consistent_run() -> None:
    sent = [SentMessage("alice", 1, "hi")]
    peers = [
        _peer("alice", CODES, confirmed=frozenset({1})),
        _peer("bob", CODES, received={("alice", "hi"): 2}),
        _peer("carol", {3: "cccc"}),  # joined after the message's epoch: not expected to read it
        # Removed by the commit to epoch 3, which may have been ordered before "hi": excused.
        _peer("dave", {1: "aaaa", 2: "bbbb"}, departed=True),
    ]
    assert find_problems(peers, sent) == []


def test_checker_does_not_excuse_a_departed_member_in_an_earlier_epoch() -> None:
    sent = [SentMessage("alice", 1, "hi")]
    peers = [
        _peer("alice", CODES, confirmed=frozenset({1})),
        _peer("bob", CODES, received={("alice", "hi"): 1}),
        _peer("dave", {1: "aaaa", 2: "bbbb"}, departed=True),  # still a member for all of epoch 1
    ]
    assert find_problems(peers, sent) == ["alice's 'hi' (epoch 1) did not reach dave"]


def test_checker_reports_a_fork() -> None:
    peers = [_peer("alice", CODES), _peer("bob", {1: "aaaa", 2: "XXXX", 3: "cccc"})]
    assert find_problems(peers, []) == ["epoch 2: alice has code bbbb, bob has XXXX"]


def test_checker_reports_members_on_different_epochs_and_non_members() -> None:
    peers = [_peer("alice", CODES), _peer("bob", {1: "aaaa", 2: "bbbb"}),
             _peer("carol", {}, state="joining")]
    assert find_problems(peers, []) == [
        "carol is not a member (joining)",
        "the members still in the group are on different epochs: alice at 3, bob at 2",
    ]


def test_checker_reports_lost_and_unechoed_messages() -> None:
    peers = [_peer("alice", CODES, confirmed=frozenset({1})), _peer("bob", CODES),
             _peer("carol", CODES, received={("alice", "hi"): 3, ("alice", "two"): 2}),
             _peer("dave", CODES, received={("alice", "two"): 3})]
    sent = [SentMessage("alice", 1, "hi"), SentMessage("alice", 2, "two")]
    assert find_problems(peers, sent) == [
        "alice's 'hi' (epoch 3) did not reach bob, dave",
        "alice's 'two' was never echoed by the relay",
    ]
    peers[0] = _peer("alice", CODES, confirmed=frozenset({1, 2}))
    assert find_problems(peers, sent)[1] == (
        "alice's 'two' was read in different epochs: {'carol': 2, 'dave': 3}"
    )


def test_the_transcript_the_demo_logs_leaves_out_invite_secrets() -> None:
    from groupchat.client import wording
    from groupchat.core.invite import InviteSecret
    from groupchat.lab.demo import _invite_code, _redact_invites

    code = InviteSecret.generate(os.urandom).code
    line = wording.invite_ready(code, "ws://127.0.0.1:1", "demo", 1, 0)
    assert _invite_code(line) == code  # the host's own reading of it
    logged = _redact_invites(f"  0.45s [alice] * {line}")
    assert code not in logged and code[len("gci1-") :][:8] not in logged and "gci1-…" in logged


def test_the_demo_wording_fits_the_user_and_the_scheme() -> None:
    """Issue 15: the user's default name was "you", shown "you (you)" in the roster; ring bots said
    "the tree just changed under us"."""
    from groupchat.core.identity import validate_display_name
    from groupchat.lab import demo

    name = demo.build_parser().parse_args([]).name
    assert name != "you" and validate_display_name(name) == name
    assert name not in demo._BOT_NAMES
    assert not [p for p in demo._PHRASES if "tree" in p or "ring" in p]  # said in both schemes


def test_the_headless_transcript_shows_no_message_left_sending(tmp_path: Path) -> None:
    """The observer's own lines are written when the relay echoes them, not as "(sending)"."""
    proc = subprocess.run(
        [sys.executable, "-m", "groupchat.cli", "demo", "--headless", "--peers", "2", "--seconds", "5",
         "--churn", "0", "--seed", "7"],
        capture_output=True, text=True, timeout=90, env=_env(tmp_path), cwd=REPO, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(sending)" not in proc.stdout
    assert re.search(r"\[alice\] \[epoch \d+\] <alice> .+ \(#\d+\)$", proc.stdout, re.M), proc.stdout
