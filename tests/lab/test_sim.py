"""``groupchat sim``: small real groups, the invariants hold, the costs are the protocol's, and a
broken invariant is caught for real (exit 1, the step named).

Every run here drives real ``Group`` objects through the lab room, with real crypto; the faults are
injected through the command's test hook (``--inject-fault``): a member that misses a step's
messages, or a removed member's keeper handed a live member's state after its removal, so the
checks fail on what actually happened.
"""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path

import pytest

from groupchat.cli import main
from groupchat.lab.sim.churn import ChurnError, Step, initial_names, parse_churn, random_schedule
from groupchat.lab.sim.compare import compare, pairwise_point, ring_point, tree_point
from groupchat.lab.sim.report import PLOT_HINT, Progress
from groupchat.lab.sim.run import simulate

CHURN = """\
# a comment line
join a by m1
message a hello from a   # trailing comment
update m2
kick m3 by a
leave m0 by m1
join b
update a
message b
"""


def test_tree_sim_holds_every_invariant_and_tries_every_attack() -> None:
    r = simulate("tree", initial_names(6), random_schedule(6, 24, seed=3), seed=3)
    assert r.failed is None, r.failed
    kinds = {s.kind for s in r.steps}
    assert {"join", "update", "message"} <= kinds and kinds & {"leave", "kick"}
    c = r.checks
    assert c.agreement > 0 and c.decrypts > 0
    assert c.removed_epochs > 0 and c.removed_reads > 0, "no removed member was attacked"
    assert c.joiner_epochs > 0 and c.joiner_reads > 0, "no joiner was attacked"
    for s in r.steps:
        assert s.total.bytes_delivered >= s.total.bytes_sent > 0
        if s.kind == "message":
            assert (s.total.sign, s.total.verify, s.total.x25519, s.rounds) == (1, s.members - 1, 0, 1)
        if s.kind == "join":  # the add, the Welcome sealed to the joiner, the joiner's first update
            assert s.total.hpke_seal == s.total.hpke_open == 1 and s.rounds == 3


def test_ring_sim_holds_every_invariant_in_four_rounds() -> None:
    r = simulate(
        "ring", initial_names(4), parse_churn("update m1\nkick m2 by m0\njoin j by m3\nmessage j\n", 4)
    )
    assert r.failed is None, r.failed
    update, kick, join, _ = r.steps
    for s in (update, kick):  # the commit, then rounds 1, 2 and 3 of the ring
        assert s.rounds == 4
        assert s.total.sign == 3 * s.members + 1  # each member signs its 3 rounds, + the commit
        n = s.members  # each checks the others' 3 rounds; the commit's receivers (the kicked too) check it
        assert s.total.verify == 3 * n * (n - 1) + (n - 1 if s.kind == "update" else n)
    assert join.rounds == 5  # the Welcome is one more hop
    assert r.checks.removed_epochs > 0 and r.checks.joiner_epochs > 0


def test_tree_update_costs_grow_with_log_n_and_stay_flat_per_member() -> None:
    # The committer climbs d = log2 n levels: 2 X25519 each (the exchange, the new key pair) + its leaf.
    points = {n: tree_point(n) for n in (8, 64, 512)}
    for n, p in points.items():
        d = int(math.log2(n))
        assert p.committer.x25519 == 2 * d + 1, (n, p.committer)
        assert p.committer.sign == 1 and p.rounds == 1
        assert 3 <= p.total.x25519 / n <= 4.5, (n, p.total)  # a receiver climbs ~1 level on average
        assert p.total.verify == n - 1  # every receiver checks the one signature
    assert points[512].total.bytes_delivered / 512 < 2 * points[8].total.bytes_delivered / 8


def test_ring_and_pairwise_points_cost_what_their_protocols_say() -> None:
    ring = ring_point(5)
    assert ring.rounds == 4 and ring.total.sign == 3 * 5 + 1
    assert ring.total.verify >= 3 * 5 * 4  # every member checks everyone else's three rounds
    pair = pairwise_point(10)
    assert (pair.committer.hpke_seal, pair.committer.sign) == (9, 9)
    assert (pair.total.hpke_open, pair.total.verify) == (9, 9)
    assert pair.total.bytes_delivered == pair.total.bytes_sent


def test_compare_caps_the_ring_and_says_so() -> None:
    points = compare([4, 16], ring_budget_s=1e-6)
    ring = [p for p in points if p.scheme == "ring"]
    assert not ring[0].skipped and ring[1].skipped.startswith("not run: a ring of 16 real members")
    assert {p.scheme for p in points if not p.skipped} == {"tree", "ring", "pairwise"}


