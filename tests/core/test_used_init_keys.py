"""The init keys of departed members are agreed group state (docs/protocol.md §4.5, issue 14).

Bob joins with request R and leaves while R is still valid; Carol joins after. Before, only the
members who saw Bob leave remembered R's init key, so Carol could commit R and split the group.
Now the set rides in the GroupContext (extension 0xF0C7): Carol gets it in her Welcome, every member
(Carol included) refuses R alike, naming the committer; the committer prunes expired entries
by its own clock through a signed change that everyone applies alike, and the list is bounded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import pytest
from group_harness import Harness, fingerprint
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from groupchat.core import admission as admission_module
from groupchat.core.admission import (
    MAX_USED_INIT_KEYS,
    USED_INIT_KEYS_EXTENSION,
    Admissibility,
    AdmissionChange,
    AdmissionState,
    ChangeType,
    UsedInitKey,
    init_key_ref,
    used_after,
)
from groupchat.core.codec import Writer
from groupchat.core.commit import Commit, CommitMessage
from groupchat.core.epoch.wire import admission_of
from groupchat.core.errors import (
    AdmissionChangeError,
    DuplicateKeyError,
    ExpiredJoinRequestError,
    FieldTooLargeError,
    GroupChatError,
    InvalidValueError,
    TrailingDataError,
    UsageError,
)
from groupchat.core.events import EpochChanged
from groupchat.core.group import Group, GroupConfig
from groupchat.core.identity import Identity, JoinRequest, PendingJoin
from groupchat.core.key_schedule import GroupContext
from groupchat.core.message_protection import ContentType, FramedContent, WireFormat, sign_framed_content
from groupchat.core.suite import CipherSuite
from groupchat.core.welcome import decode_extensions, encode_extensions
from groupchat.lab.clock import ManualClock

NOW = 1_800_000_000.0
SKEW = 300.0


def harness(clock: ManualClock, members: int = 3, slow: ManualClock | None = None) -> Harness:
    """m0..m{members-1}; ``slow`` (if given) is m2's own wall clock, behind everyone's."""
    configs = {} if slow is None else {"m2": GroupConfig(wall_clock=slow.wall, clock_skew=SKEW)}
    h = Harness(GroupConfig(wall_clock=clock.wall, clock_skew=SKEW), configs=configs)
    h.add("m0", members - 1)
    return h


def request(h: Harness, name: str, lifetime: int = 3600) -> PendingJoin:
    return JoinRequest.create(
        h.suite, Identity.generate(), h.group_id, name, lifetime=lifetime, wall_clock=h.config.wall_clock
    )


def agreed(h: Harness) -> AdmissionState:
    """Every member holds the same GroupContext (so the same used init keys); returns the state."""
    h.assert_consistent()
    groups = list(h.members.values())
    assert len({g._ctx_bytes for g in groups}) == 1
    assert len({g.admission for g in groups}) == 1
    return groups[0].admission


def refuses(group: Group, data: bytes, error: type[GroupChatError], signer: str) -> GroupChatError:
    """``group`` refuses ``data`` with exactly ``error``, naming ``signer``, and changes nothing."""
    before = (fingerprint(group), group.admission)
    with pytest.raises(GroupChatError) as info:
        group.receive(data)
    assert type(info.value) is error, repr(info.value)
    assert info.value.signer_name == signer  # type: ignore[attr-defined]
    assert (fingerprint(group), group.admission) == before
    return info.value


@contextmanager
def forgetful(group: Group) -> Iterator[None]:
    """A malicious member: it builds its commit as if no departed member's init key were known."""
    real = group._admission
    group._admission = dataclasses.replace(real, used_init_keys=())
    try:
        yield
    finally:
        group._admission = real


