"""Fuzzing the envelope codec and a live relay with Hypothesis.

Every input is either accepted or rejected with a documented error: the decoder raises only
DecodeError, anything it accepts re-encodes to the same bytes, and a live relay answers garbage
with Error frames (or a documented close code) and keeps serving everyone else.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from groupchat.core.errors import DecodeError
from groupchat.relay_protocol import (
    MAX_ID_LEN,
    Ack,
    Deliver,
    Error,
    ErrorCode,
    Hello,
    Join,
    Joined,
    Leave,
    Presence,
    PresenceEvent,
    Publish,
    SendTo,
    ServerHello,
    ServerLimits,
    decode,
    decode_client,
    decode_server,
    encode,
)
from server.config import Limits, RelayConfig
from server.relay import Relay

ids = st.binary(min_size=1, max_size=MAX_ID_LEN)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
text = st.text(max_size=20)
limits = st.builds(
    ServerLimits, u32, u32, st.integers(0, 2**16 - 1), u32, u32, u32, u32, u64, u32, u32
)
frames = st.one_of(
    st.builds(Hello, text),
    st.builds(Join, u32, ids, ids, st.none() | u64),
    st.builds(Leave, u32, ids),
    st.builds(Publish, u32, ids, st.binary(max_size=300)),
    st.builds(SendTo, u32, ids, ids, st.binary(max_size=300)),
    st.builds(ServerHello, st.integers(0, 255), limits, text),
    st.builds(Joined, u32, ids, u64, st.lists(ids, max_size=5).map(tuple)),
    st.builds(Ack, u32, u64),
    st.builds(Deliver, u64, ids, ids, st.none() | ids, st.binary(max_size=300)),
    st.builds(Presence, ids, ids, st.sampled_from(PresenceEvent)),
    st.builds(Error, st.sampled_from(ErrorCode).map(str), text, u32, st.binary(max_size=8)),
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid envelope with a few bytes flipped, cut or inserted."""
    data = bytearray(encode(draw(frames)))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[pos:]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


junk = st.one_of(st.binary(max_size=200), mutated())


@given(frames)
def test_roundtrip(frame: object) -> None:
    data = encode(frame)  # type: ignore[arg-type]
    assert decode(data) == frame


@given(junk)
@settings(max_examples=500)
def test_decoder_accepts_canonically_or_raises_decode_error(data: bytes) -> None:
    for fn in (decode, decode_client, decode_server):
        try:
            frame = fn(data)
        except DecodeError:
            continue
        assert encode(frame) == data  # one encoding per frame: nothing else slips through


# --- a live relay -----------------------------------------------------------------------------


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def live_relay() -> Iterator[tuple[int, list[object], _Recorder]]:
    """A relay in a background thread (the Hypothesis test below is synchronous)."""
    loop = asyncio.new_event_loop()
    loop_errors: list[object] = []
    loop.set_exception_handler(lambda _loop, ctx: loop_errors.append(ctx))
    relay = Relay(RelayConfig(port=0, limits=Limits(max_frame=4096, rate_per_second=1e6,
                                                      burst=1_000_000)))
    recorder = _Recorder()
    logging.getLogger("groupchat.relay").addHandler(recorder)
    logging.getLogger("websockets").addHandler(recorder)
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(relay.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield relay.port, loop_errors, recorder
    finally:
        asyncio.run_coroutine_threadsafe(relay.stop(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        logging.getLogger("groupchat.relay").removeHandler(recorder)
        logging.getLogger("websockets").removeHandler(recorder)


@given(st.lists(junk, min_size=1, max_size=8), st.booleans())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_live_relay_survives_random_frames(
    live_relay: tuple[int, list[object], _Recorder], batch: list[bytes], say_hello: bool
) -> None:
    port, loop_errors, recorder = live_relay
    uri = f"ws://127.0.0.1:{port}"
    with connect(uri, compression=None, max_size=1 << 20, close_timeout=2) as fuzzer, \
            connect(uri, compression=None, max_size=1 << 20, close_timeout=2) as victim:
        victim.send(encode(Hello()))
        assert isinstance(decode_server(victim.recv(timeout=5)), ServerHello)  # type: ignore[arg-type]
        victim.send(encode(Join(1, b"fuzz-room", b"victim")))
        if say_hello:
            fuzzer.send(encode(Hello()))
            assert isinstance(decode_server(fuzzer.recv(timeout=5)), ServerHello)  # type: ignore[arg-type]
        codes = {str(c) for c in ErrorCode}
        try:
            for data in batch:
                fuzzer.send(data)
            while True:
                reply = decode_server(fuzzer.recv(timeout=0.1))  # type: ignore[arg-type]
                if isinstance(reply, Error):
                    assert reply.code in codes
        except TimeoutError:
            pass  # nothing more to say: the relay answered everything it will answer
        except ConnectionClosed:
            # Closing is allowed only with a documented code (no Hello first, bad version...).
            assert fuzzer.close_code in (1000, 1002, 1008, 1009), fuzzer.close_code
        # Everyone else is still served: the victim publishes and gets its echo.
        victim.send(encode(Publish(2, b"fuzz-room", b"still alive")))
        while True:
            frame = decode_server(victim.recv(timeout=5))  # type: ignore[arg-type]
            if isinstance(frame, Deliver) and frame.payload == b"still alive":
                break
    assert not loop_errors, loop_errors
    assert not recorder.records, [r.getMessage() for r in recorder.records]
