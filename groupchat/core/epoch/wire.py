"""Numbers and small encodings of the epoch machine on the wire (not the commit itself).

The extension numbers a GroupInfo or GroupContext carries, the restart label and the last epoch.
A commit's own wire format is :class:`~groupchat.core.commit.CommitMessage` (``core/commit.py``);
a Welcome's, ``core/welcome.py``.
"""

import dataclasses
from typing import Final

from ..admission import (
    ADMISSION_EXTENSION,
    DEFAULT_ADMISSION,
    USED_INIT_KEYS_EXTENSION,
    AdmissionState,
    UsedInitKey,
)
from ..codec import Reader, Writer
from ..errors import InvalidValueError
from ..key_schedule import GroupContext
from ..schemes.base import SCHEME_IDS
from ..welcome import (
    decode_extensions,
    encode_extensions,
)

# Private-use extension numbers (RFC 9420 §13). 0xF0C1 was a GroupInfo extension carrying the
# public tree, and 0xF0C3 a ring Welcome's roster: both now travel beside the GroupInfo
# (core/welcome.py, WelcomeMessage). The numbers are not reused.
# GroupContext extension naming a scheme other than the tree (uint16, SCHEME_IDS): bound into
# every epoch. Tree groups carry no extension, so their GroupContexts are unchanged.
SCHEME_EXTENSION: Final = 0xF0C2
# The agreed admission state (core/admission.py) is ADMISSION_EXTENSION = 0xF0C6, absent while
# it is the default, and USED_INIT_KEYS_EXTENSION = 0xF0C7 (departed members' init keys), absent
# while there are none.
# A ring Welcome's GroupInfo (for the epoch *before* the commit that adds the joiner): the
# commit itself and that epoch's interim transcript hash (its roster is the Welcome's state).
RING_COMMIT_EXTENSION: Final = 0xF0C4
RING_INTERIM_EXTENSION: Final = 0xF0C5
# (0xF002 was an unsigned ring confirmation; every member now confirms in the ring's signed
# round 3, core/schemes/ring.py. The number is not reused.)
# A restart commit (remove only, while a ring runs) is signed over the GroupContext and this label
# with the digest of the commit whose ring it restarts (docs/protocol.md §8.3).
RESTART_LABEL: Final = b"groupchat v1 ring restart"
# GroupContext.epoch is a uint64: a group at this epoch can never commit again (epoch + 1 would
# not encode), so no commit may be built or applied from it and no welcome may start there.
LAST_EPOCH: Final = (1 << 64) - 1


def scheme_extension(name: str) -> bytes:
    """The GroupContext extensions naming a scheme other than the default tree."""
    return encode_extensions([(SCHEME_EXTENSION, Writer().u16(SCHEME_IDS[name]).bytes())])


def scheme_of(ctx: GroupContext) -> str:
    """The scheme a GroupContext names (no extension: the tree)."""
    for ext, data in decode_extensions(ctx.extensions):
        if ext == SCHEME_EXTENSION:
            names = {v: k for k, v in SCHEME_IDS.items()}
            r = Reader(data, "scheme extension")
            scheme_id = r.u16("scheme id")
            r.end()
            if scheme_id not in names:
                raise InvalidValueError(f"unknown key-agreement scheme {scheme_id} in the GroupContext")
            return names[scheme_id]
    return "tree"


def admission_of(ctx: GroupContext) -> AdmissionState:
    """The admission state a GroupContext carries (no extensions: the default); bounds enforced."""
    if not ctx.extensions:
        return DEFAULT_ADMISSION
    state, used = DEFAULT_ADMISSION, tuple[UsedInitKey, ...]()
    for ext, data in decode_extensions(ctx.extensions):
        if ext == ADMISSION_EXTENSION:
            state = AdmissionState.decode(data)
        elif ext == USED_INIT_KEYS_EXTENSION:
            used = AdmissionState.decode_used_init_keys(data)
    if not used:
        return state
    if state is DEFAULT_ADMISSION:  # the common case, without dataclasses.replace's field walk
        return AdmissionState(used_init_keys=used)
    return dataclasses.replace(state, used_init_keys=used)


def with_admission(extensions: bytes, state: AdmissionState) -> bytes:
    """``extensions`` with the admission extensions replaced by ``state``'s (none for the default)."""
    ours = (ADMISSION_EXTENSION, USED_INIT_KEYS_EXTENSION)
    items = [(t, d) for t, d in decode_extensions(extensions) if t not in ours] if extensions else []
    if not state.policy_is_default:
        items.append((ADMISSION_EXTENSION, state.encode()))
    if state.used_init_keys:
        items.append((USED_INIT_KEYS_EXTENSION, state.encode_used_init_keys()))
    return encode_extensions(items)