def re_signed(group: Group, data: bytes, changes: tuple[AdmissionChange, ...]) -> bytes:
    """``group``'s commit ``data`` with other admission changes, signed again by ``group``: what a
    malicious committer can send (the confirmation tag, checked last, is left as it was)."""
    msg = CommitMessage.decode(data)
    c = msg.content
    body = Commit(msg.commit.operations, changes)
    content = FramedContent(
        c.group_id, c.epoch, c.sender, c.authenticated_data, ContentType.COMMIT, body.encode()
    )
    signature = sign_framed_content(
        group.suite, group._identity.signing_key, WireFormat.PUBLIC_MESSAGE, content, group._ctx_bytes
    )
    return CommitMessage(content, body, signature, msg.confirmation_tag).encode()


def bob_left_and_carol_joined(clock: ManualClock) -> tuple[Harness, JoinRequest]:
    h = harness(clock)
    bob = request(h, "bob")
    h.commit("m0", add=[bob])
    h.remove("m1", "bob")
    clock.advance(60)
    h.commit("m2", add=[request(h, "carol")])
    assert bob.request.not_after > clock.wall() + SKEW  # still valid: only the used set refuses it
    return h, bob.request


# --- the attack: a member who joined after Bob left -----------------------------------------------------


def test_a_member_who_joined_after_bob_left_knows_his_init_key_from_its_welcome() -> None:
    h, old = bob_left_and_carol_joined(ManualClock(wall_start=NOW))
    state = agreed(h)
    assert state.used_init_keys == (UsedInitKey(init_key_ref(h.suite, old.init_key), old.not_after),)
    carol = h.members["carol"]
    assert (
        dict(decode_extensions(carol._ctx.extensions))[USED_INIT_KEYS_EXTENSION]
        == state.encode_used_init_keys()
    )
    # Carol, honest, refuses to build the commit, and classifies the request as everyone does.
    with pytest.raises(DuplicateKeyError, match="joined and left"):
        carol.commit(add=[old])
    now = h.config.wall_clock()
    assert {g.classify_request(old, None, None, now).admissibility for g in h.members.values()} == {
        Admissibility.STALE
    }


def test_carol_committing_bobs_old_request_is_refused_by_every_member_alike() -> None:
    h, old = bob_left_and_carol_joined(ManualClock(wall_start=NOW))
    carol = h.members["carol"]
    with forgetful(carol):
        data = carol.commit(add=[old])
    for name in ("m0", "m1", "m2"):
        err = refuses(h.members[name], data, DuplicateKeyError, "carol")
        assert err.signer == carol.my_leaf and "'bob'" in str(err)  # type: ignore[attr-defined]
    carol.discard_pending_commit()
    h.update("m1")  # no split: the next commit applies everywhere
    agreed(h)


def test_carol_refuses_an_old_members_commit_of_bobs_request_like_the_others() -> None:
    """The other side of the split: a member that saw Bob leave commits R (maliciously); Carol,
    who never saw Bob, refuses it too, from the state her Welcome gave her."""
    h, old = bob_left_and_carol_joined(ManualClock(wall_start=NOW))
    mal = h.members["m0"]
    with forgetful(mal):
        data = mal.commit(add=[old])
    for name in ("m1", "m2", "carol"):
        refuses(h.members[name], data, DuplicateKeyError, "m0")
    mal.discard_pending_commit()
    h.update("carol")
    agreed(h)


def test_a_fresh_request_of_the_same_person_is_welcome() -> None:
    clock = ManualClock(wall_start=NOW)
    h, old = bob_left_and_carol_joined(clock)
    again = request(h, "bob")
    assert again.request.init_key != old.init_key
    assert h.members["carol"].classify_request(again.request, None, None, clock.wall()).admissibility is (
        Admissibility.NEEDS_APPROVAL
    )
    h.commit("carol", add=[again])
    assert agreed(h).init_key_used(h.suite, old.init_key)  # R stays refused while listed


# --- pruning: the committer's clock, a signed change, applied alike ---------------------------------------


