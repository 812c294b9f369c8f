"""A real Redis server for the tests: Debian's ``redis-server`` (``make system`` installs it),
started once per test session in a temporary folder on a free loopback port, with no persistence,
and stopped (its folder removed) at the end. Each test that asks for ``redis_url`` gets a database
of its own (``/1`` .. ``/15`` in turn), flushed first.

Loaded by the root conftest.py as a pytest plugin, like ``support.fixtures``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="monitor-redis-"))
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._databases = itertools.cycle(range(1, 16))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        self.port = _free_port()
        log = (self.root / "redis.log").open("wb")
        self.process = subprocess.Popen(
            [
                self.binary,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.root),
                "--save", "",
                "--appendonly", "no",
                "--protected-mode", "yes",
                "--databases", "16",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.root / 'redis.log').read_text()[-500:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2) as sock,
            ):
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on 127.0.0.1:{self.port} within {timeout:.0f} s")

    def database(self) -> str:
        """A URL of the next database, flushed (each test gets a clean one)."""
        number = next(self._databases)
        with socket.create_connection(("127.0.0.1", self.port), 5) as sock:
            sock.sendall(f"SELECT {number}\r\nFLUSHDB\r\n".encode())
            reply = b""
            while reply.count(b"\r\n") < 2:
                reply += sock.recv(64)
        assert reply == b"+OK\r\n+OK\r\n", reply
        return f"redis://127.0.0.1:{self.port}/{number}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server for the session. Skipped only where it is not installed, and never in
    CI (``make test`` installs it)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed: `make system` installs Debian's redis-server")
        pytest.skip("redis-server is not installed (`make system` installs it)")
    server = RedisServer(binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A flushed database of the session's Redis server: ``redis://127.0.0.1:PORT/N``."""
    return redis_server.database()
