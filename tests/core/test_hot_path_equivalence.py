"""The hot paths' shortcuts give exactly what the general code gives (issue 16: commit and message speed).

Each shortcut here is checked against the plain computation it replaces, with Hypothesis where
the inputs have a natural space: one keyed HMAC for several HKDF blocks, the precomputed tree
tables, the direct commit decoder and the receive path's writes to the tree.
"""

from __future__ import annotations

import hmac

from hypothesis import given, settings
from hypothesis import strategies as st

from groupchat.core.suite import expand_block, expand_blocks


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80), st.lists(st.binary(max_size=120), max_size=12))
def test_expand_blocks_is_expand_block_of_each_info(prk: bytes, infos: list[bytes]) -> None:
    expected = [hmac.digest(prk, info + b"\x01", "sha256") for info in infos]
    assert expand_blocks(prk, infos) == expected
    assert [expand_block(prk, info) for info in infos] == expected
