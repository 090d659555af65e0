"""Start and stop a throwaway ``redis-server`` on 127.0.0.1 (tests and ``groupchat bench relay``).

Only the process started here is ever stopped, by its PID. Nothing is persisted to disk.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass

__all__ = ["RedisProcess", "free_port", "redis_available", "start_redis"]


def redis_available() -> bool:
    """Whether a ``redis-server`` binary is on PATH."""
    return shutil.which("redis-server") is not None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisProcess:
    """A running redis-server we started; ``stop()`` ends exactly that process."""

    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(attempts: int = 3, timeout: float = 10.0) -> RedisProcess:
    """Start ``redis-server`` on a free loopback port and wait until it answers PING."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not installed (see .ci/install-deps)")
    last_err = ""
    for _ in range(attempts):
        port = free_port()
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "yes", "--loglevel", "warning",
             "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if _ping(port):
                return RedisProcess(proc, port)
            time.sleep(0.05)
        # It died (port taken a moment after we checked) or never answered: retry elsewhere.
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=5)
        last_err = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace")[-500:]
    raise RuntimeError(f"could not start redis-server: {last_err}")
