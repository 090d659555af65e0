"""``groupchat demo --attack MODE``: each attack mounted by the hostile relay on 127.0.0.1 port 0
against real sessions (the demo's bots, no TUI), and the watcher's own client reporting it in its
own words; the same run without the attack reports none of it; ``--attack list`` and a bad mode."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from groupchat.client.notices import ChatLine, Placeholder, TimelineEvent
from groupchat.lab.demo import DemoOptions, DemoRun
from groupchat.lab.demo_attack import (
    DROP_COUNT,
    MODES,
    REORDER_COUNT,
    SHORT_BOUNDS,
    Attack,
    Run,
    _ring_waits_for,
    describe_modes,
)

REPO = Path(__file__).resolve().parents[2]
ROOM = "demo"


async def attacked(
    attack: Attack, seconds: float = 3.0, judge: bool = True, scheme: str = "tree"
) -> tuple[list[str], list[str], DemoRun]:
    """One headless demo run of three bots with ``attack``: what was wrong at the end (the attack's
    verdict, which waits for the report; not asked for without ``judge``) and the transcript. The
    bots are closed and the relay stopped before this returns."""
    options = DemoOptions(
        peers=3, churn_per_min=0.0, scheme=scheme, room=ROOM, port=0, seed=7, seconds=seconds,
        keep_relay=False, name="guest", attack=attack,
    )  # fmt: skip
    relay = await attack.start_relay(0)
    lines: list[str] = []
    demo = DemoRun(options, relay, lines.append)
    try:
        await demo.run(seconds)
        problems = await attack.settle(demo) if judge else []
    finally:
        await demo.close()
        await relay.stop()
    return problems, lines, demo


def shown(attack: Attack, name: str) -> list[str]:
    """Every timeline line and placeholder ``name``'s client was shown."""
    return [n.text for n in attack.heard.get(name, []) if isinstance(n, TimelineEvent | Placeholder)]


def chat(attack: Attack, name: str) -> list[tuple[str, str]]:
    return [(n.sender, n.text) for n in attack.heard.get(name, []) if isinstance(n, ChatLine) and not n.own]


def said(lines: list[str], text: str) -> bool:
    return any(f"demo: {text}" in line for line in lines)


async def test_fork_the_watcher_is_shown_the_other_halfs_messages_as_a_possible_fork() -> None:
    attack = Attack("fork")
    problems, lines, demo = await attacked(attack)
    assert problems == [], "\n".join(lines)
    assert said(lines, "the relay now splits the room: alice, bob | carol")
    line = attack.caught()
    assert line is not None and re.fullmatch(
        r"1 message cannot be shown: possible fork, or altered on the way \(our epoch \d+ code is [\d ]+: "
        r"compare it with the sender's\)",
        line,
    ), line
    # The fork was real: the two halves hold different keys under one epoch number.
    alice, carol = (p.session for p in demo.peers if p.name in ("alice", "carol"))
    both = set(alice.epoch_codes) & set(carol.epoch_codes)
    assert any(alice.epoch_codes[e] != carol.epoch_codes[e] for e in both)


async def test_drop_the_watcher_is_told_how_many_messages_did_not_reach_it() -> None:
    attack = Attack("drop")
    problems, lines, _ = await attacked(attack)
    assert problems == [], "\n".join(lines)
    assert said(lines, f"the relay now drops {DROP_COUNT} of bob's messages to alice")
    line = attack.caught()
    assert line is not None and re.fullmatch(r"\d+ messages? from bob did not reach you", line), line
    assert attack.relay is not None
    assert len(attack.relay.policy.dropped) == DROP_COUNT
    assert not [t for t in shown(attack, "carol") if "did not reach you" in t], "carol got everything"


async def test_withhold_the_silent_member_is_named_and_not_removed() -> None:
    attack = Attack("withhold")
    problems, lines, demo = await attacked(attack)
    assert problems == [], "\n".join(lines)
    assert said(lines, "the relay now delivers none of bob's messages to anyone")
    silence = SHORT_BOUNDS["silence_after"]
    assert (
        attack.caught()
        == f"not heard from bob for {silence:g} s; the relay may be withholding their messages"
    )
    alice = next(p.session for p in demo.peers if p.name == "alice")
    assert "bob" in {e.name for e in alice.roster()}, "bob was removed on the relay's silence"


async def test_ghost_the_relays_member_only_asks_to_join_and_is_never_let_in() -> None:
    attack = Attack("ghost")
    problems, lines, demo = await attacked(attack)
    assert problems == [], "\n".join(lines)
    assert said(lines, "the relay now claims mallory is here")
    ghost = attack.ghost
    assert ghost is not None
    line = attack.caught()
    assert line is not None and line.startswith(
        f"mallory (fingerprint {ghost.identity.fingerprint}) asks to join"
    )
    assert ghost.welcomes == [] and ghost.opened() == []
    for p in demo.peers:
        assert ghost.identity.fingerprint not in {e.fingerprint for e in p.session.roster()}, p.name


