"""Operations: /healthz, structured logs without payloads, SIGTERM shutdown with 1001, the CLI."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed

from groupchat.relay_protocol import Error, ErrorCode
from server.__main__ import main as relay_main

ROOM = b"ops"


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_healthz_over_plain_http(relay, make_client):
    c = await make_client(relay.port)
    await c.join(ROOM, b"a")
    status, body = await asyncio.to_thread(_get, relay.port, "/healthz")
    assert status == 200
    info = json.loads(body)
    assert info["status"] == "ok" and info["connections"] == 1 and info["rooms"] == 1
    status, _ = await asyncio.to_thread(_get, relay.port, "/other")
    assert status == 426  # not a websocket upgrade: websockets refuses it


async def test_sigterm_closes_clients_with_1001_and_exits_0(relay_procs, make_client):
    rp = relay_procs("--log-level", "debug")
    a = await make_client(rp.port)
    await a.join(ROOM, b"a")
    secret = b"payload-that-must-never-be-logged"
    await a.publish(ROOM, secret)
    await a.delivers(1)
    rp.proc.send_signal(signal.SIGTERM)
    codes = []
    with pytest.raises(ConnectionClosed):
        while True:
            f = await a.recv(timeout=10)
            if isinstance(f, Error):
                codes.append(f.code)
    assert codes == [ErrorCode.SHUTTING_DOWN]
    assert a.ws.close_code == 1001
    assert await asyncio.to_thread(rp.proc.wait, 10) == 0
    log = "".join(rp.lines)
    assert "event=conn_open" in log and "event=shutdown" in log and "event=stopped" in log
    assert "level=debug event=join" in log
    assert secret.decode() not in log and secret.hex() not in log


def test_cli_rejects_impossible_limits(capsys):
    assert relay_main(["--max-frame", "10"]) == 2
    assert "max_frame" in capsys.readouterr().err


def test_cli_help_lists_the_flags(capsys):
    with pytest.raises(SystemExit) as exc:
        relay_main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--port", "--certfile", "--keyfile", "--redis", "--log-level", "--max-frame"):
        assert flag in out


async def test_wss_with_a_certificate(tmp_path, make_relay):
    """--certfile/--keyfile serve wss://; a client that trusts the certificate connects."""
    import datetime
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from websockets.asyncio.client import connect

    from groupchat.relay_protocol import Hello, ServerHello, decode_server, encode
    from server.config import RelayConfig
    from server.relay import Relay

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    relay = Relay(RelayConfig(port=0, certfile=str(certfile), keyfile=str(keyfile)))
    await relay.start()
    try:
        ctx = ssl.create_default_context(cafile=str(certfile))
        async with connect(f"wss://localhost:{relay.port}", ssl=ctx, compression=None) as ws:
            await ws.send(encode(Hello()))
            reply = await ws.recv()
            assert isinstance(reply, bytes)
            assert isinstance(decode_server(reply), ServerHello)
    finally:
        await relay.stop()