def test_churn_script_parses_and_names_the_bad_line() -> None:
    steps = parse_churn(CHURN, 4)
    assert [s.describe() for s in steps] == [
        "join a by m1", "message a", "update m2", "kick m3 by a", "leave m0 by m1", "join b by m1",
        "update a", "message b",
    ]  # fmt: skip
    assert steps[1] == Step(2, "message", "a", text="hello from a", line=3)
    bad = {
        "update m1\njion a\n": "line 2: unknown operation 'jion'",
        "kick m9\n": "line 1: 'm9' is not in the group",
        "kick m1 by m0\nupdate m1\n": "line 2: 'm1' is not in the group",
        "join m0\n": "line 1: 'm0' is or was in the group already",
        "kick m0 by m0\n": "cannot commit its own kick",
        "update\n": "line 1: update wants a member name",
        "leave m0 by\n": "line 1: want 'leave NAME' or 'leave NAME by MEMBER'",
        "# nothing\n": "no operations",
    }
    for text, want in bad.items():
        with pytest.raises(ChurnError, match=want.replace("(", r"\(")):
            parse_churn(text, 2)
    with pytest.raises(ChurnError, match="line 1: 'm0' is the last member"):
        parse_churn("leave m0\n", 1)


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "churn.txt"
    script.write_text("update m0\nupdate m1\nkick nobody by m0\n")
    cases = [
        (["--churn", str(script)], "churn script line 3: 'nobody' is not in the group at this point"),
        (["--churn", str(tmp_path / "missing")], "No such file or directory"),
        (["--scheme", "mesh"], "invalid choice: 'mesh'"),
        (["--members", "0"], "at least 1, not 0"),
        (["--compare", "--sizes", "8,zero"], "not 'zero'"),
        (["--plot", "out.pdf"], "as .svg or .png"),
    ]
    for argv, want in cases:
        assert _status(["sim", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert want in err and err.count("\n") == 1, err


def _status(argv: list[str]) -> int:
    """The exit status of ``groupchat ARGV`` (argparse exits by SystemExit)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize(
    ("scheme", "fault", "why"),
    [
        ("tree", "skip:3:m3", "agreement: m3 is at epoch"),
        ("tree", "leak:3:m2", "removed: m2, removed at epoch"),
        ("ring", "leak:3:m2", "removed: m2, removed at epoch"),
    ],
)
def test_a_broken_invariant_exits_1_and_names_the_step(
    scheme: str, fault: str, why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "churn.txt"
    script.write_text("message m0\nkick m2 by m0\nupdate m1\nupdate m3\n")
    argv = ["sim", "--members", "4", "--scheme", scheme, "--churn", str(script)]
    assert main(argv) == 0  # the same run without the fault holds
    capsys.readouterr()
    assert main([*argv, "--inject-fault", fault]) == 1
    out, err = capsys.readouterr()
    assert "FAILED at step 3 (update m1):" in out and why in out, out
    assert err.count("\n") == 1 and f"{scheme}: an invariant failed at step 3 (update m1): {why}" in err
    if fault.startswith("leak"):  # the keeper derived a later epoch for real, from what it was handed
        assert "derives epoch" in out


def test_json_output_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--members", "3", "--scheme", "both", "--steps", "5", "--seed", "7", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and [r["scheme"] for r in doc["runs"]] == ["tree", "ring"]
    for run in doc["runs"]:
        assert {"members", "seed", "churn", "wall_s", "ok", "failed_step", "setup", "steps", "by_operation",
                "per_member", "checks", "time_note"} <= set(run)  # fmt: skip
        assert run["failed_step"] is None and len(run["steps"]) == 5 and run["seed"] == 7
        step = run["steps"][0]
        assert {"index", "kind", "description", "epoch", "members", "rounds", "stale", "total", "per_member",
                "checks", "failures"} <= set(step)  # fmt: skip
        assert set(step["total"]) == {"x25519", "sign", "verify", "hpke_seal", "hpke_open", "bytes_sent",
                                      "bytes_delivered", "cpu_ns"}  # fmt: skip
        assert set(run["checks"]) >= {"agreement", "decrypts", "removed_epochs", "joiner_epochs"}
    assert main(["sim", "--compare", "--sizes", "2,4", "--json"]) == 0
    points = json.loads(capsys.readouterr().out)["points"]
    assert {(p["scheme"], p["n"]) for p in points} == {
        (s, n) for s in ("tree", "ring", "pairwise") for n in (2, 4)
    }
    assert all(p["run"] and p["per_member_ms"] > 0 for p in points)


def test_plot_without_matplotlib_says_how_to_get_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # absent, even where `make lab-docs` installed it
    assert main(["sim", "--members", "2", "--steps", "1", "--plot", str(tmp_path / "p.svg")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and PLOT_HINT in err and "pip install 'groupchat[lab]'" in err
    assert not (tmp_path / "p.svg").exists()


def test_progress_bar_only_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    quiet, loud = io.StringIO(), Tty()
    for stream in (quiet, loud):
        bar = Progress("sim", stream, after_s=0.0)
        bar(3, 10)
        bar.close()
    assert quiet.getvalue() == ""
    assert "3/10" in loud.getvalue() and "#" in loud.getvalue()