async def test_replay_each_copy_is_refused_and_the_original_shows_once() -> None:
    attack = Attack("replay")
    problems, lines, _ = await attacked(attack)
    assert problems == [], "\n".join(lines)
    assert said(lines, "the relay now delivers one of bob's messages to alice again, twice")
    line = attack.caught()
    assert line is not None and re.fullmatch(
        r"1 message cannot be shown: a copy of one already read, sent again \(or too old to open\) "
        r"\(generation \d+ of leaf \d+ was already used or has expired\)",
        line,
    ), line
    from_bob = [text for sender, text in chat(attack, "alice") if sender == "bob"]
    assert from_bob and len(from_bob) == len(set(from_bob)), from_bob  # every text is numbered: once each


async def test_reorder_the_older_messages_delivered_late_are_counted_as_not_reaching_the_watcher() -> None:
    attack = Attack("reorder")
    problems, lines, _ = await attacked(attack)
    assert problems == [], "\n".join(lines)
    assert said(
        lines, f"the relay now holds back {REORDER_COUNT} of bob's messages to alice and delivers them"
    )
    line = attack.caught()
    assert line is not None and re.fullmatch(r"\d+ messages? from bob did not reach you", line), line
    # Held back, then delivered after all, last first: a later seq before each earlier one.
    assert len(attack.released) == REORDER_COUNT and attack.released == sorted(attack.released, reverse=True)


async def test_tamper_nothing_altered_is_shown() -> None:
    attack = Attack("tamper")
    problems, lines, _ = await attacked(attack)
    assert problems == [], "\n".join(lines)
    assert said(lines, "the relay now flips a bit in 3 of bob's messages to alice")
    line = attack.caught()
    assert line is not None and line.startswith(
        "1 message cannot be shown: possible fork, or altered on the way"
    )
    sent = {text for (sender, text) in chat(attack, "carol") if sender == "bob"}  # carol's are untouched
    seen = {text for (sender, text) in chat(attack, "alice") if sender == "bob"}
    assert sent and seen <= sent, (seen, sent)


# --- a ring group: the same attacks, and where the ring's own words differ ----------------------


def ring_waits_for(attack: Attack, name: str) -> list[set[str]]:
    """Whom each "the rekey to epoch ... is waiting for ..." line ``name`` was shown names."""
    return [w for t in shown(attack, name) if (w := _ring_waits_for(t)) is not None]


async def test_ring_fork_there_is_no_fork_the_rekey_waits_for_the_other_half() -> None:
    attack = Attack("fork")
    problems, lines, demo = await attacked(attack, scheme="ring")
    assert problems == [], "\n".join(lines)
    assert {"carol"} in ring_waits_for(attack, "alice"), shown(attack, "alice")
    # No fork: a ring rekey needs every member, so no epoch has two sets of keys.
    alice, carol = (p.session for p in demo.peers if p.name in ("alice", "carol"))
    both = set(alice.epoch_codes) & set(carol.epoch_codes)
    assert both and all(alice.epoch_codes[e] == carol.epoch_codes[e] for e in both)


async def test_ring_withhold_the_rekey_times_out_naming_the_silent_member_who_is_not_removed() -> None:
    attack = Attack("withhold")
    problems, lines, demo = await attacked(attack, scheme="ring")
    assert problems == [], "\n".join(lines)
    assert {"bob"} in ring_waits_for(attack, "alice"), shown(attack, "alice")
    alice = next(p.session for p in demo.peers if p.name == "alice")
    assert "bob" in {e.name for e in alice.roster()}, "bob was removed on the relay's silence"


@pytest.mark.parametrize("mode", ["drop", "ghost", "replay", "tamper"])
async def test_ring_the_other_attacks_are_reported_as_in_a_tree_group(mode: str) -> None:
    attack = Attack(mode)
    problems, lines, _ = await attacked(attack, scheme="ring")
    assert problems == [], "\n".join(lines)
    assert attack.caught() is not None


