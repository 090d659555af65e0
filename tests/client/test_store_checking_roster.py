"""A state stored between a deferred join and its roster check (a crash in that window, issue 16):
the store finishes the check on restore, so nothing is ever sent from an unchecked roster, and a
roster that does not verify is not resumed (the session joins afresh, saying why)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from groupchat.client.session_store import SessionStore
from groupchat.client.store import Store
from groupchat.core.epoch.machine import Phase
from groupchat.core.group import Group
from groupchat.core.identity import Identity

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from group_harness import welcome_for
from test_deferred_roster import ghost_welcome
from test_holes import NOW, harness, request, signed_request

RELAY, ROOM = "ws://127.0.0.1:1", "room"


def _stored(tmp_path: Path, group: Group, identity: Identity) -> SessionStore:
    assert group.phase is Phase.CHECKING
    store = Store.open(tmp_path)
    session = SessionStore(store, RELAY, ROOM, identity)
    store.save(session.place, state=(group.export_state(), 7))
    return session


def test_an_honest_checking_state_is_checked_on_restore_and_resumes_as_a_member(tmp_path: Path) -> None:
    h = harness(4)
    pj = h.join_request("joiner")
    h.deliver(h.members["m0"].commit(add=[pj.request]))
    joined = Group.join(pj, welcome_for(h.members["m0"], pj), h.config, verify_roster=False)
    session = _stored(tmp_path, joined, pj.identity)
    restored = session.restore(h.config)
    assert isinstance(restored, tuple)
    group, position = restored
    assert position == 7 and group.phase is Phase.MEMBER and group.roster_check() is None
    session.store.close()


def test_a_stored_roster_with_a_ghost_is_not_resumed(tmp_path: Path) -> None:
    h = harness(3)
    victim = Identity.generate()
    ghost = signed_request(h, victim, "victim", int(NOW) + 3600, signature=os.urandom(64))
    pj = request(h, "joiner")
    welcome, _, _ = ghost_welcome(h, pj, ghost)
    joined = Group.join(pj, welcome, h.config, verify_roster=False)
    session = _stored(tmp_path, joined, pj.identity)
    said = session.restore(h.config)
    assert isinstance(said, str), said
    assert "do not all verify" in said and "'victim'" in said and "never asked to join" in said
    session.store.close()