def test_the_committers_prune_is_applied_by_every_member_even_one_whose_clock_disagrees() -> None:
    clock, slow = ManualClock(wall_start=NOW), ManualClock(wall_start=NOW)
    h = harness(clock, slow=slow)
    bob = request(h, "bob", lifetime=600)
    h.commit("m0", add=[bob])
    h.remove("m1", "bob")
    assert agreed(h).used_init_keys
    clock.advance(600 + SKEW + 10)  # expired by everyone's clock but m2's
    slow.advance(60)
    # m2 commits: by its clock nothing expired, so it prunes nothing, and everyone keeps the entry.
    m2 = h.members["m2"]
    data = m2.commit(update=True)
    assert CommitMessage.decode(data).commit.changes == ()
    h.deliver(data)
    assert agreed(h).init_key_used(h.suite, bob.request.init_key)
    # m0 commits: its signed prune drops the entry for everyone, m2 included (it reads no clock).
    data = h.members["m0"].commit(update=True)
    changes = CommitMessage.decode(data).commit.changes
    assert changes == (AdmissionChange(ChangeType.PRUNE, not_after=int(clock.wall() - SKEW)),)
    h.deliver(data)
    state = agreed(h)
    assert state.used_init_keys == () and all(g._ctx.extensions == b"" for g in h.members.values())


def test_a_prune_that_drops_nothing_or_comes_twice_is_refused_naming_the_committer() -> None:
    h, old = bob_left_and_carol_joined(ManualClock(wall_start=NOW))
    m1 = h.members["m1"]
    honest = m1.commit(update=True)
    kept_until = old.not_after  # prunes below this drop nothing
    nothing = re_signed(m1, honest, (AdmissionChange(ChangeType.PRUNE, not_after=kept_until),))
    twice = re_signed(
        m1,
        honest,
        (AdmissionChange(ChangeType.PRUNE, not_after=kept_until + 1),) * 2,
    )
    for name in ("m0", "m2", "carol"):
        assert "drops nothing" in str(refuses(h.members[name], nothing, AdmissionChangeError, "m1"))
        assert "twice" in str(refuses(h.members[name], twice, AdmissionChangeError, "m1"))
    h.deliver(honest)
    agreed(h)


def test_a_committer_claiming_a_later_time_makes_everyone_forget_alike() -> None:
    """A prune is the committer's judgement (as approving a request is): one claiming a time past
    R's expiry makes every member forget R at once, so R may then be added, by everyone alike."""
    h, old = bob_left_and_carol_joined(ManualClock(wall_start=NOW))
    m1 = h.members["m1"]
    object.__setattr__(m1, "_own_prune", lambda departing: old.not_after + 1)
    h.update("m1")
    assert agreed(h).used_init_keys == ()
    events = h.deliver(h.members["carol"].commit(add=[old]))  # only Bob's client could join with it
    assert all(isinstance(ev, EpochChanged) for ev in events.values())
    assert len({ev.epoch_authenticator for ev in events.values()}) == 1  # type: ignore[union-attr]
    assert len({g._ctx_bytes for g in h.members.values()}) == 1


def test_an_honest_committer_never_builds_a_prune_everyone_would_refuse() -> None:
    h, _ = bob_left_and_carol_joined(ManualClock(wall_start=NOW))
    m1 = h.members["m1"]
    object.__setattr__(m1, "_own_prune", lambda departing: 1)  # drops nothing
    with pytest.raises(UsageError, match="drops nothing"):
        m1.commit(update=True)
    assert not m1.has_pending_commit


# --- the bound ----------------------------------------------------------------------------------------------


def test_a_full_list_drops_its_oldest_entry_for_every_member() -> None:
    h = harness(ManualClock(wall_start=NOW), members=4)
    far = int(NOW) + 86400
    planted = tuple(UsedInitKey(i.to_bytes(16, "big"), far) for i in range(MAX_USED_INIT_KEYS))
    for g in h.members.values():  # plant a full list (white box) on every member alike
        g._admission = dataclasses.replace(g._admission, used_init_keys=planted)
    gone = h.members["m3"]
    gone_request = gone._scheme.member(gone.my_leaf)
    assert gone_request is not None
    h.remove("m0", "m3")
    state = agreed(h)
    assert len(state.used_init_keys) == MAX_USED_INIT_KEYS
    assert state.used_init_keys[:-1] == planted[1:]
    assert state.used_init_keys[-1] == UsedInitKey(
        init_key_ref(h.suite, gone_request.init_key), gone_request.not_after
    )
    body = dict(decode_extensions(h.members["m0"]._ctx.extensions))[USED_INIT_KEYS_EXTENSION]
    assert len(body) == 2 + 24 * MAX_USED_INIT_KEYS  # the bound stated in docs/protocol.md §4.5
    # A joiner reads the full list from its Welcome and holds the same state.
    h.add("m1")
    agreed(h)


