"""The session machine is sans-I/O at run time too, not only in import-linter's graph: importing
any of its modules in a fresh interpreter loads no event loop, socket library, UI or thread pool.

(``lint-imports`` checks each module's own imports; this checks what actually gets loaded, which
also catches a package ``__init__`` that pulls the asyncio glue in.)
"""

from __future__ import annotations

import subprocess
import sys

import pytest

# The modules of the contract in pyproject.toml ("The session machine is sans-I/O").
MACHINE = [
    "groupchat.client.session.machine",
    "groupchat.client.session.state",
    "groupchat.client.session.membership",
    "groupchat.client.session.phases",
    "groupchat.client.session.inputs",
    "groupchat.client.session.actions",
    "groupchat.client.session.core_calls",
    "groupchat.client.session.settings",
    "groupchat.client.session.duties",
    "groupchat.client.session.eviction",
    "groupchat.client.session.updates",
    "groupchat.client.session.rejoin",
    "groupchat.client.session.ring_driver",
    "groupchat.client.session.rejections",
    "groupchat.client.session.views",
    "groupchat.client.session.driver",
    "groupchat.client.coordinator",
    "groupchat.client.wording",
]
FORBIDDEN = ("asyncio", "websockets", "textual", "concurrent.futures")

_PROBE = """
import importlib, sys
importlib.import_module(sys.argv[1])
print(",".join(m for m in sys.argv[2:] if m in sys.modules))
"""


def _loaded(module: str, watch: tuple[str, ...]) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, module, *watch], capture_output=True, text=True, check=True, timeout=60
    )
    return [m for m in out.stdout.strip().split(",") if m]


def test_the_probe_sees_a_loaded_module() -> None:
    """The check itself: the asyncio glue does load asyncio and websockets."""
    assert _loaded("groupchat.client.session.asyncio_session", FORBIDDEN)[:2] == ["asyncio", "websockets"]


@pytest.mark.parametrize("module", MACHINE)
def test_the_machine_loads_no_io(module: str) -> None:
    assert _loaded(module, FORBIDDEN) == [], f"importing {module} loads I/O machinery"


def test_chat_session_is_still_exported_by_the_package() -> None:
    from groupchat.client.session import ChatSession
    from groupchat.client.session.asyncio_session import ChatSession as Glue

    assert ChatSession is Glue