class _Quiet(Attack):
    """The same run with the relay behaving: who would be aimed at is chosen, nothing is done."""

    async def mount(self, run: Run, members: list[Any]) -> None:
        assert self.relay is not None
        self.watcher, self.members = members[0], tuple(members)
        self.culprit = members[1]
        self.others = tuple(members[(len(members) + 1) // 2 :])
        self.ghost = self.relay.virtual("mallory", ROOM)  # never announced, its request never sent
        self.mounted = True


async def test_without_the_attack_no_mode_reports_anything() -> None:
    quiet = _Quiet("drop")
    _, lines, _ = await attacked(quiet, seconds=12.0, judge=False)  # as long as the slowest report takes
    assert quiet.mounted, "\n".join(lines)
    assert len(chat(quiet, "alice")) >= 5, "the quiet run had too little chat to tell"
    for mode in MODES:
        judge = Attack(mode.name)
        judge.heard, judge.mounted, judge.ghost = quiet.heard, True, quiet.ghost
        judge.watcher, judge.members, judge.culprit, judge.others = (
            quiet.watcher,
            quiet.members,
            quiet.culprit,
            quiet.others,
        )
        assert judge.caught() is None, f"{mode.name}: {judge.caught()}"
        assert judge.problems(), mode.name  # and so its verdict fails
    assert not [t for t in shown(quiet, "alice") if "did not reach" in t or "not heard from" in t]


def test_attack_list_describes_every_mode_in_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "groupchat.cli", "demo", "--attack", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out == describe_modes().splitlines()
    assert [line.split()[0] for line in out] == [m.name for m in MODES]
    for line, mode in zip(out, MODES, strict=True):
        assert f"the relay {mode.does}; you should see {mode.shows}" in line
    assert {"fork", "drop", "withhold", "ghost"} <= {m.name for m in MODES}


def test_an_unknown_attack_is_a_one_line_error_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "groupchat.cli", "demo", "--attack", "flood", "--headless"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "no mode 'flood'" in proc.stderr and "list" in proc.stderr


@pytest.mark.parametrize("mode", ["ghost"])
def test_the_command_runs_an_attack_headless_and_exits_0_when_it_is_reported(
    mode: str, tmp_path: Path
) -> None:
    env = os.environ | {
        "GROUPCHAT_LOG_DIR": str(tmp_path / "logs"),
        "GROUPCHAT_DATA_DIR": str(tmp_path / "data"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "groupchat.cli", "demo", "--attack", mode, "--headless", "--peers", "2",
         "--seconds", "3"],
        capture_output=True, text=True, timeout=90, env=env, cwd=REPO, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"demo: the relay now claims mallory is here", proc.stdout), proc.stdout
    assert re.search(r"\[alice\] \* mallory \(fingerprint [0-9a-f ]+\) asks to join", proc.stdout), (
        proc.stdout
    )
    assert re.search(r"^OK: the relay's ghost attack was reported by alice: mallory", proc.stdout, re.M)


async def test_with_a_window_the_attack_aims_at_it_and_says_so_there() -> None:
    """What the TUI does, without the TUI: a session of the user's own (default settings, let in
    with the host's invite) joins; the attack waits for it, aims at it, and tells it what it does."""
    import asyncio
    import contextlib
    import time

    from groupchat.client import wording
    from groupchat.client.session import ChatSession, SessionSettings
    from groupchat.client.trust import TrustStore
    from groupchat.core.identity import Identity

    attack = Attack("drop")
    told: list[str] = []
    attack.show_in(lambda n: told.append(n.text) if isinstance(n, TimelineEvent) else None)
    options = DemoOptions(
        peers=2, churn_per_min=0.0, scheme="tree", room=ROOM, port=0, seed=7, seconds=60.0,
        keep_relay=False, name="guest", attack=attack,
    )  # fmt: skip
    relay = await attack.start_relay(0)
    demo = DemoRun(options, relay, lambda _line: None)
    runner = asyncio.create_task(demo.run(60.0))
    mine: list[str] = []
    user: ChatSession | None = None
    try:
        await asyncio.sleep(0.6)  # the host is up
        code = await demo.invite("guest")
        assert code is not None
        settings = SessionSettings(f"ws://127.0.0.1:{relay.port}", ROOM, "guest", invite=code)
        user = ChatSession(
            settings, Identity.generate(), TrustStore(None),
            lambda n: mine.append(n.text) if isinstance(n, TimelineEvent) else None,
        )  # fmt: skip
        session_task = asyncio.create_task(user.run())
        deadline = time.monotonic() + 60
        lost = {wording.messages_lost(k, "alice") for k in range(1, 100)}
        while not lost & set(mine) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert lost & set(mine), mine
        assert any(
            t.startswith(f"demo: the relay now drops {DROP_COUNT} of alice's messages to you") for t in told
        )
        assert attack.watcher is not None and attack.watcher.bot is None and attack.watcher.name == "guest"
    finally:
        runner.cancel()
        tasks = [runner]
        if user is not None:
            await user.close()
            tasks.append(session_task)
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await demo.close()
        await relay.stop()