SUITE = CipherSuite()


def _request(i: int, not_after: int) -> JoinRequest:
    return dataclasses.replace(
        JoinRequest.create(SUITE, Identity.from_private_bytes(bytes([i % 256]) * 32), b"g", "x").request,
        not_after=not_after,
    )


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.lists(st.tuples(st.integers(0, 40), st.integers(0, 50)), max_size=5).map(
                lambda d: ("leave", d)
            ),
            st.integers(0, 60).map(lambda t: ("prune", t)),
        ),
        max_size=30,
    ),
    cap=st.integers(1, 8),
)
def test_used_after_stays_bounded_fifo_and_prunes_exactly_the_expired(
    steps: list[tuple[str, object]], cap: int
) -> None:
    requests: dict[int, JoinRequest] = {}
    used: tuple[UsedInitKey, ...] = ()
    with mock.patch.object(admission_module, "MAX_USED_INIT_KEYS", cap):
        for kind, arg in steps:
            if kind == "leave":
                departed = []
                for i, not_after in arg:  # type: ignore[attr-defined]
                    requests.setdefault(i, _request(i, 0))
                    departed.append(dataclasses.replace(requests[i], not_after=not_after))
                expected = list(used)
                for r in departed:
                    ref = init_key_ref(SUITE, r.init_key)
                    expected = [e for e in expected if e.ref != ref] + [UsedInitKey(ref, r.not_after)]
                used = used_after(used, departed, None, SUITE)
                assert list(used) == expected[-cap:]
            else:
                before = arg
                if any(e.not_after < before for e in used):  # type: ignore[operator]
                    used = used_after(used, [], before, SUITE)  # type: ignore[arg-type]
                    assert all(e.not_after >= before for e in used)  # type: ignore[operator]
                else:
                    with pytest.raises(AdmissionChangeError):
                        used_after(used, [], before, SUITE)  # type: ignore[arg-type]
            assert len(used) <= cap and len({e.ref for e in used}) == len(used)
            if used:
                state = AdmissionState(used_init_keys=used)
                assert AdmissionState.decode_used_init_keys(state.encode_used_init_keys()) == used


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(
    plan=st.lists(
        st.tuples(st.sampled_from(["add", "remove", "update", "wait"]), st.integers(0, 99)),
        min_size=1,
        max_size=16,
    )
)
def test_many_removals_keep_the_list_bounded_and_every_groupcontext_equal(
    plan: list[tuple[str, int]],
) -> None:
    """Real groups, a lowered cap (2) so that removals overflow it: after every commit every
    member (joiners included) holds the same GroupContext, the list is within the cap, and no
    departed request can be re-added while it is listed."""
    clock = ManualClock(wall_start=NOW)
    with mock.patch.object(admission_module, "MAX_USED_INIT_KEYS", 2):
        h = harness(clock, members=5)
        departed: list[JoinRequest] = []
        for action, pick in plan:
            names = sorted(h.members)
            committer = names[pick % len(names)]
            if action == "add":
                h.commit(committer, add=[request(h, h.fresh_name(), lifetime=900)])
            elif action == "remove" and len(names) > 2:
                victim = [n for n in names if n != committer][pick % (len(names) - 1)]
                g = h.members[victim]
                req = g._scheme.member(g.my_leaf)
                assert req is not None
                departed.append(req)
                h.remove(committer, victim)
            elif action == "wait":
                clock.advance(400)
                h.update(committer)
            else:
                h.update(committer)
            state = agreed(h)
            assert len(state.used_init_keys) <= 2
            if len(departed) > 2:
                event("the list overflowed")
            g = h.members[committer]
            for req in departed:
                if state.init_key_used(h.suite, req.init_key):  # refused: by expiry first, if expired
                    expired = clock.wall() > req.not_after
                    with pytest.raises(ExpiredJoinRequestError if expired else DuplicateKeyError):
                        g.commit(add=[req])


def test_no_extension_while_nobody_left() -> None:
    h = harness(ManualClock(wall_start=NOW), members=4)
    h.update("m1")
    h.add("m2")
    assert all(g._ctx.extensions == b"" for g in h.members.values())
    ev = h.commit("m0", remove=["m3"]).events["m1"]
    assert isinstance(ev, EpochChanged)
    assert [t for t, _ in decode_extensions(h.members["m1"]._ctx.extensions)] == [USED_INIT_KEYS_EXTENSION]


def _entries(n: int, ref: bytes | None = None) -> bytes:
    body = b"".join((ref or i.to_bytes(16, "big")) + (7).to_bytes(8, "big") for i in range(n))
    return Writer().opaque(body).bytes()


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (_entries(MAX_USED_INIT_KEYS + 1), FieldTooLargeError),  # past the bound
        (_entries(2, bytes(16)), DuplicateKeyError),  # one init key twice
        (_entries(0), InvalidValueError),  # empty is encoded as no extension
        (_entries(1) + b"\x00", TrailingDataError),
    ],
)
def test_a_groupcontext_with_a_malformed_list_is_refused_on_decode(
    body: bytes, error: type[Exception]
) -> None:
    """What a joiner reads from its Welcome's GroupContext before a Group exists (Group.join)."""
    ctx = GroupContext(
        1, b"g", 5, bytes(32), bytes(32), encode_extensions([(USED_INIT_KEYS_EXTENSION, body)])
    )
    with pytest.raises(error):
        admission_of(ctx)
    assert len(AdmissionState.decode_used_init_keys(_entries(MAX_USED_INIT_KEYS))) == MAX_USED_INIT_KEYS


DEPARTING = [
    JoinRequest.create(GroupConfig().suite(), Identity.generate(), b"g", f"d{i}").request for i in range(3)
]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.binary(min_size=16, max_size=16), st.integers(0, (1 << 64) - 1)), max_size=40),
    st.integers(0, len(DEPARTING)),
    st.one_of(st.none(), st.integers(0, 1 << 40)),
)
def test_used_after_and_its_encoding_as_written_out(
    entries: list[tuple[bytes, int]], departing: int, prune: int | None
) -> None:
    """``used_after`` keeps the entries it does not touch as they are and ``encode_used_init_keys``
    joins them in one pass: both equal the list rebuilt from (ref, not_after) pairs and the layout
    written field by field (``ref[16] || uint64`` each, in a vector)."""
    suite = GroupConfig().suite()
    used = tuple(UsedInitKey(ref, t) for ref, t in dict(entries).items())
    departed = DEPARTING[:departing]
    pairs = {e.ref: e.not_after for e in used}
    for r in departed:
        ref = init_key_ref(suite, r.init_key)
        pairs.pop(ref, None)
        pairs[ref] = r.not_after
    live = pairs if prune is None else {k: v for k, v in pairs.items() if v >= prune}
    if prune is not None and len(live) == len(pairs):
        with pytest.raises(AdmissionChangeError):
            used_after(used, departed, prune, suite)
        return
    after = used_after(used, departed, prune, suite)
    assert after == tuple(UsedInitKey(k, v) for k, v in live.items())[-MAX_USED_INIT_KEYS:]
    body = Writer()
    for e in after:
        body.raw(e.ref).u64(e.not_after)
    state = AdmissionState(used_init_keys=after)
    assert state.encode_used_init_keys() == Writer().opaque(body.bytes()).bytes()
